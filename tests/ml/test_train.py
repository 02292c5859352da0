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
    from ml.model import build_model
    from ml.train import correct_prior

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
