"""What a writer's memory adds to a prediction (issue 19): the worker's hook, query included.

    .venv/bin/python bench/writer_memory_cost.py [--entries 500] [--database-url postgres://...]

Times ``recognition.services.writer_memory.writer_memory_apply`` (one query for the batch's
writers, float16 vectors decoded, each writer's last-layer correction applied: fitted once per
memory change, ``ml.writer_layer``) on a throwaway SQLite database (or the PostgreSQL one
given; its tables are created by migrate and rows are left there), with the shipped model
loaded (its last layer and anchor drawings make the fits' basis):

* one drawing of a writer with ``--entries`` entries (the site's request path);
* a batch of 32 characters from 4 writers with ``--entries`` each (a word or a busy worker);
* the same with an empty memory (the query still runs: what everyone else pays);
* one drawing, and a batch of 32, of a writer with ``--entries`` entries *and a hand*
  (``ml.writer_hand``): their drawings are read a second time, turned (their entries' stored
  inputs are EMNIST validation drawings in bench/personal_adaptation.py's lean-right-steep
  style, so the worker chooses a hand for them);
* once per memory change, not per drawing: fitting a writer's correction (``--entries``
  entries), choosing a writer's hand (from their newest 124 corrected drawings and 60 kept
  ones), and once per process the basis (the model reads the anchor drawings);
* the first drawing after a change of the hand writer's memory: in a process that works the
  memory out on that drawing (nothing stored: what happens when the correction's task did not
  run first), and in one that reads what the correction's task stored
  (``recognition.services.writer_adaptation``; the process's caches emptied each time).

Embeddings are random unit vectors of the shipped model's width (256); the cost does not
depend on their values (a hand's embeddings are the model's own). Targets: <= 1 ms per prediction, <= 0.5 ms per character in a batch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WIDTH = 256


def timed(fn, repeats: int) -> dict:
    fn()  # warm-up
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(float(np.median(runs)), 3), "p90_ms": round(float(np.percentile(runs, 90)), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: a throwaway SQLite file")
    parser.add_argument("--model", default="ml/artifacts/emnist_cnn.keras")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--data-dir", default=os.getenv("EMNIST_DATA_DIR", str(ROOT.parent / "shared" / "data" / "emnist"))
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    os.environ.update(DJANGO_SETTINGS_MODULE="emnist_site.settings", DEBUG="1", DATA_DIR=str(work))
    os.environ.pop("CELERY_BROKER_URL", None)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.conf import settings

    # DEBUG only lets the settings load without production secrets; with it on, every query is
    # also logged with its parameters (CursorDebugWrapper), which a worker never pays.
    settings.DEBUG = False
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from bench.personal_adaptation import machine
    from bench.retraining import style_set
    from ml.data import CLASSES, load_validation
    from ml.inference import load_predictor, normalise
    from ml.writer_hand import DEFAULT_HAND_RULE, choose_hand
    from ml.writer_layer import basis_for, fit_correction
    from recognition.models import Correction, ModelVersion, Submission, WriterAdaptation, WriterMemoryEntry
    from recognition.services import writer_adaptation, writer_memory
    from recognition.services.writer_adaptation import writer_hand_for, writer_memory_apply
    from recognition.services.writer_memory import embedding_bytes

    predictor = load_predictor(ROOT / args.model)
    call_command("migrate", interactive=False, verbosity=0)
    rng = np.random.default_rng(0)
    version = ModelVersion.objects.create(name=f"bench-{time.time_ns()}", file_path="unused")
    users = [get_user_model().objects.create_user(username=f"bench-{time.time_ns()}-{i}") for i in range(6)]
    images, labels = load_validation(args.data_dir)
    leaning = style_set(images[: args.entries + 32], -40.0, 1.2)  # lean-right-steep
    blank = np.zeros((args.entries, 28, 28), np.uint8)  # no hand is chosen from blank inputs

    def fill(user, n: int, inputs=blank, classes=None) -> None:
        classes = np.arange(n) % 62 if classes is None else classes
        subs = Submission.objects.bulk_create(
            Submission(image=b"", content_type="image/png", input28=x.tobytes(), owner=user, model_version=version)
            for x in inputs[:n]
        )
        fixes = Correction.objects.bulk_create(
            Correction(submission=s, label=CLASSES[c]) for s, c in zip(subs, classes)
        )
        vectors = normalise(rng.random((n, WIDTH), dtype=np.float32))
        WriterMemoryEntry.objects.bulk_create(
            WriterMemoryEntry(
                owner=user, submission=s, correction=c, label=c.label, vector=embedding_bytes(v), model_version=version
            )
            for s, c, v in zip(subs, fixes, vectors)
        )

    for user in users[:4]:
        fill(user, args.entries)
    fill(users[5], args.entries, leaning, labels[: args.entries])

    def batch(owners, inputs=blank):
        rows = [Submission(owner=u) for u in owners]
        probs = rng.dirichlet(np.ones(62), size=len(rows)).astype(np.float32)
        embeddings = normalise(rng.random((len(rows), WIDTH), dtype=np.float32))
        drawn = inputs[: len(rows)]
        return lambda: writer_memory_apply(rows, probs, embeddings, version, predictor, drawn)

    single = timed(batch([users[0]]), args.repeats)
    many = timed(batch([users[i % 4] for i in range(32)]), args.repeats)
    empty_single = timed(batch([users[4]]), args.repeats)
    empty_many = timed(batch([users[4]] * 32), args.repeats)
    fresh = leaning[args.entries :]
    hand_single = timed(batch([users[5]], fresh), args.repeats)
    hand_many = timed(batch([users[5]] * 32, fresh), args.repeats)
    hand = writer_hand_for(owner_id=users[5].id, client_id="", model_version=version)

    def first_after_change(stored: bool, repeats: int = 5) -> dict:
        run, runs = batch([users[5]], fresh), []
        run()  # stores the adaptation
        for _ in range(repeats):
            writer_adaptation._adapted.clear()
            writer_memory._decoded.clear()
            if not stored:
                WriterAdaptation.objects.filter(owner=users[5]).delete()
            started = time.perf_counter()
            run()
            runs.append((time.perf_counter() - started) * 1000)
        return {"median_ms": round(float(np.median(runs)), 3), "max_ms": round(float(np.max(runs)), 3)}

    worked_out_on_the_drawing = first_after_change(stored=False)
    read_stored = first_after_change(stored=True)
    taught = DEFAULT_HAND_RULE.corrections
    choice = timed(
        lambda: choose_hand(
            lambda x: predictor.read(x)[0],
            leaning[:taught],
            labels[:taught],
            leaning[taught : taught + DEFAULT_HAND_RULE.kept],
            labels[taught : taught + DEFAULT_HAND_RULE.kept],
        ),
        3,
    )
    basis = basis_for(predictor)
    memory = normalise(rng.random((args.entries, WIDTH), dtype=np.float32)).astype(np.float16)
    memory_labels = np.arange(args.entries) % 62
    fit = timed(lambda: fit_correction(memory, memory_labels, basis), max(3, args.repeats // 20))
    basis_ms = timed(lambda: basis_for(predictor), 3)
    figures = {
        "machine": machine(),
        "database": connection.vendor,
        "entries_per_writer": args.entries,
        "one_drawing": single,
        "batch_of_32_from_4_writers": {**many, "per_character_ms": round(many["median_ms"] / 32, 3)},
        "one_drawing_empty_memory": empty_single,
        "batch_of_32_empty_memory": {**empty_many, "per_character_ms": round(empty_many["median_ms"] / 32, 3)},
        "hand_chosen": None if hand is None else [hand.rotate, hand.wide],
        "one_drawing_with_a_hand": hand_single,
        "batch_of_32_with_a_hand": {**hand_many, "per_character_ms": round(hand_many["median_ms"] / 32, 3)},
        "first_drawing_after_a_change_worked_out_on_it": worked_out_on_the_drawing,
        "first_drawing_after_a_change_stored_by_the_correction": read_stored,
        "hand_choice_once_per_memory_change": choice,
        "fit_once_per_memory_change": fit,
        "basis_once_per_process": basis_ms,
    }
    print(json.dumps(figures, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
