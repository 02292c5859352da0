"""Settings, all read from the environment (emnist_site/env.py: environs and dj-database-url).

With nothing set but DEBUG=1 (what scripts/run-site sets) the site runs on SQLite with Celery
tasks executed in-process (eager). Setting DATABASE_URL and CELERY_BROKER_URL switches to
PostgreSQL and Redis with separate worker and beat processes; the code path is the same.
A malformed value stops start-up with a message naming the variable.
"""

import re
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from emnist_site.env import cache_from_url, checked_url, cron, database_from_url, env, rate, read, redis_url

BASE_DIR = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------

# Off unless asked for: a deployment that forgets DEBUG must not serve tracebacks.
DEBUG = read("bool", "DEBUG", False)
DEVELOPMENT_SECRET_KEY = "insecure-development-key-only-used-with-debug-on"
SECRET_KEY = env.str("SECRET_KEY", "")
if not DEBUG:
    if not SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    # Django's own check (security.W009) asks for 50+ characters with 5+ distinct ones.
    if SECRET_KEY == DEVELOPMENT_SECRET_KEY or SECRET_KEY.startswith("django-insecure-"):
        raise ImproperlyConfigured("SECRET_KEY is a development key: generate one for production")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters when DEBUG is off")
SECRET_KEY = SECRET_KEY or DEVELOPMENT_SECRET_KEY

ALLOWED_HOSTS = [host for host in env.list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"]) if host]
# Django compares these with the Origin header, which always has a scheme and a host.
CSRF_TRUSTED_ORIGINS = [
    checked_url("CSRF_TRUSTED_ORIGINS", origin, ("http", "https"))
    for origin in env.list("CSRF_TRUSTED_ORIGINS", [])
    if origin
]

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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # A Redis outage: one warning a minute per process, not several per request
    # (recognition/log_filters.py says where they came from).
    "filters": {
        "redis_outage": {
            "()": "recognition.log_filters.RedisOutageFilter",
            "interval": read("int", "LOG_OUTAGE_INTERVAL_SECONDS", 60, minimum=1),
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redis_outage"]}},
    "root": {"handlers": ["console"], "level": read("log_level", "LOG_LEVEL", "INFO")},
}

# ---------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------

DATA_DIR = env.path("DATA_DIR", BASE_DIR / "var")
DATABASE_URL = env.str("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL, BASE_DIR)}
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
STATIC_ROOT = env.path("STATIC_ROOT", BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Request size, in layers: RequestSizeLimitMiddleware answers 413 to any body whose
# Content-Length is over REQUEST_MAX_BYTES before it is read: the base64 of the largest image
# (ml.preprocess.MAX_BYTES, 1.5 MiB; JSON carries 4/3 of the bytes) plus room for the strokes
# (4,000 points, about 100 KB). Then the view refuses an image over 1.5 MiB from the upload's
# size or the base64 length, and ml.preprocess refuses over 4096 px a side, or over 4 Mpx for
# any format but JPEG (decoded at a reduced scale), from the header, before decoding.
REQUEST_MAX_BYTES = 1536 * 1024 * 4 // 3 + 512 * 1024
# Django's own limits: form fields and request.body (the same bound), uploaded files kept in
# memory up to the image limit and spooled to a temporary file above, one file per request (the image),
# and Django's default 1000 form fields (an admin bulk action on a full page sends one a row).
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 1536 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 1
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

# ---------------------------------------------------------------------------
# Recognition
# ---------------------------------------------------------------------------

# Where retrained model files are written; the shipped model stays in ml/artifacts.
MODEL_DIR = env.path("MODEL_DIR", DATA_DIR / "models")
SHIPPED_MODEL_PATH = "ml/artifacts/emnist_cnn.keras"
SHIPPED_MODEL_REPORT_PATH = "ml/artifacts/emnist_cnn.report.json"
# How long POST /api/v1/submissions waits for the worker before answering 202.
SUBMISSION_WAIT_SECONDS = read("float", "SUBMISSION_WAIT_SECONDS", 3, minimum=0)
PREDICTION_TOP_K = 5
# Words are read in context with this language's word list and letter frequencies (wordfreq's
# code: "en", "fr", "de", ...; ml/lexicon.py).
WORD_LANGUAGE = env.str("WORD_LANGUAGE", "en")
if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z]{2,8})?", WORD_LANGUAGE):
    raise ImproperlyConfigured(f"WORD_LANGUAGE must be a language code such as 'en', got {WORD_LANGUAGE!r}")
# A worker task predicts its own submission and up to this many - 1 other pending ones in one
# model call (under load, one message's task clears the queue behind it).
SUBMISSION_BATCH_SIZE = read("int", "SUBMISSION_BATCH_SIZE", 32, minimum=1)
# Each writer's memory of their own corrected drawings (recognition.services.writer_memory)
# holds at most this many; the oldest goes first.
WRITER_MEMORY_SIZE = read("int", "WRITER_MEMORY_SIZE", 500, minimum=1)
# Rows still pending after this many seconds are queued again (broker down when they were
# stored, a lost message); beat runs that sweep every SUBMISSION_REQUEUE_INTERVAL_SECONDS.
SUBMISSION_REQUEUE_AFTER_SECONDS = read("float", "SUBMISSION_REQUEUE_AFTER_SECONDS", 30, minimum=0)
SUBMISSION_REQUEUE_INTERVAL_SECONDS = read("int", "SUBMISSION_REQUEUE_INTERVAL_SECONDS", 30, minimum=1)

# ---------------------------------------------------------------------------
# The drawing page (frontend/): rendered into the page as its configuration
# ---------------------------------------------------------------------------

# The first prediction in a fresh process loads TensorFlow and the model: tens of seconds on a
# busy 2-core machine, hence the generous deadline for each request the page sends.
PAGE_REQUEST_TIMEOUT_MS = read("int", "PAGE_REQUEST_TIMEOUT_MS", 45000, minimum=1)
# A 202 answer is polled this many times, the delay growing by half each time up to the maximum.
PAGE_POLL_TRIES = read("int", "PAGE_POLL_TRIES", 20, minimum=0)
PAGE_POLL_DELAY_MS = read("int", "PAGE_POLL_DELAY_MS", 500, minimum=1)
PAGE_POLL_MAX_DELAY_MS = read("int", "PAGE_POLL_MAX_DELAY_MS", 3000, minimum=1)
# "Predict when the pen lifts" waits for the pen to rest this long after the last stroke, or a
# 4-stroke E would be read (and stored) after every stroke; a word needs a longer rest, since
# the pen travels between characters.
PAGE_AUTO_PAUSE_MS = read("int", "PAGE_AUTO_PAUSE_MS", 700, minimum=0)
PAGE_WORD_PAUSE_MS = read("int", "PAGE_WORD_PAUSE_MS", 1500, minimum=0)
# Below this top probability the page says the model is unsure and asks which guess is right,
# instead of showing the top answer as if it were sure.
UNSURE_BELOW = read("float", "UNSURE_BELOW", 0.5, minimum=0)
if UNSURE_BELOW > 1:
    raise ImproperlyConfigured(f"UNSURE_BELOW must be between 0 and 1, got {UNSURE_BELOW}")

# ---------------------------------------------------------------------------
# Retraining (recognition/services/retraining.py)
# ---------------------------------------------------------------------------

# EMNIST files: replay rows and the fixed validation split the quality gate measures on.
EMNIST_DATA_DIR = env.path("EMNIST_DATA_DIR", BASE_DIR.parent / "shared" / "data" / "emnist")
# A run does nothing (status "skipped") with fewer new approved corrections than this.
RETRAIN_MIN_NEW_CORRECTIONS = read("int", "RETRAIN_MIN_NEW_CORRECTIONS", 50, minimum=0)
# Gate: the candidate's validation top-1 may be at most this much below the active version's
# (a fraction: 0.003 = 0.3 points; below 0, it must gain that much). The held-back
# corrections gate has no margin.
RETRAIN_MAX_VAL_DROP = read("float", "RETRAIN_MAX_VAL_DROP", 0.003)
# Every N-th approved correction (by id) is held back for the gate and never trained on.
RETRAIN_HOLDOUT_EVERY = read("int", "RETRAIN_HOLDOUT_EVERY", 5, minimum=2)
# A run still "running" after this long is taken as abandoned (its worker died) and unlocks.
RETRAIN_LOCK_TIMEOUT_SECONDS = read("int", "RETRAIN_LOCK_TIMEOUT_SECONDS", 7200, minimum=1)
# Overrides of ml.finetune.FinetuneConfig, as JSON ({"learning_rate": 0.0003, ...}).
RETRAIN_FINETUNE = read("json", "RETRAIN_FINETUNE", {})
# The nightly schedule `setup_site` creates once; afterwards edit it in the admin
# (Periodic tasks), where django-celery-beat's DatabaseScheduler reads it.
RETRAIN_SCHEDULE_CRONTAB = cron("RETRAIN_SCHEDULE_CRONTAB", "0 3 * * *")

# ---------------------------------------------------------------------------
# Celery
# ---------------------------------------------------------------------------

CELERY_BROKER_URL = redis_url("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = redis_url("CELERY_RESULT_BACKEND") or None
# No broker configured: run tasks in-process so the embedded default needs no services.
CELERY_TASK_ALWAYS_EAGER = read("bool", "CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Each queue has its own worker service (docker-compose.yml): a retraining run takes no slot
# or CPU from predictions.
CELERY_TASK_ROUTES = {
    "recognition.tasks.predict_submission": {"queue": "inference"},
    "recognition.tasks.predict_word": {"queue": "inference"},
    "recognition.tasks.retraining_run": {"queue": "training"},
    "recognition.tasks.submission_requeue_stale": {"queue": "inference"},
    "recognition.tasks.writer_memory_prepare": {"queue": "inference"},
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
CELERY_DB_REUSE_MAX = read("int", "CELERY_DB_REUSE_MAX", 1000, minimum=1)
# Redis redelivers an unacknowledged message only after this many seconds; inference takes
# milliseconds, so a short timeout recovers quickly from a dead worker.
# Workers look for such messages every CELERY_UNACKED_RESTORE_INTERVAL seconds (kombu's default
# throttle would make that ten times longer; the scan is one ZRANGE, so scan every time).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": read("int", "CELERY_VISIBILITY_TIMEOUT", 300, minimum=1),
    "unacked_restore_interval": read("int", "CELERY_UNACKED_RESTORE_INTERVAL", 10, minimum=1),
    "unacked_restore_throttle": 1,
}
# kombu's Redis transport with a fix: closing channels after an outage no longer kills the
# worker (emnist_site/broker.py says how it did).
CELERY_BROKER_TRANSPORT = (
    "emnist_site.broker:Transport" if urlsplit(CELERY_BROKER_URL).scheme in ("redis", "rediss") else None
)
# /metrics (recognition/metrics.py) answers staff, and a scraper sending this as a bearer token.
METRICS_TOKEN = env.str("METRICS_TOKEN", "")
# Workers write a heartbeat this often (emnist_site/heartbeat.py); health fails after three missed.
WORKER_HEARTBEAT_SECONDS = read("int", "WORKER_HEARTBEAT_SECONDS", 10, minimum=1)
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
CACHE_URL = env.str("CACHE_URL", "") or (
    CELERY_BROKER_URL if urlsplit(CELERY_BROKER_URL).scheme in ("redis", "rediss") else "locmem://"
)
CACHES = {"default": cache_from_url(CACHE_URL)}
# Sessions are read from the cache (one Redis GET instead of a database query per request)
# and stored in the database; a cache outage falls back to the database (recognition/sessions.py).
SESSION_ENGINE = "recognition.sessions"
# Requests per client (signed-in user, else the visitor's session, else the IP address) and per
# IP address on the write endpoints; "off" disables one. Many people can share an IP (offices,
# phone carriers), hence its higher limit. The dearest write costs under 50 ms of CPU
# (bench/abuse_cost.py): 240 a minute lets one address take at most a tenth of 2 cores
# (4/s x 50 ms), and is still four people drawing as fast as the client limit allows.
THROTTLE_WRITE_CLIENT = rate("THROTTLE_WRITE_CLIENT", "60/min")
THROTTLE_WRITE_IP = rate("THROTTLE_WRITE_IP", "240/min")
# How many proxies in front of gunicorn append to X-Forwarded-For. 0: the header is ignored (a
# client could write anything in it); 1 behind one reverse proxy, and so on.
NUM_PROXIES = read("int", "NUM_PROXIES", 0, minimum=0)

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
    # DRF's three, with JSON's size and nesting bounded before it is parsed (a deep body is a
    # RecursionError, a 500, with DRF's own JSONParser).
    "DEFAULT_PARSER_CLASSES": [
        "recognition.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
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
    SESSION_COOKIE_SECURE = read("bool", "SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# TLS is usually terminated by a proxy in front of gunicorn; these depend on that deployment.
SECURE_SSL_REDIRECT = read("bool", "SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = read("int", "SECURE_HSTS_SECONDS", 0, minimum=0)
# Both commit every subdomain (and, with preload, browsers' built-in lists) to HTTPS: opt in.
SECURE_HSTS_INCLUDE_SUBDOMAINS = read("bool", "SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = read("bool", "SECURE_HSTS_PRELOAD", False)
if read("bool", "TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# ---------------------------------------------------------------------------
# Admin login throttling (django-axes)
# ---------------------------------------------------------------------------

# Failures are counted per username and client IP together: one person guessing cannot lock
# the admin out for everyone, and people sharing an office's IP keep their own counts.
ADMIN_LOGIN_FAILURE_LIMIT = read("int", "ADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
ADMIN_LOGIN_COOLOFF_MINUTES = read("float", "ADMIN_LOGIN_COOLOFF_MINUTES", 15, minimum=0.01)
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # last, as axes asks: it turns a lockout into the 429 page
# Axes first: a locked-out login is refused before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = ADMIN_LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = ADMIN_LOGIN_COOLOFF_MINUTES / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on every manage.py command
AXES_CLIENT_IP_CALLABLE = "recognition.login_throttle.login_client_ip"
