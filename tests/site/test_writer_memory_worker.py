"""Two writers at once through a real Celery worker on Redis: one writer's memory reads only
their own drawings (issue 19)."""

import numpy as np
import pytest

from ml.data import CLASSES
from ml.inference import load_predictor
from recognition.images import input28_array
from recognition.models import Submission, WriterAdaptation, WriterMemoryEntry
from tests.site.conftest import canvas_png, token_client
from tests.site.workers import post_drawing, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def predicted(ids, worker) -> list[Submission]:
    return wait_for(
        lambda: (
            (rows := [Submission.objects.get(id=i) for i in ids])
            and all(r.status == "predicted" for r in rows)
            and rows
        ),
        120,
        worker,
        "the predictions",
    )


def test_one_writers_correction_changes_their_next_drawing_and_not_the_other_writers(
    alice, bob, active_model, tiny_model_path, start_worker
):
    drawing = canvas_png()
    alice_client, bob_client = token_client(alice), token_client(bob)
    # Both drawings are waiting before the worker starts: it reads them in one batch.
    ids = [post_drawing(client, drawing).json()["id"] for client in (alice_client, bob_client)]
    worker = start_worker()
    alice_first, bob_first = predicted(ids, worker)
    assert alice_first.top_k == bob_first.top_k and not alice_first.adapted

    probs = load_predictor(tiny_model_path).probabilities(input28_array(alice_first.input28)[None])[0]
    label = CLASSES[int(np.argmin(probs))]
    response = alice_client.post(f"/api/v1/submissions/{alice_first.id}/correction", {"label": label}, format="json")
    assert response.status_code == 201 and WriterMemoryEntry.objects.filter(owner=alice).count() == 1
    # The correction queued the memory's working-out: the worker stores it before her next drawing.
    wait_for(
        lambda: WriterAdaptation.objects.filter(owner=alice, model_version=active_model, memory_count=1).exists(),
        60,
        worker,
        "the memory's preparation",
    )

    ids = [post_drawing(client, drawing).json()["id"] for client in (alice_client, bob_client, alice_client)]
    alice_again, bob_again, alice_third = predicted(ids, worker)
    assert alice_again.predicted_label == label and alice_again.adapted
    assert alice_third.predicted_label == label and alice_third.adapted
    assert bob_again.top_k == bob_first.top_k and bob_again.predicted_label == bob_first.predicted_label
    assert not bob_again.adapted
    assert "recognition.tasks.predict_submission" in worker.tail()
    assert "recognition.tasks.writer_memory_prepare" in worker.tail()
    assert not WriterAdaptation.objects.filter(owner=bob).exists()
