import json

import numpy as np
import pytest

from ml.data import NUM_CLASSES, EmnistData
from ml.train import TrainConfig, fit, main, train_and_report


def tiny_data(n=256, seed=0):
    """Three classes of bars at different angles: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 3, n)
    for img, label in zip(images, labels):
        offset = rng.integers(-3, 4)
        if label == 0:
            img[4:24, 12 + offset : 16 + offset] = 255
        elif label == 1:
            img[12 + offset : 16 + offset, 4:24] = 255
        else:
            np.fill_diagonal(img[4:24, 4:24], 255)
    allowed = np.eye(NUM_CLASSES, dtype=bool)[labels]
    return EmnistData(images[32:], allowed[32:], images[:32], labels[:32].astype(np.int64), {"_totals": {}})


class StopAfter:
    """A callback that interrupts training at the end of an epoch, as a killed process would."""

    def __new__(cls, epoch):
        import keras

        class _Stop(keras.callbacks.Callback):
            def on_epoch_end(self, e, logs=None):
                if e == epoch:
                    raise KeyboardInterrupt

        return _Stop()


class Seen:
    def __new__(cls, epochs):
        import keras

        class _Seen(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                epochs.append(e)

        return _Seen()


CONFIG = TrainConfig(epochs=3, batch_size=32, width=4, dense=16, learning_rate=5e-3, augment=False)


def test_an_interrupted_run_resumes_at_the_next_epoch(tmp_path):
    data = tiny_data()
    with pytest.raises(KeyboardInterrupt):
        fit(data, CONFIG, tmp_path, extra_callbacks=[StopAfter(0)], log_stream=open("/dev/null", "w"))
    assert (tmp_path / "backup").exists()
    epochs = []
    fit(data, CONFIG, tmp_path, extra_callbacks=[Seen(epochs)], log_stream=open("/dev/null", "w"))
    assert epochs == [1, 2]
    assert not (tmp_path / "backup").exists()  # removed after a finished run


def test_a_short_run_learns_and_writes_model_report_and_confusion_png(tmp_path):
    report = train_and_report(
        tiny_data(), CONFIG, tmp_path / "out", "tiny", tmp_path / "work", log_stream=open("/dev/null", "w")
    )
    assert report["validation"]["top1"] > 0.6  # three easy classes
    saved = json.loads((tmp_path / "out" / "tiny.report.json").read_text())
    assert saved["validation"]["top1"] == report["validation"]["top1"]
    assert saved["config"]["epochs"] == 3
    assert (tmp_path / "out" / "tiny.keras").stat().st_size > 0
    assert (tmp_path / "out" / "tiny.confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_prior_correction_moves_the_output_bias_by_the_log_ratio():
    from ml.evaluate import correct_prior
    from ml.model import build_model

    model = build_model(width=4, dense=8)
    before = model.get_layer("logits").get_weights()[1].copy()
    trained = np.full(NUM_CLASSES, 1 / NUM_CLASSES)
    target = trained.copy()
    target[0], target[1] = 2 / NUM_CLASSES, 0
    target /= target.sum()
    correct_prior(model, trained, target)
    after = model.get_layer("logits").get_weights()[1]
    assert after[0] - before[0] == pytest.approx(np.log(target[0] / trained[0]), abs=1e-4)
    assert after[1] - before[1] < -9  # a class never seen is pushed far down


def test_the_command_line_trains_from_a_data_directory(tmp_path):
    data = tiny_data(200)
    np.savez(
        tmp_path / "emnist-byclass-test-dev.npz",
        images=np.concatenate([data.val_images, data.train_images]),
        labels=np.concatenate([data.val_labels, data.train_allowed.argmax(axis=1)]).astype(np.uint8),
    )
    args = ["--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")]
    args += ["--epochs", "1", "--width", "4", "--dense", "8", "--batch-size", "32", "--no-augment"]
    assert main(args) == 0
    assert json.loads((tmp_path / "out" / "emnist_cnn.report.json").read_text())["config"]["width"] == 4


def test_canvas_rows_are_rendered_once_and_read_back_on_resume(tmp_path, monkeypatch):
    import ml.synth
    from ml.train import canvas_rows

    data = tiny_data(120)
    config = TrainConfig(canvas_share=0.25, seed=3)
    images, allowed = canvas_rows(data.train_images, data.train_allowed, config, tmp_path)
    assert images.shape == (22, 28, 28) and images.dtype == np.uint8  # 25% of 88 rows
    assert allowed.shape == (22, NUM_CLASSES) and allowed.sum(axis=1).tolist() == [1] * 22
    # Each rendering went through the canvas path: not the raw row it came from.
    rows = np.sort(np.random.default_rng(config.seed + 1).permutation(88)[:22])
    assert not np.array_equal(images, data.train_images[rows])
    assert np.array_equal(allowed, data.train_allowed[rows])

    def render_again(*args, **kwargs):
        raise AssertionError("rendered again instead of reading the cache")

    monkeypatch.setattr(ml.synth, "canvas_roundtrip_parallel", render_again)
    again, _ = canvas_rows(data.train_images, data.train_allowed, config, tmp_path)
    assert np.array_equal(again, images)


def test_drawings_can_be_taught_with_the_teachers_reading_of_the_row_they_were_drawn_from(monkeypatch):
    import ml.train
    from ml.train import canvas_source_rows, soft_targets

    seen = []

    def reading(path, images, temperature):  # a stand-in teacher: each image's own pixels
        seen.append(len(images))
        return images.reshape(len(images), -1)[:, :NUM_CLASSES].astype(np.float32)

    monkeypatch.setattr(ml.train, "teacher_probs", reading)
    originals = np.random.default_rng(0).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    config = TrainConfig(canvas_share=0.25, seed=3, distill_from="teacher.keras")
    rows = canvas_source_rows(len(originals), config)
    drawn = 255 - originals[rows]  # unlike their sources
    images = np.concatenate([originals, drawn])
    flat = images.reshape(len(images), -1)[:, :NUM_CLASSES]

    assert np.array_equal(soft_targets(images, len(originals), config), flat)  # the default: each row itself
    config.distill_drawings_from_source = True
    soft = soft_targets(images, len(originals), config)
    assert soft.shape == (50, NUM_CLASSES)
    assert np.array_equal(soft[:40], flat[:40])
    assert np.array_equal(soft[40:], flat[rows])  # the sources' readings, not the drawings'
    assert seen == [50, 40]  # the teacher reads no drawing at all


def test_font_rows_are_taught_their_label_unless_the_teacher_was_trained_on_fonts(monkeypatch):
    import ml.train
    from ml.train import mix_soft_targets

    def reading(path, images, temperature):  # a stand-in teacher: each image's own pixels
        return images.reshape(len(images), -1)[:, :NUM_CLASSES].astype(np.float32)

    monkeypatch.setattr(ml.train, "teacher_probs", reading)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)  # 20 EMNIST rows, then 10 font rows
    allowed = np.eye(NUM_CLASSES, dtype=bool)[rng.integers(0, NUM_CLASSES, 30)]
    flat = images.reshape(30, -1)[:, :NUM_CLASSES]
    config = TrainConfig(distill_from="teacher.keras")
    soft = mix_soft_targets(images, allowed, 20, 10, config)
    assert np.array_equal(soft[:20], flat[:20])
    assert np.array_equal(soft[20:], allowed[20:])  # their labels: the teacher never saw these letterforms
    config.distill_fonts_from_teacher = True
    assert np.array_equal(mix_soft_targets(images, allowed, 20, 10, config), flat)


def test_canvas_roundtrip_gives_the_same_images_in_one_or_two_processes():
    from ml.synth import canvas_roundtrip_parallel

    images = tiny_data(40).train_images
    one = canvas_roundtrip_parallel(images, seed=5, workers=1, chunk=4)
    two = canvas_roundtrip_parallel(images, seed=5, workers=2, chunk=4)
    assert np.array_equal(one, two)
    assert one.shape == images.shape and one.dtype == np.uint8


def test_a_run_can_start_from_an_existing_model(tmp_path):
    from ml.model import build_model

    start = build_model(width=4, dense=16)
    start.save(tmp_path / "start.keras")
    config = TrainConfig(
        epochs=1, batch_size=32, width=4, dense=16, init_from=str(tmp_path / "start.keras"), prior_correction=False
    )
    model = fit(tiny_data(), config, tmp_path / "w", log_stream=open("/dev/null", "w"))
    # Same architecture, weights moved from the start model's rather than a fresh initialisation.
    first_start, first_after = start.get_layer("logits").get_weights()[0], model.get_layer("logits").get_weights()[0]
    assert first_start.shape == first_after.shape
    assert 0 < np.abs(first_after - first_start).max() < 0.1  # a fresh init differs by ~0.5


def test_teacher_probs_take_the_teachers_prior_correction_back_out(tmp_path):
    from ml.evaluate import correct_prior, predict_probs
    from ml.model import build_model
    from ml.train import teacher_probs

    teacher = build_model(width=4, dense=8)
    images = tiny_data(40).train_images
    as_trained = predict_probs(teacher, images)
    trained = np.full(NUM_CLASSES, 1 / NUM_CLASSES)
    target = np.linspace(1, 3, NUM_CLASSES)
    target /= target.sum()
    correct_prior(teacher, trained, target)
    teacher.save(tmp_path / "teacher.keras")
    # Without a report the outputs are taken as they are (the correction stays in).
    assert not np.allclose(teacher_probs(tmp_path / "teacher.keras", images, 1.0), as_trained, atol=1e-4)
    (tmp_path / "teacher.report.json").write_text(
        json.dumps({"prior": {"trained": trained.tolist(), "target": target.tolist()}})
    )
    assert np.allclose(teacher_probs(tmp_path / "teacher.keras", images, 1.0), as_trained, atol=1e-4)
    softened = teacher_probs(tmp_path / "teacher.keras", images, 4.0)
    assert softened.max(axis=1).mean() < as_trained.max(axis=1).mean()  # a higher temperature is flatter


def test_a_student_distilled_with_full_weight_learns_the_teacher_not_the_labels(tmp_path):
    """With distill_weight 1 only the teacher teaches: a student given every label as class 0
    still sorts the three bars as the teacher does."""
    devnull = open("/dev/null", "w")
    data = tiny_data()
    # Trained long enough to be confident: a 3-epoch teacher's outputs are still nearly uniform.
    teacher = fit(data, TrainConfig(**{**CONFIG.__dict__, "epochs": 12}), tmp_path / "t", log_stream=devnull)
    teacher.save(tmp_path / "teacher.keras")
    wrong = np.zeros_like(data.train_allowed)
    wrong[:, 0] = True
    mislabelled = EmnistData(data.train_images, wrong, data.val_images, data.val_labels, {"_totals": {}})
    config = TrainConfig(
        epochs=3,
        batch_size=32,
        width=4,
        dense=16,
        learning_rate=5e-3,
        prior_correction=False,
        distill_from=str(tmp_path / "teacher.keras"),
        distill_weight=1.0,
        distill_temperature=1.0,
    )
    from ml.evaluate import predict_probs

    student = fit(mislabelled, config, tmp_path / "s", log_stream=devnull)
    said = predict_probs(teacher, data.val_images).argmax(1)
    assert (predict_probs(student, data.val_images).argmax(1) == said).mean() > 0.8
    # The same labels without the teacher: mostly class 0, right only where class 0 is.
    alone = fit(
        mislabelled, TrainConfig(**{**CONFIG.__dict__, "prior_correction": False}), tmp_path / "a", log_stream=devnull
    )
    assert (predict_probs(alone, data.val_images).argmax(1) == said).mean() < 0.6
