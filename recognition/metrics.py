"""Prometheus metrics for whoever runs the site, at /metrics (not public: staff, or the
METRICS_TOKEN as a bearer token; the README shows a scrape configuration).

Two kinds:
- request latency, measured here by RequestLatencyMiddleware. Under gunicorn each worker
  process counts its own requests; with PROMETHEUS_MULTIPROC_DIR set (docker-compose sets it)
  prometheus-client shares them through files, so one scrape sees every worker's.
- the state of the site, read from the database and the broker at scrape time by
  SiteCollector: predictions by status, pending rows and the oldest one's age, each queue's
  worker heartbeat age, the active model version, retraining runs by outcome. Read at scrape
  time, not counted in the process that did the work, so they are right whichever process a
  scrape reaches and survive restarts.

No TensorFlow here: a scrape must stay cheap.
"""

import hmac
import math
import os
import time

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from emnist_site.celery import app
from emnist_site.heartbeat import heartbeat_read
from recognition.models import ModelVersion, Submission, TrainingRun

REQUEST_LATENCY = Histogram(
    "emnist_http_request_duration_seconds",
    "Time from the request reaching Django to its response, by view and status class.",
    ["method", "view", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

HEARTBEAT_QUEUES = ("inference", "training")


class RequestLatencyMiddleware:
    """Times every request. Labelled by the URL pattern's name (bounded: one per route), never
    by the path, which holds ids and would make a new series per submission."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match.route) if match else "unmatched"
        REQUEST_LATENCY.labels(request.method, view, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        return response


def _by_status(family, model):
    """``family`` with one sample per status of ``model``, its row count (0 for a status no row has)."""
    counts = dict(model.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    for status in model.Status.values:
        family.add_metric([status], counts.get(status, 0))
    return family


class SiteCollector:
    """The site's state, read when scraped."""

    def collect(self):
        yield _by_status(
            GaugeMetricFamily(
                "emnist_submissions", "Submissions by status (pending, predicted, failed).", labels=["status"]
            ),
            Submission,
        )

        oldest = Submission.objects.filter(status=Submission.Status.PENDING).aggregate(oldest=Min("created_at"))[
            "oldest"
        ]
        yield GaugeMetricFamily(
            "emnist_oldest_pending_submission_age_seconds",
            "Age of the oldest submission still waiting for its prediction (0 when none waits).",
            value=(timezone.now() - oldest).total_seconds() if oldest else 0.0,
        )

        heartbeat = GaugeMetricFamily(
            "emnist_worker_heartbeat_age_seconds",
            "Seconds since a worker consuming the queue last beat; +Inf when none has (or Redis is unreachable).",
            labels=["queue"],
        )
        if not app.conf.task_always_eager:
            for queue in HEARTBEAT_QUEUES:
                try:
                    beat = heartbeat_read(app.conf.broker_url, queue)
                except Exception:  # noqa: BLE001 - an unreachable broker is what the metric shows
                    beat = None
                heartbeat.add_metric([queue], beat["age"] if beat else math.inf)
        yield heartbeat

        active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).values("id", "name").first()
        model = GaugeMetricFamily(
            "emnist_active_model_version_info",
            "The active model version (value 1); none when no version is active.",
            labels=["id", "name"],
        )
        if active:
            model.add_metric([str(active["id"]), active["name"]], 1)
        yield model

        yield _by_status(
            CounterMetricFamily(
                "emnist_retraining_runs",
                "Retraining runs by outcome (queued and running included).",
                labels=["outcome"],
            ),
            TrainingRun,
        )


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # every gunicorn worker's request latencies
    else:
        registry.register(REQUEST_LATENCY)
    registry.register(SiteCollector())
    return registry


def _allowed(request) -> bool:
    if request.user.is_authenticated and request.user.is_staff:
        return True
    token = getattr(settings, "METRICS_TOKEN", "")
    header = request.headers.get("Authorization", "")
    return bool(token) and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode())


def metrics_view(request):
    if not _allowed(request):
        return JsonResponse(
            {
                "detail": "Metrics are for staff, or a scraper sending METRICS_TOKEN as a bearer token.",
                "code": "not_authenticated",
            },
            status=403,
        )
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)
