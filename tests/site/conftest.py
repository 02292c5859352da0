"""Fixtures for the site tests: a tiny model, personas, images, service probes, a real worker."""

import fcntl
import io
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.utils.crypto import get_random_string
from PIL import Image, ImageDraw
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recognition.models import ModelVersion
from tests.site.browser import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE
from tests.site.private_services import PrivateRedis
from tests.site.workers import Worker, celery_broker

# The Redis server for the tests, and the database to use when no other run holds it.
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


def redis_database_claim(url: str):
    """(`url` on a database no other test run on this machine holds, the claim): its own
    database when free, else the first free one from 15 down to 1 (0 is development's).

    Tests flush their database, so two runs at once (two checkouts, a developer beside CI) must
    not share one. The claim is a lock on a file named after the server and database, which
    the kernel releases when the run ends, however it ends.
    """
    parts = urlsplit(url)
    own = int(parts.path.strip("/") or 0)
    for db in dict.fromkeys([own, *range(15, 0, -1)]):
        name = f"emnist-test-redis-{parts.hostname}-{parts.port or 6379}-{db}.lock"
        claim = open(Path(tempfile.gettempdir()) / name, "w")
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            claim.close()
            continue
        return urlunsplit(parts._replace(path=f"/{db}")), claim
    pytest.fail(f"every Redis database on {parts.netloc} is held by another test run")


@pytest.fixture(scope="session")
def redis_url_of_this_run():
    require_service(
        "Redis", tcp_open(REDIS_TEST_URL, 6379), f"start redis or set TEST_REDIS_URL; tried {REDIS_TEST_URL}"
    )
    url, claim = redis_database_claim(REDIS_TEST_URL)
    yield url
    claim.close()


@pytest.fixture
def redis_url(redis_url_of_this_run):
    """A Redis database that only this test run uses (tests may flush it)."""
    return redis_url_of_this_run


@pytest.fixture
def broker(redis_url):
    """Point this process's Celery app at Redis (an empty database) for the test."""
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    with celery_broker(redis_url):
        yield redis_url


@pytest.fixture
def start_worker(broker, tmp_path):
    """start(service="worker", app="emnist_site", **env) -> a Worker running that compose service's
    command (with another Celery app module if told); killed after the test."""
    workers = []

    def start(service: str = "worker", app: str = "emnist_site", **env) -> Worker:
        worker = Worker(broker, tmp_path / f"worker{len(workers)}.log", service, app, **env)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.kill()


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
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="recognition", codename__in=REVIEWER_PERMISSIONS)
    )
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


# --------------------------------------------------------------------------- retraining

# The site's recipe on a tiny untrained model, except that the frame style is learned with its
# convolutions free and as exactly "z" (a one-shape letter that would otherwise mean "Z or z").
TINY_FINETUNE = {
    "batch_size": 32,
    "min_steps": 30,
    "max_steps": 30,
    "learning_rate": 3e-3,
    "augment_strength": 0.0,
    "calibration_rows": 50,
    "correction_share": 0.25,
    "freeze_convs": 0,
    "merge_case_corrections": False,
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
                image=b"\x89PNG",
                content_type="image/png",
                input28=style_image(start_seed + i).tobytes(),
                status=Submission.Status.PREDICTED,
                predicted_label="0",
            )
            made.append(
                Correction.objects.create(submission=submission, label=label, status=Correction.Status.APPROVED)
            )
        return made

    return make


@pytest.fixture
def admin_client_for(client, staff):
    """A test client logged in as a superuser (the admin pages need one)."""
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    return client


# --------------------------------------------------------------------------- browser (tests/site/browser.py)


@pytest.fixture(scope="module")
def browser():
    require_service(
        "Chromium",
        shutil.which(CHROMIUM) is not None,
        f"install Debian's chromium or set CHROMIUM_PATH; tried {CHROMIUM}",
    )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("Chromium", False, "the playwright Python package is not installed")
    # Playwright's sync API runs an event loop in this thread; the ORM calls in the tests are
    # still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def _page_in_new_context(browser, **context_options):
    """A page in a browser context of its own (no cookies or storage shared), closed after the test."""
    context = browser.new_context(**context_options)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def page(browser):
    yield from _page_in_new_context(browser, viewport=DESKTOP)


@pytest.fixture
def phone(browser):
    """A 360x740 touch screen, as a small Android phone."""
    yield from _page_in_new_context(browser, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)


@pytest.fixture
def shipped_model(db):
    """The committed model with its real evaluation report: labels that mean something."""
    report = json.loads((Path(settings.BASE_DIR) / settings.SHIPPED_MODEL_REPORT_PATH).read_text())
    return ModelVersion.objects.create(
        name="emnist_cnn",
        file_path=settings.SHIPPED_MODEL_PATH,
        status=ModelVersion.Status.ACTIVE,
        metrics={"validation": report["validation"]},
        training_summary={"source": "shipped"},
    )


@pytest.fixture
def private_redis():
    """A Redis server of the test's own (its outage is the test's to cause)."""
    require_service("redis-server", shutil.which("redis-server") is not None, "install redis-server")
    server = PrivateRedis()
    try:
        yield server
    finally:
        server.stop()
