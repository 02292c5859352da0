import base64
import struct
import zlib

import pytest

from ml.data import CLASSES
from recognition.models import Correction, Submission
from tests.site.conftest import canvas_png, token_client
from tests.site.workers import celery_broker

SUBMISSIONS = "/api/v1/submissions"


def b64_payload(image: bytes, **extra) -> dict:
    return {"image_base64": "data:image/png;base64," + base64.b64encode(image).decode(), **extra}


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height: a decompression bomb if anyone decoded it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    )


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["detail"], body
    assert Submission.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_it_returns_the_prediction_with_201_when_ready(anon, active_model, drawing):
    response = anon.post(
        SUBMISSIONS, b64_payload(drawing, strokes=[[[10, 10, 0], [20, 30, 16]]], source="canvas"), format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "predicted" and body["predicted_label"] in CLASSES
    assert [p["label"] for p in body["top_k"]][0] == body["predicted_label"] and len(body["top_k"]) == 5
    assert body["input_image"].startswith("data:image/png;base64,")
    assert body["model_version"] == active_model.id
    row = Submission.objects.get()
    assert row.source == "canvas" and row.strokes == [[[10, 10, 0], [20, 30, 16]]] and row.client_id


@pytest.mark.django_db(transaction=True)
def test_it_accepts_a_multipart_upload(anon, active_model):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("a.png", canvas_png(), content_type="image/png")
    response = anon.post(SUBMISSIONS, {"image": upload}, format="multipart")
    assert response.status_code == 201, response.content
    assert Submission.objects.get().source == "upload"


@pytest.mark.django_db
def test_it_answers_202_with_a_poll_url_when_the_worker_is_not_done(anon, active_model, drawing):
    # Under the `db` fixture the test transaction never commits, so the task is never queued.
    response = anon.post(SUBMISSIONS, b64_payload(drawing), format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert response["Location"] == body["url"] == f"/api/v1/submissions/{body['id']}"
    assert anon.get(body["url"]).json()["status"] == "pending"


@pytest.mark.django_db
def test_it_rejects_a_wrong_content_type(anon):
    response = anon.post(SUBMISSIONS, "hello", content_type="text/plain")
    assert response.status_code == 415 and response.json()["detail"]
    assert Submission.objects.count() == 0


@pytest.mark.django_db
def test_it_rejects_an_upload_declared_as_a_pdf(anon, drawing):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = anon.post(
        SUBMISSIONS, {"image": SimpleUploadedFile("a.pdf", drawing, content_type="application/pdf")}, format="multipart"
    )
    assert_error(response, 415, "unsupported_image_type")


@pytest.mark.django_db
def test_it_rejects_non_image_bytes(anon):
    assert_error(anon.post(SUBMISSIONS, b64_payload(b"this is not a png"), format="json"), 400, "invalid_image")


@pytest.mark.django_db
def test_it_rejects_a_truncated_png(anon):
    assert_error(anon.post(SUBMISSIONS, b64_payload(canvas_png()[:300]), format="json"), 400, "invalid_image")


@pytest.mark.django_db
def test_it_rejects_a_50_mb_upload(anon):
    from django.core.files.uploadedfile import SimpleUploadedFile

    big = SimpleUploadedFile("big.png", canvas_png() + b"\0" * (50 * 1024 * 1024), content_type="image/png")
    # Refused from its Content-Length before the body is read (tests/site/test_upload_limits.py).
    assert_error(anon.post(SUBMISSIONS, {"image": big}, format="multipart"), 413, "request_too_large")


@pytest.mark.django_db
def test_it_rejects_a_20000_px_image_header_without_decoding_it(anon):
    assert_error(
        anon.post(SUBMISSIONS, b64_payload(png_header_only(20000, 20000)), format="json"), 413, "image_too_large"
    )


@pytest.mark.django_db
def test_it_rejects_a_blank_canvas(anon):
    assert_error(anon.post(SUBMISSIONS, b64_payload(canvas_png(blank=True)), format="json"), 400, "blank_image")


@pytest.mark.django_db
def test_it_rejects_malformed_base64(anon):
    assert_error(
        anon.post(SUBMISSIONS, {"image_base64": "data:image/png;base64,@@not*base64!"}, format="json"),
        400,
        "invalid_image",
    )


@pytest.mark.django_db
def test_it_rejects_json_without_an_image(anon):
    response = anon.post(SUBMISSIONS, {"strokes": []}, format="json")
    assert response.status_code == 400 and "image_base64" in response.json()["errors"]
    assert Submission.objects.count() == 0


@pytest.mark.django_db
def test_it_rejects_malformed_strokes(anon, drawing):
    assert_error(anon.post(SUBMISSIONS, b64_payload(drawing, strokes="nope"), format="json"), 400, "invalid_strokes")


@pytest.mark.django_db(transaction=True)
def test_it_stores_a_correction_for_your_own_submission(anon, active_model, drawing):
    created = anon.post(SUBMISSIONS, b64_payload(drawing), format="json").json()
    response = anon.post(created["url"] + "/correction", {"label": "g"}, format="json")
    assert response.status_code == 201 and response.json()["label"] == "g"
    assert anon.get(created["url"]).json()["correction"]["label"] == "g"
    assert Correction.objects.get().status == "pending"


@pytest.mark.django_db(transaction=True)
def test_it_rejects_an_unknown_label_in_a_correction(anon, active_model, drawing):
    created = anon.post(SUBMISSIONS, b64_payload(drawing), format="json").json()
    response = anon.post(created["url"] + "/correction", {"label": "%"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "unknown_label"
    assert Correction.objects.count() == 0


@pytest.mark.django_db
def test_it_lists_the_62_labels(anon):
    assert anon.get("/api/v1/labels").json()["labels"] == list(CLASSES)


@pytest.mark.django_db
def test_it_lists_model_versions_with_metrics(anon, active_model):
    active_model.metrics = {"validation": {"top1": 0.87}}
    active_model.save()
    body = anon.get("/api/v1/model-versions").json()
    assert (
        body[0]["name"] == "tiny" and body[0]["status"] == "active" and body[0]["metrics"]["validation"]["top1"] == 0.87
    )


@pytest.mark.django_db
def test_health_is_ok_with_a_loadable_model(staff, active_model):
    response = token_client(staff).get("/api/v1/health")
    assert response.status_code == 200, response.json()
    assert set(response.json()["checks"]) == {"database", "broker", "worker", "model"}


@pytest.mark.django_db
def test_health_is_503_without_an_active_model(staff):
    response = token_client(staff).get("/api/v1/health")
    assert response.status_code == 503 and response.json()["checks"]["model"]["ok"] is False


@pytest.mark.django_db
def test_health_reports_an_unreachable_broker(staff, active_model):
    with celery_broker("redis://127.0.0.1:1/0"):
        response = token_client(staff).get("/api/v1/health")
    assert response.status_code == 503 and response.json()["checks"]["broker"]["ok"] is False


@pytest.mark.django_db
def test_the_openapi_schema_and_docs_are_served(anon):
    schema = anon.get("/api/v1/schema")
    assert schema.status_code == 200 and b"/api/v1/submissions" in schema.content
    docs = anon.get("/api/v1/docs")
    assert docs.status_code == 200 and b"cdn" not in docs.content.lower()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query", ["page_size=null", "page_size=", "page_size=0", "page_size=101", "page=0", "page=x", "page="]
)
def test_the_list_refuses_a_malformed_page_or_page_size(anon, query):
    # Found by the fuzz test: DRF's paginator silently ignored these.
    response = anon.get(f"{SUBMISSIONS}?{query}")
    assert response.status_code == 400 and response.json()["code"] == "invalid", response.content


@pytest.mark.django_db
@pytest.mark.parametrize("submission_id", ["0", "not-a-uuid", "1" * 40])
def test_a_malformed_submission_id_is_not_found_not_a_500(anon, submission_id):
    # Found by the fuzz test: a non-UUID id reached the database lookup.
    assert anon.get(f"{SUBMISSIONS}/{submission_id}").status_code == 404
    assert anon.post(f"{SUBMISSIONS}/{submission_id}/correction", {"label": "A"}, format="json").status_code == 404


@pytest.mark.django_db
def test_a_correction_label_must_be_a_string(anon, active_model, drawing):
    # Found by the fuzz test: DRF's CharField turned the number 0 into the label "0".
    created = anon.post(SUBMISSIONS, b64_payload(drawing), format="json").json()
    response = anon.post(created["url"] + "/correction", {"label": 0}, format="json")
    assert response.status_code == 400 and response.json()["errors"]["label"]
    assert Correction.objects.count() == 0


@pytest.mark.django_db
def test_a_validation_error_has_detail_code_and_the_field_messages(anon):
    body = anon.post(SUBMISSIONS, {"strokes": []}, format="json").json()
    assert body["code"] == "invalid" and body["detail"] == "image_base64: This field is required."
    assert body["errors"] == {"image_base64": ["This field is required."]}


@pytest.mark.django_db
def test_the_written_out_submission_representation_is_what_the_declared_fields_give(active_model, drawing):
    """SubmissionOutputSerializer writes its output by hand for speed; the declared fields
    (the schema) must give exactly the same for every kind of row."""
    from rest_framework import serializers

    from recognition import services
    from recognition.api.serializers import SubmissionOutputSerializer

    pending = services.submission_create(image=drawing, content_type="image/png")  # db fixture: not queued
    predicted = services.submission_create(image=drawing, content_type="image/png", source="canvas")
    services.submission_predict(submission_id=str(predicted.id))
    services.correction_create(submission=Submission.objects.get(id=predicted.id), label="x")
    failed = services.submission_create(image=drawing, content_type="image/png")
    services.submission_fail(submission_id=str(failed.id), reason="Prediction failed: a test")
    word = services.word_create(image=canvas_png(), content_type="image/png")
    rows = [*Submission.objects.filter(id__in=[pending.id, predicted.id, failed.id]), *word.characters.all()]
    assert {row.status for row in rows} == {"pending", "predicted", "failed"} and any(row.word_id for row in rows)
    for row in rows:
        for context in ({}, {"new": True}):
            serializer = SubmissionOutputSerializer(row, context=context)
            assert serializer.data == serializers.Serializer.to_representation(serializer, row), (row.status, context)
    assert SubmissionOutputSerializer(Submission.objects.get(id=predicted.id)).data["correction"]["label"] == "x"
