"""Settings are read from the environment and fail fast: each case runs a fresh interpreter."""

import os
import subprocess
import sys

import pytest

from tests.site.helpers import ROOT, run_settings


def test_debug_is_off_unless_set_so_a_deployment_without_a_secret_key_does_not_start():
    result = run_settings(debug=None)
    assert result.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_with_debug_on_and_nothing_else_set_it_uses_sqlite_and_eager_tasks():
    result = run_settings()
    assert result.returncode == 0, result.stderr
    engine, name, eager = result.stdout.split()
    assert engine.endswith("sqlite3") and name.endswith("db.sqlite3") and eager == "True"


def test_database_and_broker_urls_switch_to_postgresql_and_redis():
    result = run_settings(DATABASE_URL="postgres://u:p@db:5432/emnist", CELERY_BROKER_URL="redis://redis:6379/0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "emnist", "False"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL must start with"),
        ({"DATABASE_URL": "postgres://u@h:notaport/db"}, "malformed port"),
        ({"CELERY_BROKER_URL": "localhost:6379"}, "CELERY_BROKER_URL must be a redis:// URL"),
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        ({"SUBMISSION_WAIT_SECONDS": "soon"}, "SUBMISSION_WAIT_SECONDS must be a number"),
        ({"DEBUG": "0"}, "SECRET_KEY must be set when DEBUG is off"),
        ({"DATABASE_URL": "postgres://u@h:5432"}, "has no database name"),
        ({"DATABASE_URL": "sqlite://"}, "has no file path"),
        (
            {"CELERY_BROKER_URL": "redis://redis:port/0"},
            "CELERY_BROKER_URL 'redis://redis:port/0' has a malformed port",
        ),
        ({"CELERY_RESULT_BACKEND": "rpc://"}, "CELERY_RESULT_BACKEND must be a redis:// URL"),
        ({"CACHE_URL": "redis://cache:sixty/1"}, "CACHE_URL 'redis://cache:sixty/1' has a malformed port"),
        (
            {"CSRF_TRUSTED_ORIGINS": "https://ok.example,site.example"},
            "CSRF_TRUSTED_ORIGINS must start with http:// or https://, got 'site.example'",
        ),
        ({"RETRAIN_SCHEDULE_CRONTAB": "0 3 * *"}, "RETRAIN_SCHEDULE_CRONTAB must be a crontab"),
        ({"RETRAIN_SCHEDULE_CRONTAB": "0 25 * * *"}, "RETRAIN_SCHEDULE_CRONTAB must be a crontab"),
        ({"RETRAIN_SCHEDULE_CRONTAB": "0 3 * * funday"}, "RETRAIN_SCHEDULE_CRONTAB must be a crontab"),
        ({"RETRAIN_FINETUNE": "[0.001]"}, "RETRAIN_FINETUNE must be a JSON object"),
        ({"RETRAIN_HOLDOUT_EVERY": "1"}, "RETRAIN_HOLDOUT_EVERY must be 2 or more"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL must be a log level"),
        ({"WORD_LANGUAGE": "English"}, "WORD_LANGUAGE must be a language code such as 'en', got 'English'"),
    ],
    ids=[
        "scheme",
        "port",
        "broker",
        "debug",
        "wait",
        "secret",
        "db-name",
        "sqlite-memory",
        "broker-port",
        "result-backend",
        "cache-port",
        "csrf-origin",
        "cron-fields",
        "cron-hour",
        "cron-weekday",
        "finetune",
        "holdout",
        "log-level",
        "word-language",
    ],
)
def test_it_fails_fast_on_a_malformed_environment(env, message):
    result = run_settings(**env)
    assert result.returncode != 0 and message in result.stderr


def test_a_valid_crontab_and_a_relative_sqlite_path_are_accepted():
    code = (
        "from django.conf import settings;"
        "print(settings.RETRAIN_SCHEDULE_CRONTAB, '|', settings.DATABASES['default']['NAME'])"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    clean.update(
        DEBUG="1",
        DJANGO_SETTINGS_MODULE="emnist_site.settings",
        RETRAIN_SCHEDULE_CRONTAB="*/30 1-5 1,15 * mon-fri",
        DATABASE_URL="sqlite:///var/other.sqlite3",
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split(" | ") == ["*/30 1-5 1,15 * mon-fri", f"{ROOT / 'var' / 'other.sqlite3'}\n"]


def test_django_start_up_does_not_import_tensorflow():
    # Every manage.py call and web worker would otherwise pay TensorFlow's start-up.
    code = (
        "import sys, django; django.setup();"
        "import emnist_site.urls, recognition.api.views, recognition.admin, recognition.tasks, recognition.services;"
        "from django.test import Client; Client().get('/api/v1/labels');"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "emnist_site.settings"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
