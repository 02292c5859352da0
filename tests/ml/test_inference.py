import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ml.errors import BlankImageError, InvalidImageError, ModelFileError
from ml.inference import load_predictor
from tests.ml.conftest import REPO


@pytest.fixture(scope="module")
def predictor(tiny_model_path):
    return load_predictor(tiny_model_path)


def an_image(seed=0):
    img = np.zeros((28, 28), dtype=np.uint8)
    img[4:24, 10 + seed % 5 : 14 + seed % 5] = 255
    return img


def test_it_predicts_top_k_labels_with_probabilities_best_first(predictor):
    top = predictor.predict(an_image(), k=5)
    assert len(top) == 5
    labels, probs = zip(*top)
    assert len(set(labels)) == 5 and all(isinstance(label, str) and len(label) == 1 for label in labels)
    assert list(probs) == sorted(probs, reverse=True)
    assert 0 < sum(probs) <= 1 + 1e-6


def test_the_batch_path_gives_the_same_answers_as_one_at_a_time(predictor):
    images = np.stack([an_image(s) for s in range(7)])
    batch = predictor.predict_batch(images, k=3)
    for img, top in zip(images, batch):
        single = predictor.predict(img, k=3)
        assert [label for label, _ in single] == [label for label, _ in top]
        assert np.allclose([p for _, p in single], [p for _, p in top], atol=1e-5)


def test_single_images_take_the_lite_path_and_agree_with_keras(predictor):
    assert predictor.single_path == "tflite"
    images = np.stack([an_image(s) for s in range(5)])
    keras_probs = predictor.probabilities(images)
    for image, expected in zip(images, keras_probs):
        single = dict(predictor.predict(image, k=62))
        assert np.allclose([single[c] for c in predictor.classes], expected, atol=1e-5)


def test_it_serves_single_images_with_tf_function_when_the_lite_model_cannot_be_had(tiny_model_path, monkeypatch):
    import ml.inference

    monkeypatch.setattr(ml.inference, "_lite_model", lambda model: None)
    fallback = load_predictor(tiny_model_path)
    assert fallback.single_path == "tf.function" and fallback.batch_path == "tf.function"
    assert len(fallback.predict(an_image(), k=3)) == 3
    assert len(fallback.predict_batch(np.stack([an_image(s) for s in range(70)]), k=3)) == 70


def test_it_does_not_serve_a_lite_model_that_disagrees_with_keras(tiny_model_path, monkeypatch):
    import ml.inference

    monkeypatch.setattr(ml.inference, "LITE_TOLERANCE", -1.0)  # no conversion can pass
    predictor = load_predictor(tiny_model_path)
    assert predictor.single_path == "tf.function" and predictor.batch_path == "tf.function"


def test_batches_go_through_the_lite_batch_interpreter_and_agree_with_tf_function(predictor):
    import ml.inference

    assert predictor.batch_path == "tflite"
    # Two full chunks of the batch interpreter and a remainder for the tf.function.
    images = np.stack([an_image(s) for s in range(2 * ml.inference.LITE_BATCH + 5)])
    expected = predictor._call(images.astype(np.float32)[..., None]).numpy()
    assert np.allclose(predictor.probabilities(images), expected, atol=1e-5)


def test_full_probabilities_sum_to_one(predictor):
    probs = predictor.probabilities(np.stack([an_image(s) for s in range(3)]))
    assert probs.shape == (3, 62)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_bad_inputs_raise_clear_errors(predictor):
    with pytest.raises(InvalidImageError):
        predictor.predict(np.zeros((27, 28), dtype=np.uint8))
    with pytest.raises(BlankImageError):
        predictor.predict(np.zeros((28, 28), dtype=np.uint8))
    with pytest.raises(InvalidImageError):
        predictor.predict_batch(np.zeros((2, 28), dtype=np.uint8))
    with pytest.raises(InvalidImageError):
        predictor.predict_batch(np.full((2, 28, 28), -5.0))
    with pytest.raises(ValueError):
        predictor.predict(an_image(), k=0)


def test_a_missing_or_corrupt_model_file_raises_model_file_error(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_predictor(tmp_path / "nope.keras")
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(ModelFileError, match="could not load"):
        load_predictor(bad)


def test_a_model_with_the_wrong_outputs_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.save(tmp_path / "ten.keras")
    with pytest.raises(ModelFileError, match="62 classes"):
        load_predictor(tmp_path / "ten.keras")


def test_importing_inference_does_not_start_tensorflow_and_a_forked_child_can_load_and_predict(tiny_model_path):
    # In a fresh interpreter: the parent imports ml.inference (as a Celery parent would),
    # forks, and the child loads the model and predicts. The parent's copy refuses to be
    # used in the child.
    script = textwrap.dedent(
        f"""
        import multiprocessing as mp, sys
        import numpy as np
        import ml.inference
        assert "tensorflow" not in sys.modules, "ml.inference imported TensorFlow"

        def child(queue):
            p = ml.inference.load_predictor({str(tiny_model_path)!r})
            img = np.zeros((28, 28), np.uint8); img[5:20, 12] = 255
            queue.put(len(p.predict(img, k=3)))

        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=child, args=(queue,))
        proc.start(); proc.join(120)
        print("child", proc.exitcode, queue.get(timeout=5))

        parent = ml.inference.load_predictor({str(tiny_model_path)!r})
        def misuse(queue):
            try:
                parent.predict(np.ones((28, 28), np.uint8))
                queue.put("ran")
            except RuntimeError as exc:
                queue.put("refused")
        proc = ctx.Process(target=misuse, args=(queue,))
        proc.start(); proc.join(120)
        print("misuse", queue.get(timeout=5))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "child 0 3" in out.stdout
    assert "misuse refused" in out.stdout


def test_the_head_weights_turn_the_unnormalised_embedding_into_the_probabilities(predictor):
    """ml.writer_layer relies on probabilities = softmax(features @ kernel + bias)."""
    from ml.inference import _with_embedding

    images = np.stack([an_image(s) for s in range(4)])
    _, features = _with_embedding(predictor._model)(images.astype(np.float32)[..., None], training=False)
    kernel, bias = predictor.head_weights()
    logits = np.asarray(features) @ kernel + bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert kernel.shape == (predictor.embedding_size, 62) and bias.shape == (62,)
    assert np.allclose(predictor.probabilities(images), expected, atol=1e-5)
