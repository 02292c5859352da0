"""Fixtures for the site tests: a tiny model, personas, images, and service probes."""

import contextlib
import io
import os
import socket
from urllib.parse import urlsplit

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils.crypto import get_random_string
from PIL import Image, ImageDraw
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recognition.models import ModelVersion

REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_service(name: str, available: bool, hint: str) -> None:
    """Skip when a service is missing, unless REQUIRE_SERVICES=1 (CI), where missing fails."""
    if available:
        return
    message = f"{name} is not available ({hint})"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(message)


def tcp_open(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def fresh_throttle_counters():
    """Each test starts with no writes counted (the test cache is this process's memory)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def redis_url():
    require_service("Redis", tcp_open(REDIS_TEST_URL, 6379), f"start redis or set TEST_REDIS_URL; tried {REDIS_TEST_URL}")
    return REDIS_TEST_URL


@pytest.fixture
def active_model(db, tiny_model_path):
    return ModelVersion.objects.create(name="tiny", file_path=str(tiny_model_path), status=ModelVersion.Status.ACTIVE)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def canvas_png(size: int = 280, blank: bool = False) -> bytes:
    """What canvas.toBlob sends: transparent background, ink in alpha."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    if not blank:
        draw = ImageDraw.Draw(image)
        draw.line([(size * 0.5, size * 0.15), (size * 0.5, size * 0.85)], fill=(0, 0, 0, 255), width=size // 14)
        draw.line([(size * 0.3, size * 0.3), (size * 0.5, size * 0.15)], fill=(0, 0, 0, 255), width=size // 14)
    return png_bytes(image)


@pytest.fixture
def drawing():
    return canvas_png()


@pytest.fixture
def user_factory(db):
    def make(username: str, *, staff: bool = False):
        return get_user_model().objects.create_user(username=username, password="pw", is_staff=staff)

    return make


@pytest.fixture
def alice(user_factory):
    return user_factory("alice")


@pytest.fixture
def bob(user_factory):
    return user_factory("bob")


# What a reviewer is given in the admin: the API asks for the same model permissions.
REVIEWER_PERMISSIONS = ("view_submission", "view_word", "view_correction", "add_correction", "change_correction")


@pytest.fixture
def staff(user_factory):
    """Stella reviews: staff, with the reviewer's model permissions."""
    user = user_factory("stella", staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="recognition", codename__in=REVIEWER_PERMISSIONS))
    return user


@pytest.fixture
def percy(user_factory):
    """Percy is staff with no model permissions: the admin shows him nothing, nor may the API."""
    return user_factory("percy", staff=True)


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


def browser_client() -> APIClient:
    """An anonymous visitor's browser: a cookie jar holding what the page gave it (the CSRF
    cookie, from ensure_csrf_cookie), so the API keeps its client id in a session."""
    client = APIClient()
    client.cookies["csrftoken"] = get_random_string(32)
    return client


@pytest.fixture
def anon():
    """An anonymous visitor with their own session cookie jar."""
    return browser_client()


@pytest.fixture
def other_anon():
    return browser_client()


def upright(array: np.ndarray) -> np.ndarray:
    return np.asarray(array).T


def compose_command(service: str) -> list[str]:
    """A service's command from docker-compose.yml, to run here exactly as compose would."""
    import yaml
    from django.conf import settings

    compose = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())
    return list(compose["services"][service]["command"])


def venv_env(**env) -> dict:
    """The environment for a compose command: this interpreter's bin first on PATH, so that
    `python`, `celery` and `gunicorn` are the ones installed with the project."""
    import sys
    from pathlib import Path

    full = dict(os.environ)
    for key in ("CELERY_TASK_ALWAYS_EAGER", "TEST_DATABASE_URL", "DATABASE_URL", "CELERY_BROKER_URL"):
        full.pop(key, None)
    full["PATH"] = str(Path(sys.executable).parent) + os.pathsep + full.get("PATH", "")
    full.update(DJANGO_SETTINGS_MODULE="emnist_site.settings", TF_CPP_MIN_LOG_LEVEL="2", **env)
    return full


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


# --------------------------------------------------------------------------- retraining

# The site's recipe on a tiny untrained model, except that the frame style is learned with its
# convolutions free and as exactly "z" (a one-shape letter that would otherwise mean "Z or z").
TINY_FINETUNE = {
    "batch_size": 32, "min_steps": 30, "max_steps": 30, "learning_rate": 3e-3, "augment_strength": 0.0,
    "calibration_rows": 50, "correction_share": 0.25, "freeze_convs": 0, "merge_case_corrections": False,
}


@pytest.fixture(scope="session")
def tiny_emnist_dir(tmp_path_factory):
    """A ByClass file of 62 x 10 noise images: 62 validation rows, 558 replay rows; loads in milliseconds."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(62), 10).astype(np.uint8)
    images = rng.integers(0, 60, size=(len(labels), 28, 28)).astype(np.uint8)
    images[np.arange(len(labels)), labels % 28, :] = 255  # distinct rows, so no duplicates are merged
    path = tmp_path_factory.mktemp("emnist")
    np.savez(path / "emnist-byclass-test-dev.npz", images=images, labels=labels)
    return path


@pytest.fixture
def retrain_settings(settings, tiny_emnist_dir, tmp_path):
    settings.EMNIST_DATA_DIR = tiny_emnist_dir
    settings.MODEL_DIR = tmp_path / "models"
    settings.RETRAIN_MIN_NEW_CORRECTIONS = 3
    settings.RETRAIN_MAX_VAL_DROP = 1.0  # a tiny untrained model's validation accuracy is noise
    settings.RETRAIN_FINETUNE = dict(TINY_FINETUNE)
    return settings


def style_image(seed: int) -> np.ndarray:
    """The 'user style' of the retraining tests: a bright frame, always meant as 'z'."""
    image = np.random.default_rng(seed).integers(0, 40, size=(28, 28)).astype(np.uint8)
    image[2:26, 2:5] = image[2:26, 23:26] = image[2:5, 2:26] = image[23:26, 2:26] = 255
    return image


@pytest.fixture
def approved_corrections(db):
    """make(n, label="z") -> n approved corrections of the frame style, ids in order."""
    from recognition.models import Correction, Submission

    def make(n: int, label: str = "z", start_seed: int = 0) -> list:
        made = []
        for i in range(n):
            submission = Submission.objects.create(
                image=b"\x89PNG", content_type="image/png", input28=style_image(start_seed + i).tobytes(),
                status=Submission.Status.PREDICTED, predicted_label="0",
            )
            made.append(Correction.objects.create(submission=submission, label=label, status=Correction.Status.APPROVED))
        return made

    return make


@pytest.fixture
def admin_client_for(client, staff):
    """A test client logged in as a superuser (the admin pages need one)."""
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    return client
