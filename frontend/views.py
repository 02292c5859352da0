from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from recognition.labels import labels


@ensure_csrf_cookie
def index(request):
    return render(request, "frontend/index.html", {"labels": labels()})
