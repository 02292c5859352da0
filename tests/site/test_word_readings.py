"""A word's best readings in context: stored by the worker, returned by the API, documented."""

import base64

import pytest
from django.test import override_settings

from ml.word_context import load_context
from recognition import services
from recognition.models import Word
from recognition.services.word_readings import word_readings_get
from tests.site.helpers import word_drawing

WORDS = "/api/v1/words"


def stored_tops(word: Word) -> list:
    return [[(p["label"], p["probability"]) for p in c.top_k] for c in word.characters.order_by("position")]


@pytest.mark.django_db(transaction=True)
def test_the_worker_stores_the_three_best_readings_of_a_predicted_word(active_model):
    image, strokes, _ = word_drawing(4)
    word = services.word_create(image=image, content_type="image/png", strokes=strokes)
    word.refresh_from_db()
    assert word.status == "predicted" and len(word.readings) == 3
    texts = [r["text"] for r in word.readings]
    assert len(set(texts)) == 3 and all(len(t) == 4 for t in texts)
    scores = [r["score"] for r in word.readings]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001
    # They are the decoder's readings of the characters' stored guesses and the word's boxes.
    expected = load_context().decode(stored_tops(word), word.boxes)
    assert texts == [r.text for r in expected]
    # Redelivered: the same readings, the characters not predicted again.
    services.word_predict(word_id=str(word.id))
    word.refresh_from_db()
    assert [r["text"] for r in word.readings] == texts
    assert set(word.characters.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db(transaction=True)
def test_a_word_whose_characters_failed_has_no_readings():
    image, strokes, _ = word_drawing(2)
    word = services.word_create(image=image, content_type="image/png", strokes=strokes)
    word.refresh_from_db()
    assert word.status == "failed" and word.readings == []


@pytest.mark.django_db(transaction=True)
@override_settings(WORD_LANGUAGE="xx")
def test_a_language_without_a_word_list_leaves_the_readings_empty_and_the_characters_predicted(active_model, caplog):
    image, strokes, _ = word_drawing(3)
    word = services.word_create(image=image, content_type="image/png", strokes=strokes)
    word.refresh_from_db()
    assert word.status == "predicted" and len(word.text) == 3 and word.readings == []
    assert "could not be read in context" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_post_words_returns_the_readings_with_their_scores(anon, active_model):
    image, strokes, _ = word_drawing(3)
    payload = {"image_base64": "data:image/png;base64," + base64.b64encode(image).decode(), "strokes": strokes}
    response = anon.post(WORDS, payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["readings"] == Word.objects.get(id=body["id"]).readings and len(body["readings"]) == 3
    assert set(body["readings"][0]) == {"text", "score"} and len(body["readings"][0]["text"]) == 3
    assert anon.get(body["url"]).json()["readings"] == body["readings"]


@pytest.mark.django_db
def test_the_schema_documents_the_readings(anon):
    schema = anon.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    components = schema["components"]["schemas"]
    word = components["WordOutput"]["properties"]["readings"]
    assert word["type"] == "array" and word["items"]["$ref"].endswith("/WordReading")
    assert set(components["WordReading"]["properties"]) == {"text", "score"}
    assert "readings" in components["WordOutput"]["required"]


@pytest.mark.django_db
def test_a_word_predicted_in_another_tasks_batch_gets_its_readings_in_that_batch(active_model, drawing, settings):
    settings.SUBMISSION_BATCH_SIZE = 16
    image, strokes, _ = word_drawing(3)
    word = services.word_create(image=image, content_type="image/png", strokes=strokes)  # not queued: db fixture
    assert word_readings_get(word) == []  # pending: nothing stored, nothing decoded here
    single = services.submission_create(image=drawing, content_type="image/png")
    services.submission_predict(submission_id=str(single.id))  # its batch claims the word's characters too
    word.refresh_from_db()
    assert word.status == "predicted" and len(word.readings) == 3
    assert [r["text"] for r in word.readings] == [r.text for r in load_context().decode(stored_tops(word), word.boxes)]
    assert word_readings_get(word) == word.readings
