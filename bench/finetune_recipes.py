"""Compare fine-tuning recipes on the simulated writer of ``bench/retraining.py``, without the site.

    # once: the writer's corrections and fresh style images, the validation split, the replay pool
    .venv/bin/python bench/finetune_recipes.py prepare var/recipes.npz
    # then any number of recipes (FinetuneConfig overrides as JSON), one result line each
    .venv/bin/python bench/finetune_recipes.py run var/recipes.npz '{}' '{"distill": 1.0}' ...

Same writer as ``bench/retraining.py`` (same seed: the same 1,000 corrections and 4,000 fresh
images), same held-back rule (every 5th correction, by creation order), so the figures here
are the ones the site's run would see, minus the database. Each line: style top-1 and
validation top-1 before -> after, held-back accuracy, fine-tuning seconds. ``bench/retraining.py``
remains the end-to-end measurement of the shipped recipe.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def prepare(args) -> int:
    from bench.retraining import writer
    from ml.data import load_emnist
    from ml.model import load_model

    model = load_model(args.model)
    data = load_emnist(args.data_dir)
    byclass = load_emnist(args.data_dir, splits=("byclass",))  # what bench/retraining.py draws from
    fresh_images, fresh_labels, corrections = writer(model, byclass, args)
    np.savez_compressed(
        args.file,
        fresh_images=fresh_images,
        fresh_labels=fresh_labels,
        corr_images=np.stack([c[0] for c in corrections]),
        corr_labels=np.array([c[1] for c in corrections], dtype=np.int64),
        val_images=data.val_images,
        val_labels=data.val_labels,
        pool_images=data.train_images,
        pool_allowed=np.packbits(data.train_allowed, axis=1),
        pool_split=data.train_split,
    )
    print(f"wrote {args.file} ({Path(args.file).stat().st_size / 1e6:.1f} MB)")
    return 0


def run(args) -> int:
    from ml.data import NUM_CLASSES, EmnistData
    from ml.evaluate import predict_probs
    from ml.finetune import FinetuneConfig, finetune
    from ml.model import load_model

    with np.load(args.file) as f:
        d = {k: f[k] for k in f.files}
    replay = EmnistData(
        train_images=d["pool_images"],
        train_allowed=np.unpackbits(d["pool_allowed"], axis=1)[:, :NUM_CLASSES].astype(bool),
        val_images=d["val_images"],
        val_labels=d["val_labels"],
        train_split=d["pool_split"],
    )
    held = (np.arange(len(d["corr_labels"])) + 1) % 5 == 0  # ids 1..K in a fresh database
    parent = load_model(args.model)

    def score(model) -> dict:
        def top1(images, labels):
            return float((predict_probs(model, images).argmax(1) == labels).mean())

        return {
            "style": top1(d["fresh_images"], d["fresh_labels"]),
            "validation": top1(d["val_images"], d["val_labels"]),
            "held_back": top1(d["corr_images"][held], d["corr_labels"][held]),
        }

    before = score(parent)
    print(f"parent: {json.dumps(before)}", flush=True)
    for overrides in args.configs:
        config = FinetuneConfig(**json.loads(overrides))
        started = time.perf_counter()
        result = finetune(
            parent, d["corr_images"][~held], d["corr_labels"][~held], replay, config, log_stream=sys.stderr
        )
        seconds = time.perf_counter() - started
        after = score(result.model)
        line = {
            "config": json.loads(overrides),
            "style": [before["style"], after["style"]],
            "validation": [before["validation"], after["validation"]],
            "held_back": [before["held_back"], after["held_back"]],
            "style_gain_points": round((after["style"] - before["style"]) * 100, 2),
            "validation_change_points": round((after["validation"] - before["validation"]) * 100, 2),
            "steps": result.summary["steps"],
            "finetune_seconds": round(seconds, 1),
        }
        print(json.dumps(line), flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(json.dumps(line) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ml/artifacts/emnist_cnn.keras")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("file")
    p.add_argument("--data-dir", default=os.getenv("EMNIST_DATA_DIR", str(ROOT.parent / "shared" / "data" / "emnist")))
    p.add_argument("--corrections", type=int, default=1000)
    p.add_argument("--rotate", type=float, default=-30.0)
    p.add_argument("--wide", type=float, default=1.6)
    p.add_argument("--fresh", type=int, default=4000)
    p.add_argument("--seed", type=int, default=7)
    r = sub.add_parser("run")
    r.add_argument("file")
    r.add_argument("configs", nargs="+", help="FinetuneConfig overrides, one JSON object per recipe")
    r.add_argument("--out", default=None, help="append each result line here")
    args = parser.parse_args(argv)
    return prepare(args) if args.command == "prepare" else run(args)


if __name__ == "__main__":
    raise SystemExit(main())
