"""docker-compose.yml: its web and beat commands run here as compose would run them, and its
workers' queues (the workers themselves run in test_worker.py and test_worker_retraining.py)."""

import socket
import subprocess
import time
import urllib.request

import pytest
from django.conf import settings

from recognition.models import ModelVersion
from tests.site.conftest import redis_database_claim
from tests.site.private_services import free_port
from tests.site.web_stack import compose_service
from tests.site.workers import compose_command, database_url_for_subprocess, production_env, venv_env

pytestmark = pytest.mark.django_db(transaction=True)


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_compose_web_command_sets_up_and_serves_page_static_and_health(tmp_path):
    port = free_port()
    shell, flag, script = compose_command("web")
    script = script.replace("0.0.0.0:8000", f"127.0.0.1:{port}").replace("--workers 2", "--workers 1")
    script = script.replace("/tmp/gunicorn-web.ctl", str(tmp_path / "gunicorn.ctl"))  # its own, not a shared one
    env = production_env(
        DATABASE_URL=database_url_for_subprocess(),
        STATIC_ROOT=str(tmp_path / "static"),
    )
    log = open(tmp_path / "web.log", "wb")
    process = subprocess.Popen(
        [shell, flag, script], cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = fetch(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail((tmp_path / "web.log").read_text())
                time.sleep(0.3)
        assert status == 200 and b'id="pad"' in body
        status, js = fetch(f"http://127.0.0.1:{port}/static/frontend/canvas.js")
        assert status == 200 and b"pointerdown" in js
        # setup_site registered the shipped model; health says whether its file is there.
        version = ModelVersion.objects.get(status="active")
        assert version.file_path == settings.SHIPPED_MODEL_PATH
        status, body = fetch(f"http://127.0.0.1:{port}/api/v1/health")
        shipped = (settings.BASE_DIR / settings.SHIPPED_MODEL_PATH).is_file()
        assert status == (200 if shipped else 503), body
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.services
def test_the_compose_beat_command_sends_the_retraining_schedule_from_the_database(redis_url, tmp_path):
    import redis
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from recognition.services import retraining_schedule_ensure

    redis.Redis.from_url(redis_url).flushdb()
    assert retraining_schedule_ensure() and not retraining_schedule_ensure()
    # What an admin does in "Periodic tasks": no code change, no restart of anything but beat.
    task = PeriodicTask.objects.get(task="recognition.tasks.retraining_run")
    assert task.crontab is not None and task.queue == "training"
    task.crontab = None
    task.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    task.save()

    command = compose_command("beat")
    env = venv_env(DATABASE_URL=database_url_for_subprocess(), CELERY_BROKER_URL=redis_url)
    log = open(tmp_path / "beat.log", "wb")
    process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        # kombu's Redis transport keeps a queue as a list named after it.
        while not redis.Redis.from_url(redis_url).llen("training"):
            assert process.poll() is None, (tmp_path / "beat.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "beat.log").read_text()
            time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    text = (tmp_path / "beat.log").read_text(errors="replace")
    assert "DatabaseScheduler" in text and "recognition.tasks.retraining_run" in text


def queues_of(service: str) -> set[str]:
    command = compose_command(service)
    return set(command[command.index("-Q") + 1].split(","))


def test_the_inference_and_training_queues_have_workers_of_their_own():
    assert queues_of("worker") == {"inference", "celery"}
    assert queues_of("training-worker") == {"training"}
    # Every routed task has a worker, and a retraining run never waits behind predictions.
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed <= queues_of("worker") | queues_of("training-worker")
    assert settings.CELERY_TASK_ROUTES["recognition.tasks.retraining_run"] == {"queue": "training"}
    training = compose_command("training-worker")
    assert "--concurrency=1" in training and "--max-tasks-per-child=1" in training


def test_the_scale_out_worker_is_the_inference_worker_under_its_own_node_name():
    worker, second = compose_command("worker"), compose_command("worker-2")
    assert queues_of("worker-2") == queues_of("worker")
    hostname = second.index("--hostname")
    assert second[hostname + 1] == "inference2@%h" != worker[worker.index("--hostname") + 1]
    assert second[:hostname] + second[hostname + 2 :] == worker[:hostname] + worker[hostname + 2 :]
    service = compose_service("worker-2")
    assert service["profiles"] == ["scale-out"]  # not started by a plain `docker compose up`
    assert "inference2@$$HOSTNAME" in service["healthcheck"]["test"][1]


def test_two_test_runs_on_one_machine_get_different_redis_databases():
    first, first_claim = redis_database_claim("redis://127.0.0.1:6379/7")
    second, second_claim = redis_database_claim("redis://127.0.0.1:6379/7")
    try:
        assert first != second and "/0" not in (first[-2:], second[-2:])  # 0 is development's
    finally:
        first_claim.close()
    third, third_claim = redis_database_claim("redis://127.0.0.1:6379/7")  # freed when the first run ended
    second_claim.close()
    third_claim.close()
    assert third == first


def test_compose_beat_answers_its_healthcheck_while_its_scheduler_ticks(tmp_path):
    """The beat healthcheck in docker-compose.yml, run as compose would: a ping beat answers
    only while its scheduler ticks and the broker reaches it (no longer a grep of its own
    command line, which a hung beat passes)."""
    import os
    import shlex
    import shutil
    import signal

    import yaml

    from tests.site.conftest import require_service
    from tests.site.private_services import PrivateRedis

    require_service("redis-server", shutil.which("redis-server") is not None, "install redis-server")
    compose = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())
    kind, check = compose["services"]["beat"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    hostname = socket.gethostname()
    probe = check.replace("$$HOSTNAME", shlex.quote(hostname))  # compose's $$ is a literal $
    redis = PrivateRedis()
    env = venv_env(DATABASE_URL=database_url_for_subprocess(), CELERY_BROKER_URL=redis.url)
    log = open(tmp_path / "beat.log", "wb")
    beat = subprocess.Popen(
        [*compose_command("beat"), "--schedule", str(tmp_path / "beat-schedule")],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def run_probe() -> subprocess.CompletedProcess:
        return subprocess.run(
            ["sh", "-c", probe], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60
        )

    try:
        deadline = time.monotonic() + 90
        while True:
            result = run_probe()
            if result.returncode == 0:
                break
            if beat.poll() is not None or time.monotonic() > deadline:
                beat_log = (tmp_path / "beat.log").read_text()
                pytest.fail(f"beat never answered its healthcheck: {result.stdout}{result.stderr}\n{beat_log}")
            time.sleep(1)
        assert f"celerybeat@{hostname}" in result.stdout

        os.killpg(beat.pid, signal.SIGSTOP)  # hung: alive, never ticking, never answering
        result = run_probe()
        assert result.returncode != 0, result.stdout
    finally:
        if beat.poll() is None:
            os.killpg(beat.pid, signal.SIGKILL)
        beat.wait(timeout=30)
        log.close()
        redis.stop()
