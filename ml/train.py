"""Training: ``python -m ml.train --data-dir ../shared/data/emnist``.

Checkpoints every epoch (Keras ``BackupAndRestore``: weights, optimizer state and
epoch), so an interrupted run started again with the same ``--work-dir`` resumes where
it stopped. Output: ``<out-dir>/<name>.keras``, ``<name>.report.json`` and
``<name>.confusion.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ml.data import NUM_CLASSES, EmnistData, load_emnist  # noqa: E402
from ml.evaluate import (  # noqa: E402
    correct_prior,
    estimate_training_prior,
    evaluate_probs,
    model_input,
    predict_probs,
    prior_shift,
    save_confusion_png,
    softmax,
    summary_line,
    write_report,
)
from ml.font_families import FontsMissingError, installed_fonts  # noqa: E402
from ml.fonts import render_families  # noqa: E402
from ml.model import (  # noqa: E402
    RandomDistortion,
    allowed_set_accuracy,
    allowed_set_loss,
    build_model,
    distillation_accuracy,
    distillation_loss,
)


@dataclass
class TrainConfig:
    """Hyper-parameters of one run; all of them go into the report."""

    # Defaults are the shipped model's; see ml/MODEL.md for the runs that chose them.
    epochs: int = 7
    batch_size: int = 256
    learning_rate: float = 2e-3
    warmup_epochs: float = 0.5
    weight_decay: float = 1e-4
    width: int = 32
    dense: int = 256
    dropout: float = 0.5
    augment: bool = False  # measured: distortions cost 0.5-1.5 points on EMNIST's normalised images
    augment_strength: float = 1.0  # scales every distortion range of RandomDistortion
    prior_correction: bool = True
    # Share of the training rows added a second time as canvas drawings sent through
    # ml.preprocess (ml.synth.canvas_roundtrip): the site's own input, see ml/MODEL.md.
    canvas_share: float = 0.0
    # Rows rendered from the training split of the handwriting typefaces (ml.fonts,
    # ml.font_families), as a share of the EMNIST training rows, spread evenly over the
    # families and the 62 classes: letterforms EMNIST never saw. Held-out families never.
    font_share: float = 0.0
    # Start from this .keras model (fine-tuning): its architecture, so width/dense/dropout above
    # are not used (the report still lists their values).
    init_from: str | None = None
    # Knowledge distillation: learn also from this .keras model's softened outputs (a smaller
    # network taught by a bigger one; see ml/MODEL.md). Weight of the soft part, temperature.
    distill_from: str | None = None
    # Teach each canvas round-trip copy with the teacher's reading of the raw image it was drawn
    # from, not of the drawing: the student learns to read a drawing as well as the teacher reads
    # the original (a drawing loses cues, such as stroke width, that the raw image has).
    distill_drawings_from_source: bool = False
    # Teach the font renderings the teacher's reading too (a teacher that was itself trained on
    # the fonts); otherwise each is taught its own label, as a teacher that never saw these
    # letterforms would read them wrong.
    distill_fonts_from_teacher: bool = False
    distill_weight: float = 0.7
    distill_temperature: float = 2.0
    seed: int = 1
    limit: int | None = None  # train on a seeded subset of this many rows (tests, smoke runs)


class EpochLog(keras.callbacks.Callback):
    """One line per epoch with time, throughput and ETA (for a log file, no progress bar)."""

    def __init__(self, total_epochs: int, samples: int, stream=sys.stdout):
        super().__init__()
        self.total_epochs, self.samples, self.stream = total_epochs, samples, stream

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        took = time.perf_counter() - self.started
        shown = "  ".join(f"{k} {v:.4f}" for k, v in sorted((logs or {}).items()))
        eta = took * (self.total_epochs - epoch - 1)
        print(
            f"epoch {epoch + 1}/{self.total_epochs}  {took:.0f}s  {self.samples / took:.0f} img/s  "
            f"{shown}  eta {eta / 60:.1f} min",
            file=self.stream,
            flush=True,
        )


def teacher_probs(path: str | Path, images: np.ndarray, temperature: float) -> np.ndarray:
    """float32 (N, 62): the teacher model's softmax at ``temperature``, as it was trained.

    A model written by ``train_and_report`` carries its prior correction in the output bias;
    when its report (``<stem>.report.json``) records that correction it is taken back out,
    so the soft targets describe the training mix, like the hard labels beside them (the
    student gets its own correction afterwards).
    """
    teacher = keras.models.load_model(path, compile=False)
    logits = teacher.predict(model_input(images), batch_size=1024, verbose=0).astype(np.float64)
    report = Path(path).with_suffix("").with_suffix(".report.json")
    if report.is_file():
        prior = json.loads(report.read_text()).get("prior")
        if prior:
            logits -= prior_shift(prior["trained"], prior["target"])
    return softmax(logits / temperature).astype(np.float32)


def soft_targets(images: np.ndarray, originals: int, config: TrainConfig) -> np.ndarray:
    """The teacher's softened outputs for every training row: ``images[:originals]`` are the
    training rows, the rest their canvas round-trips (``canvas_rows``, in that order).

    With ``config.distill_drawings_from_source`` a round-trip gets the teacher's reading of
    the row it was drawn from; otherwise each row gets the teacher's reading of itself.
    """
    if not config.distill_drawings_from_source or len(images) == originals:
        return teacher_probs(config.distill_from, images, config.distill_temperature)
    soft = teacher_probs(config.distill_from, images[:originals], config.distill_temperature)
    return np.concatenate([soft, soft[canvas_source_rows(originals, config)]])


def mix_soft_targets(
    images: np.ndarray, allowed: np.ndarray, originals: int, fonts: int, config: TrainConfig
) -> np.ndarray:
    """Soft targets for a whole training mix (``training_rows``): the teacher's readings for the
    EMNIST rows and their drawings (``soft_targets``); for the last ``fonts`` rows, the teacher's
    reading with ``config.distill_fonts_from_teacher``, else each row's own label."""
    taught = len(images) - fonts
    soft = soft_targets(images[:taught], originals, config)
    if config.distill_fonts_from_teacher and fonts:
        font_soft = teacher_probs(config.distill_from, images[taught:], config.distill_temperature)
    else:
        font_soft = allowed[taught:].astype(np.float32)
    return np.concatenate([soft, font_soft])


def canvas_source_rows(total: int, config: TrainConfig) -> np.ndarray:
    """Sorted indices of the seeded ``config.canvas_share`` of ``total`` training rows that are drawn."""
    count = int(round(config.canvas_share * total))
    return np.sort(np.random.default_rng(config.seed + 1).permutation(total)[:count])


def canvas_rows(images: np.ndarray, allowed: np.ndarray, config: TrainConfig, work_dir: str | Path):
    """The canvas round-trip copies of a seeded ``config.canvas_share`` of the rows, cached in ``work_dir``.

    Rendering takes minutes, so a resumed run reads them back instead of redoing them.
    Returns (uint8 (M, 28, 28), allowed (M, 62)).
    """
    from ml.synth import canvas_roundtrip_parallel

    rows = canvas_source_rows(len(images), config)
    count = len(rows)
    cache = Path(work_dir) / f"canvas_{config.seed}_{len(images)}_{count}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            if np.array_equal(stored["rows"], rows):
                return stored["images"], allowed[rows]
    started = time.perf_counter()
    rendered = canvas_roundtrip_parallel(images[rows], seed=config.seed, workers=min(2, os.cpu_count() or 1))
    print(f"canvas round-trips: {count} rows in {time.perf_counter() - started:.0f}s", flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, rows=rows, images=rendered)
    return rendered, allowed[rows]


def font_rows(total: int, config: TrainConfig, work_dir: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Renderings of the training families, ``config.font_share`` of ``total`` rows, cached in ``work_dir``.

    Only families whose split is "train" are drawn (``ml.font_families``); rendering takes
    minutes, so a resumed run reads them back. Returns (uint8 (M, 28, 28), allowed (M, 62),
    the family names).
    """
    families = installed_fonts(split="train")
    if not families:
        raise FontsMissingError("font_share > 0 but no training font family is installed")
    per_class = max(1, int(round(config.font_share * total / (len(families) * NUM_CLASSES))))
    names = [f.name for f in families]
    key = zlib.crc32(json.dumps(names).encode())
    cache = Path(work_dir) / f"fonts_{config.seed}_{per_class}_{key:08x}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            images, labels = stored["images"], stored["labels"]
    else:
        started = time.perf_counter()
        images, labels, _ = render_families(
            [(f.name, str(f.path)) for f in families], per_class, seed=config.seed, workers=min(2, os.cpu_count() or 1)
        )
        print(
            f"font renderings: {len(images)} rows of {len(families)} families in {time.perf_counter() - started:.0f}s"
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, images=images, labels=labels)
    return images, np.eye(NUM_CLASSES, dtype=bool)[labels], names


def training_rows(data: EmnistData, config: TrainConfig, work_dir: str | Path) -> dict:
    """The rows one run trains on, in order: EMNIST rows, their canvas round-trips, font renderings.

    Returns a dict: images uint8 (N, 28, 28), allowed bool (N, 62), ``originals`` (how many
    EMNIST rows lead), ``fonts`` (how many font rows end it) and ``font_families`` (names).
    """
    images, allowed = data.train_images, data.train_allowed
    if config.limit is not None and config.limit < len(images):
        rows = np.sort(np.random.default_rng(config.seed).permutation(len(images))[: config.limit])
        images, allowed = images[rows], allowed[rows]
    originals = len(images)
    parts = [(images, allowed)]
    if config.canvas_share > 0:
        parts.append(canvas_rows(images, allowed, config, work_dir))
    names: list[str] = []
    if config.font_share > 0:
        font_images, font_allowed, names = font_rows(originals, config, work_dir)
        parts.append((font_images, font_allowed))
    fonts = len(parts[-1][0]) if names else 0
    return {
        "images": np.concatenate([p[0] for p in parts]),
        "allowed": np.concatenate([p[1] for p in parts]),
        "originals": originals,
        "fonts": fonts,
        "font_families": names,
    }


def fit(
    data: EmnistData,
    config: TrainConfig,
    work_dir: str | Path,
    model: keras.Model | None = None,
    extra_callbacks: list | None = None,
    log_stream=sys.stdout,
    mix: dict | None = None,
) -> keras.Model:
    """Train ``model`` (a new one if None) on ``data``; resumes from ``work_dir`` if a backup is there.

    ``mix``: the rows to train on, ``training_rows(data, config, work_dir)`` when None.
    Returns the trained classifier (without the augmentation layer).
    """
    keras.utils.set_random_seed(config.seed)
    mix = mix if mix is not None else training_rows(data, config, work_dir)
    images, allowed, originals, fonts = mix["images"], mix["allowed"], mix["originals"], mix["fonts"]
    targets, loss, metric = allowed.astype(np.float32), allowed_set_loss, allowed_set_accuracy
    val_targets = np.eye(NUM_CLASSES, dtype=np.float32)[data.val_labels]
    if config.distill_from:
        started = time.perf_counter()
        soft = mix_soft_targets(images, allowed, originals, fonts, config)
        print(f"soft targets: {len(images)} rows in {time.perf_counter() - started:.0f}s", flush=True)
        targets = np.concatenate([targets, soft], axis=1)
        val_targets = np.concatenate([val_targets, val_targets], axis=1)
        loss, metric = distillation_loss(config.distill_weight, config.distill_temperature), distillation_accuracy
    if model is None and config.init_from:
        model = keras.models.load_model(config.init_from, compile=False)
    if model is None:
        model = build_model(width=config.width, dense=config.dense, dropout=config.dropout)
    steps_per_epoch = -(-len(images) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 10 if warmup else config.learning_rate,
        decay_steps=max(total_steps - warmup, 1),
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
        alpha=0.01,
    )
    stages = [keras.Input((28, 28, 1))]
    if config.augment:
        stages.append(RandomDistortion.scaled(config.augment_strength, seed=config.seed))
    trainer = keras.Sequential([*stages, model])
    trainer.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay),
        loss=loss,
        metrics=[metric],
        jit_compile=False,  # XLA measured ~40% slower here on CPU
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(Path(work_dir) / "backup"), save_freq="epoch", delete_checkpoint=True),
        EpochLog(config.epochs, len(images), stream=log_stream),
        *(extra_callbacks or []),
    ]
    trainer.fit(
        model_input(images),
        targets,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(model_input(data.val_images), val_targets),
        callbacks=callbacks,
        shuffle=True,
        verbose=0,
    )
    return model


def train_and_report(
    data: EmnistData,
    config: TrainConfig,
    out_dir: str | Path,
    name: str,
    work_dir: str | Path,
    log_stream=sys.stdout,
) -> dict:
    """Train, correct the class prior, evaluate on the validation split, write model + report."""
    started = time.time()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mix = training_rows(data, config, work_dir)  # once: the prior below is estimated on the same rows
    model = fit(data, config, work_dir, log_stream=log_stream, mix=mix)
    before = evaluate_probs(predict_probs(model, data.val_images), data.val_labels)
    print("validation, as trained:      " + summary_line(before), file=log_stream, flush=True)
    report = {
        "name": name,
        "config": asdict(config),
        "data": data.summary,
        "train_seconds": None,
        "validation_as_trained": {k: before[k] for k in ("top1", "top3", "top5", "lookalike_top1", "ece", "n")},
        "font_families": mix["font_families"],
    }
    if config.prior_correction:
        target = data.class_prior()
        trained = estimate_training_prior(model, mix["images"], mix["allowed"])
        correct_prior(model, trained, target)
        report["prior"] = {"trained": trained.tolist(), "target": target.tolist()}
    metrics = evaluate_probs(predict_probs(model, data.val_images), data.val_labels)
    print("validation, final:           " + summary_line(metrics), file=log_stream, flush=True)
    report["validation"] = metrics
    report["train_seconds"] = round(time.time() - started, 1)
    model.save(out_dir / f"{name}.keras")
    write_report(report, out_dir / f"{name}.report.json")
    save_confusion_png(metrics["confusion_matrix"], out_dir / f"{name}.confusion.png", title=f"{name}: validation")
    return report


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="../shared/data/emnist", help="folder with EMNIST npz / idx / csv files")
    parser.add_argument("--out-dir", default="ml/artifacts", help="where the model and its report go")
    parser.add_argument("--name", default="emnist_cnn", help="file name stem of the outputs")
    parser.add_argument("--work-dir", default="var/train", help="checkpoints; run again with the same one to resume")
    for field_name, value in asdict(defaults).items():
        flag = "--" + field_name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
        else:
            kind = {"init_from": str, "distill_from": str, "limit": int}.get(field_name, type(value))
            parser.add_argument(flag, type=kind, default=value)
    args = parser.parse_args(argv)
    config = TrainConfig(**{k: getattr(args, k) for k in asdict(defaults)})
    print(f"config: {json.dumps(asdict(config))}", flush=True)
    data = load_emnist(args.data_dir)
    print(f"data: {json.dumps(data.summary['_totals'])}", flush=True)
    report = train_and_report(data, config, args.out_dir, args.name, args.work_dir)
    print(f"wrote {Path(args.out_dir) / args.name}.keras in {report['train_seconds']:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
