"""Faults with real services: the broker down, the database restarting, a broken model file.

Each test breaks a private server it started itself (tests/site/private_services.py), never
the shared PostgreSQL or Redis, and checks that nothing accepted is lost: every submission
stored before or during the fault has its prediction afterwards.
"""

import http.cookiejar
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import pytest
import redis
from django.conf import settings
from django.test import override_settings

from ml.data import CLASSES
from recognition import services
from recognition.errors import InvalidState
from recognition.models import ModelVersion, Submission
from tests.site.conftest import canvas_png, require_service, token_client
from tests.site.helpers import broken_copy
from tests.site.private_services import PrivatePostgres, free_port, postgres_bin_dir
from tests.site.workers import (
    Worker,
    celery_broker,
    compose_command,
    database_url_for_subprocess,
    post_drawing,
    production_env,
    venv_env,
    wait_for,
)

pytestmark = pytest.mark.services


@pytest.fixture
def private_postgres():
    require_service("PostgreSQL server binaries", postgres_bin_dir() is not None, "install postgresql")
    server = PrivatePostgres()
    try:
        yield server
    finally:
        server.destroy()


class Browser:
    """An anonymous visitor over real HTTP, keeping its cookies and sending the CSRF token on
    writes as the page does (a visitor with a session cookie must)."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def csrf_token(self) -> str:
        token = next((c.value for c in self.jar if c.name == "csrftoken"), None)
        if token is None:
            self.call("GET", "/")  # the page sets the CSRF cookie
            token = next(c.value for c in self.jar if c.name == "csrftoken")
        return token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, str, dict | str]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if method not in ("GET", "HEAD", "OPTIONS"):
            request.add_header("X-CSRFToken", self.csrf_token())
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(request, timeout=30) as response:
                status, content_type, raw = response.status, response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as exc:
            status, content_type, raw = exc.code, exc.headers.get("Content-Type", ""), exc.read()
        try:
            return status, content_type, json.loads(raw)
        except ValueError:
            return status, content_type, raw.decode(errors="replace")

    def post_drawing(self):
        import base64

        return self.call(
            "POST", "/api/v1/submissions", {"image_base64": base64.b64encode(canvas_png()).decode(), "source": "canvas"}
        )


# --------------------------------------------------------------------------- broker down


@pytest.mark.django_db(transaction=True)
def test_with_the_broker_down_a_submission_is_kept_pending_and_predicted_once_redis_returns(
    anon, staff, active_model, drawing, private_redis, tmp_path, monkeypatch
):
    processes, worker = [], None
    try:
        with celery_broker(private_redis.url):
            # The sweep re-queues rows pending for over a second; beat runs it every second.
            worker = Worker(private_redis.url, tmp_path / "worker.log", SUBMISSION_REQUEUE_AFTER_SECONDS="1")
            before = post_drawing(anon, drawing).json()["id"]
            wait_for(
                lambda: Submission.objects.get(id=before).status == "predicted", 120, worker, "the first prediction"
            )

            private_redis.stop()
            # Count this process's connection attempts to the dead broker during the request.
            attempts = []
            real_connect = redis.connection.AbstractConnection.connect

            def counting_connect(client):
                if client.port == private_redis.port:
                    attempts.append(client.port)
                return real_connect(client)

            with monkeypatch.context() as patch:
                patch.setattr(redis.connection.AbstractConnection, "connect", counting_connect)
                response = post_drawing(anon, drawing)
            # It gave up after a bounded number of tries instead of retrying until a timeout: the
            # wake mark and the publish policy's 1 + max_retries tries, each of which redis-py
            # retries once itself (8 connections with redis 8.1 and kombu 5.7).
            tries = 1 + 1 + settings.CELERY_TASK_PUBLISH_RETRY_POLICY["max_retries"]
            assert 1 <= len(attempts) <= 2 * tries, attempts
            assert response.status_code == 202 and response["Location"] == response.json()["url"]
            during = response.json()["id"]
            row = Submission.objects.get(id=during)
            assert row.status == "pending" and "delayed" in row.error  # stored, not failed
            health = token_client(staff).get("/api/v1/health")
            assert health.status_code == 503 and health.json()["checks"]["broker"]["ok"] is False

            private_redis.start()  # empty: whatever was queued in it is gone
            with override_settings(SUBMISSION_REQUEUE_INTERVAL_SECONDS=1):
                assert services.submission_requeue_schedule_ensure()
            beat_log = open(tmp_path / "beat.log", "wb")
            beat = subprocess.Popen(
                [*compose_command("beat"), "--schedule", str(tmp_path / "beat-schedule")],
                cwd=settings.BASE_DIR,
                env=venv_env(DATABASE_URL=database_url_for_subprocess(), CELERY_BROKER_URL=private_redis.url),
                stdout=beat_log,
                stderr=subprocess.STDOUT,
            )
            processes.append(beat)
            row = wait_for(
                lambda: (s := Submission.objects.get(id=during)).status != "pending" and s,
                120,
                worker,
                "the re-queued prediction",
            )
            assert row.status == "predicted" and row.predicted_label in CLASSES and row.error == ""
            assert row.attempts == 1  # predicted exactly once, however often the sweep queued it
            assert Submission.objects.get(id=before).status == "predicted"
            assert anon.get(f"/api/v1/submissions/{during}").json()["status"] == "predicted"
    finally:
        if worker is not None:
            worker.kill()
        for process in processes:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --------------------------------------------------------------------------- database restart


def test_a_database_restart_is_a_json_503_and_the_same_web_process_recovers(private_postgres, private_redis, tmp_path):
    private_postgres.create_database("emnist")
    db_url = private_postgres.url("emnist")
    port = free_port()
    env = production_env(
        DATABASE_URL=db_url,
        CELERY_BROKER_URL=private_redis.url,
        DATA_DIR=str(tmp_path / "data"),
        STATIC_ROOT=str(tmp_path / "static"),
        SUBMISSION_WAIT_SECONDS="1",
        THROTTLE_WRITE_CLIENT="off",
        THROTTLE_WRITE_IP="off",
    )
    shell, flag, script = compose_command("web")
    script = script.replace("0.0.0.0:8000", f"127.0.0.1:{port}")
    script = script.replace("/tmp/gunicorn-web.ctl", str(tmp_path / "gunicorn.ctl"))  # its own control socket
    logs = {name: open(tmp_path / f"{name}.log", "wb") for name in ("web", "worker")}
    processes = {}

    def tail(name):
        return (tmp_path / f"{name}.log").read_text(errors="replace")[-3000:]

    try:
        processes["web"] = subprocess.Popen(
            [shell, flag, script],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=logs["web"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        visitor = Browser(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 180
        while True:
            try:
                if visitor.call("GET", "/api/v1/health")[0] in (200, 503):
                    break
            except OSError:
                pass
            if processes["web"].poll() is not None or time.monotonic() > deadline:
                pytest.fail(tail("web"))
            time.sleep(0.3)
        web_pid = processes["web"].pid

        # Accepted before the fault, while no worker runs yet.
        accepted = []
        for _ in range(2):
            status, _, body = visitor.post_drawing()
            assert status == 202, body
            accepted.append(body["id"])

        private_postgres.stop()
        # The visitor's session is read from Redis, so bad input still gets its own answer...
        status, _, answer = visitor.call("POST", "/api/v1/submissions", {"image_base64": "x"})
        assert status == 400 and answer["code"] == "invalid_image", answer
        # ...and whatever needs the database a JSON 503.
        for method, path, body in (
            ("GET", f"/api/v1/submissions/{accepted[0]}", None),
            ("GET", "/api/v1/submissions", None),
            ("GET", "/api/v1/health", None),
        ):
            status, content_type, answer = visitor.call(method, path, body)
            assert status == 503, (method, path, status, answer)
            assert content_type.startswith("application/json"), (path, answer)
        status, _, answer = visitor.post_drawing()
        assert status == 503 and answer["code"] == "database_unavailable" and answer["detail"], answer

        # A worker started during the outage: its tasks hit the dead database and retry.
        processes["worker"] = subprocess.Popen(
            [*compose_command("worker"), "--concurrency=1"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=logs["worker"],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while "retry: Retry in" not in tail("worker"):
            if processes["worker"].poll() is not None or time.monotonic() > deadline:
                pytest.fail("the worker did not retry:\n" + tail("worker"))
            time.sleep(0.3)

        private_postgres.start()
        status, _, body = visitor.post_drawing()  # the same gunicorn process, no restart
        assert status in (201, 202), body
        accepted.append(body["id"])
        assert processes["web"].poll() is None and processes["web"].pid == web_pid

        deadline = time.monotonic() + 180
        while True:
            states = [visitor.call("GET", f"/api/v1/submissions/{i}")[2] for i in accepted]
            if all(isinstance(s, dict) and s.get("status") == "predicted" for s in states):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"not all predicted: {states}\n{tail('worker')}")
            time.sleep(0.5)
        assert all(s["predicted_label"] in CLASSES for s in states)

        import psycopg2

        conn = psycopg2.connect(db_url.replace("postgres://", "postgresql://"))
        try:
            cur = conn.cursor()
            cur.execute("SELECT id::text, status, attempts FROM recognition_submission")
            rows = cur.fetchall()
        finally:
            conn.close()
        # Exactly the accepted ones (the refused POSTs left nothing), each predicted.
        assert sorted(r[0] for r in rows) == sorted(accepted)
        assert {r[1] for r in rows} == {"predicted"}
    finally:
        import os
        import signal

        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in logs.values():
            log.close()


# --------------------------------------------------------------------------- broken model files


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_promotion_refuses_a_model_file_that_does_not_load_and_the_active_version_stays(
    how, active_model, tiny_model_path, tmp_path, admin_client_for, staff
):
    broken = ModelVersion.objects.create(
        name="broken", file_path=str(broken_copy(tiny_model_path, tmp_path / "b.keras", how))
    )
    with pytest.raises(InvalidState, match="does not load"):
        services.model_version_activate(model_version=broken)
    broken.refresh_from_db()
    active_model.refresh_from_db()
    assert active_model.status == "active" and broken.status == "candidate"
    assert broken.load_error and broken.load_checked_at

    health = token_client(staff).get("/api/v1/health").json()
    assert health["ok"] is True  # the active version still serves
    assert [v["name"] for v in health["checks"]["model"]["unloadable_versions"]] == ["broken"]

    page = admin_client_for.get("/admin/recognition/modelversion/").content.decode()
    assert "does not load" in page
    response = admin_client_for.post(
        "/admin/recognition/modelversion/", {"action": "activate", "_selected_action": [broken.pk]}, follow=True
    )
    assert "does not load" in response.content.decode()
    assert ModelVersion.objects.get(status="active") == active_model


def test_promotion_checks_the_file_in_a_child_process_where_tensorflow_is_not_loaded(
    tiny_model_path, tmp_path, monkeypatch
):
    # The web process (admin) has no TensorFlow: the file is loaded by load_predictor in a
    # child process (one TensorFlow start-up, so only the refusal is checked this way).
    import sys

    from recognition.services.model_versions import model_file_check

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    problem = model_file_check(broken_copy(tiny_model_path, tmp_path / "b.keras", "truncated"))
    assert "could not load model" in problem and "b.keras" in problem
    assert "tensorflow" not in sys.modules


def test_a_broken_active_model_fails_the_submission_with_the_reason_and_recovers_when_fixed(
    db, tiny_model_path, tmp_path, anon, staff, drawing, django_capture_on_commit_callbacks
):
    path = broken_copy(tiny_model_path, tmp_path / "active.keras", "truncated")
    version = ModelVersion.objects.create(name="v-broken", file_path=str(path), status="active")
    with django_capture_on_commit_callbacks(execute=True):
        response = post_drawing(anon, drawing)
    body = anon.get(response.json()["url"]).json()
    assert body["status"] == "failed" and "cannot be loaded" in body["error"]
    health = token_client(staff).get("/api/v1/health")
    assert health.status_code == 503 and "v-broken" in json.dumps(health.json()["checks"]["model"])

    shutil.copy(tiny_model_path, path)  # fixed in place: the next task loads it, no restart
    with django_capture_on_commit_callbacks(execute=True):
        response = post_drawing(anon, drawing)
    assert anon.get(response.json()["url"]).json()["status"] == "predicted"
    version.refresh_from_db()
    assert version.load_error == ""
    assert anon.get("/api/v1/health").status_code == 200


# --------------------------------------------------------------------------- broker outages under load


@pytest.mark.django_db(transaction=True)
def test_the_worker_survives_five_redis_outages_under_load_and_every_row_is_predicted_within_a_minute(
    staff, active_model, drawing, private_redis, tmp_path
):
    """The issue's run: POSTs from several clients while Redis is killed and started again (empty:
    what was queued is lost), five times over. The worker must live through each outage and
    every accepted row be predicted within 60 s of Redis's return (the sweep re-queues)."""
    import os
    import signal
    import threading

    from rest_framework.test import APIClient

    from tests.site.workers import celery_broker

    outages, seconds_down, clients = 5, 8, 4
    accepted, refused, recoveries = [], [], []
    processes = []
    with (
        celery_broker(private_redis.url),
        override_settings(THROTTLE_WRITE_CLIENT=None, THROTTLE_WRITE_IP=None, SUBMISSION_REQUEUE_INTERVAL_SECONDS=1),
    ):
        assert services.submission_requeue_schedule_ensure()
        env = venv_env(
            DATABASE_URL=database_url_for_subprocess(),
            CELERY_BROKER_URL=private_redis.url,
            SUBMISSION_REQUEUE_AFTER_SECONDS="3",
            WORKER_HEARTBEAT_SECONDS="2",
        )
        worker_log = tmp_path / "worker.log"
        try:
            for name, command in (
                ("worker", [*compose_command("worker"), "--concurrency=2"]),  # as compose runs it
                ("beat", [*compose_command("beat"), "--schedule", str(tmp_path / "beat-schedule")]),
            ):
                log = open(tmp_path / f"{name}.log", "wb")
                process = subprocess.Popen(
                    command,
                    cwd=settings.BASE_DIR,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                processes.append(process)
            worker = processes[0]

            def tail() -> str:
                return worker_log.read_text(errors="replace")[-4000:]

            def all_predicted() -> bool:
                return not Submission.objects.filter(id__in=accepted).exclude(status="predicted").exists()

            def wait(predicate, seconds: float, what: str) -> float:
                started = time.monotonic()
                while not predicate():
                    if worker.poll() is not None:
                        pytest.fail(f"the worker exited ({worker.returncode}) waiting for {what}:\n{tail()}")
                    if time.monotonic() - started > seconds:
                        pytest.fail(f"timed out after {seconds} s waiting for {what}:\n{tail()}")
                    time.sleep(0.25)
                return time.monotonic() - started

            def load(stop: threading.Event) -> None:
                client = APIClient()
                while not stop.is_set():
                    response = post_drawing(client, drawing)
                    if response.status_code in (201, 202):
                        accepted.append(response.json()["id"])
                    else:
                        refused.append((response.status_code, response.content[:300]))

            first = post_drawing(APIClient(), drawing).json()["id"]
            accepted.append(first)
            wait(all_predicted, 180, "the first prediction (TensorFlow start-up)")
            for outage in range(outages):
                stop = threading.Event()
                threads = [threading.Thread(target=load, args=(stop,)) for _ in range(clients)]
                for thread in threads:
                    thread.start()
                time.sleep(3)  # the worker busy, messages unacknowledged
                private_redis.stop()
                time.sleep(seconds_down)
                private_redis.start()
                returned = time.monotonic()
                time.sleep(2)  # still posting as it comes back
                stop.set()
                for thread in threads:
                    thread.join(timeout=60)
                wait(all_predicted, max(0.5, 60 - (time.monotonic() - returned)), f"outage {outage + 1}'s rows")
                recoveries.append(round(time.monotonic() - returned, 1))
                assert worker.poll() is None, tail()
                # The worker beats again after reconnecting: health is whole again.
                healthy = lambda: token_client(staff).get("/api/v1/health").status_code == 200  # noqa: E731
                wait(healthy, 30, "health after the outage")

            assert refused == [], refused[:5]
            assert worker.poll() is None and "Unrecoverable error" not in worker_log.read_text(errors="replace")
            rows = Submission.objects.filter(id__in=accepted)
            assert rows.count() == len(set(accepted)) and {r.status for r in rows} == {"predicted"}
            print(f"{len(accepted)} accepted; predicted within {recoveries} s of Redis's return")
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
