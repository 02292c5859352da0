"""CSRF on cookie-identified writes, the admin for staff only, production settings, no secrets."""

import base64
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.urls import reverse
from rest_framework.test import APIClient

from recognition.models import Correction, Submission, TrainingRun
from tests.site.conftest import canvas_png, token_client

ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = "/api/v1/submissions"


def payload() -> dict:
    return {"image_base64": base64.b64encode(canvas_png()).decode()}


def browser() -> APIClient:
    """A client that, like a browser, is held to Django's CSRF check, with the page's CSRF cookie."""
    client = APIClient(enforce_csrf_checks=True)
    assert client.get("/").status_code == 200  # the page sets the csrftoken cookie
    return client


def csrf_header(client) -> dict:
    return {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}


# --------------------------------------------------------------------------- CSRF


@pytest.mark.django_db
def test_a_cross_site_post_cannot_submit_as_an_anonymous_visitor():
    visitor = browser()
    assert visitor.post(SUBMISSIONS, payload(), format="json").status_code == 202  # no session yet: acts as nobody
    assert "sessionid" in visitor.cookies
    # Now the session cookie names the visitor: without the token the write is refused.
    response = visitor.post(SUBMISSIONS, payload(), format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert "CSRF" in response.json()["detail"]
    assert Submission.objects.count() == 1
    assert visitor.post(SUBMISSIONS, payload(), format="json", **csrf_header(visitor)).status_code == 202
    assert Submission.objects.count() == 2


@pytest.mark.django_db
def test_a_cross_site_post_cannot_correct_an_anonymous_visitors_submission():
    visitor = browser()
    mine = visitor.post(SUBMISSIONS, payload(), format="json").json()
    response = visitor.post(mine["url"] + "/correction", {"label": "A"}, format="json")
    assert response.status_code == 403 and Correction.objects.count() == 0
    response = visitor.post(mine["url"] + "/correction", {"label": "A"}, format="json", **csrf_header(visitor))
    assert response.status_code == 201 and Correction.objects.count() == 1


@pytest.mark.django_db
def test_a_cross_site_post_cannot_submit_as_a_signed_in_user(alice):
    visitor = browser()
    visitor.force_login(alice)
    assert visitor.post(SUBMISSIONS, payload(), format="json").status_code == 403
    assert Submission.objects.count() == 0
    assert visitor.post(SUBMISSIONS, payload(), format="json", **csrf_header(visitor)).status_code == 202
    assert Submission.objects.get().owner == alice


@pytest.mark.django_db
def test_token_clients_need_no_csrf_token_even_with_a_session_cookie(alice):
    client = token_client(alice)
    client.handler.enforce_csrf_checks = True
    client.get("/")
    client.cookies["sessionid"] = "some-session"
    assert client.post(SUBMISSIONS, payload(), format="json").status_code == 202
    assert Submission.objects.get().owner == alice


@pytest.mark.django_db
def test_reads_need_no_csrf_token():
    visitor = browser()
    visitor.post(SUBMISSIONS, payload(), format="json")
    assert visitor.get(SUBMISSIONS).json()["count"] == 1


def test_the_page_sends_the_csrf_token_with_every_write():
    # The page's ES modules, every one: a write added to any of them is checked too.
    script = "\n".join(path.read_text() for path in sorted((ROOT / "frontend/static/frontend").glob("*.js")))
    # Every request goes through common.js's request() wrapper around fetch(); a call ends at ";".
    posts = re.findall(r"(?:fetch|request)\([^;]*?method:\s*\"POST\"[^;]*;", script, re.S)
    assert len(posts) == 2, posts  # the drawing (a character or a word) and the correction
    assert len(re.findall(r"method:\s*\"POST\"", script)) == 2
    assert all('"X-CSRFToken": csrfToken()' in call for call in posts)


# --------------------------------------------------------------------------- admin


def admin_urls() -> list[str]:
    urls = ["/admin/"]
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label == "recognition":
            urls.append(reverse(f"admin:recognition_{model._meta.model_name}_changelist"))
            if hasattr(model_admin, "start_retraining_view"):
                urls.append(reverse(f"admin:recognition_{model._meta.model_name}_start_retraining"))
    return urls


@pytest.mark.django_db
def test_the_admin_is_for_staff_only(client, alice, staff):
    urls = admin_urls()
    assert len(urls) >= 6
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    client.force_login(alice)  # signed in, but not staff
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], url
    assert client.post(urls[-1]).status_code == 302 and not TrainingRun.objects.exists()  # start-retraining
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
    assert all(client.get(url).status_code in (200, 302) for url in urls[1:])


# --------------------------------------------------------------------------- production settings


def production_env(**extra) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "CELERY_", "CACHE_URL", "SECURE_", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="emnist_site.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="emnist.example.org",
        CSRF_TRUSTED_ORIGINS="https://emnist.example.org",
        SECURE_SSL_REDIRECT="1",
        SECURE_HSTS_SECONDS="31536000",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
        SECURE_HSTS_PRELOAD="1",
        TRUST_X_FORWARDED_PROTO="1",
        NUM_PROXIES="1",
    )
    env.update(extra)
    return env


def manage(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_deployment_checklist_is_clean_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_deployment_checklist_flags_a_site_without_https():
    # The check above is not vacuous: without the TLS settings it names what is missing.
    env = production_env()
    for name in ("SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD"):
        env.pop(name)
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("insecure-development-key-only-used-with-debug-on", "SECRET_KEY is a development key"),
        ("django-insecure-" + "x1y2z3" * 10, "SECRET_KEY is a development key"),
        ("short-but-set", "SECRET_KEY must be at least 50 random characters"),
        ("a" * 60, "SECRET_KEY must be at least 50 random characters"),
    ],
    ids=["dev-key", "django-insecure", "short", "one-character"],
)
def test_a_development_or_weak_secret_key_is_refused_when_debug_is_off(secret, message):
    result = manage("check", env=production_env(SECRET_KEY=secret))
    assert result.returncode != 0 and message in result.stderr


def test_no_secrets_are_committed():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    patterns = [
        re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        re.compile(rb"AKIA[0-9A-Z]{16}"),  # AWS access key id
        re.compile(rb"gh[pousr]_[A-Za-z0-9]{36}"),  # GitHub token
        re.compile(rb"sk-[A-Za-z0-9]{32,}"),  # API keys of the sk- kind
        # A literal SECRET_KEY value, other than the development key that DEBUG=0 refuses.
        re.compile(rb"SECRET_KEY\s*[=:]\s*[\"'](?!insecure-development-key)[^\"'$]{20,}[\"']"),
        re.compile(rb"postgres(ql)?://[^:/\s]+:[^@/\s]{6,}@(?!db:)"),  # a real password in a database URL
    ]
    offenders = []
    for name in tracked:
        path = ROOT / name
        if not path.is_file() or path.suffix in (".keras", ".png", ".npz", ".h5"):
            continue
        data = path.read_bytes()
        offenders += [f"{name}: {p.pattern!r}" for p in patterns if p.search(data)]
    assert offenders == []
