"""Helpers for tests that run the compose commands: a real Celery worker on Redis, the
environment and database URL a subprocess needs, and waiting on what a worker writes.

The fixtures built on them (`broker`, `start_worker`) are in conftest.py.
"""

import base64
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def compose_command(service: str) -> list[str]:
    """A service's command from docker-compose.yml, to run here exactly as compose would."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return list(compose["services"][service]["command"])


def venv_env(**env) -> dict:
    """The environment for a compose command: this interpreter's bin first on PATH, so that
    `python`, `celery` and `gunicorn` are the ones installed with the project."""
    full = dict(os.environ)
    for key in ("CELERY_TASK_ALWAYS_EAGER", "TEST_DATABASE_URL", "DATABASE_URL", "CELERY_BROKER_URL"):
        full.pop(key, None)
    full["PATH"] = str(Path(sys.executable).parent) + os.pathsep + full.get("PATH", "")
    full.update(DJANGO_SETTINGS_MODULE="emnist_site.settings", TF_CPP_MIN_LOG_LEVEL="2", **env)
    return full


# Long enough for the settings, which refuse a short key when DEBUG is off.
TEST_SECRET_KEY = "test-secret-" + "k3Q9zVx7LmW2pR8tY4nB6cD1fG5hJ0aS" * 2


def production_env(**env) -> dict:
    """``venv_env`` for a process run as in production (DEBUG off, a real-length secret key),
    served over plain HTTP here, so its cookies are not marked secure."""
    return venv_env(DEBUG="0", SECRET_KEY=TEST_SECRET_KEY, SECURE_COOKIES="0", **env)


def database_url_for_subprocess() -> str:
    """The test database as a DATABASE_URL, for a worker, web or beat process to share it."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return "sqlite:///" + str(Path(s["NAME"]).resolve())
    auth = quote(s["USER"]) + (":" + quote(s["PASSWORD"]) if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextlib.contextmanager
def celery_broker(url: str):
    """Send this process's tasks to ``url`` instead of running them eagerly, then restore.

    Celery caches broker connections and producers per app, so they are dropped on the way
    in and out; otherwise a later test would keep talking to an earlier test's broker.
    """
    from emnist_site.celery import app

    def reset_pools():
        from kombu import pools

        pools.reset()  # closes and forgets kombu's global connection/producer pools
        app._pool = None
        app.amqp._producer_pool = None

    old = (app.conf.task_always_eager, app.conf.broker_url)
    reset_pools()
    app.conf.task_always_eager, app.conf.broker_url = False, url
    try:
        yield app
    finally:
        reset_pools()
        app.conf.task_always_eager, app.conf.broker_url = old


class Worker:
    """docker-compose's `service` command (the inference `worker` unless told), with one pool
    process so that a test can kill it mid-task."""

    def __init__(self, broker_url: str, log_path: Path, service: str = "worker", app: str = "emnist_site", **env):
        """``app``: the Celery app module (``-A``); the kill tests swap in tests.site.slow_claim_worker."""
        self.log_path = log_path
        full_env = venv_env(DATABASE_URL=database_url_for_subprocess(), CELERY_BROKER_URL=broker_url, **env)
        self.log = open(log_path, "ab")
        command = compose_command(service)
        command[command.index("-A") + 1] = app
        # Its own process group, so that SIGKILL takes the parent and its pool child at once.
        self.process = subprocess.Popen(
            [*command, "--concurrency=1"],
            cwd=ROOT,
            env=full_env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def wait_for(predicate, timeout: float, worker: Worker, what: str):
    """Poll `predicate` until it returns something true; fail early if the worker exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker.process.poll() is not None:
            pytest.fail(f"worker exited ({worker.process.returncode}) while waiting for {what}:\n{worker.tail()}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{worker.tail()}")


def post_drawing(client, drawing):
    return client.post(
        "/api/v1/submissions",
        {"image_base64": base64.b64encode(drawing).decode(), "source": "canvas"},
        format="json",
    )
