"""Fine-tuning a trained model on user corrections without forgetting the rest.

A retraining run sees a few hundred to a few thousand corrections. Training on those alone
would overwrite what the model knows (catastrophic forgetting), so every batch mixes a fixed
share of corrections (sampled with replacement, optionally distorted a little) with replayed
EMNIST training rows, at a learning rate well below the original training's. Batch
normalisation statistics stay frozen: the corrections are few and their drawing style unlike
EMNIST's, and moving the statistics towards them would shift every prediction.

The class prior: the shipped model's output bias is shifted towards the ByClass prior
(``ml.train.correct_prior``). Replay is drawn from ByClass rows, which already follow that
prior, but the corrections do not (users correct the classes the model gets wrong), so the
fine-tuned model learns to over-predict them. After training, the bias is moved by
log(label frequency / mean predicted probability) measured on replay rows the fine-tuning
did not use: the over-prediction is measured, not assumed.

Nothing here imports Django: the service in ``recognition.services.retraining`` turns rows
into these arrays and the result into a ModelVersion.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ml.data import EXACT_SPLIT, IMAGE_SIZE, NUM_CLASSES, EmnistData  # noqa: E402
from ml.model import RandomDistortion, allowed_set_accuracy, allowed_set_loss  # noqa: E402
from ml.train import correct_prior, predict_probs  # noqa: E402


@dataclass
class FinetuneConfig:
    """Hyper-parameters of one fine-tuning run; all of them go into the version's summary."""

    batch_size: int = 128
    correction_share: float = 0.25  # fraction of every batch drawn from the corrections
    correction_repeats: float = 8.0  # how often each correction is seen (with augmentation)
    min_steps: int = 60
    max_steps: int = 2000
    learning_rate: float = 3e-4
    weight_decay: float = 0.0
    augment_strength: float = 0.5  # RandomDistortion.scaled strength for corrections; 0 = none
    freeze_batchnorm: bool = True
    prior_recalibration: bool = True
    calibration_rows: int = 5000
    seed: int = 1


@dataclass
class FinetuneResult:
    """The candidate model and what went into it (JSON-serialisable ``summary``)."""

    model: keras.Model
    summary: dict = field(default_factory=dict)


def load_model(path: str | Path) -> keras.Model:
    import ml.model  # noqa: F401 - registers the custom layer

    return keras.models.load_model(Path(path), compile=False)


def _copy_model(model: keras.Model) -> keras.Model:
    """A copy with the same weights, so the caller's (serving) model is never modified."""
    # From the architecture alone: clone_model would also try to rebuild a compiled loss.
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def replay_arrays(replay: EmnistData | tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), allowed bool (N, 62)) to replay.

    From an ``EmnistData``, only the exact-label ByClass rows: they follow the ByClass prior the
    shipped model was calibrated to. A tuple is taken as given; labels may be int (N,) or masks.
    """
    if isinstance(replay, EmnistData):
        keep = replay.train_exact
        if replay.train_split is not None and (replay.train_split == EXACT_SPLIT).any():
            keep = keep & (replay.train_split == EXACT_SPLIT)
        return replay.train_images[keep], replay.train_allowed[keep]
    images, labels = replay
    labels = np.asarray(labels)
    if labels.ndim == 1:
        labels = np.eye(NUM_CLASSES, dtype=bool)[labels.astype(np.int64)]
    return np.asarray(images), labels.astype(bool)


def _check_corrections(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels).astype(np.int64)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or images.dtype != np.uint8:
        raise ValueError(f"corrections must be uint8 (K, 28, 28), got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or not len(images):
        raise ValueError(f"need K > 0 corrections and K labels, got {len(images)} images and labels {labels.shape}")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise ValueError(f"labels must lie in 0..{NUM_CLASSES - 1}")
    return images, labels


def _augment(images: np.ndarray, strength: float, seed: int) -> np.ndarray:
    """float32 (K, 28, 28, 1) distorted copies of uint8 (K, 28, 28) images."""
    x = images.astype(np.float32)[..., None]
    if strength <= 0:
        return x
    layer = RandomDistortion.scaled(strength, seed=seed)
    out = np.empty_like(x)
    for start in range(0, len(x), 1024):
        out[start : start + 1024] = keras.ops.convert_to_numpy(layer(x[start : start + 1024], training=True))
    return np.clip(out, 0, 255)


def recalibrate_prior(model: keras.Model, images: np.ndarray, allowed: np.ndarray) -> dict:
    """Shift the output bias so the mean predicted class distribution on ``images`` matches their labels.

    Args:
        images: uint8 (N, 28, 28) rows the fine-tuning did not train on.
        allowed: bool (N, 62) exact labels (one class per row).

    Returns:
        {"max_abs_shift": float}: the largest bias change, in logits.
    """
    probs = predict_probs(model, images)
    target = allowed.astype(np.float64).sum(axis=0)
    target /= target.sum()
    predicted = probs.mean(axis=0)
    before = model.get_layer("logits").get_weights()[1].copy()
    # Classes absent from the sample keep their bias (no evidence either way).
    present = target > 0
    correct_prior(model, np.where(present, predicted, 1.0), np.where(present, target, 1.0))
    after = model.get_layer("logits").get_weights()[1]
    return {"max_abs_shift": float(np.abs(after - before).max())}


def finetune(
    model: keras.Model | str | Path,
    correction_images: np.ndarray,
    correction_labels: np.ndarray,
    replay: EmnistData | tuple[np.ndarray, np.ndarray],
    config: FinetuneConfig | None = None,
    log_stream=sys.stdout,
) -> FinetuneResult:
    """Fine-tune a copy of ``model`` on corrections mixed with replayed EMNIST rows.

    Args:
        model: a loaded Keras model (left unchanged) or the path of a ``.keras`` file.
        correction_images: uint8 (K, 28, 28), EMNIST orientation.
        correction_labels: int (K,) ByClass class indices.
        replay: ``EmnistData`` (its ByClass training rows are replayed) or
            (images uint8 (N, 28, 28), labels int (N,) or allowed bool (N, 62)).
        config: hyper-parameters; the defaults are the site's.

    Returns:
        A ``FinetuneResult``: the candidate model and a summary of the run.
    """
    config = config or FinetuneConfig()
    started = time.perf_counter()
    images, labels = _check_corrections(correction_images, correction_labels)
    replay_images, replay_allowed = replay_arrays(replay)
    if not len(replay_images):
        raise ValueError("no replay rows: fine-tuning on corrections alone would forget the rest")
    model = load_model(model) if isinstance(model, (str, Path)) else _copy_model(model)

    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    per_batch = max(1, min(config.batch_size - 1, round(config.correction_share * config.batch_size)))
    replay_per_batch = config.batch_size - per_batch
    steps = math.ceil(len(images) * config.correction_repeats / per_batch)
    steps = int(min(max(steps, config.min_steps), config.max_steps))

    # Calibration rows are set aside before sampling replay, so they are never trained on.
    order = rng.permutation(len(replay_images))
    n_cal = min(config.calibration_rows, len(order) // 5) if config.prior_recalibration else 0
    calibration, pool = order[:n_cal], order[n_cal:]

    corr_rows = rng.integers(0, len(images), size=(steps, per_batch))
    replay_rows = pool[rng.integers(0, len(pool), size=(steps, replay_per_batch))]
    corr_x = _augment(images[corr_rows.ravel()], config.augment_strength, config.seed).reshape(
        steps, per_batch, IMAGE_SIZE, IMAGE_SIZE, 1
    )
    corr_y = np.eye(NUM_CLASSES, dtype=np.float32)[labels[corr_rows]]
    replay_x = replay_images[replay_rows].astype(np.float32)[..., None]
    replay_y = replay_allowed[replay_rows].astype(np.float32)
    # Each block of batch_size rows is one batch with exactly the chosen share of corrections.
    x = np.concatenate([corr_x, replay_x], axis=1).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 1)
    y = np.concatenate([corr_y, replay_y], axis=1).reshape(-1, NUM_CLASSES)

    if config.freeze_batchnorm:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # Keras 3: a frozen BN layer also runs in inference mode
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=keras.optimizers.schedules.CosineDecay(config.learning_rate, steps, alpha=0.1),
            weight_decay=config.weight_decay,
        ),
        loss=allowed_set_loss,
        metrics=[allowed_set_accuracy],
        jit_compile=False,
    )
    history = model.fit(x, y, batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0)
    train_seconds = time.perf_counter() - started
    loss = float(history.history["loss"][-1])
    print(
        f"fine-tuned {steps} steps of {config.batch_size} ({per_batch} corrections each) on {len(images)} corrections "
        f"in {train_seconds:.1f}s, loss {loss:.4f}",
        file=log_stream,
        flush=True,
    )
    for layer in model.layers:
        layer.trainable = True  # the saved candidate is a plain model again

    summary = {
        "config": asdict(config),
        "corrections": int(len(images)),
        "replay_pool": int(len(pool)),
        "steps": steps,
        "images_seen": int(len(x)),
        "final_loss": loss,
        "train_seconds": round(train_seconds, 2),
    }
    if n_cal:
        shift = recalibrate_prior(model, replay_images[calibration], replay_allowed[calibration])
        summary["prior_recalibration"] = {"rows": int(n_cal), **shift}
        print(f"prior recalibrated on {n_cal} replay rows, max bias shift {shift['max_abs_shift']:.3f}", file=log_stream, flush=True)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return FinetuneResult(model=model, summary=summary)
