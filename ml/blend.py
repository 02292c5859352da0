"""A model whose weights lie between two models of the same network: ``(1 - alpha) base + alpha other``.

Fine-tuning on new letterforms (``--font-share``) moved the network away from EMNIST's class
boundaries: stage F reads script fonts far better than stage D and EMNIST 0.5 points worse.
Both come from the same start, so the straight line between their weights stays in one basin,
and the models on it trade the two off smoothly (weight-space ensembling of a fine-tuned model
with its start, as in Wortsman et al., "Robust fine-tuning of zero-shot models", 2022). ``alpha``
is chosen on the EMNIST validation split alone (the largest on a grid whose top-1 keeps the
floor): no held-out font is looked at to choose it.

Every weight is interpolated, batch-norm statistics included (the two share their start, and
the validation figures below are of the blended model as it is saved, not recomputed). The
report carries both parents' reports, the families either was trained on, and the blend's own
validation metrics, so ``ml/artifacts/<name>.report.json`` keeps telling what the model is.

    python -m ml.blend --base ml/artifacts/emnist_cnn.keras \\
        --other ml/artifacts/candidates/stage_f.keras --alpha 0.4 --out-dir ml/artifacts
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from ml.data import load_validation
from ml.evaluate import evaluate_probs, predict_probs, save_confusion_png, summary_line, write_report


def blend_weights(base: list[np.ndarray], other: list[np.ndarray], alpha: float) -> list[np.ndarray]:
    """``(1 - alpha) * base + alpha * other``, weight by weight, in each weight's own dtype."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], not {alpha}")
    if len(base) != len(other) or any(b.shape != o.shape for b, o in zip(base, other)):
        raise ValueError("the two models do not have the same weights: only one network's can be blended")
    return [((1.0 - alpha) * b + alpha * o).astype(b.dtype) for b, o in zip(base, other)]


def _report_of(model_path: Path) -> dict:
    path = model_path.with_suffix(".report.json")
    return json.loads(path.read_text()) if path.exists() else {}


def blend(base_path: Path, other_path: Path, alpha: float, images: np.ndarray, labels: np.ndarray, note: str = ""):
    """The blended Keras model and its report (validation metrics on ``images``, ``labels``)."""
    from ml.model import load_model

    base, other = load_model(base_path), load_model(other_path)
    base.set_weights(blend_weights(base.get_weights(), other.get_weights(), alpha))
    base_report, other_report = _report_of(base_path), _report_of(other_path)
    metrics = evaluate_probs(predict_probs(base, images), labels)
    report = {
        "name": base_report.get("name", "emnist_cnn"),
        "blend": {"alpha": alpha, "base": str(base_path), "other": str(other_path)},
        "note": note,
        "base": base_report,
        "other": other_report,
        "font_families": sorted(set(base_report.get("font_families", [])) | set(other_report.get("font_families", []))),
        "validation": metrics,
    }
    return base, report


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, type=Path, help="the model at alpha 0")
    parser.add_argument("--other", required=True, type=Path, help="the model at alpha 1 (same network)")
    parser.add_argument("--alpha", type=float, action="append", required=True, help="repeat to score several")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    parser.add_argument("--out-dir", type=Path, help="write the model of the last --alpha here, with its report")
    parser.add_argument("--name", default="emnist_cnn")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    images, labels = load_validation(args.data_dir)
    for alpha in args.alpha:
        model, report = blend(args.base, args.other, alpha, images, labels, args.note)
        print(f"alpha {alpha:.3f}: {summary_line(report['validation'])}", flush=True)
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        model.save(args.out_dir / f"{args.name}.keras")
        write_report(report, args.out_dir / f"{args.name}.report.json")
        title = f"{args.name}: validation"
        save_confusion_png(
            report["validation"]["confusion_matrix"], args.out_dir / f"{args.name}.confusion.png", title=title
        )
        print(f"wrote {args.out_dir / args.name}.keras", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
