"""The public model page and the read-only APIs it draws from."""

import json

import pytest

from ml.data import CLASSES
from ml.evaluate import LOOKALIKE_PAIRS
from recognition.models import Correction, ModelVersion, Submission
from tests.site.browser import no_horizontal_overflow, screenshot


def add_history(shipped):
    """The learning loop as the page shows it: the shipped model, one retrained version that
    passed the gates (now active) and one the gates rejected. Their metrics are the shipped
    model's report, as a retraining run would copy the evaluation of its candidate."""
    validation = shipped.metrics["validation"]
    shipped.status = ModelVersion.Status.RETIRED
    shipped.save()
    promoted = ModelVersion.objects.create(
        name="retrained-run1",
        file_path=shipped.file_path,
        parent=shipped,
        status=ModelVersion.Status.ACTIVE,
        metrics={"validation": validation, "held_back": {"top1": 0.8, "n": 10}},
        training_summary={"source": "retraining", "corrections": 60},
        gate_results={"passed": True},
    )
    rejected = ModelVersion.objects.create(
        name="retrained-run2",
        file_path=shipped.file_path,
        parent=promoted,
        status=ModelVersion.Status.REJECTED,
        metrics={
            "validation": {**validation, "top1": validation["top1"] - 0.0125},
            "held_back": {"top1": 0.7, "n": 12},
        },
        training_summary={"source": "retraining", "corrections": 55},
        gate_results={"passed": False, "reason": "validation top-1 fell 1.25 points (limit 0.3)"},
    )
    return promoted, rejected


def corrections(approved: int, pending: int):
    for i in range(approved + pending):
        submission = Submission.objects.create(
            image=b"x", content_type="image/png", input28=bytes(784), status="predicted", predicted_label="0"
        )
        Correction.objects.create(submission=submission, label="O", status="approved" if i < approved else "pending")


# ---- APIs -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_labels_api_gives_the_lookalike_groups_of_ml_evaluate(anon):
    body = anon.get("/api/v1/labels").json()
    assert "".join(body["labels"]) == CLASSES
    assert body["lookalike_pairs"] == [list(p) for p in LOOKALIKE_PAIRS]
    groups = {frozenset(g) for g in body["lookalike_groups"]}
    assert frozenset("0Oo") in groups and frozenset("Ss") in groups and frozenset("1IilL") in groups
    assert all(len(g) >= 2 for g in groups)


@pytest.mark.django_db
def test_stats_api_counts_corrections_and_lists_versions_oldest_first(anon, shipped_model):
    promoted, rejected = add_history(shipped_model)
    corrections(approved=2, pending=3)
    body = anon.get("/api/v1/stats").json()
    assert body["active_model"]["id"] == promoted.id
    assert body["active_model"]["top1"] == shipped_model.metrics["validation"]["top1"]
    assert [v["name"] for v in body["model_versions"]] == ["emnist_cnn", "retrained-run1", "retrained-run2"]
    assert [v["status"] for v in body["model_versions"]] == ["retired", "active", "rejected"]
    assert body["model_versions"][2]["gate_reason"].startswith("validation top-1 fell")
    assert body["model_versions"][1]["corrections_used"] == 60
    assert body["corrections"] == {"total": 5, "approved": 2, "pending": 3, "rejected": 0, "learned": 0}
    assert body["predictions"] == 5
    assert "confusion_matrix" not in json.dumps(body)  # the summary stays small


@pytest.mark.django_db
def test_model_version_api_gives_metrics_with_class_names(anon, shipped_model):
    body = anon.get(f"/api/v1/model-versions/{shipped_model.id}").json()
    assert body["classes"] == list(CLASSES)
    cm = body["metrics"]["validation"]["confusion_matrix"]
    assert len(cm) == 62 and all(len(row) == 62 for row in cm)
    assert body["name"] == "emnist_cnn" and body["status"] == "active"


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["999999", "abc", "1.5"])
def test_an_unknown_model_version_is_a_404_with_a_code(anon, shipped_model, bad):
    response = anon.get(f"/api/v1/model-versions/{bad}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_the_model_page_is_public_and_escapes_its_parameter(client, shipped_model):
    response = client.get("/model?version=<script>")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-version-id=""' in html and '<script>"' not in html
    assert '<script type="module" src="/static/frontend/model-page.js">' in html
    assert "https://" not in html  # no CDN


@pytest.mark.django_db
def test_stats_are_read_only(anon, shipped_model):
    assert anon.post("/api/v1/stats", {}).status_code in (403, 405)
    assert anon.delete(f"/api/v1/model-versions/{shipped_model.id}").status_code in (403, 405)


# ---- the page in Chromium -----------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_model_page_draws_its_charts_with_class_names(page, live_server, shipped_model):
    promoted, rejected = add_history(shipped_model)
    corrections(approved=4, pending=2)
    validation = shipped_model.metrics["validation"]
    page.goto(live_server.url + "/model")
    page.wait_for_selector("body[data-ready]", timeout=20_000)

    summary = page.inner_text("#summary")
    assert f"{validation['top1'] * 100:.1f}%" in summary and f"{validation['top3'] * 100:.1f}%" in summary
    assert f"{validation['lookalike_top1'] * 100:.1f}%" in summary
    assert "Corrections contributed\n6" in summary and "4 approved" in summary

    # History: one point per version, coloured by status, and a row each with the gate's reason.
    assert page.locator("svg.history circle.dot").count() == 3
    assert page.locator("svg.history circle.status-rejected").count() == 1
    assert page.locator("#history-table tbody tr").count() == 3
    assert "fell 1.25 points" in page.inner_text("#history-table")

    # Per class: 62 bars, named.
    names = page.eval_on_selector_all("svg.per-class text.class-name", "ts => ts.map(t => t.textContent)")
    assert names == list(CLASSES)
    assert page.locator("svg.per-class rect.bar").count() == 62
    heights = page.eval_on_selector_all("svg.per-class rect.bar", "rs => rs.map(r => Number(r.getAttribute('height')))")
    assert heights[CLASSES.index("0")] != heights[CLASSES.index("O")]  # drawn from the data, not a picture

    # Confusion matrix: class names on both axes, one cell per non-zero count.
    rows = page.eval_on_selector_all("svg.confusion-matrix text.row-name", "ts => ts.map(t => t.textContent)")
    cols = page.eval_on_selector_all("svg.confusion-matrix text.col-name", "ts => ts.map(t => t.textContent)")
    assert rows == list(CLASSES) and cols == list(CLASSES)
    nonzero = sum(1 for row in validation["confusion_matrix"] for v in row if v)
    assert page.locator("svg.confusion-matrix rect.cm-cell").count() == nonzero
    top = validation["confused_pairs"][0]
    assert f"{top['true']} read as {top['predicted']}: {top['count']:,} times" in page.inner_text("#confused-pairs")
    assert no_horizontal_overflow(page)
    screenshot(page, "model.png", full_page=True)

    # Another version by its link.
    page.click(f'#history-table a[href="?version={rejected.id}"]')
    page.wait_for_selector("body[data-ready]", timeout=20_000)
    assert "retrained-run2 (rejected)" in page.inner_text("#model-name")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_model_page_fits_a_phone(phone, live_server, shipped_model):
    phone.goto(live_server.url + "/model")
    phone.wait_for_selector("body[data-ready]", timeout=20_000)
    assert no_horizontal_overflow(phone)
