"""How well the model reads letterforms it was not trained on: the held-out handwriting fonts.

Every held-out family of ``ml.font_families`` (never trained on) is rendered with ``ml.fonts``
the way a canvas drawing arrives (random size, slant, pen, wobble, then ``ml.preprocess``),
``--per-class`` drawings of each of the 62 characters, and read by the model. Reported per
family and per style (print / script):

- plain top-1;
- look-alike-group accuracy (o/O/0, l/I/1, s/S ... counted as one: ``ml.evaluate``);
- top-1 on the characters without a twin (classes outside every look-alike group);
- ECE, and the median top probability of the wrong answers;
- the same two through the model's per-drawing calibration (``ml.confidence``, the
  probabilities the site shows), where the model has one beside it;
- the 15 worst classes, overall.

``--emnist`` also scores the EMNIST validation split (raw images) and its canvas round-trips
(at this seed), the ECE raw and calibrated.

    .venv/bin/python bench/font_generalisation.py [--model PATH] [--reference PATH] [--json OUT]

``--split train`` scores the training families instead (at a seed the training never used),
as a check that the renderer and the model agree.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from ml.data import CLASSES, load_validation  # noqa: E402
from ml.evaluate import expected_calibration_error, keras_probs, lookalike_groups  # noqa: E402
from ml.font_families import installed_fonts  # noqa: E402
from ml.fonts import render_families  # noqa: E402
from ml.inference import load_predictor  # noqa: E402
from ml.synth import canvas_roundtrip_parallel  # noqa: E402

# Renderings for evaluation use seeds the training never does (ml.train uses its --seed, 1..9).
EVAL_SEED = 1001
WORST = 15


def twinless_classes() -> np.ndarray:
    """bool (62,): classes alone in their look-alike group."""
    groups = lookalike_groups()
    return np.bincount(groups, minlength=len(groups))[groups] == 1


def median_wrong(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """The median top probability of the wrong answers (None without any)."""
    wrong = probs.argmax(axis=1) != labels
    return float(np.median(probs.max(axis=1)[wrong])) if wrong.any() else None


def score(probs: np.ndarray, labels: np.ndarray, shown: np.ndarray | None = None) -> dict:
    """The figures of one set of drawings: float64 probs (N, 62), int labels (N,); ``shown``,
    the calibrated probabilities (same ranking), adds their ECE and median p(wrong)."""
    predicted = probs.argmax(axis=1)
    right = predicted == labels
    groups = lookalike_groups()
    twinless = twinless_classes()[labels]
    figures = {
        "n": int(len(labels)),
        "top1": float(right.mean()),
        "lookalike": float((groups[predicted] == groups[labels]).mean()),
        "twinless_top1": float(right[twinless].mean()) if twinless.any() else None,
        "ece": expected_calibration_error(probs, labels),
        "median_wrong_confidence": median_wrong(probs, labels),
    }
    if shown is not None:
        figures["calibrated_ece"] = expected_calibration_error(shown, labels)
        figures["calibrated_median_wrong_confidence"] = median_wrong(shown, labels)
    return figures


def worst_classes(probs: np.ndarray, labels: np.ndarray, count: int = WORST) -> list[dict]:
    """The ``count`` classes read worst (look-alike-group accuracy, then top-1), with their commonest misreading."""
    groups = lookalike_groups()
    predicted = probs.argmax(axis=1)
    rows = []
    for c in range(len(CLASSES)):
        mine = labels == c
        if not mine.any():
            continue
        wrong = predicted[mine][predicted[mine] != c]
        rows.append(
            {
                "class": CLASSES[c],
                "lookalike": float((groups[predicted[mine]] == groups[c]).mean()),
                "top1": float((predicted[mine] == c).mean()),
                "read_as": CLASSES[int(np.bincount(wrong).argmax())] if len(wrong) else None,
            }
        )
    return sorted(rows, key=lambda r: (r["lookalike"], r["top1"]))[:count]


def evaluate_model(model_path: str, images: np.ndarray, upright: bool = False):
    """float64 (N, 62) raw probabilities, and the calibrated ones or None: ours through the
    serving predictor (calibrated where the model has a calibration beside it); the reference
    (upright input) through Keras, uncalibrated."""
    if upright:
        return keras_probs(model_path, images, upright=True), None
    predictor = load_predictor(model_path, batch_threads=os.cpu_count() or 1)
    probs, embeddings = predictor.read(images)
    shown = None if predictor.calibration is None else predictor.calibration.apply(probs, embeddings)
    return probs.astype(np.float64), shown


def report(probs: np.ndarray, labels: np.ndarray, index: np.ndarray, families: list, shown=None) -> dict:
    def part(rows):
        return score(probs[rows], labels[rows], None if shown is None else shown[rows])

    out = {
        "overall": part(slice(None)),
        "by_style": {},
        "by_family": {},
        "worst_classes": worst_classes(probs, labels),
    }
    for style in sorted({f.style for f in families}):
        rows = np.isin(index, [i for i, f in enumerate(families) if f.style == style])
        out["by_style"][style] = part(rows)
        out["by_style"][style]["families"] = sum(f.style == style for f in families)
    for i, family in enumerate(families):
        out["by_family"][family.name] = {"style": family.style, **part(index == i)}
    return out


def _wrong(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "-"


def line(name: str, s: dict) -> str:
    twin = f"{s['twinless_top1']:.1%}" if s["twinless_top1"] is not None else "-"
    text = (
        f"{name:<28} n={s['n']:>6}  top1 {s['top1']:6.1%}  look-alike {s['lookalike']:6.1%}  "
        f"no-twin top1 {twin:>6}  ECE {s['ece']:.3f}  median p(wrong) {_wrong(s['median_wrong_confidence'])}"
    )
    if "calibrated_ece" in s:
        text += (
            f"  | calibrated: ECE {s['calibrated_ece']:.3f}  "
            f"median p(wrong) {_wrong(s['calibrated_median_wrong_confidence'])}"
        )
    return text


def emnist_figures(model_path: str, data_dir: str, seed: int) -> dict:
    """ECE raw and calibrated on the EMNIST validation split's raw images and canvas round-trips."""
    images, labels = load_validation(data_dir)
    out = {}
    for name, drawn in (
        ("validation (raw images)", images),
        (f"validation drawings (seed {seed})", canvas_roundtrip_parallel(images, seed, workers=os.cpu_count() or 1)),
    ):
        probs, shown = evaluate_model(model_path, drawn)
        out[name] = score(probs, labels, shown)
        print(line(f"EMNIST {name}", out[name]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ml/artifacts/emnist_cnn.keras")
    parser.add_argument(
        "--reference", help="a model taking upright input scored on the same drawings (shared/peers' .h5)"
    )
    parser.add_argument("--split", default="heldout", choices=("heldout", "train"))
    parser.add_argument("--per-class", type=int, default=10, help="drawings of each character per family")
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--emnist", action="store_true", help="also the EMNIST validation split's ECE")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    args = parser.parse_args(argv)

    families = installed_fonts(split=args.split)
    started = time.perf_counter()
    images, labels, index = render_families(
        [(f.name, str(f.path)) for f in families], args.per_class, args.seed, workers=os.cpu_count() or 1
    )
    labels = labels.astype(np.int64)
    print(
        f"{len(families)} {args.split} families ({', '.join(f.name for f in families)}), "
        f"{len(images)} drawings in {time.perf_counter() - started:.0f}s"
    )
    results = {"split": args.split, "per_class": args.per_class, "seed": args.seed, "models": {}}
    for name, path in (("model", args.model), ("reference", args.reference)):
        if not path:
            continue
        probs, shown = evaluate_model(path, images, upright=name == "reference")
        figures = report(probs, labels, index, families, shown)
        results["models"][name] = {"path": path, **figures}
        print(f"\n== {name}: {path}")
        print(line("all families", figures["overall"]))
        for style, s in figures["by_style"].items():
            print(line(f"{style} ({s['families']} families)", s))
        for family, s in figures["by_family"].items():
            print(line(f"  {family} [{s['style']}]", s))
        print(
            "worst classes: "
            + ", ".join(f"{w['class']} {w['lookalike']:.0%} (as {w['read_as']})" for w in figures["worst_classes"])
        )
    if args.emnist:
        print(f"\n== EMNIST validation: {args.model}")
        results["emnist"] = emnist_figures(args.model, args.data_dir, args.seed)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
