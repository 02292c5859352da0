"""Write limits per client and per IP address (recognition/throttles.py)."""

import os
import subprocess
import sys
import uuid

import pytest
from rest_framework.test import APIClient

from recognition import throttles
from recognition.models import Correction, Submission
from tests.site.conftest import canvas_png, token_client
from tests.site.helpers import run_settings

pytestmark = pytest.mark.django_db

# A whole minute on the epoch (1.8e9 s is 30 million minutes): the throttle's windows start here.
MINUTE = 1_800_000_000.0


class Clock:
    """The throttle's clock, pinned: every request of a test falls in the window the test says,
    however long the test takes and whenever it starts."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    pinned = Clock(MINUTE + 20)  # 20 s into a minute: 40 s before its window ends
    monkeypatch.setattr(throttles, "clock", pinned)
    return pinned


def correct_missing(client, **extra):
    """The cheapest write: a correction of a submission that does not exist (404 when let through)."""
    return client.post(f"/api/v1/submissions/{uuid.uuid4()}/correction", {"label": "A"}, format="json", **extra)


def submit(client, **extra):
    import base64

    payload = {"image_base64": base64.b64encode(canvas_png()).decode()}
    return client.post("/api/v1/submissions", payload, format="json", **extra)


def assert_throttled(response, retry_after: int = 40):
    """429 with the error body, and Retry-After the seconds left in the pinned window."""
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["code"] == "throttled" and "throttled" in body["detail"], body
    assert int(response["Retry-After"]) == retry_after


@pytest.fixture
def limits(settings):
    def set_limits(client=None, ip=None):
        settings.THROTTLE_WRITE_CLIENT, settings.THROTTLE_WRITE_IP = client, ip

    return set_limits


def test_a_visitor_over_the_client_limit_gets_429_and_no_row(anon, limits):
    limits(client="3/min", ip="100/min")
    # The first write has no session yet: it counts for the IP address (as every write of a
    # client that drops its cookies does); from the session it starts on, the visitor's own.
    assert [submit(anon).status_code for _ in range(4)] == [202, 202, 202, 202]
    assert_throttled(submit(anon))
    assert_throttled(correct_missing(anon))  # one limit for every write endpoint
    assert Submission.objects.count() == 4 and Correction.objects.count() == 0


def test_a_client_without_cookies_is_counted_by_its_ip_address(limits):
    limits(client="2/min", ip="100/min")
    assert [correct_missing(APIClient()).status_code for _ in range(2)] == [404, 404]
    assert_throttled(correct_missing(APIClient()))


def test_another_visitor_on_the_same_ip_is_not_affected_by_the_client_limit(anon, other_anon, limits):
    limits(client="2/min", ip="100/min")
    submit(anon)  # the first write starts the visitor's session; from then on it is counted
    for _ in range(2):
        correct_missing(anon)
    assert_throttled(correct_missing(anon))
    assert correct_missing(other_anon).status_code == 404


def test_signed_in_users_are_counted_per_user(alice, bob, limits):
    limits(client="2/min", ip="100/min")
    alice_client = token_client(alice)
    assert [correct_missing(alice_client).status_code for _ in range(2)] == [404, 404]
    assert_throttled(correct_missing(token_client(alice)))  # a new connection is the same user
    assert correct_missing(token_client(bob)).status_code == 404


def test_the_ip_limit_counts_every_client_behind_one_address(anon, other_anon, alice, limits):
    limits(client="100/min", ip="3/min")
    correct_missing(anon)
    correct_missing(other_anon)
    correct_missing(token_client(alice))
    assert_throttled(correct_missing(APIClient()))
    assert correct_missing(APIClient(), REMOTE_ADDR="198.51.100.7").status_code == 404


def test_reads_are_never_throttled(anon, limits):
    limits(client="1/min", ip="1/min")
    submission = submit(anon).json()
    assert_throttled(submit(anon))
    for _ in range(5):
        assert anon.get("/api/v1/submissions").status_code == 200
        assert anon.get(submission["url"]).status_code == 200
        assert anon.get("/api/v1/labels").status_code == 200


def test_the_count_starts_again_when_the_minute_turns(anon, limits, clock):
    limits(client="100/min", ip="2/min")
    assert [correct_missing(anon).status_code for _ in range(2)] == [404, 404]
    clock.now = MINUTE + 59.5
    assert_throttled(correct_missing(anon), retry_after=1)  # half a second left, rounded up
    clock.now = MINUTE + 60  # the next window: a new counter
    assert [correct_missing(anon).status_code for _ in range(2)] == [404, 404]
    assert_throttled(correct_missing(anon), retry_after=60)


def test_off_disables_both_limits(anon, limits):
    limits(client=None, ip=None)
    assert {correct_missing(anon).status_code for _ in range(30)} == {404}


def test_a_forged_x_forwarded_for_does_not_dodge_the_ip_limit(limits):
    limits(client="100/min", ip="2/min")
    for n in range(2):
        correct_missing(APIClient(), HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
    assert_throttled(correct_missing(APIClient(), HTTP_X_FORWARDED_FOR="203.0.113.99"))


def test_behind_one_trusted_proxy_the_forwarded_address_is_counted(settings, limits):
    limits(client="100/min", ip="2/min")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    for _ in range(2):
        correct_missing(APIClient(), HTTP_X_FORWARDED_FOR="203.0.113.5", **proxy)
    assert_throttled(correct_missing(APIClient(), HTTP_X_FORWARDED_FOR="forged, 203.0.113.5", **proxy))
    assert correct_missing(APIClient(), HTTP_X_FORWARDED_FOR="203.0.113.6", **proxy).status_code == 404


def test_an_unreachable_cache_lets_writes_through(settings, anon, limits, caplog):
    limits(client="1/min", ip="1/min")
    settings.CACHES = {
        "default": {
            "BACKEND": "emnist_site.cache.RedisCache",  # what cache_from_url configures
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    assert [correct_missing(anon).status_code for _ in range(3)] == [404, 404, 404]
    assert "cache unavailable" in caplog.text


COUNT_IN_ANOTHER_PROCESS = """
import django; django.setup()
from django.test import RequestFactory
from recognition import throttles
from recognition.throttles import WriteIpThrottle
throttles.clock = lambda: {now!r}  # the same window as the test's process
request = RequestFactory().post("/api/v1/submissions", REMOTE_ADDR={ip!r})
print([WriteIpThrottle().allow_request(request, None) for _ in range(3)])
"""


def test_the_counters_are_shared_through_redis_by_every_process(settings, redis_url, limits, clock):
    from emnist_site.settings import cache_from_url

    limits(client=None, ip="5/min")
    settings.CACHES = {"default": cache_from_url(redis_url)}
    ip = f"192.0.2.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:8]}"  # unique: the shared Redis is never flushed
    env = dict(
        os.environ, DJANGO_SETTINGS_MODULE="emnist_site.settings", CACHE_URL=redis_url, THROTTLE_WRITE_IP="5/min"
    )
    code = COUNT_IN_ANOTHER_PROCESS.format(ip=ip, now=clock.now)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=settings.BASE_DIR
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[True, True, True]"
    # This process (another Redis connection) sees the other process's three writes.
    assert [correct_missing(APIClient(), REMOTE_ADDR=ip).status_code for _ in range(2)] == [404, 404]
    assert_throttled(correct_missing(APIClient(), REMOTE_ADDR=ip))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"THROTTLE_WRITE_CLIENT": "lots"}, "THROTTLE_WRITE_CLIENT must be a rate like 60/min"),
        ({"THROTTLE_WRITE_IP": "0/min"}, "THROTTLE_WRITE_IP must be a rate like 60/min"),
        ({"THROTTLE_WRITE_IP": "10/fortnight"}, "THROTTLE_WRITE_IP must be a rate like 60/min"),
        ({"CACHE_URL": "memcached://cache:11211"}, "CACHE_URL must start with redis://"),
        ({"NUM_PROXIES": "-1"}, "NUM_PROXIES must be 0 or more"),
        ({"NUM_PROXIES": "one"}, "NUM_PROXIES must be an integer"),
    ],
    ids=["client-rate", "zero", "period", "cache-url", "proxies-negative", "proxies-word"],
)
def test_a_malformed_limit_setting_stops_start_up(env, message):

    result = run_settings(**env)
    assert result.returncode != 0 and message in result.stderr


def test_the_limits_and_cache_come_from_the_environment():
    code = (
        "import django; from django.conf import settings; django.setup();"
        "print(settings.THROTTLE_WRITE_CLIENT, settings.THROTTLE_WRITE_IP, settings.CACHES['default']['BACKEND'].rsplit('.', 1)[1])"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CELERY_BROKER_URL", "CACHE_URL", "THROTTLE_WRITE_CLIENT", "THROTTLE_WRITE_IP")
    }
    env["DJANGO_SETTINGS_MODULE"] = "emnist_site.settings"

    def run(**extra):
        result = subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert run() == ["60/min", "240/min", "LocMemCache"]
    assert run(THROTTLE_WRITE_CLIENT="off", THROTTLE_WRITE_IP="100000/min") == ["None", "100000/min", "LocMemCache"]
    # With a Redis broker the counters go to that Redis, shared by every web worker.
    assert run(CELERY_BROKER_URL="redis://redis:6379/0")[2] == "RedisCache"
