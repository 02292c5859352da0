import numpy as np
import pytest

from ml.data import CLASSES, NUM_CLASSES
from ml.evaluate import evaluate_probs, expected_calibration_error, lookalike_groups, softmax


def test_allowed_set_loss_is_cross_entropy_for_an_exact_label_and_summed_mass_for_a_merged_one():
    from ml.model import allowed_set_loss

    logits = np.random.default_rng(0).normal(size=(2, NUM_CLASSES)).astype(np.float32)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    allowed = np.zeros((2, NUM_CLASSES), dtype=np.float32)
    allowed[0, 5] = 1
    allowed[1, [CLASSES.index("C"), CLASSES.index("c")]] = 1
    loss = np.asarray(allowed_set_loss(allowed, logits))
    assert loss[0] == pytest.approx(-np.log(probs[0, 5]), rel=1e-5)
    assert loss[1] == pytest.approx(-np.log(probs[1, 12] + probs[1, 38]), rel=1e-5)


def test_distillation_loss_mixes_the_label_loss_and_the_softened_teacher_cross_entropy():
    from ml.model import allowed_set_loss, distillation_loss

    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, NUM_CLASSES)).astype(np.float32)
    teacher = rng.normal(size=(3, NUM_CLASSES))
    soft = np.exp(teacher / 2) / np.exp(teacher / 2).sum(axis=1, keepdims=True)
    allowed = np.eye(NUM_CLASSES, dtype=np.float32)[[4, 9, 30]]
    targets = np.concatenate([allowed, soft], axis=1).astype(np.float32)
    student = logits / 2 - np.log(np.exp(logits / 2).sum(axis=1, keepdims=True))
    expected_soft = -(soft * student).sum(axis=1) * 4
    hard = np.asarray(allowed_set_loss(allowed, logits))

    loss = np.asarray(distillation_loss(0.7, 2.0)(targets, logits))
    assert loss == pytest.approx(0.3 * hard + 0.7 * expected_soft, rel=1e-4)
    # Weight 0 is the label loss alone, whatever the teacher says.
    assert np.asarray(distillation_loss(0.0, 2.0)(targets, logits)) == pytest.approx(hard, rel=1e-5)


def test_allowed_set_accuracy_counts_any_allowed_class_as_right():
    from ml.model import allowed_set_accuracy

    logits = np.zeros((2, NUM_CLASSES), dtype=np.float32)
    logits[0, 38] = logits[1, 3] = 5  # predicts "c", then "3"
    allowed = np.zeros((2, NUM_CLASSES), dtype=np.float32)
    allowed[:, [12, 38]] = 1  # both labelled "C or c"
    assert np.asarray(allowed_set_accuracy(allowed, logits)).tolist() == [1.0, 0.0]


def test_augmentation_changes_images_only_in_training_and_keeps_their_shape():
    from ml.model import RandomDistortion

    images = np.zeros((4, 28, 28, 1), dtype=np.float32)
    images[:, 6:22, 12:16] = 255
    layer = RandomDistortion(seed=0)
    assert np.array_equal(np.asarray(layer(images, training=False)), images)
    out = np.asarray(layer(images, training=True))
    assert out.shape == images.shape
    assert not np.allclose(out, images)
    assert 0.5 < out.sum() / images.sum() < 1.6  # moved and bent, not erased or smeared
    assert not np.allclose(out[0], out[1])  # each image gets its own distortion


def test_the_model_maps_28x28_pixels_to_62_logits():
    from ml.model import build_model

    model = build_model(width=4, dense=8)
    assert model.input_shape == (None, 28, 28, 1)
    assert model(np.zeros((3, 28, 28, 1), np.float32)).shape == (3, NUM_CLASSES)


def test_evaluation_metrics_on_a_hand_made_case():
    labels = np.array([0, 0, 24, 10])  # 0, 0, O, A
    probs = np.full((4, NUM_CLASSES), 0.0)
    probs[0, 0] = 1.0  # right
    probs[1, 24], probs[1, 0] = 0.6, 0.4  # says O for 0: wrong, but a look-alike and in the top 3
    probs[2, 24] = 1.0  # right
    probs[3, 11], probs[3, 12], probs[3, 13], probs[3, 10] = 0.4, 0.3, 0.2, 0.1  # A is 4th
    report = evaluate_probs(probs, labels)
    assert report["top1"] == 0.5
    assert report["top3"] == 0.75
    assert report["top5"] == 1.0
    assert report["lookalike_top1"] == 0.75
    assert report["confused_pairs"][0]["count"] == 1
    assert {(p["true"], p["predicted"]) for p in report["confused_pairs"]} == {("0", "O"), ("A", "B")}
    assert report["per_class"]["O"] == {"precision": 0.5, "recall": 1.0, "support": 1}
    assert np.array(report["confusion_matrix"]).sum() == 4


def test_calibration_error_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident():
    labels = np.zeros(100, dtype=int)
    probs = np.zeros((100, NUM_CLASSES))
    probs[:, 0] = 1.0
    assert expected_calibration_error(probs, labels) == pytest.approx(0.0)
    labels[:50] = 1  # half wrong at full confidence
    assert expected_calibration_error(probs, labels) == pytest.approx(0.5)


def test_lookalike_groups_join_o_zero_and_the_case_pairs():
    groups = lookalike_groups()
    index = CLASSES.index
    assert groups[index("0")] == groups[index("O")] == groups[index("o")]
    assert groups[index("1")] == groups[index("l")] == groups[index("I")]
    assert groups[index("s")] == groups[index("S")]
    assert groups[index("a")] != groups[index("A")]
    assert groups[index("8")] != groups[index("B")]


def test_evaluation_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        evaluate_probs(np.zeros((2, 10)), np.zeros(2, dtype=int))


def test_softmax_works_over_the_last_axis_in_the_dtype_asked_for_even_for_huge_logits():
    # One softmax serves the scores (float64, (N, 62)) and the Lite serving path (float32, (62,)).
    logits = np.array([[1000.0, 1000.0, -1000.0], [0.0, np.log(3.0), -np.inf]])
    probs = softmax(logits)
    assert probs.dtype == np.float64
    np.testing.assert_allclose(probs, [[0.5, 0.5, 0.0], [0.25, 0.75, 0.0]], atol=1e-12)
    single = softmax(np.array([2.0, 2.0, 2.0, 2.0], dtype=np.float32), dtype=np.float32)
    assert single.dtype == np.float32 and single.shape == (4,)
    np.testing.assert_allclose(single, 0.25)
