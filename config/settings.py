"""Settings, read from the environment (see README "Configuration")."""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "").strip()
# The development key this project once published: never accepted.
_PUBLISHED_KEYS = {"dev-only-insecure-key-set-SECRET_KEY-in-production-0123456789abcdef"}
if SECRET_KEY in _PUBLISHED_KEYS:
    SECRET_KEY = ""
if not SECRET_KEY and DEBUG:
    # A development install keeps a random key of its own beside the code (git-ignored), so
    # sessions survive restarts and no two installs share one.
    _key_file = BASE_DIR / ".secret_key"
    if not _key_file.exists():
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()
# Without a key of its own the processes that sign sessions and keep secrets (web, worker)
# refuse to start (config.startup); tools that sign nothing lasting (check, makemigrations,
# collectstatic, migrate) still run, under a throwaway key that no other process shares.
SECRET_KEY_MISSING = not SECRET_KEY
if SECRET_KEY_MISSING:
    SECRET_KEY = "throwaway-" + secrets.token_urlsafe(50)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "django_htmx",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks_db",
    "common",
    "runs",
    "gateways",
    "pipelines",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "config.middleware.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "config.middleware.PageMessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "common.metrics.MetricsMiddleware",
]

ROOT_URLCONF = "config.urls"
# ModelBackend, with a person's own and their groups' permissions read in one query.
AUTHENTICATION_BACKENDS = ["common.backends.OneQueryModelBackend"]
# The benchmark's reference endpoints (config/bench_urls.py): never on in production.
BENCH_ENDPOINTS = env_bool("BENCH_ENDPOINTS", False)
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "common.preferences.viewer",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
DATABASE_POOLER = os.environ.get("DATABASE_POOLER", "")
# The hot path's few hand-written statements (``common.sql``) are prepared on PostgreSQL: planned
# once per connection, not per request. Never behind a pooler in transaction mode (below).
PREPARE_HOT_STATEMENTS = env_bool("PREPARE_HOT_STATEMENTS", True) and (
    DATABASE_POOLER != "transaction"
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a health check that asks the socket instead of the server
    # (``common.db.postgresql``).
    DATABASES["default"]["ENGINE"] = "common.db.postgresql"
    # An unreachable server fails a request in seconds (a JSON 503) instead of holding a web
    # worker until gunicorn kills it.
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault(
        "connect_timeout", env_int("DATABASE_CONNECT_TIMEOUT", 5)
    )
    if PREPARE_HOT_STATEMENTS:
        # psycopg prepares nothing while this is None. Only ``common.sql``'s cursor binds on the
        # server, and it asks for each statement to be prepared; the ORM's cursors never do.
        DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 1_000_000)
    if DATABASE_POOLER == "transaction":
        # Behind PgBouncer in transaction mode a session lasts one transaction: no server-side
        # cursors (they outlive it) and no prepared statements (they belong to a server
        # connection the next transaction may not get). Only for `web`: see docs/SCALING.md.
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
        DATABASES["default"]["OPTIONS"]["prepare_threshold"] = None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers work beside the one writer; IMMEDIATE takes the write lock at BEGIN so
    # two writers queue on the busy timeout instead of deadlocking on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "runs:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# Request bodies: the runner API refuses larger bodies with a JSON 413.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gateways.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["common.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["common.api.renderers.FastJSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "common.api.negotiation.FastContentNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_CLASSES": [
        "common.api.throttling.CredentialRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": os.environ.get("THROTTLE_API_KEY", "6000/min"),
        "gateway": os.environ.get("THROTTLE_GATEWAY", "12000/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "ELT runs control plane API",
    "DESCRIPTION": "Runner API (create, claim and report on runs), read API, pipelines, webhooks.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from this installation's static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "runs.api.schema.add_representation_components",
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.api.schema.document_rate_limits",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "runs.models.RunStatus",
        "TriggerTypeEnum": "runs.models.TriggerType",
        "LogLevelEnum": "runs.models.LogLevel",
        "NodeStatusEnum": "runs.api.serializers.NODE_STATUSES",
    },
}

TASKS = {
    "default": {
        "BACKEND": os.environ.get("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
        "QUEUES": ["default"],
    }
}

# Runs
RUN_LOG_CAP = 500
RUN_SAMPLE_CAP = 2000
RUN_LOG_MESSAGE_MAX_CHARS = 10_000
RUN_ERROR_SUMMARY_MAX_CHARS = 4_000
GATEWAY_DEFAULT_LEASE_SECONDS = env_int("GATEWAY_DEFAULT_LEASE_SECONDS", 600)
GATEWAY_LAST_SEEN_WRITE_INTERVAL_SECONDS = env_int("GATEWAY_LAST_SEEN_WRITE_INTERVAL_SECONDS", 30)
RUN_CANCEL_GRACE_SECONDS = env_int("RUN_CANCEL_GRACE_SECONDS", 300)
# Bulk actions (runs.bulk): a job over more matching runs needs confirm: true; a job whose
# worker has not moved it for the lease is taken over (after a worker died); a dry run's
# snapshot is good for this long.
BULK_CONFIRM_OVER = env_int("BULK_CONFIRM_OVER", 100_000)
BULK_JOB_LEASE_SECONDS = env_int("BULK_JOB_LEASE_SECONDS", 60)
BULK_SNAPSHOT_MAX_AGE_SECONDS = env_int("BULK_SNAPSHOT_MAX_AGE_SECONDS", 3600)
# How long a PATCH's Idempotency-Key is remembered: a retry within this window is applied once.
# At least an hour: runners retry a write for minutes, and a key forgotten sooner would let a
# retry apply twice.
IDEMPOTENCY_KEY_RETENTION_HOURS = max(1, env_int("IDEMPOTENCY_KEY_RETENTION_HOURS", 24))
# Queued runs for a gateway offline longer than this are flagged as stranded.
GATEWAY_OFFLINE_QUEUED_WARNING_SECONDS = env_int("GATEWAY_OFFLINE_QUEUED_WARNING_SECONDS", 600)

# Baselines: a pipeline's newest succeeded runs (at least the minimum, else no baseline), and
# when a run is out of it: slower than SLOW x p90 or faster than FAST x p50, rows or bytes outside
# LOW..HIGH x the median, or FAILURE_STREAK failures in a row.
BASELINE_RUNS = env_int("BASELINE_RUNS", 20)
BASELINE_MIN_RUNS = env_int("BASELINE_MIN_RUNS", 5)
BASELINE_SLOW_FACTOR = float(os.environ.get("BASELINE_SLOW_FACTOR") or 1.5)
BASELINE_FAST_FACTOR = float(os.environ.get("BASELINE_FAST_FACTOR") or 0.5)
BASELINE_VOLUME_LOW = float(os.environ.get("BASELINE_VOLUME_LOW") or 0.5)
BASELINE_VOLUME_HIGH = float(os.environ.get("BASELINE_VOLUME_HIGH") or 2.0)
BASELINE_FAILURE_STREAK = env_int("BASELINE_FAILURE_STREAK", 3)

# Webhooks
# Keys that encrypt signing secrets at rest: the first encrypts, any decrypts (for rotation).
# Defaults to this install's own SECRET_KEY (never a published or a throwaway one: see above;
# with none, encrypting or reading a signing secret is refused).
WEBHOOK_SECRET_KEYS = env_list("WEBHOOK_SECRET_KEYS", "") or (
    [] if SECRET_KEY_MISSING else [SECRET_KEY]
)
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", False)
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", "15"))
# A PEM file of CAs to trust for https receivers instead of the public ones (private PKI).
WEBHOOK_CA_BUNDLE = os.environ.get("WEBHOOK_CA_BUNDLE", "")
# Waits before attempts 2..8 (Standard Webhooks schedule); jitter adds up to 10% to each.
WEBHOOK_RETRY_SCHEDULE_SECONDS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
WEBHOOK_RETRY_AFTER_MAX_SECONDS = 24 * 3600
WEBHOOK_DISABLE_AFTER_FAILING_SECONDS = 5 * 24 * 3600
WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS = 24 * 3600
# A sender's lease on a delivery: longer than any one attempt can take (twice the timeout at
# least), or the sweep could send again a delivery still in flight.
WEBHOOK_LEASE_SECONDS = max(int(2 * WEBHOOK_TIMEOUT_SECONDS), env_int("WEBHOOK_LEASE_SECONDS", 120))
# The sweep (a periodic task) re-sends deliveries overdue by this much with no live lease.
WEBHOOK_SWEEP_GRACE_SECONDS = 60
# Senders in each worker process (webhooks/senders.py): sends at once, at most this many of them
# for one endpoint, and the per-endpoint circuit breaker for receivers that stop answering.
WEBHOOK_SEND_CONCURRENCY = env_int("WEBHOOK_SEND_CONCURRENCY", 8)
WEBHOOK_ENDPOINT_CONCURRENCY = env_int("WEBHOOK_ENDPOINT_CONCURRENCY", 2)
WEBHOOK_BREAKER_FAILURES = env_int("WEBHOOK_BREAKER_FAILURES", 3)
WEBHOOK_BREAKER_SECONDS = env_int("WEBHOOK_BREAKER_SECONDS", 30)
WEBHOOK_BREAKER_MAX_SECONDS = env_int("WEBHOOK_BREAKER_MAX_SECONDS", 600)
WEBHOOK_POLL_SECONDS = float(os.environ.get("WEBHOOK_POLL_SECONDS", "1"))

# The shared store (README "Configuration"): rate-limit counters and the dashboard's short-lived
# cache. Redis when REDIS_URL is set, shared by every machine; without it, files under
# SHARED_STATE_DIR, shared by every process on this machine (see common/api/throttling.py).
REDIS_URL = os.environ.get("REDIS_URL", "")
SHARED_STATE_DIR = Path(os.environ.get("SHARED_STATE_DIR", BASE_DIR / "var"))
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "common.cache.FailSoftRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "elt"),
            # A Redis that does not answer must not hold requests: fail fast and soft.
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(SHARED_STATE_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 2000},
        }
    }
THROTTLE_STORE = os.environ.get("THROTTLE_STORE", "cache" if REDIS_URL else "file")

# Metrics (README "Metrics"): GET /metrics with this bearer token; unset, the endpoint is off.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_COLLECTORS: list[str] = ["runs.metrics.collect", "webhooks.metrics.collect"]
PRUNED_KINDS = [
    "log lines",
    "telemetry samples",
    "runs with log removed",
    "log partitions",
    "runs",
    "webhook deliveries",
    "audit events",
    "task results",
]

# LOG_FORMAT=json: one JSON object a line (time, level, logger, message and any extras).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # httpx logs every request URL at INFO; webhook URLs may carry tokens.
    "loggers": {
        "httpx": {"level": "WARNING"},
        # Django logs every 4xx answer as a warning: a second line per refused request beside
        # the access log's, which already holds its path and status. Server errors still log.
        "django.request": {"level": "ERROR"},
    },
}

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
# HTTPS (README "Configuration"). Off by default so that a local install answers plain http on
# 127.0.0.1; a production deployment sets SECURE_SSL_REDIRECT=true, and behind a proxy that
# terminates TLS, SECURE_PROXY_SSL_HEADER=true so that Django trusts X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS is only ever sent over https, so a year by default is harmless on plain http.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

# Content-Security-Policy on every response: scripts only from this origin or inline with the
# request's nonce (``<script nonce="{{ csp_nonce }}">``), so an injected <script> or on* handler
# does not run even if escaping were ever missed. Style attributes stay allowed (progress bars
# and admin widgets set widths inline); they cannot run code.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# Background work: the `worker` process enqueues these every interval (see run_worker).
PERIODIC_TASKS: list[str] = [
    "webhooks.tasks.webhook_sweep",
    "runs.tasks.reap_lost_runs",
    "runs.tasks.finish_unconfirmed_cancels",
    "runs.tasks.prune_patch_receipts",
    "common.tasks.prune",
    "runs.tasks.resume_bulk_jobs",
    "runs.tasks.log_partitions_ensure",
    "runs.tasks.pipeline_days_build",
]
# Window figures read closed days from their sums (runs.rollup): days are built this many
# seconds after they close, up to this many a tick, and kept this many days back.
PIPELINE_DAY_GRACE = env_int("PIPELINE_DAY_GRACE", 300)
PIPELINE_DAYS_PER_BUILD = env_int("PIPELINE_DAYS_PER_BUILD", 7)
PIPELINE_DAYS_OPEN_PER_BUILD = 500
PIPELINE_DAYS_KEPT = env_int("PIPELINE_DAYS_KEPT", 92)
# Retention (README "Retention"); a pipeline may override the two run settings.
RUN_RETENTION_DAYS = env_int("RUN_RETENTION_DAYS", 90)
RUN_LOG_RETENTION_DAYS = env_int("RUN_LOG_RETENTION_DAYS", 30)
# PostgreSQL: log and sample partitions hold about a day of runs, and never fewer than this.
LOG_PARTITION_MIN_RUNS = env_int("LOG_PARTITION_MIN_RUNS", 1000)
WEBHOOK_DELIVERY_RETENTION_DAYS = env_int("WEBHOOK_DELIVERY_RETENTION_DAYS", 30)
AUDIT_RETENTION_DAYS = env_int("AUDIT_RETENTION_DAYS", 365)
TASK_RESULT_RETENTION_DAYS = env_int("TASK_RESULT_RETENTION_DAYS", 2)
RETENTION_JOBS: list[str] = [
    "runs.retention.run_logs_prune",
    "webhooks.retention.webhook_deliveries_prune",
    "runs.retention.runs_prune",
    "common.retention.audit_events_prune",
    "common.retention.task_results_prune",
]
# Work of one clock tick (seconds), and its batches: each one short transaction.
RETENTION_MAX_SECONDS = env_int("RETENTION_MAX_SECONDS", 10)
RETENTION_LOG_BATCH_RUNS = 20
RETENTION_RUN_BATCH = 100
RETENTION_BATCH_PAUSE_SECONDS = 0.02
# Started by the worker beside db_worker (runs/management/commands/run_worker.py).
WORKER_SERVICES: list[str] = ["webhooks.senders.serve"]
PERIODIC_TASKS_INTERVAL = env_int("PERIODIC_TASKS_INTERVAL", 15)
