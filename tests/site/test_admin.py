import pytest

from recognition import services
from recognition.models import ModelVersion
from tests.site.conftest import canvas_png

pytestmark = pytest.mark.django_db


@pytest.fixture
def correction():
    submission = services.submission_create(image=canvas_png(), content_type="image/png")
    return services.correction_create(submission=submission, label="7")


def test_the_submission_list_shows_thumbnails_and_filters(admin_client_for, correction):
    response = admin_client_for.get("/admin/recognition/submission/?status__exact=pending&confidence=high")
    assert response.status_code == 200
    response = admin_client_for.get("/admin/recognition/submission/")
    assert b"data:image/png;base64," in response.content and b"image-rendering:pixelated" in response.content


def test_the_submission_page_shows_the_original_and_the_28x28(admin_client_for, correction):
    response = admin_client_for.get(f"/admin/recognition/submission/{correction.submission_id}/change/")
    assert (
        response.status_code == 200 and response.content.count(b"data:image/png;base64,") == 2
    )  # the original and the 28x28


def test_bulk_approve_records_the_reviewer(admin_client_for, correction, staff):
    response = admin_client_for.post(
        "/admin/recognition/correction/", {"action": "approve", "_selected_action": [correction.id]}, follow=True
    )
    assert response.status_code == 200
    correction.refresh_from_db()
    assert correction.status == "approved" and correction.reviewer == staff and correction.reviewed_at


def test_bulk_reject_leaves_already_approved_corrections_alone(admin_client_for, correction, staff):
    services.correction_review(correction_ids=[correction.id], reviewer=staff, status="approved")
    admin_client_for.post("/admin/recognition/correction/", {"action": "reject", "_selected_action": [correction.id]})
    correction.refresh_from_db()
    assert correction.status == "approved"


def test_the_model_version_list_shows_metrics_and_activates(admin_client_for, active_model, tiny_model_path):
    active_model.metrics = {"validation": {"top1": 0.8765, "top3": 0.97}}
    active_model.save()
    newer = ModelVersion.objects.create(name="newer", file_path=str(tiny_model_path))
    response = admin_client_for.get("/admin/recognition/modelversion/")
    assert b"0.8765" in response.content
    admin_client_for.post("/admin/recognition/modelversion/", {"action": "activate", "_selected_action": [newer.id]})
    newer.refresh_from_db()
    active_model.refresh_from_db()
    assert (newer.status, active_model.status) == ("active", "retired")
