"""Admin login throttling: guessing a password locks that username from that address for a
cool-off; the right password is refused meanwhile, and other people keep logging in."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def login_limits(settings):
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = 0.25  # hours
    return settings


@pytest.fixture
def admins(user_factory):
    return user_factory("stella", staff=True), user_factory("sam", staff=True)


def login(username: str, password: str, ip: str = "203.0.113.7", **headers):
    client = Client(REMOTE_ADDR=ip, **headers)
    response = client.post(LOGIN, {"username": username, "password": password})
    return response, client


def logged_in(response, client) -> bool:
    return response.status_code == 302 and client.get("/admin/").status_code == 200


def test_the_right_password_logs_in(login_limits, admins):
    assert logged_in(*login("stella", "pw"))


def test_failures_lock_that_username_from_that_address_and_the_right_password_is_refused(login_limits, admins):
    for _ in range(login_limits.AXES_FAILURE_LIMIT - 1):
        response, _client = login("stella", "wrong")
        assert response.status_code == 200  # the form again, with its error
    response, _client = login("stella", "wrong")
    assert response.status_code == 429
    response, client = login("stella", "pw")
    assert response.status_code == 429 and not logged_in(response, client)
    # A forged X-Forwarded-For is no fresh start (no trusted proxy: NUM_PROXIES is 0).
    response, _client = login("stella", "pw", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert response.status_code == 429


def test_other_users_and_other_addresses_are_not_locked(login_limits, admins):
    for _ in range(login_limits.AXES_FAILURE_LIMIT):
        login("stella", "wrong")
    assert login("stella", "pw")[0].status_code == 429
    assert logged_in(*login("sam", "pw"))  # same address, another user
    assert logged_in(*login("stella", "pw", ip="198.51.100.20"))  # same user, another address


def test_the_lock_ends_after_the_cool_off(login_limits, admins):
    from axes.models import AccessAttempt

    for _ in range(login_limits.AXES_FAILURE_LIMIT):
        login("stella", "wrong")
    assert login("stella", "pw")[0].status_code == 429
    # The cool-off counts from the last attempt: move it back past the 15 minutes.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert logged_in(*login("stella", "pw"))


def test_the_limits_are_settings_with_sane_defaults(settings):
    assert settings.AXES_FAILURE_LIMIT == settings.ADMIN_LOGIN_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME * 60 == settings.ADMIN_LOGIN_COOLOFF_MINUTES == 15
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
