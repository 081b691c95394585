"""What a long-running process checks before it serves: a SECRET_KEY of its own.

Settings accept a missing key so that tools run anywhere (see ``config.settings``); the web
application and the worker call ``require_secret_key`` first and exit with one clear line.
"""

from django.conf import settings

MISSING_KEY = "SECRET_KEY is not set: set it to a long random value (DEBUG=true uses a local key)."


def require_secret_key() -> None:
    if getattr(settings, "SECRET_KEY_MISSING", False):
        raise SystemExit(MISSING_KEY)
