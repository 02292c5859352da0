from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from recognition.labels import labels, lookalike_groups


@ensure_csrf_cookie
def index(request):
    # The look-alike groups come from ml.evaluate through the template, so the page never
    # keeps its own copy of the list.
    return render(request, "frontend/index.html", {"labels": labels(), "lookalike_groups": lookalike_groups()})


def model(request):
    """The public model page: its figures are drawn by model.js from /api/v1/stats and
    /api/v1/model-versions/{id}."""
    version = request.GET.get("version", "")
    return render(request, "frontend/model.html", {"version_id": version if version.isdigit() else ""})
