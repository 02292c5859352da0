"""Races, for real: two reviewers at the same instant (threads), two retraining runs fired at
the same instant (processes). Committed rows (transactional), so both work on SQLite and on
PostgreSQL (TEST_DATABASE_URL)."""

import json
import subprocess
import sys
import threading

import pytest
from django.db import connection

from recognition import services
from recognition.models import Correction, ModelVersion, Submission, TrainingRun
from tests.site.conftest import TINY_FINETUNE
from tests.site.workers import ROOT, database_url_for_subprocess, venv_env

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(*calls):
    """Start every call on its own thread at the same instant; return their results (or exceptions)."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def body(i, call):
        try:
            barrier.wait(timeout=30)
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=body, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_reviewers_at_the_same_instant_get_one_result(staff, bob):
    corrections = []
    for _ in range(5):
        submission = Submission.objects.create(
            image=b"x", content_type="image/png", input28=bytes(784), status="predicted"
        )
        corrections.append(Correction.objects.create(submission=submission, label="x"))
    ids = [c.id for c in corrections]
    for round_ in range(3):  # a few rounds: the winner may differ, the outcome is always one result
        Correction.objects.filter(id__in=ids).update(status="pending", reviewer=None, reviewed_at=None)
        approved, rejected = run_together(
            lambda: services.correction_review(correction_ids=ids, reviewer=staff, status="approved"),
            lambda: services.correction_review(correction_ids=ids, reviewer=bob, status="rejected"),
        )
        assert not isinstance(approved, Exception) and not isinstance(rejected, Exception), (approved, rejected)
        # Every correction was decided exactly once, by whoever committed first, with the matching reviewer.
        assert approved + rejected == len(ids), (round_, approved, rejected)
        rows = list(Correction.objects.filter(id__in=ids).values_list("status", "reviewer__username"))
        assert all(row in {("approved", staff.username), ("rejected", bob.username)} for row in rows), rows
        assert sum(status == "approved" for status, _ in rows) == approved


RACER = """
import json, os, sys, time
from pathlib import Path
import django
django.setup()
from recognition import services
ready, other = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
deadline = time.monotonic() + 120
while not other.exists() and time.monotonic() < deadline:  # both processes are up: go at once
    time.sleep(0.0005)
together = other.exists()  # false only if the other process never came up
try:
    run = services.retraining_run(reason="manual")
    print(json.dumps({"together": together, "status": run.status, "run": run.id, "error": run.error}))
except services.RetrainingBusy as exc:
    print(json.dumps({"together": together, "busy": str(exc)}))
"""


@pytest.mark.services
def test_two_retraining_runs_fired_at_the_same_instant_one_runs_the_other_is_busy(
    active_model, approved_corrections, tiny_emnist_dir, tmp_path
):
    approved_corrections(8)
    env = venv_env(
        DATABASE_URL=database_url_for_subprocess(),
        EMNIST_DATA_DIR=str(tiny_emnist_dir),
        MODEL_DIR=str(tmp_path / "models"),
        RETRAIN_MIN_NEW_CORRECTIONS="3",
        RETRAIN_MAX_VAL_DROP="1.0",
        RETRAIN_FINETUNE=json.dumps(TINY_FINETUNE),
    )
    flags = [tmp_path / "a.ready", tmp_path / "b.ready"]
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(mine), str(other)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mine, other in (flags, flags[::-1])
    ]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    # Each went only once it saw the other ready (a barrier across processes), and the busy one
    # was refused by the other's running row: the two runs overlapped.
    assert all(o["together"] for o in outputs), outputs
    busy = [o for o in outputs if "busy" in o]
    ran = [o for o in outputs if "status" in o]
    assert len(busy) == 1 and len(ran) == 1, outputs
    assert "already running" in busy[0]["busy"] and f"run {ran[0]['run']}" in busy[0]["busy"]
    assert ran[0]["status"] == TrainingRun.Status.SUCCEEDED, ran[0]
    # The busy one wrote nothing; the one that ran wrote one whole version and its file.
    run = TrainingRun.objects.get()
    assert run.id == ran[0]["run"] and run.status == TrainingRun.Status.SUCCEEDED
    assert ModelVersion.objects.count() == 2 and run.result.status == ModelVersion.Status.ACTIVE
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [f"{run.result.name}.keras"]
