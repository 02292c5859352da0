from django.conf import settings
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from recognition.labels import labels, lookalike_groups


def page_config() -> dict:
    """What the drawing page's script is told, from settings: read at each request, so a test
    against a live server changes the page's timings with a settings override."""
    return {
        "timeoutMs": settings.PAGE_REQUEST_TIMEOUT_MS,
        "pollTries": settings.PAGE_POLL_TRIES,
        "pollDelayMs": settings.PAGE_POLL_DELAY_MS,
        "pollMaxDelayMs": settings.PAGE_POLL_MAX_DELAY_MS,
        "autoPauseMs": settings.PAGE_AUTO_PAUSE_MS,
        "wordPauseMs": settings.PAGE_WORD_PAUSE_MS,
        "unsureBelow": settings.UNSURE_BELOW,
    }


@ensure_csrf_cookie
def index(request):
    # The look-alike groups come from ml.evaluate through the template, so the page never
    # keeps its own copy of the list.
    context = {"labels": labels(), "lookalike_groups": lookalike_groups(), "page_config": page_config()}
    return render(request, "frontend/index.html", context)


def model(request):
    """The public model page: its figures are drawn by model-page.js from /api/v1/stats and
    /api/v1/model-versions/{id}."""
    version = request.GET.get("version", "")
    return render(request, "frontend/model.html", {"version_id": version if version.isdigit() else ""})
