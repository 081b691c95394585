"""Standard Webhooks signatures: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.

A secret is ``whsec_`` + base64 of 32 random bytes; the HMAC key is the decoded bytes.
"""

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 (a public prefix, not a secret)


def new_signing_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    *, secrets_: list[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three headers; during a rotation every live secret adds a space-separated entry."""
    signatures = " ".join(
        sign(secret=secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets_
    )
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
