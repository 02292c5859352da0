"""Settings for pytest: the real settings with the test database chosen by TEST_DATABASE_URL.

Unset: SQLite in a file (not in memory) so that a Celery worker subprocess started by a
test sees the same rows. Set (postgres://postgres@127.0.0.1:5432/emnist_test): PostgreSQL.
"""

import os

# DEBUG is off unless set (emnist_site/settings.py); tests run as the development site does, and
# so do the processes they start with this environment.
os.environ.setdefault("DEBUG", "1")

if os.environ.get("TEST_DATABASE_URL"):
    os.environ["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]
else:
    os.environ.pop("DATABASE_URL", None)
# The test process runs tasks eagerly unless a test explicitly points Celery at Redis.
os.environ.pop("CELERY_BROKER_URL", None)
os.environ.pop("CELERY_RESULT_BACKEND", None)
# Throttle counters in this process's memory (cleared before each test), never a shared Redis.
os.environ.pop("CACHE_URL", None)
for name in ("THROTTLE_WRITE_CLIENT", "THROTTLE_WRITE_IP", "NUM_PROXIES"):
    os.environ.pop(name, None)
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"

from emnist_site.settings import *  # noqa: E402, F403
from emnist_site.settings import BASE_DIR, DATABASES  # noqa: E402

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A fresh clone has no var/, and SQLite cannot create a file in a missing folder.
    (BASE_DIR / "var").mkdir(exist_ok=True)
    # One file per run: two runs at once in one checkout must not share (and delete) it.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test_db.{os.getpid()}.sqlite3")}

SUBMISSION_WAIT_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_AUTOREFRESH = True  # serve app static files without collectstatic
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
