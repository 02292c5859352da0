"""A model's outputs: probabilities, their scores (accuracy, per-class precision/recall,
confusions, calibration) and the class-prior correction.

The scores work on probability arrays, so the same code scores our model, a retrained
candidate and the reference model in ``shared/peers/``.

The web imports this module (look-alike groups, the confusion image), so it does not
import TensorFlow: ``predict_probs`` and ``correct_prior`` only call methods of the Keras
model they are given, and ``keras_probs`` imports Keras when it is called.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ml.data import CLASSES, NUM_CLASSES, load_validation

if TYPE_CHECKING:  # annotations only: importing Keras starts TensorFlow
    import keras

# Pairs that EMNIST itself merged in ByMerge (their shapes differ mostly by size), plus the
# digit/letter look-alikes. Classes joined by any chain of pairs form one group.
LOOKALIKE_PAIRS = [(c.upper(), c) for c in "cijklmopsuvwxyz"] + [("0", "O"), ("1", "I"), ("1", "l")]


def lookalike_groups() -> np.ndarray:
    """int (62,): a group id per class; look-alike classes share one."""
    parent = list(range(NUM_CLASSES))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for a, b in LOOKALIKE_PAIRS:
        parent[find(CLASSES.index(a))] = find(CLASSES.index(b))
    return np.array([find(i) for i in range(NUM_CLASSES)])


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """int64 (62, 62): rows are true classes, columns predicted classes."""
    cm = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    np.add.at(cm, (labels, predicted), 1)
    return cm


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-1 confidence over ``bins`` equal-width bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def evaluate_probs(probs: np.ndarray, labels: np.ndarray, top_pairs: int = 20) -> dict:
    """Every metric we report, from predicted probabilities.

    Args:
        probs: float (N, 62) class probabilities (rows sum to 1).
        labels: int (N,) true ByClass labels.
        top_pairs: how many of the most confused (true, predicted) pairs to list.

    Returns:
        A JSON-serialisable dict: ``top1``, ``top3``, ``top5``, ``lookalike_top1``,
        ``ece``, ``n``, ``per_class`` (precision, recall, support by character),
        ``confused_pairs`` and ``confusion_matrix`` (list of lists, rows = truth).
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or probs.shape[1] != NUM_CLASSES or len(probs) != len(labels) or not len(labels):
        raise ValueError(f"need probs (N, 62) and labels (N,), N > 0; got {probs.shape} and {labels.shape}")
    ranked = np.argsort(-probs, axis=1)[:, :5]
    predicted = ranked[:, 0]
    hits = ranked == labels[:, None]
    cm = confusion_matrix(labels, predicted)
    groups = lookalike_groups()
    support = cm.sum(axis=1)
    predicted_count = cm.sum(axis=0)
    diag = np.diag(cm)
    per_class = {
        CLASSES[c]: {
            "precision": float(diag[c] / predicted_count[c]) if predicted_count[c] else 0.0,
            "recall": float(diag[c] / support[c]) if support[c] else 0.0,
            "support": int(support[c]),
        }
        for c in range(NUM_CLASSES)
    }
    off = cm.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None)[:top_pairs]
    pairs = [
        {"true": CLASSES[t], "predicted": CLASSES[p], "count": int(off[t, p])}
        for t, p in zip(*np.unravel_index(order, off.shape))
        if off[t, p] > 0
    ]
    return {
        "n": int(len(labels)),
        "top1": float(hits[:, 0].mean()),
        "top3": float(hits[:, :3].any(axis=1).mean()),
        "top5": float(hits.any(axis=1).mean()),
        "lookalike_top1": float((groups[predicted] == groups[labels]).mean()),
        "ece": expected_calibration_error(probs, labels),
        "per_class": per_class,
        "confused_pairs": pairs,
        "confusion_matrix": cm.tolist(),
    }


def summary_line(metrics: dict) -> str:
    """One human line: top-1, top-3, look-alike top-1, ECE."""
    return (
        f"top1 {metrics['top1']:.2%}  top3 {metrics['top3']:.2%}  "
        f"lookalike-top1 {metrics['lookalike_top1']:.2%}  ECE {metrics['ece']:.3f}  (n={metrics['n']})"
    )


def save_confusion_png(cm: np.ndarray | list, path: str | Path, title: str = "Confusion matrix") -> None:
    """Draw a 62x62 confusion matrix with class names, row-normalised, log colour scale."""
    # Here, not at module level: pyplot takes 0.3-0.9 s to import, which every web process
    # importing this module would pay, and use("Agg") is a process-wide setting.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    cm = np.asarray(cm, dtype=np.float64)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(14, 13), dpi=80)
    image = ax.imshow(np.where(rates > 0, rates, np.nan), cmap="viridis", norm=LogNorm(vmin=1e-3, vmax=1))
    ax.set_xticks(range(NUM_CLASSES), list(CLASSES), fontsize=8)
    ax.set_yticks(range(NUM_CLASSES), list(CLASSES), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.03, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(report: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")


def softmax(logits: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Probabilities over the last axis of ``logits`` (any shape), computed in ``dtype``, stable for large values."""
    shifted = np.asarray(logits, dtype=dtype)
    shifted = shifted - shifted.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def model_input(images: np.ndarray) -> np.ndarray:
    """What ``ml.model.build_model`` takes: float32 (N, 28, 28, 1) raw 0..255 pixels, from (N, 28, 28) images."""
    return images.astype(np.float32)[..., None]


def predict_probs(model: keras.Model, images: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """float64 (N, 62) softmax probabilities for uint8 (N, 28, 28) images."""
    return softmax(model.predict(model_input(images), batch_size=batch_size, verbose=0))


def estimate_training_prior(model: keras.Model, images: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The class prior the model was trained under: float64 (62,), sums to 1.

    Exact labels count as themselves; a merged label is split between its allowed
    classes in proportion to the model's own posterior (one EM step).
    """
    probs = predict_probs(model, images) * allowed
    probs /= probs.sum(axis=1, keepdims=True)
    return probs.mean(axis=0)


def correct_prior(model: keras.Model, trained_prior: np.ndarray, target_prior: np.ndarray) -> None:
    """Shift the output bias by log(target / trained) (logit adjustment), in place.

    The training mix over-represents digits and letters compared with ByClass (the
    extra MNIST, Digits and Letters files); this moves the decision back to the
    distribution the site sees, without retraining.
    """
    kernel, bias = model.get_layer("logits").get_weights()
    bias = bias + prior_shift(trained_prior, target_prior)
    model.get_layer("logits").set_weights([kernel, bias.astype(kernel.dtype)])


def prior_shift(trained_prior, target_prior) -> np.ndarray:
    """log(target / trained) per class: what ``correct_prior`` adds to the output bias."""
    eps = 1e-6
    return np.log(np.asarray(target_prior) + eps) - np.log(np.asarray(trained_prior) + eps)


def keras_probs(path: str | Path, images: np.ndarray, upright: bool = False, batch_size: int = 1024) -> np.ndarray:
    """Probabilities of any Keras 28x28 -> 62 model file on uint8 (N, 28, 28) EMNIST-orientation images.

    Args:
        path: a ``.keras`` or legacy ``.h5`` model.
        images: EMNIST orientation, raw 0..255.
        upright: feed ``images`` transposed (the reference model in shared/peers was
            trained on upright images).

    Returns:
        float64 (N, 62); a softmax is applied when the model outputs logits.
    """
    # Here, not at module level: ml.model imports Keras, which starts TensorFlow (seconds),
    # and the web imports this module.
    from ml.model import load_model

    model = load_model(path)
    x = model_input(np.swapaxes(images, 1, 2) if upright else images)
    out = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    if out.min() < 0 or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        out = softmax(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m ml.evaluate``: score models on the fixed validation split with the same code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before keras_probs starts TensorFlow
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--model", action="append", default=[], help="model taking EMNIST-orientation input")
    parser.add_argument("--reference", action="append", default=[], help="model taking upright input (shared/peers)")
    parser.add_argument("--data-dir", default="../shared/data/emnist")
    parser.add_argument("--out", help="write all metrics to this JSON file")
    args = parser.parse_args(argv)
    images, labels = load_validation(args.data_dir)
    results = {}
    for path, upright in [(m, False) for m in args.model] + [(m, True) for m in args.reference]:
        metrics = evaluate_probs(keras_probs(path, images, upright=upright), labels)
        results[str(path)] = metrics
        print(f"{Path(path).name}: {summary_line(metrics)}", flush=True)
    if args.out:
        write_report(results, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
