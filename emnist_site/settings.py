"""Settings, all read from the environment.

With nothing set the site runs on SQLite with Celery tasks executed in-process (eager), which
is what `manage.py runserver` needs. Setting DATABASE_URL and CELERY_BROKER_URL switches to
PostgreSQL and Redis with separate worker and beat processes; the code path is the same.
A malformed value stops start-up with a message naming the variable.
"""

import json
import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.getenv(name, default).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def envint(name: str, default: str) -> int:
    value = os.getenv(name, default)
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def envfloat(name: str, default: str) -> float:
    value = os.getenv(name, default)
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None


def envjson(name: str, default: str) -> dict:
    value = os.getenv(name, default)
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, got {value!r}")
    return parsed


def envrate(name: str, default: str) -> str | None:
    """A request rate such as "60/min" (per s, sec, m, min, h, hour, d, day), or "off" (None)."""
    value = os.getenv(name, default).strip().lower()
    if value == "off":
        return None
    match = re.fullmatch(r"(\d+)/(s|sec|second|m|min|minute|h|hour|d|day)", value)
    if not match or int(match[1]) < 1:
        raise ImproperlyConfigured(f"{name} must be a rate like 60/min (per s, min, hour, day) or off, got {value!r}")
    return value


def cache_from_url(url: str) -> dict:
    """redis://host:port/db (shared by every process) or locmem:// (this process only)."""
    scheme = urlsplit(url).scheme
    if scheme in ("redis", "rediss"):
        try:
            urlsplit(url).port
        except ValueError:
            raise ImproperlyConfigured(f"CACHE_URL {url!r} has a malformed port") from None
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "emnist",
            # A Redis that does not answer must not hang requests: the throttle gives up and lets them through.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    if scheme == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "emnist"}
    raise ImproperlyConfigured(f"CACHE_URL must start with redis://, rediss:// or locmem://, got {url!r}")


def database_from_url(url: str) -> dict:
    """Parse postgres://user:pass@host:port/name or sqlite:///path into a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if not path or path == "/":
            raise ImproperlyConfigured(f"DATABASE_URL {url!r} has no file path (sqlite:////abs/path.db)")
        # sqlite:///rel.db -> "/rel.db" after urlsplit; sqlite:////abs.db -> "//abs.db".
        path = path[1:] if path.startswith("//") else path.lstrip("/")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / path) if not path.startswith("/") else path}
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DATABASE_URL {url!r} has no database name")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"DATABASE_URL {url!r} has a malformed port") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "CONN_MAX_AGE": envint("DB_CONN_MAX_AGE", "60"),
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"DATABASE_URL must start with postgres:// or sqlite://, got {url!r}")


def redis_url(name: str) -> str:
    value = os.getenv(name, "")
    if value and urlsplit(value).scheme not in ("redis", "rediss", "memory"):
        raise ImproperlyConfigured(f"{name} must be a redis:// URL, got {value!r}")
    return value


# ---------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------

DEBUG = envbool("DEBUG", "1")
DEVELOPMENT_SECRET_KEY = "insecure-development-key-only-used-with-debug-on"
SECRET_KEY = os.getenv("SECRET_KEY", "")
if not DEBUG:
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Django's own check (security.W009) asks for 50+ characters with 5+ distinct ones.
    if SECRET_KEY == DEVELOPMENT_SECRET_KEY or SECRET_KEY.startswith("django-insecure-"):
        raise ImproperlyConfigured("SECRET_KEY is a development key: generate one for production")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters when DEBUG is off")
SECRET_KEY = SECRET_KEY or DEVELOPMENT_SECRET_KEY

ALLOWED_HOSTS = [h for h in os.getenv("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.getenv("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "recognition",
    "frontend",
]

MIDDLEWARE = [
    # First, so that the request latency it measures covers every other middleware.
    "recognition.metrics.RequestLatencyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "recognition.middleware.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "emnist_site.urls"
WSGI_APPLICATION = "emnist_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------

DATA_DIR = Path(os.getenv("DATA_DIR", str(BASE_DIR / "var")))
DATABASE_URL = os.getenv("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "db.sqlite3")}}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A web process and an eager task may write at once; wait instead of "database is locked".
    DATABASES["default"]["OPTIONS"] = {"timeout": 20}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---------------------------------------------------------------------------
# Static files and uploads
# ---------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(os.getenv("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Request size, in layers: RequestSizeLimitMiddleware answers 413 to any body whose
# Content-Length is over REQUEST_MAX_BYTES before it is read: the base64 of the largest image
# (ml.preprocess.MAX_BYTES, 10 MiB; JSON carries 4/3 of the bytes) plus room for the strokes.
# Then the view refuses an image over 10 MiB from the upload's size or the base64 length,
# and ml.preprocess refuses over 4096 px a side or 16 Mpx from the header, before decoding.
REQUEST_MAX_BYTES = 10 * 1024 * 1024 * 4 // 3 + 1024 * 1024
# Django's own limits: form fields and request.body (the same bound), uploaded files kept in
# memory up to 2 MiB and spooled to a temporary file above, one file per request (the image),
# and Django's default 1000 form fields (an admin bulk action on a full page sends one a row).
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# ---------------------------------------------------------------------------
# Recognition
# ---------------------------------------------------------------------------

# Where retrained model files are written; the shipped model stays in ml/artifacts.
MODEL_DIR = Path(os.getenv("MODEL_DIR", str(DATA_DIR / "models")))
SHIPPED_MODEL_PATH = "ml/artifacts/emnist_cnn.keras"
SHIPPED_MODEL_REPORT_PATH = "ml/artifacts/emnist_cnn.report.json"
# How long POST /api/v1/submissions waits for the worker before answering 202.
SUBMISSION_WAIT_SECONDS = envfloat("SUBMISSION_WAIT_SECONDS", "3")
PREDICTION_TOP_K = 5
# A worker task predicts its own submission and up to this many - 1 other pending ones in one
# model call (under load, one message's task clears the queue behind it).
SUBMISSION_BATCH_SIZE = envint("SUBMISSION_BATCH_SIZE", "32")
if SUBMISSION_BATCH_SIZE < 1:
    raise ImproperlyConfigured("SUBMISSION_BATCH_SIZE must be at least 1")
# Rows still pending after this many seconds are queued again (broker down when they were
# stored, a lost message); beat runs that sweep every SUBMISSION_REQUEUE_INTERVAL_SECONDS.
SUBMISSION_REQUEUE_AFTER_SECONDS = envfloat("SUBMISSION_REQUEUE_AFTER_SECONDS", "30")
SUBMISSION_REQUEUE_INTERVAL_SECONDS = envint("SUBMISSION_REQUEUE_INTERVAL_SECONDS", "30")
# Fault injection for the kill-the-worker test: seconds the task sleeps before predicting.
PREDICT_DELAY_SECONDS = envfloat("PREDICT_DELAY_SECONDS", "0")

# ---------------------------------------------------------------------------
# Retraining (recognition/services/retraining.py)
# ---------------------------------------------------------------------------

# EMNIST files: replay rows and the fixed validation split the quality gate measures on.
EMNIST_DATA_DIR = Path(os.getenv("EMNIST_DATA_DIR", str(BASE_DIR.parent / "shared" / "data" / "emnist")))
# A run does nothing (status "skipped") with fewer new approved corrections than this.
RETRAIN_MIN_NEW_CORRECTIONS = envint("RETRAIN_MIN_NEW_CORRECTIONS", "50")
# Gate: the candidate's validation top-1 may be at most this much below the active version's
# (a fraction: 0.003 = 0.3 points). The held-back corrections gate has no margin.
RETRAIN_MAX_VAL_DROP = envfloat("RETRAIN_MAX_VAL_DROP", "0.003")
# Every N-th approved correction (by id) is held back for the gate and never trained on.
RETRAIN_HOLDOUT_EVERY = envint("RETRAIN_HOLDOUT_EVERY", "5")
if RETRAIN_HOLDOUT_EVERY < 2:
    raise ImproperlyConfigured("RETRAIN_HOLDOUT_EVERY must be at least 2")
# A run still "running" after this long is taken as abandoned (its worker died) and unlocks.
RETRAIN_LOCK_TIMEOUT_SECONDS = envint("RETRAIN_LOCK_TIMEOUT_SECONDS", "7200")
# Overrides of ml.finetune.FinetuneConfig, as JSON ({"learning_rate": 0.0003, ...}).
RETRAIN_FINETUNE = envjson("RETRAIN_FINETUNE", "{}")
# The nightly schedule `setup_site` creates once; afterwards edit it in the admin
# (Periodic tasks), where django-celery-beat's DatabaseScheduler reads it.
RETRAIN_SCHEDULE_CRONTAB = os.getenv("RETRAIN_SCHEDULE_CRONTAB", "0 3 * * *")

# ---------------------------------------------------------------------------
# Celery
# ---------------------------------------------------------------------------

CELERY_BROKER_URL = redis_url("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = redis_url("CELERY_RESULT_BACKEND") or None
# No broker configured: run tasks in-process so the embedded default needs no services.
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "0" if CELERY_BROKER_URL else "1")
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "recognition.tasks.predict_submission": {"queue": "inference"},
    "recognition.tasks.predict_word": {"queue": "inference"},
    "recognition.tasks.retraining_run": {"queue": "training"},
    "recognition.tasks.submission_requeue_stale": {"queue": "inference"},
}
# Acknowledge after the task ran, so a worker killed mid-task leaves the message to redeliver.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connections before and after every task unless
# this is set: one new PostgreSQL connection (a forked backend) per prediction, which cost more
# CPU than the prediction. With it, a worker keeps its connection (closed every 2x this many
# tasks), and emnist_site/celery.py drops a broken or old one between tasks as Django does
# between requests (CONN_MAX_AGE, CONN_HEALTH_CHECKS).
CELERY_DB_REUSE_MAX = envint("CELERY_DB_REUSE_MAX", "1000")
# Redis redelivers an unacknowledged message only after this many seconds; inference takes
# milliseconds, so a short timeout recovers quickly from a dead worker.
# Workers look for such messages every CELERY_UNACKED_RESTORE_INTERVAL seconds (kombu's default
# throttle would make that ten times longer; the scan is one ZRANGE, so scan every time).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", "300"),
    "unacked_restore_interval": envint("CELERY_UNACKED_RESTORE_INTERVAL", "10"),
    "unacked_restore_throttle": 1,
}
# kombu's Redis transport with a fix: closing channels after an outage no longer kills the
# worker (emnist_site/broker.py says how it did).
CELERY_BROKER_TRANSPORT = (
    "emnist_site.broker:Transport" if urlsplit(CELERY_BROKER_URL).scheme in ("redis", "rediss") else None
)
# /metrics (recognition/metrics.py) answers staff, and a scraper sending this as a bearer token.
METRICS_TOKEN = os.getenv("METRICS_TOKEN", "")
# Workers write a heartbeat this often (emnist_site/heartbeat.py); health fails after three missed.
WORKER_HEARTBEAT_SECONDS = envint("WORKER_HEARTBEAT_SECONDS", "10")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# With the broker down, a request gives up queueing after about a second (the row waits for
# the re-queue sweep) instead of hanging on connection retries.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_TIMEZONE = TIME_ZONE
# The schedule lives in the database (admin: Periodic tasks), editable without a deploy.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# ---------------------------------------------------------------------------
# Cache and throttling (recognition/throttles.py)
# ---------------------------------------------------------------------------

# The throttle counters must be shared by every gunicorn worker: Redis when there is one (the
# broker's by default; keys are prefixed, so sharing its database is safe), else this process.
CACHE_URL = os.getenv("CACHE_URL", "") or (
    CELERY_BROKER_URL if urlsplit(CELERY_BROKER_URL).scheme in ("redis", "rediss") else "locmem://"
)
CACHES = {"default": cache_from_url(CACHE_URL)}
# Sessions are read from the cache (one Redis GET instead of a database query per request)
# and stored in the database; a cache outage falls back to the database (recognition/sessions.py).
SESSION_ENGINE = "recognition.sessions"
# Requests per client (signed-in user, else the visitor's session, else the IP address) and per
# IP address on the write endpoints; "off" disables one. Many people can share an IP (offices,
# phone carriers), hence its higher limit.
THROTTLE_WRITE_CLIENT = envrate("THROTTLE_WRITE_CLIENT", "60/min")
THROTTLE_WRITE_IP = envrate("THROTTLE_WRITE_IP", "600/min")
# How many proxies in front of gunicorn append to X-Forwarded-For. 0: the header is ignored (a
# client could write anything in it); 1 behind one reverse proxy, and so on.
NUM_PROXIES = envint("NUM_PROXIES", "0")
if NUM_PROXIES < 0:
    raise ImproperlyConfigured("NUM_PROXIES must be 0 or more")

# ---------------------------------------------------------------------------
# REST framework
# ---------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: a bad token then gets 401 with WWW-Authenticate, not a bare 403.
        "rest_framework.authentication.TokenAuthentication",
        "recognition.authentication.CsrfSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "recognition.schema.AutoSchema",
    "EXCEPTION_HANDLER": "recognition.api.errors.exception_handler",
    # Write endpoints opt in with `throttle_classes = throttles.WRITE` (recognition/throttles.py).
    "DEFAULT_THROTTLE_CLASSES": [],
    "NUM_PROXIES": NUM_PROXIES,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "EMNIST handwriting recognition API",
    "DESCRIPTION": "Submit a drawn character, read predictions, send corrections.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served by the site itself: the docs page must work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# ---------------------------------------------------------------------------
# Security when not debugging
# ---------------------------------------------------------------------------

if not DEBUG:
    SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", "1")
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# TLS is usually terminated by a proxy in front of gunicorn; these depend on that deployment.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "0")
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "0")
# Both commit every subdomain (and, with preload, browsers' built-in lists) to HTTPS: opt in.
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "0")
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "0")
if envbool("TRUST_X_FORWARDED_PROTO", "0"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # A Redis outage: one warning a minute per process, not several per request
    # (recognition/log_filters.py says where they came from).
    "filters": {
        "redis_outage": {
            "()": "recognition.log_filters.RedisOutageFilter",
            "interval": envint("LOG_OUTAGE_INTERVAL_SECONDS", "60"),
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redis_outage"]}},
    "root": {"handlers": ["console"], "level": os.getenv("LOG_LEVEL", "INFO")},
}
