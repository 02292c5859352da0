"""A writer's memory of their own corrections (issue 19): it reads their next drawing, nobody
else's; it is bounded, listed, exported and forgotten as its owner asks."""

import io

import numpy as np
import pytest

from ml.data import CLASSES
from ml.prototypes import DEFAULT_RULE
from recognition.images import input28_array
from recognition.models import Correction, Submission, WriterMemoryEntry
from recognition.services.predictors import predictor_get
from recognition.services.writer_memory import embedding_bytes, writer_memories_for
from tests.site.conftest import browser_client, canvas_png, token_client
from tests.site.helpers import submit_and_predict

pytestmark = pytest.mark.django_db(transaction=True)


def least_likely(body: dict, active_model) -> str:
    """The class the model finds least likely for this drawing: a correction only the memory can bring."""
    row = Submission.objects.get(id=body["id"])
    probs = predictor_get(model_version=active_model).probabilities(input28_array(row.input28)[None])[0]
    return CLASSES[int(np.argmin(probs))]


def correct(client, body: dict, label: str):
    response = client.post(body["url"] + "/correction", {"label": label}, format="json")
    assert response.status_code == 201, response.content
    return response


def test_the_writers_next_drawing_is_read_using_their_correction_and_nobody_elses(anon, other_anon, active_model):
    drawing = canvas_png()
    first = submit_and_predict(anon, drawing)
    assert first["adapted"] is False
    label = least_likely(first, active_model)
    assert first["predicted_label"] != label
    correct(anon, first, label)
    assert WriterMemoryEntry.objects.get().label == label

    again = submit_and_predict(anon, drawing)
    assert again["predicted_label"] == label and again["adapted"] is True
    # Another visitor drawing the very same thing gets exactly the first answer.
    theirs = submit_and_predict(other_anon, drawing)
    assert theirs["adapted"] is False
    assert theirs["top_k"] == first["top_k"] and theirs["predicted_label"] == first["predicted_label"]


def test_an_empty_memory_gives_exactly_the_models_probabilities(anon, active_model):
    body = submit_and_predict(anon, canvas_png())
    row = Submission.objects.get(id=body["id"])
    predictor = predictor_get(model_version=active_model)
    expected = predictor.top_k(predictor.probabilities(input28_array(row.input28)[None]), 5)[0]
    assert row.adapted is False
    assert row.top_k == [{"label": label, "probability": round(p, 6)} for label, p in expected]
    # The embedding is stored with the prediction, from the same model call.
    stored = np.frombuffer(bytes(row.embedding), dtype=np.float16)
    _, embedding = predictor.read(input28_array(row.input28)[None])
    assert stored.shape == (predictor.embedding_size,)
    assert np.allclose(stored, embedding[0], atol=1e-3)


def test_the_memory_keeps_the_newest_entries_up_to_its_bound(anon, active_model, settings):
    settings.WRITER_MEMORY_SIZE = 3
    bodies = [submit_and_predict(anon, canvas_png(size=200 + 20 * i)) for i in range(5)]
    for body in bodies:
        correct(anon, body, "x")
    kept = set(WriterMemoryEntry.objects.values_list("submission_id", flat=True))
    assert {str(i) for i in kept} == {b["id"] for b in bodies[2:]}
    assert Correction.objects.count() == 5  # the corrections themselves all stay


def test_correcting_the_same_drawing_again_relabels_its_one_entry(anon, active_model):
    body = submit_and_predict(anon, canvas_png())
    correct(anon, body, "x")
    correct(anon, body, "y")
    assert list(WriterMemoryEntry.objects.values_list("label", flat=True)) == ["y"]


def test_you_list_and_forget_your_own_memory_and_another_writer_gets_404(alice, bob, active_model):
    alice_client, bob_client = token_client(alice), token_client(bob)
    bodies = [submit_and_predict(alice_client, canvas_png(size=220 + 20 * i)) for i in range(3)]
    for body in bodies:
        correct(alice_client, body, "k")
    page = alice_client.get("/api/v1/writer-memory").json()
    assert page["count"] == 3 and {r["submission"] for r in page["results"]} == {b["id"] for b in bodies}
    assert page["results"][0]["input_image"].startswith("data:image/png;base64,")
    assert bob_client.get("/api/v1/writer-memory").json()["count"] == 0

    entry = page["results"][0]["id"]
    assert bob_client.delete(f"/api/v1/writer-memory/{entry}").status_code == 404
    assert bob_client.delete("/api/v1/writer-memory").json() == {"deleted": 0}
    assert WriterMemoryEntry.objects.count() == 3
    assert alice_client.delete("/api/v1/writer-memory/not-a-number").status_code == 404
    assert alice_client.delete("/api/v1/writer-memory/" + "9" * 30).status_code == 404

    assert alice_client.delete(f"/api/v1/writer-memory/{entry}").status_code == 204
    assert WriterMemoryEntry.objects.count() == 2
    assert alice_client.delete("/api/v1/writer-memory").json() == {"deleted": 2}
    assert WriterMemoryEntry.objects.count() == 0 and Correction.objects.count() == 3


def test_a_visitors_memory_is_theirs_by_session_and_a_cookieless_client_sees_none(anon, other_anon, active_model):
    body = submit_and_predict(anon, canvas_png())
    correct(anon, body, "q")
    assert anon.get("/api/v1/writer-memory").json()["count"] == 1
    assert other_anon.get("/api/v1/writer-memory").json()["count"] == 0
    assert browser_client().get("/api/v1/writer-memory").json()["count"] == 0


def test_deleting_the_correction_or_the_submission_forgets_the_drawing(anon, active_model):
    first, second = (submit_and_predict(anon, canvas_png(size=s)) for s in (240, 280))
    correct(anon, first, "a")
    correct(anon, second, "b")
    Correction.objects.filter(submission_id=first["id"]).delete()
    Submission.objects.filter(id=second["id"]).delete()
    assert WriterMemoryEntry.objects.count() == 0


def test_forgetting_a_memory_deletes_what_it_was_worked_into_once_not_once_an_entry(anon, active_model, settings):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from recognition.models import WriterAdaptation
    from recognition.services.writer_adaptation import writer_memory_prepare

    settings.WRITER_MEMORY_SIZE = 3
    bodies = [submit_and_predict(anon, canvas_png(size=200 + 20 * i)) for i in range(5)]
    for body in bodies[:4]:
        correct(anon, body, "x")
    client_id = Submission.objects.get(id=bodies[0]["id"]).client_id
    writer_memory_prepare(owner_id=None, client_id=client_id)
    assert WriterAdaptation.objects.get(client_id=client_id).memory_count == 3
    table = connection.ops.quote_name(WriterAdaptation._meta.db_table)

    def adaptation_deletes(queries) -> int:
        return sum(q["sql"].startswith("DELETE") and table in q["sql"] for q in queries.captured_queries)

    # The bound pushes the oldest out: the stored adaptation held it, so it goes, once (the
    # correction's task, run here at once, then stores the new memory's).
    oldest = WriterMemoryEntry.objects.order_by("id").first().id
    with CaptureQueriesContext(connection) as queries:
        correct(anon, bodies[4], "x")
    assert not WriterMemoryEntry.objects.filter(id=oldest).exists()
    assert adaptation_deletes(queries) == 1
    row = WriterAdaptation.objects.get(client_id=client_id)
    assert (row.memory_count, row.memory_last) == (3, WriterMemoryEntry.objects.order_by("id").last().id)
    # Clearing three entries: one DELETE of the adaptation, not three.
    with CaptureQueriesContext(connection) as queries:
        assert anon.delete("/api/v1/writer-memory").json() == {"deleted": 3}
    assert not WriterAdaptation.objects.exists() and adaptation_deletes(queries) == 1


def test_staff_correcting_someone_elses_drawing_does_not_teach_their_memory(anon, staff, active_model):
    body = submit_and_predict(anon, canvas_png())
    correct(token_client(staff), body, "z")
    assert Correction.objects.count() == 1 and WriterMemoryEntry.objects.count() == 0


def test_entries_of_another_model_version_are_not_used(anon, active_model, tiny_model_path):
    from recognition import services
    from recognition.models import ModelVersion

    drawing = canvas_png()
    first = submit_and_predict(anon, drawing)
    label = least_likely(first, active_model)
    correct(anon, first, label)
    newer = ModelVersion.objects.create(name="tiny-2", file_path=str(tiny_model_path))
    services.model_version_activate(model_version=newer)
    again = submit_and_predict(anon, drawing)
    assert again["model_version"] == newer.id
    assert again["adapted"] is False and again["predicted_label"] == first["predicted_label"]
    assert anon.get("/api/v1/writer-memory").json()["results"][0]["model_version"] == active_model.id


def test_your_export_holds_your_memory(anon, other_anon, active_model):
    body = submit_and_predict(anon, canvas_png())
    correct(anon, body, "m")
    response = anon.get("/api/v1/writer-memory/export")
    assert response.status_code == 200 and response["Content-Type"] == "application/octet-stream"
    data = np.load(io.BytesIO(response.content))
    row = Submission.objects.get(id=body["id"])
    assert list(data["label_chars"]) == ["m"] and list(data["submission_ids"]) == [body["id"]]
    assert np.array_equal(data["images"][0], input28_array(row.input28))
    assert data["vectors"].shape == (1, int(data["vector_lengths"][0])) and data["vectors"].dtype == np.float16
    # What the memory was worked into (the correction's task ran at once here) is theirs too.
    from recognition.models import WriterAdaptation

    stored = WriterAdaptation.objects.get(client_id=row.client_id)
    assert list(data["adaptation_model_versions"]) == [active_model.id]
    assert list(data["adaptation_memory_counts"]) == [1]
    assert data["adaptation_hands"].tolist() == [[stored.rotate, stored.wide]]
    dims = data["vectors"].shape[1]
    assert data["adaptation_vectors"].shape == (1, 1, dims)
    assert data["adaptation_corrections"].shape == (1, dims + 1, len(CLASSES))
    assert data["adaptation_corrections"].tobytes() == bytes(stored.correction)
    theirs = np.load(io.BytesIO(other_anon.get("/api/v1/writer-memory/export").content))
    assert len(theirs["labels"]) == 0 and len(theirs["adaptation_hands"]) == 0


def test_the_default_rule_is_a_fitted_one_within_its_ranges():
    assert 0 < DEFAULT_RULE.threshold < 1 and DEFAULT_RULE.weight > 0 and 0 < DEFAULT_RULE.confident <= 1


def test_a_changed_memory_is_read_again_by_the_same_process(anon, active_model):
    drawing = canvas_png()
    first = submit_and_predict(anon, drawing)
    probs = predictor_get(model_version=active_model).probabilities(
        input28_array(Submission.objects.get(id=first["id"]).input28)[None]
    )[0]
    unlikely = [CLASSES[i] for i in np.argsort(probs)[:2]]
    correct(anon, first, unlikely[0])
    assert submit_and_predict(anon, drawing)["predicted_label"] == unlikely[0]
    correct(anon, first, unlikely[1])  # the same drawing relabelled: a new entry
    assert submit_and_predict(anon, drawing)["predicted_label"] == unlikely[1]
    assert anon.delete("/api/v1/writer-memory").json() == {"deleted": 1}
    again = submit_and_predict(anon, drawing)
    assert again["predicted_label"] == first["predicted_label"] and again["adapted"] is False


def test_one_batch_of_a_user_and_a_visitor_reads_each_with_their_own_memory_alone(alice, active_model):
    """The check query's two branches (users, anonymous clients) in one batch."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for (owner, client_id), label, vector in zip([(alice, ""), (None, "visitor-1")], "xy", vectors):
        submission = Submission.objects.create(
            image=b"", content_type="image/png", input28=bytes(784), owner=owner, client_id=client_id
        )
        correction = Correction.objects.create(submission=submission, label=label)
        WriterMemoryEntry.objects.create(
            submission=submission,
            owner=owner,
            client_id=client_id,
            correction=correction,
            label=label,
            vector=embedding_bytes(vector),
            model_version=active_model,
        )
    rows = [Submission(owner=alice), Submission(client_id="visitor-1"), Submission(client_id="nobody")]
    memories = writer_memories_for(rows, active_model)
    assert set(memories) == {(alice.id, ""), (None, "visitor-1")}
    assert [CLASSES[i] for i in memories[(alice.id, "")][1]] == ["x"]
    assert [CLASSES[i] for i in memories[(None, "visitor-1")][1]] == ["y"]
    assert writer_memories_for([Submission(client_id="nobody")], active_model) == {}


def test_a_writers_correction_is_fitted_once_per_change_of_their_memory_when_they_correct(
    anon, active_model, monkeypatch
):
    from recognition.services import writer_adaptation

    fits = []
    real_fit = writer_adaptation.fit_correction
    monkeypatch.setattr(writer_adaptation, "fit_correction", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    first = submit_and_predict(anon, canvas_png())
    assert fits == []  # an empty memory: nothing fitted
    correct(anon, first, "x")
    assert len(fits) == 1  # the correction's task worked it out (eager here: at once)
    submit_and_predict(anon, canvas_png(size=240))
    submit_and_predict(anon, canvas_png(size=260))
    assert len(fits) == 1
    correct(anon, first, "y")
    assert len(fits) == 2
    assert submit_and_predict(anon, canvas_png())["predicted_label"] == "y"
    assert len(fits) == 2


def test_another_process_reads_the_stored_adaptation_and_a_changed_memory_is_worked_out_again(
    anon, active_model, monkeypatch
):
    from ml.writer_hand import Hand
    from recognition.models import WriterAdaptation
    from recognition.services import writer_adaptation, writer_memory

    real_fit = writer_adaptation.fit_correction
    monkeypatch.setattr(writer_adaptation, "choose_hand", lambda *a, **k: Hand(20.0, 1.25))
    first = submit_and_predict(anon, canvas_png())
    correct(anon, first, "x")
    client_id = Submission.objects.get(id=first["id"]).client_id
    row = WriterAdaptation.objects.get(client_id=client_id, model_version=active_model)
    assert (row.writer, row.memory_count, row.rotate, row.wide) == (f"client:{client_id}", 1, 20.0, 1.25)
    here = submit_and_predict(anon, canvas_png(size=240))
    # A fresh process (its caches empty) reads what is stored: nothing is chosen or fitted again,
    # and the same drawing gets the same answer, to the bit.
    for cache in (writer_adaptation._adapted, writer_memory._decoded):
        cache.clear()
    monkeypatch.setattr(writer_adaptation, "choose_hand", lambda *a, **k: pytest.fail("chosen again"))
    monkeypatch.setattr(writer_adaptation, "fit_correction", lambda *a, **k: pytest.fail("fitted again"))
    there = submit_and_predict(anon, canvas_png(size=240))
    assert there["top_k"] == here["top_k"] and there["adapted"] == here["adapted"]
    assert writer_adaptation.writer_hand_for(owner_id=None, client_id=client_id, model_version=active_model) == Hand(
        20.0, 1.25
    )
    # The memory changes: what was stored is for the old one, so it is worked out again.
    monkeypatch.setattr(writer_adaptation, "choose_hand", lambda *a, **k: Hand(0.0, 1.0))
    monkeypatch.setattr(writer_adaptation, "fit_correction", real_fit)
    correct(anon, here, "y")
    row = WriterAdaptation.objects.get(client_id=client_id, model_version=active_model)
    assert (row.memory_count, row.rotate, row.wide) == (2, 0.0, 1.0)
    # An entry going any way (here its submission deleted) takes what the memory was worked into,
    # which held it; forgetting the memory does too.
    Submission.objects.filter(id=here["id"]).delete()
    assert not WriterAdaptation.objects.filter(client_id=client_id).exists()
    writer_adaptation.writer_memory_prepare(owner_id=None, client_id=client_id)
    assert WriterAdaptation.objects.get(client_id=client_id).memory_count == 1
    assert anon.delete("/api/v1/writer-memory").status_code == 200
    assert not WriterAdaptation.objects.filter(client_id=client_id).exists()


def test_a_writers_hand_is_chosen_from_their_own_drawings_and_their_next_drawing_is_read_through_it(
    anon, other_anon, active_model, monkeypatch
):
    from ml.writer_hand import Hand
    from recognition.services import writer_adaptation

    chosen, turned = [], []
    real_unturn = writer_adaptation.unturn

    def choose(read, corrected, labels, kept, kept_labels):
        chosen.append((corrected.copy(), labels.copy(), kept.copy(), kept_labels.copy()))
        return Hand(30.0, 1.0)

    monkeypatch.setattr(writer_adaptation, "choose_hand", choose)
    monkeypatch.setattr(
        writer_adaptation, "unturn", lambda images, hand: turned.append(images.copy()) or real_unturn(images, hand)
    )
    kept = submit_and_predict(anon, canvas_png(size=300))
    first = submit_and_predict(anon, canvas_png())
    theirs = submit_and_predict(other_anon, canvas_png(size=320))
    assert chosen == [] and turned == []
    correct(anon, first, "x")
    assert len(chosen) == 1  # chosen by the correction's task (eager here: at once)
    nxt = submit_and_predict(anon, canvas_png(size=260))
    # Chosen once, from this writer's corrected drawing (labelled as they said) and the drawing
    # they kept (labelled as it was read), never from another writer's.
    assert len(chosen) == 1
    corrected, labels, kept_images, kept_labels = chosen[0]
    stored = {
        sid: input28_array(Submission.objects.get(id=sid).input28) for sid in (first["id"], kept["id"], theirs["id"])
    }
    assert (corrected == stored[first["id"]][None]).all() and [CLASSES[i] for i in labels] == ["x"]
    assert (kept_images == stored[kept["id"]][None]).all()
    assert [CLASSES[i] for i in kept_labels] == [kept["predicted_label"]]
    # The memory's drawing and the new one were read through the hand; the stored embedding is
    # still the drawing's own (a correction copies it into the memory).
    new_input = input28_array(Submission.objects.get(id=nxt["id"]).input28)
    assert any(batch.shape == (1, 28, 28) and (batch == new_input).all() for batch in turned)
    assert any((batch == stored[first["id"]][None]).all() for batch in turned)
    assert writer_adaptation.writer_hand_for(
        owner_id=None, client_id=Submission.objects.get(id=nxt["id"]).client_id, model_version=active_model
    ) == Hand(30.0, 1.0)
    predictor = predictor_get(model_version=active_model)
    _, own = predictor.read(new_input[None])
    stored_embedding = np.frombuffer(bytes(Submission.objects.get(id=nxt["id"]).embedding), dtype=np.float16)
    assert np.allclose(stored_embedding, own[0].astype(np.float16), atol=1e-3)
    # Another writer: no hand, no memory, the model's own answer.
    count = len(turned)
    again = submit_and_predict(other_anon, canvas_png(size=320))
    assert len(turned) == count and again["adapted"] is False and again["top_k"] == theirs["top_k"]
    # A drawing read through the hand, then: the memory's answer differs from the model's own when it
    # changed the top answer, and the flag says so.
    assert nxt["adapted"] == (
        nxt["predicted_label"] != predictor.top_k(predictor.probabilities(new_input[None]), 1)[0][0][0]
    )
