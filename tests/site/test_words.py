"""Words: a drawing of several characters, split into one submission per character."""

import base64
import io
import json
import time

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw

from ml.data import CLASSES
from recognition import errors, services
from recognition.models import Correction, Submission, Word
from tests.site.conftest import png_bytes, token_client
from tests.site.helpers import word_drawing
from tests.site.workers import wait_for

WORDS = "/api/v1/words"


def b64(image: bytes, **extra) -> dict:
    return {"image_base64": "data:image/png;base64," + base64.b64encode(image).decode(), **extra}


def assert_nothing_stored():
    assert Word.objects.count() == 0 and Submission.objects.count() == 0


# --------------------------------------------------------------------------- service


@pytest.mark.django_db
def test_a_three_character_drawing_becomes_three_characters_in_order():
    image, strokes, per_character = word_drawing(3)
    word = services.word_create(image=image, content_type="image/png", strokes=strokes, source="canvas", client_id="c1")
    assert word.segmentation == "strokes" and word.width == 370 and word.height == 200
    characters = list(word.characters.order_by("position"))
    assert [c.position for c in characters] == [0, 1, 2]
    assert [box[0] for box in word.boxes] == sorted(box[0] for box in word.boxes)
    for character, box, drawn in zip(characters, word.boxes, per_character):
        assert character.client_id == "c1" and character.source == "canvas" and character.status == "pending"
        assert len(bytes(character.input28)) == 784
        # Its image is its own crop, the size of its box, with its own strokes moved into it.
        crop = Image.open(io.BytesIO(bytes(character.image)))
        assert crop.size == (box[2] - box[0], box[3] - box[1]) and character.content_type == "image/png"
        assert len(character.strokes) == len(drawn)
        assert character.strokes[0][0][:2] == [drawn[0][0][0] - box[0], drawn[0][0][1] - box[1]]
    # The "i" kept its dot and the "T" its bar: each box spans the character's full height.
    assert word.boxes[0][1] < 45 and word.boxes[1][2] - word.boxes[1][0] > 50


@pytest.mark.django_db
def test_without_strokes_the_drawing_is_split_by_its_components_alike():
    image, strokes, _ = word_drawing(3)
    with_strokes = services.word_create(image=image, content_type="image/png", strokes=strokes)
    without = services.word_create(image=image, content_type="image/png")
    assert without.segmentation == "components" and without.characters.count() == 3
    assert np.abs(np.array(without.boxes) - np.array(with_strokes.boxes)).max() <= 2

    def first(w):
        return np.frombuffer(bytes(w.characters.get(position=0).input28), dtype=np.uint8).astype(int)

    assert np.abs(first(without) - first(with_strokes)).mean() < 8


@pytest.mark.django_db(transaction=True)
def test_the_characters_are_predicted_in_one_task_and_the_word_reads_them_in_order(active_model):
    image, strokes, _ = word_drawing(4)
    word = services.word_create(image=image, content_type="image/png", strokes=strokes)
    characters = list(word.characters.order_by("position"))
    assert word.status == "predicted" and len(word.text) == 4
    assert word.text == "".join(c.predicted_label for c in characters)
    for character in characters:
        assert character.predicted_label in CLASSES and len(character.top_k) == 5
        assert character.model_version == active_model and character.attempts == 1
    # Redelivered: nothing changes, no second attempt.
    services.word_predict(word_id=str(word.id))
    assert set(word.characters.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db(transaction=True)
def test_without_an_active_model_the_characters_fail_with_the_reason():
    image, strokes, _ = word_drawing(2)
    word = services.word_create(image=image, content_type="image/png", strokes=strokes)
    assert word.status == "failed" and word.text == "??"
    assert set(word.characters.values_list("error", flat=True)) == {"No active model version."}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"image": word_drawing(3)[0], "content_type": "application/pdf"}, errors.UnsupportedImageType),
        ({"image": b"not an image", "content_type": "image/png"}, errors.InvalidImage),
        ({"image": png_bytes(Image.new("RGBA", (600, 200))), "content_type": "image/png"}, errors.BlankImage),
        ({"image": word_drawing(3)[0], "content_type": "image/png", "strokes": [[[1, 2]], "x"]}, errors.InvalidStrokes),
        ({"image": word_drawing(33, spacing=70)[0], "content_type": "image/png"}, errors.TooManyCharacters),
    ],
    ids=["pdf", "not-an-image", "blank", "bad-strokes", "33-characters"],
)
def test_bad_input_raises_a_domain_error_and_stores_nothing(kwargs, error):
    with pytest.raises(error):
        services.word_create(**kwargs)
    assert_nothing_stored()


@pytest.mark.django_db
def test_strokes_that_do_not_match_the_image_fall_back_to_components():
    image, strokes, _ = word_drawing(3)
    shifted = [[[p[0] - 30, p[1], *p[2:]] for p in stroke] for stroke in strokes]
    word = services.word_create(image=image, content_type="image/png", strokes=shifted)
    assert word.segmentation == "components" and word.characters.count() == 3
    assert set(word.characters.values_list("strokes", flat=True)) == {None}


@pytest.mark.django_db
def test_strokes_in_css_pixels_of_a_2x_canvas_are_scaled_and_stored_in_the_crops_pixels():
    image, strokes, per_character = word_drawing(3)
    css = [[[p[0] / 2, p[1] / 2, *p[2:]] for p in stroke] for stroke in strokes]
    word = services.word_create(image=image, content_type="image/png", strokes=css)
    assert word.segmentation == "strokes" and word.strokes == css
    first = word.characters.get(position=0)
    box = word.boxes[0]
    assert first.strokes[0][0] == pytest.approx(
        [per_character[0][0][0][0] - box[0], per_character[0][0][0][1] - box[1], 0], abs=2
    )


# --------------------------------------------------------------------------- API


@pytest.mark.django_db(transaction=True)
def test_post_words_answers_201_with_the_text_characters_and_boxes(anon, active_model):
    image, strokes, _ = word_drawing(3)
    response = anon.post(WORDS, b64(image, strokes=strokes, source="canvas"), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "predicted" and body["url"] == f"{WORDS}/{body['id']}"
    assert [c["position"] for c in body["characters"]] == [0, 1, 2]
    assert body["text"] == "".join(c["predicted_label"] for c in body["characters"]) == body["corrected_text"]
    assert len(body["boxes"]) == 3 and all(len(box) == 4 for box in body["boxes"])
    assert body["segmentation"] == "strokes" and (body["width"], body["height"]) == (370, 200)
    for character in body["characters"]:
        assert character["word"] == body["id"] and len(character["top_k"]) == 5
        assert character["input_image"].startswith("data:image/png;base64,")
        assert character["url"] == f"/api/v1/submissions/{character['id']}"
    assert anon.get(body["url"]).json() == body


@pytest.mark.django_db(transaction=True)
def test_post_words_accepts_a_multipart_upload_with_strokes(anon, active_model):
    image, strokes, _ = word_drawing(3)
    upload = SimpleUploadedFile("word.png", image, content_type="image/png")
    response = anon.post(
        WORDS, {"image": upload, "strokes": json.dumps(strokes), "source": "canvas"}, format="multipart"
    )
    assert response.status_code == 201, response.content
    word = Word.objects.get()
    assert word.source == "canvas" and word.segmentation == "strokes" and word.strokes == strokes


@pytest.mark.django_db
def test_post_words_answers_202_with_a_poll_url_when_the_worker_is_not_done(anon, active_model):
    # Under the `db` fixture the transaction never commits, so the task is never queued.
    response = anon.post(WORDS, b64(word_drawing(3)[0]), format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "pending" and body["text"] == "???"
    assert response["Location"] == body["url"]
    assert anon.get(body["url"]).json()["status"] == "pending"


@pytest.mark.django_db(transaction=True)
def test_correcting_one_character_creates_a_correction_on_that_character(anon, active_model):
    body = anon.post(WORDS, b64(word_drawing(3)[0]), format="json").json()
    second = body["characters"][1]
    label = "g" if second["predicted_label"] != "g" else "h"
    response = anon.post(second["url"] + "/correction", {"label": label}, format="json")
    assert response.status_code == 201, response.content
    correction = Correction.objects.get()
    assert str(correction.submission_id) == second["id"] and correction.label == label
    assert correction.submission.word_id is not None and correction.submission.position == 1
    after = anon.get(body["url"]).json()
    assert after["characters"][1]["correction"]["label"] == label
    assert after["corrected_text"] == body["text"][0] + label + body["text"][2]
    assert after["text"] == body["text"]


@pytest.mark.django_db(transaction=True)
def test_someone_elses_word_and_its_characters_are_not_found(anon, other_anon, alice, bob, active_model):
    image = word_drawing(2)[0]
    mine = anon.post(WORDS, b64(image), format="json").json()
    response = other_anon.get(mine["url"])
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    character_url = mine["characters"][0]["url"]
    assert other_anon.post(character_url + "/correction", {"label": "A"}, format="json").status_code == 404
    assert other_anon.get(WORDS).json()["count"] == 0 and anon.get(WORDS).json()["count"] == 1

    alices = token_client(alice).post(WORDS, b64(image), format="json").json()
    bob_client = token_client(bob)
    assert bob_client.get(alices["url"]).status_code == 404
    assert (
        bob_client.post(alices["characters"][1]["url"] + "/correction", {"label": "A"}, format="json").status_code
        == 404
    )
    assert Correction.objects.count() == 0
    assert Word.objects.get(id=alices["id"]).owner == alice
    assert set(Submission.objects.filter(word_id=alices["id"]).values_list("owner", flat=True)) == {alice.id}


@pytest.mark.django_db(transaction=True)
def test_your_word_list_holds_only_yours_newest_first(anon, other_anon, active_model):
    image = word_drawing(2)[0]
    ids = [anon.post(WORDS, b64(image), format="json").json()["id"] for _ in range(2)]
    other_anon.post(WORDS, b64(image), format="json")
    page = anon.get(WORDS + "?page_size=1").json()
    assert page["count"] == 2 and page["next"] and page["results"][0]["id"] == ids[1]
    assert len(page["results"][0]["characters"]) == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload, status, code",
    [
        (lambda: b64(png_bytes(Image.new("RGBA", (600, 200)))), 400, "blank_image"),
        (lambda: b64(word_drawing(33, spacing=70)[0]), 400, "too_many_characters"),
        (lambda: {"image_base64": "%%%"}, 400, "invalid_image"),
        (lambda: b64(word_drawing(3)[0], strokes="nope"), 400, "invalid_strokes"),
        (lambda: b64(word_drawing(3)[0], content_type="application/pdf"), 415, "unsupported_image_type"),
        (lambda: {"image_base64": "A" * (15 * 1024 * 1024)}, 413, "request_too_large"),
    ],
    ids=["blank", "33-characters", "bad-base64", "bad-strokes", "pdf", "over-10-MiB"],
)
def test_bad_input_is_a_4xx_with_a_code_and_leaves_no_rows(anon, payload, status, code):
    response = anon.post(WORDS, payload(), format="json")
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code and body["detail"]
    assert_nothing_stored()


@pytest.mark.django_db
def test_a_word_that_does_not_exist_or_is_not_a_uuid_is_404(anon):
    assert anon.get(f"{WORDS}/00000000-0000-0000-0000-000000000000").status_code == 404
    assert anon.get(f"{WORDS}/nope").status_code == 404
    assert anon.get("/api/v1/submissions/nope").status_code == 404  # was a 500 (ValidationError) before words


# --------------------------------------------------------------------------- admin


@pytest.mark.django_db
def test_the_word_admin_shows_the_drawing_and_its_characters(admin_client_for):
    image, strokes, _ = word_drawing(3)
    word = services.word_create(image=image, content_type="image/png", strokes=strokes)
    services.correction_create(submission=word.characters.get(position=2), label="L")
    listing = admin_client_for.get("/admin/recognition/word/")
    assert listing.status_code == 200 and b'alt="drawing"' in listing.content
    page = admin_client_for.get(f"/admin/recognition/word/{word.id}/change/")
    assert page.status_code == 200
    # The word's drawing, then per character its crop and its 28x28.
    assert page.content.count(b"data:image/png;base64,") == 1 + 2 * 3
    assert b"L (pending)" in page.content
    character = admin_client_for.get(f"/admin/recognition/submission/{word.characters.get(position=0).id}/change/")
    assert character.status_code == 200 and str(word.id).encode() in character.content


# --------------------------------------------------------------------------- a real worker


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_on_redis_predicts_a_whole_word_in_one_task(anon, active_model, start_worker):
    worker = start_worker()
    response = anon.post(WORDS, b64(word_drawing(3)[0]), format="json")  # SUBMISSION_WAIT_SECONDS is 0 in tests
    assert response.status_code == 202
    url = response.json()["url"]
    body = wait_for(lambda: (b := anon.get(url).json())["status"] != "pending" and b, 120, worker, "the word")
    assert body["status"] == "predicted" and len(body["text"]) == 3
    assert all(c in CLASSES for c in body["text"])
    # One task for the word ("name[task id] received"), none per character.
    assert worker.tail().count("recognition.tasks.predict_word[") >= 1
    assert "recognition.tasks.predict_submission[" not in worker.tail()


# --------------------------------------------------------------------------- split again by recognition


def m_in_three_strokes() -> tuple[bytes, list]:
    """An "m" drawn as a stem and two arches, each started 12 px (1.5 pen widths) right of the
    stroke before: three pieces by the strokes alone."""

    def arch(x0, x1):
        return [
            [round(x0 + (x1 - x0) * t, 1), round(60 + 90 * (1 - np.sin(np.pi * t) ** 0.5), 1)]
            for t in np.linspace(0.1, 1, 12)
        ]

    strokes = [[[50, 60], [50, 150]], arch(62, 100), arch(112, 150)]
    image = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line([tuple(p) for p in stroke], fill=(0, 0, 0, 255), width=8, joint="curve")
    return png_bytes(image), strokes


@pytest.mark.django_db(transaction=True)
def test_a_letter_drawn_in_side_by_side_strokes_is_joined_again_by_the_worker(shipped_model):
    image, strokes = m_in_three_strokes()
    word = services.word_create(image=image, content_type="image/png", strokes=strokes, client_id="c1")
    word.refresh_from_db()
    characters = list(word.characters.order_by("position"))
    assert len(characters) == 1 and word.boxes == [[46, 57, 156, 151]]
    m = characters[0]
    assert m.status == "predicted" and m.predicted_label in "Mm" and m.client_id == "c1" and m.source == word.source
    assert len(m.strokes) == 3 and m.strokes[0][0] == [50 - 46, 60 - 57]  # all three, in the crop's pixels
    assert Submission.objects.filter(word=word).count() == 1  # the three first rows are gone


@pytest.mark.django_db
def test_a_word_is_not_split_again_once_a_character_is_corrected_or_taken(shipped_model):
    # Without a transaction's commit the task never runs here: the rows stay as the request split them.
    image, strokes = m_in_three_strokes()
    corrected = services.word_create(image=image, content_type="image/png", strokes=strokes)
    assert corrected.characters.count() == 3
    Correction.objects.create(submission=corrected.characters.get(position=1), label="n")
    assert services.word_resegment(word=corrected) is False and corrected.characters.count() == 3

    taken = services.word_create(image=image, content_type="image/png", strokes=strokes)
    taken.characters.filter(position=0).update(status=Submission.Status.PREDICTED)  # another batch's
    assert services.word_resegment(word=taken) is False and taken.characters.count() == 3

    free = services.word_create(image=image, content_type="image/png", strokes=strokes)
    assert services.word_resegment(word=free) is True
    assert free.characters.count() == 1 and Word.objects.get(id=free.id).boxes == [[46, 57, 156, 151]]


@pytest.mark.django_db
def test_with_a_model_of_another_embedding_the_request_split_stands(active_model):
    image, strokes = m_in_three_strokes()
    word = services.word_create(image=image, content_type="image/png", strokes=strokes)
    assert services.word_resegment(word=word) is False and word.characters.count() == 3


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_request_waiting_on_a_word_the_worker_splits_again_answers_with_the_new_characters(
    anon, shipped_model, start_worker, settings
):
    worker = start_worker()
    # Warm the worker (its first task loads the model) without waiting in the request.
    url = anon.post(WORDS, b64(word_drawing(2)[0]), format="json").json()["url"]
    wait_for(lambda: anon.get(url).json()["status"] != "pending", 120, worker, "the first word")
    settings.SUBMISSION_WAIT_SECONDS = 60
    image, strokes = m_in_three_strokes()
    started = time.monotonic()
    response = anon.post(WORDS, b64(image, strokes=strokes), format="json")
    waited = time.monotonic() - started
    body = response.json()
    assert response.status_code == 201 and body["status"] == "predicted", body
    assert body["boxes"] == [[46, 57, 156, 151]] and len(body["characters"]) == 1
    # Woken when the three first rows were replaced, then by the new one: not held to the limit.
    assert waited < 30, waited
