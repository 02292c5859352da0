"""Honest confidence: a temperature fitted on drawings the model was not trained on.

A network trained with cross-entropy is over-confident on input unlike its training rows: a
hooked f read as F at 95%. Dividing the logits by a temperature T > 1 softens every answer
without changing any ranking (top-1, top-5 and accuracy stay exactly as they are). T is the
value that minimises the negative log-likelihood on a calibration set; here that set is the
canvas round-trips (``ml.synth``, the site's own input path) of the EMNIST validation split,
which no training run reads, plus renderings of the training font families
at a seed no training run uses (the fonts must be installed). The held-out font families are never used: they judge the
result (``bench/font_generalisation.py``).

T is folded into the output layer (kernel and bias divided by T), so serving code, speed and
the model file's format are unchanged.

    python -m ml.calibrate --model ml/artifacts/emnist_cnn.keras [--out PATH]

One temperature cannot serve both EMNIST-like drawings and unfamiliar letterforms (see
ml/MODEL.md). ``--per-input`` fits, on the same calibration set, a temperature that depends on
how unfamiliar each drawing is (``ml.confidence``) and writes it beside the model instead
(``<model>.calibration.json`` and ``<model>.centroids.npy``; the model file is not touched). The
class centroids are those of ``CENTROID_PER_CLASS`` EMNIST training rows of each class. The same
command on the same model and data writes the same parameters.

    python -m ml.calibrate --model ml/artifacts/emnist_cnn.keras --per-input
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ml.confidence import FEATURES, InputCalibration, class_centroids, fit_weights, save_calibration  # noqa: E402
from ml.data import NUM_CLASSES, load_emnist, load_validation  # noqa: E402
from ml.evaluate import (  # noqa: E402
    evaluate_probs,
    expected_calibration_error,
    softmax,
    summary_line,
    write_report,
)
from ml.font_families import installed_fonts  # noqa: E402
from ml.fonts import render_families  # noqa: E402
from ml.synth import canvas_roundtrip_parallel  # noqa: E402

CALIBRATION_SEED = 2001  # canvas and font renderings no training run draws (they use 1..9)
FONT_PER_CLASS = 4
CENTROID_PER_CLASS = 200
T_RANGE = (0.5, 5.0)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T in ``T_RANGE`` minimising the mean NLL of softmax(logits / T): float64 (N, 62), int (N,)."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)

    def nll(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float((log_norm - z[np.arange(len(labels)), labels]).mean())

    # NLL is unimodal in log T: golden-section search on log T.
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(np.exp(a)), nll(np.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(np.exp(b))
    return float(np.exp((lo + hi) / 2))


def apply_temperature(model: keras.Model, temperature: float) -> None:
    """Divide the ``logits`` layer's kernel and bias by ``temperature``, in place."""
    layer = model.get_layer("logits")
    kernel, bias = layer.get_weights()
    layer.set_weights([(kernel / temperature).astype(kernel.dtype), (bias / temperature).astype(bias.dtype)])


def calibration_set(
    val_images: np.ndarray, val_labels: np.ndarray, workers: int = 2
) -> tuple[np.ndarray, np.ndarray, dict]:
    """uint8 (N, 28, 28) drawings, int labels (N,), and a summary of what they are, from the
    validation split (``load_validation``) and the training font families."""
    drawn = canvas_roundtrip_parallel(val_images, seed=CALIBRATION_SEED, workers=workers)
    parts, labels = [drawn], [val_labels.astype(np.int64)]
    summary = {"emnist_validation_drawings": len(drawn), "seed": CALIBRATION_SEED}
    families = installed_fonts(split="train")  # FontsMissingError, with the install command, when absent
    images, font_labels, _ = render_families(
        [(f.name, str(f.path)) for f in families], FONT_PER_CLASS, CALIBRATION_SEED, workers=workers
    )
    parts.append(images)
    labels.append(font_labels.astype(np.int64))
    summary["training_family_drawings"] = len(images)
    return np.concatenate(parts), np.concatenate(labels), summary


def centroid_rows(data_dir: str, per_class: int = CENTROID_PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (M, 28, 28) EMNIST training rows with one allowed class, up to ``per_class`` of each
    (seeded), and their int labels (M,)."""
    data = load_emnist(data_dir)
    labels = np.where(data.train_exact, data.train_allowed.argmax(axis=1), -1)
    rng = np.random.default_rng(CALIBRATION_SEED)
    rows = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(NUM_CLASSES)])
    return data.train_images[rows], labels[rows]


def fit_per_input(model_path: str, data_dir: str, workers: int) -> dict:
    """Fit ``ml.confidence``'s map for the model at ``model_path``, write it beside the model,
    and return what it was fitted on with the ECE before and after."""
    from ml.inference import load_predictor  # TensorFlow's start-up: only for this command

    predictor = load_predictor(model_path, batch_threads=workers)
    train_images, train_labels = centroid_rows(data_dir)
    centroids = class_centroids(predictor.read(train_images)[1], train_labels, NUM_CLASSES)
    val_images, val_labels = load_validation(data_dir)
    images, labels, summary = calibration_set(val_images, val_labels, workers=workers)
    probs, embeddings = predictor.read(images)
    weights = fit_weights(probs, embeddings, labels, centroids)
    calibration = InputCalibration(centroids=centroids, weights=tuple(float(w) for w in weights))
    emnist = np.arange(len(images)) < summary["emnist_validation_drawings"]
    raw_probs, raw_embeddings = predictor.read(val_images)
    figures = {}
    for name, p, e, y in (
        ("calibration set", probs, embeddings, labels),
        ("  EMNIST validation drawings", probs[emnist], embeddings[emnist], labels[emnist]),
        ("  training-family drawings", probs[~emnist], embeddings[~emnist], labels[~emnist]),
        ("EMNIST validation (raw images)", raw_probs, raw_embeddings, val_labels),
    ):
        figures[name.strip()] = {
            "ece_before": round(expected_calibration_error(p, y), 4),
            "ece_after": round(expected_calibration_error(calibration.apply(p, e), y), 4),
        }
        print(f"{name:<32} ECE {figures[name.strip()]['ece_before']:.4f} -> {figures[name.strip()]['ece_after']:.4f}")
    summary["centroid_rows"] = {"per_class": CENTROID_PER_CLASS, "rows": int(len(train_labels))}
    document = {"calibration_set": summary, "ece": figures}
    paths = save_calibration(model_path, calibration, document)
    print(f"weights {dict(zip(FEATURES, np.round(weights, 4).tolist()))}; wrote {', '.join(map(str, paths))}")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", help="where to write the calibrated model (default: over --model)")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    parser.add_argument(
        "--per-input", action="store_true", help="fit ml.confidence's per-drawing temperature, written beside --model"
    )
    args = parser.parse_args(argv)
    if args.per_input:
        fit_per_input(args.model, args.data_dir, workers=min(2, os.cpu_count() or 1))
        return 0
    out = Path(args.out or args.model)
    model = keras.models.load_model(args.model, compile=False)
    val_images, val_labels = load_validation(args.data_dir)
    images, labels, summary = calibration_set(val_images, val_labels, workers=min(2, os.cpu_count() or 1))
    logits = model.predict(images.astype(np.float32)[..., None], batch_size=1024, verbose=0)
    before = evaluate_probs(softmax(logits), labels)
    temperature = fit_temperature(logits, labels)
    after = evaluate_probs(softmax(logits / temperature), labels)
    print(f"calibration set ({summary}):\n  before {summary_line(before)}\n  T={temperature:.3f} {summary_line(after)}")
    apply_temperature(model, temperature)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    report_path = Path(args.model).with_suffix("").with_suffix(".report.json")
    if report_path.is_file():
        report = json.loads(report_path.read_text())
        report["temperature"] = {
            "value": temperature,
            "calibration_set": summary,
            "ece_before": before["ece"],
            "ece_after": after["ece"],
        }
        raw = softmax(model.predict(val_images.astype(np.float32)[..., None], batch_size=1024, verbose=0))
        report["validation"] = evaluate_probs(raw, val_labels)
        print(f"validation after calibration: {summary_line(report['validation'])}")
        write_report(report, out.with_suffix("").with_suffix(".report.json"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
