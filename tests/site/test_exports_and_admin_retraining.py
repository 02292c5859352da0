"""Export of approved corrections (API and admin) and the retraining parts of the admin."""

import csv
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from recognition import services
from recognition.models import Correction, ModelVersion, TrainingRun
from tests.site.conftest import style_image, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed_corrections(approved_corrections):
    """Two approved ('z', 'A') and one pending and one rejected, which must never be exported."""
    approved = approved_corrections(1, "z") + approved_corrections(1, "A", start_seed=5)
    pending, rejected = approved_corrections(2, "q", start_seed=9)
    Correction.objects.filter(id=pending.id).update(status=Correction.Status.PENDING)
    Correction.objects.filter(id=rejected.id).update(status=Correction.Status.REJECTED)
    return approved


def test_the_npz_export_holds_images_in_emnist_orientation_and_labels(staff, mixed_corrections):
    response = token_client(staff).get("/api/v1/corrections/export?kind=npz")
    assert response.status_code == 200 and "attachment" in response["Content-Disposition"]
    data = np.load(io.BytesIO(response.content))
    assert data["images"].dtype == np.uint8 and data["images"].shape == (2, 28, 28)
    assert np.array_equal(data["images"][0], style_image(0)) and np.array_equal(data["images"][1], style_image(5))
    assert data["labels"].tolist() == [61, 10] and data["label_chars"].tolist() == ["z", "A"]
    assert data["correction_ids"].tolist() == [c.id for c in mixed_corrections]


def test_the_zip_export_holds_upright_pngs_and_a_csv(staff, mixed_corrections):
    response = token_client(staff).get("/api/v1/corrections/export?kind=zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    rows = list(csv.DictReader(io.StringIO(archive.read("labels.csv").decode())))
    assert [(r["label"], r["label_index"]) for r in rows] == [("z", "61"), ("A", "10")]
    png = np.asarray(Image.open(io.BytesIO(archive.read(rows[0]["file"]))))
    assert np.array_equal(png, style_image(0).T)  # upright for people


def test_only_staff_may_export(alice, anon, mixed_corrections):
    assert token_client(alice).get("/api/v1/corrections/export").status_code == 403
    assert anon.get("/api/v1/corrections/export").status_code in (401, 403)


def test_an_unknown_export_kind_is_a_clear_400(staff):
    response = token_client(staff).get("/api/v1/corrections/export?kind=tar")
    assert response.status_code == 400 and b"npz or zip" in response.content


def test_the_admin_exports_only_approved_selected_corrections(admin_client_for, mixed_corrections):
    all_ids = list(Correction.objects.values_list("id", flat=True))
    response = admin_client_for.post(
        "/admin/recognition/correction/", {"action": "export_npz", "_selected_action": all_ids}
    )
    assert response.status_code == 200
    assert np.load(io.BytesIO(response.content))["label_chars"].tolist() == ["z", "A"]
    response = admin_client_for.post(
        "/admin/recognition/correction/", {"action": "export_zip", "_selected_action": all_ids}
    )
    assert len([n for n in zipfile.ZipFile(io.BytesIO(response.content)).namelist() if n.endswith(".png")]) == 2


def test_the_admin_starts_a_run_by_hand(
    admin_client_for, retrain_settings, active_model, approved_corrections, django_capture_on_commit_callbacks
):
    approved_corrections(1)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_for.post("/admin/recognition/trainingrun/start-retraining/", follow=True)
    assert b"Retraining run queued" in response.content
    run = TrainingRun.objects.get()
    assert run.reason == "manual" and run.status == TrainingRun.Status.SKIPPED  # eager in tests
    page = admin_client_for.get("/admin/recognition/trainingrun/")
    assert b"Nothing to do" in page.content and b"Start a retraining run" in page.content


def test_the_admin_shows_gates_metrics_and_confusion_and_refuses_a_rejected_version(
    admin_client_for, retrain_settings, active_model, approved_corrections
):
    retrain_settings.RETRAIN_MAX_VAL_DROP = -1.0
    approved_corrections(8)
    rejected = services.retraining_run().result
    listing = admin_client_for.get("/admin/recognition/modelversion/")
    assert b"failed: validation top-1 dropped" in listing.content
    page = admin_client_for.get(f"/admin/recognition/modelversion/{rejected.id}/change/")
    assert page.status_code == 200
    text = page.content.decode().lower()
    assert "quality gates" in text and "held-back" in text and "recall" in text and "validation top-1 dropped" in text
    assert b'alt="confusion matrix"' in page.content
    response = admin_client_for.post(
        "/admin/recognition/modelversion/", {"action": "activate", "_selected_action": [rejected.id]}, follow=True
    )
    assert b"rejected by the quality gates" in response.content
    assert ModelVersion.objects.get(status="active") == active_model
    # Rolling back to a retired version works from the same action.
    services.model_version_activate(
        model_version=ModelVersion.objects.create(name="b", file_path=active_model.file_path)
    )
    response = admin_client_for.post(
        "/admin/recognition/modelversion/", {"action": "activate", "_selected_action": [active_model.id]}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == ["tiny is now active."], response.content[-3000:]
