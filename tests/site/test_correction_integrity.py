"""A correction's label is one of the 62 classes, and only a review decides its status.

The admin change form edits the label of a pending correction and nothing else; the model
and the database refuse any other label; a row from before that rule (a poison row) is
skipped and reported by both exports and by retraining instead of failing them.
"""

import csv
import io
import zipfile

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from recognition import services
from recognition.models import Correction, ModelVersion, TrainingRun
from tests.site.conftest import token_client
from tests.site.helpers import models_before_migration

pytestmark = pytest.mark.django_db


def force_label(correction: Correction, label: str) -> None:
    """Write a label the database refuses, as a row from before the constraint would hold it."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA ignore_check_constraints = 1")
            try:
                cursor.execute("UPDATE recognition_correction SET label = %s WHERE id = %s", [label, correction.id])
            finally:
                cursor.execute("PRAGMA ignore_check_constraints = 0")
        else:
            # Inside the test's transaction: rolled back with it. The deferred foreign-key
            # checks of rows made in it run first: ALTER TABLE refuses pending trigger events.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE recognition_correction DROP CONSTRAINT correction_label_is_a_class")
            cursor.execute("UPDATE recognition_correction SET label = %s WHERE id = %s", [label, correction.id])
    correction.refresh_from_db()
    assert correction.label == label


@pytest.fixture
def pending(approved_corrections):
    correction = approved_corrections(1, "7")[0]
    Correction.objects.filter(id=correction.id).update(status=Correction.Status.PENDING)
    correction.refresh_from_db()
    return correction


def change_form(correction: Correction, **fields) -> dict:
    data = {
        "submission": str(correction.submission_id),
        "label": correction.label,
        "status": correction.status,
        "auto_rule": correction.auto_rule,
        "learned_by": "",
        "reviewer": "",
    }
    data.update(fields)
    return data


# --------------------------------------------------------------------------- the admin form


def test_the_change_form_cannot_approve_move_or_mark_learned(
    admin_client_for, pending, approved_corrections, active_model
):
    other = approved_corrections(1, "z", start_seed=3)[0].submission
    url = f"/admin/recognition/correction/{pending.id}/change/"
    response = admin_client_for.post(
        url,
        change_form(pending, label="8", status="approved", submission=str(other.id), learned_by=str(active_model.id)),
    )
    assert response.status_code == 302  # saved: only the label was taken
    pending.refresh_from_db()
    assert pending.label == "8"
    assert pending.status == "pending" and pending.reviewer is None and pending.reviewed_at is None
    assert pending.submission_id != other.id and pending.learned_by is None


def test_review_through_the_form_page_is_the_approve_action_which_records_who_and_when(
    admin_client_for, pending, staff
):
    page = admin_client_for.get(f"/admin/recognition/correction/{pending.id}/change/").content.decode()
    assert 'name="status"' not in page and 'name="submission"' not in page and 'name="learned_by"' not in page
    admin_client_for.post("/admin/recognition/correction/", {"action": "approve", "_selected_action": [pending.id]})
    pending.refresh_from_db()
    assert pending.status == "approved" and pending.reviewer == staff and pending.reviewed_at


def test_the_change_form_refuses_a_label_outside_the_62_classes(admin_client_for, pending):
    response = admin_client_for.post(
        f"/admin/recognition/correction/{pending.id}/change/", change_form(pending, label="!")
    )
    assert response.status_code == 200 and b"Select a valid choice" in response.content
    pending.refresh_from_db()
    assert pending.label == "7"


def test_a_reviewed_label_cannot_be_edited_and_corrections_cannot_be_typed_in(admin_client_for, approved_corrections):
    approved = approved_corrections(1, "z")[0]
    admin_client_for.post(f"/admin/recognition/correction/{approved.id}/change/", change_form(approved, label="q"))
    approved.refresh_from_db()
    assert approved.label == "z"
    assert admin_client_for.get("/admin/recognition/correction/add/").status_code == 403


def test_the_submission_page_shows_its_corrections_read_only(admin_client_for, pending):
    page = admin_client_for.get(f"/admin/recognition/submission/{pending.submission_id}/change/").content.decode()
    assert "corrections-0-status" not in page and "corrections-0-label" not in page
    assert "corrections-TOTAL_FORMS" in page  # the inline is there, with nothing to edit


# --------------------------------------------------------------------------- model and database


def test_the_model_and_the_database_refuse_a_label_outside_the_62_classes(pending):
    pending.label = "!"
    with pytest.raises(ValidationError, match="label"):
        pending.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        Correction.objects.filter(id=pending.id).update(label="!")
    with pytest.raises(IntegrityError), transaction.atomic():
        Correction.objects.create(submission=pending.submission, label="", status=Correction.Status.REJECTED)
    pending.refresh_from_db()
    assert pending.label == "7"


# --------------------------------------------------------------------------- poison rows


@pytest.fixture
def with_poison_row(approved_corrections):
    """Two good approved corrections ('z', 'A') and one approved with the label '!'."""
    good = approved_corrections(1, "z") + approved_corrections(1, "A", start_seed=5)
    poison = approved_corrections(1, "z", start_seed=7)[0]
    force_label(poison, "!")
    return good, poison


def test_both_exports_skip_and_report_a_label_outside_the_classes(staff, with_poison_row):
    good, poison = with_poison_row
    response = token_client(staff).get("/api/v1/corrections/export?kind=npz")
    assert response.status_code == 200
    data = np.load(io.BytesIO(response.content))
    assert data["label_chars"].tolist() == ["z", "A"] and data["correction_ids"].tolist() == [c.id for c in good]
    assert data["skipped_correction_ids"].tolist() == [poison.id]

    response = token_client(staff).get("/api/v1/corrections/export?kind=zip")
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert [r["label"] for r in csv.DictReader(io.StringIO(archive.read("labels.csv").decode()))] == ["z", "A"]
    skipped = list(csv.DictReader(io.StringIO(archive.read("skipped.csv").decode())))
    assert [(r["correction_id"], r["label"]) for r in skipped] == [(str(poison.id), "!")]


def test_the_admin_export_skips_a_poison_row_and_says_so(admin_client_for, with_poison_row):
    good, poison = with_poison_row
    ids = [c.id for c in good] + [poison.id]
    response = admin_client_for.post(
        "/admin/recognition/correction/", {"action": "export_npz", "_selected_action": ids}
    )
    assert response.status_code == 200
    assert np.load(io.BytesIO(response.content))["label_chars"].tolist() == ["z", "A"]
    page = admin_client_for.get("/admin/recognition/correction/").content.decode()
    assert f"Left out of the export: 1 correction(s) whose label is not one of the 62 classes ({poison.id})" in page


def test_retraining_skips_and_reports_a_poison_row(retrain_settings, active_model, approved_corrections):
    approved_corrections(6)
    poison = approved_corrections(1, "z", start_seed=20)[0]
    force_label(poison, "!")
    run = services.retraining_run(reason="manual")
    assert run.status == TrainingRun.Status.SUCCEEDED, (run.error, run.log)
    assert run.summary["skipped_invalid_labels"] == [{"id": poison.id, "label": "!"}]
    assert f"{poison.id} ('!')" in run.log
    assert poison.id not in run.result.training_summary["correction_ids"] + run.result.training_summary["held_back_ids"]
    assert ModelVersion.objects.filter(status="active").get() == run.result


# --------------------------------------------------------------------------- the migration


@pytest.mark.django_db(transaction=True)
def test_the_migration_deletes_rows_the_constraint_would_refuse_and_keeps_the_rest():
    with models_before_migration("recognition", "0005_auto_trust") as apps:
        Submission = apps.get_model("recognition", "Submission")
        OldCorrection = apps.get_model("recognition", "Correction")
        submission = Submission.objects.create(image=b"x", content_type="image/png", input28=bytes(784))
        kept = OldCorrection.objects.create(submission=submission, label="q", status="approved")
        OldCorrection.objects.create(submission=submission, label="!", status="approved")
        OldCorrection.objects.create(submission=submission, label="", status="rejected")
    assert list(Correction.objects.values_list("id", "label")) == [(kept.id, "q")]
