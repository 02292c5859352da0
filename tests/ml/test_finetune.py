"""ml.finetune on tiny arrays and a tiny model: it learns the corrections, keeps the caller's
model untouched, mixes replay into every batch and keeps the class prior in check."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from ml.data import NUM_CLASSES, EmnistData  # noqa: E402
from ml.evaluate import predict_probs  # noqa: E402
from ml.finetune import FinetuneConfig, finetune, replay_arrays  # noqa: E402
from ml.model import build_model  # noqa: E402

# The mechanisms one at a time: the recipe's other parts (frozen convolutions, distillation,
# case merging, recalibration to the parent) off unless a test turns one on.
FAST = FinetuneConfig(
    batch_size=32,
    min_steps=40,
    max_steps=60,
    learning_rate=3e-3,
    augment_strength=0.0,
    calibration_rows=200,
    correction_share=0.25,
    freeze_convs=0,
    distill=0.0,
    merge_case_corrections=False,
    recalibration_target="labels",
    interpolate=1.0,
)


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is where a bright square sits: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    images = rng.integers(0, 30, size=(n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        r, c = divmod(int(label), 2)
        images[i, r * 14 + 2 : r * 14 + 12, c * 14 + 2 : c * 14 + 12] = 255
    return images, labels


@pytest.fixture
def tiny_model():
    keras.utils.set_random_seed(0)
    return build_model(width=4, dense=16)


def test_finetune_learns_corrections_and_leaves_the_given_model_alone(tiny_model):
    replay = blobs(600, seed=1)
    # The "user style": inverted blobs, labelled as class 61 (z) whatever the square's place.
    style = 255 - blobs(40, seed=2)[0]
    labels = np.full(len(style), 61)
    before = tiny_model.get_weights()
    result = finetune(tiny_model, style, labels, replay, FAST)
    assert all(np.array_equal(a, b) for a, b in zip(before, tiny_model.get_weights()))
    fresh = 255 - blobs(40, seed=3)[0]
    assert (predict_probs(result.model, fresh).argmax(1) == 61).mean() > 0.9
    assert result.summary["corrections"] == 40 and result.summary["steps"] >= FAST.min_steps
    assert result.summary["images_seen"] == result.summary["steps"] * FAST.batch_size


def test_replay_keeps_what_the_model_knew(tiny_model):
    replay = blobs(600, seed=1)
    config = FinetuneConfig(**{**FAST.__dict__, "min_steps": 120, "max_steps": 120, "correction_share": 0.5})
    base = finetune(tiny_model, *blobs(40, seed=4), replay, config).model  # learn the blobs first
    style = 255 - blobs(40, seed=2)[0]
    candidate = finetune(base, style, np.full(len(style), 61), replay, config).model
    images, labels = blobs(200, seed=5)
    assert (predict_probs(base, images).argmax(1) == labels).mean() > 0.9
    assert (predict_probs(candidate, images).argmax(1) == labels).mean() > 0.9


def test_prior_recalibration_undoes_the_corrections_class_skew(tiny_model):
    replay = blobs(600, seed=1)
    style = 255 - blobs(40, seed=2)[0]
    off = finetune(
        tiny_model, style, np.full(40, 61), replay, FinetuneConfig(**{**FAST.__dict__, "prior_recalibration": False})
    )
    on = finetune(tiny_model, style, np.full(40, 61), replay, FAST)
    images, _ = blobs(300, seed=6)
    skew_off = predict_probs(off.model, images)[:, 61].mean()
    skew_on = predict_probs(on.model, images)[:, 61].mean()
    assert skew_on < skew_off
    assert on.summary["prior_recalibration"]["rows"] == 120  # a fifth of the replay pool, capped


def test_replay_from_emnist_data_uses_exact_byclass_rows_only():
    images = np.zeros((4, 28, 28), np.uint8)
    allowed = np.zeros((4, NUM_CLASSES), bool)
    allowed[0, 1] = allowed[1, 2] = allowed[2, [10, 36]] = allowed[3, 3] = True
    data = EmnistData(
        images,
        allowed,
        images[:1],
        np.zeros(1, np.int64),
        train_split=np.array(["byclass", "byclass", "letters", "mnist"]),
    )
    _, replay_allowed, _ = replay_arrays(data)
    assert replay_allowed.argmax(1).tolist() == [1, 2]
    _, all_allowed, exact = replay_arrays(data, "all")
    assert len(all_allowed) == 4 and exact.tolist() == [True, True, False, False]


def test_finetune_refuses_bad_corrections(tiny_model):
    replay = blobs(100, seed=1)
    with pytest.raises(ValueError, match="uint8"):
        finetune(tiny_model, np.zeros((2, 28, 28), np.float32), np.zeros(2), replay, FAST)
    with pytest.raises(ValueError, match="K > 0"):
        finetune(tiny_model, np.zeros((0, 28, 28), np.uint8), np.zeros(0), replay, FAST)
    with pytest.raises(ValueError, match="labels must lie"):
        finetune(tiny_model, np.zeros((1, 28, 28), np.uint8), np.array([62]), replay, FAST)


def _weights_by_path(model):
    return {v.path: np.asarray(v) for v in model.weights}


def test_frozen_convolutions_keep_the_parents_filters_and_the_candidate_is_a_plain_model(tiny_model):
    replay = blobs(300, seed=1)
    config = FinetuneConfig(**{**FAST.__dict__, "freeze_convs": 2})
    candidate = finetune(tiny_model, 255 - blobs(40, seed=2)[0], np.full(40, 61), replay, config).model
    convs = [layer for layer in tiny_model.layers if isinstance(layer, keras.layers.Conv2D)]
    parent, new = _weights_by_path(tiny_model), _weights_by_path(candidate)
    for layer in convs[:2]:
        assert np.array_equal(parent[layer.kernel.path], new[layer.kernel.path])
    assert not np.array_equal(parent[convs[2].kernel.path], new[convs[2].kernel.path])
    assert all(layer.trainable for layer in candidate.layers)


def test_distillation_keeps_the_parents_answers_where_replay_labels_disagree(tiny_model):
    base = finetune(
        tiny_model,
        *blobs(40, seed=4),
        blobs(600, seed=1),
        FinetuneConfig(**{**FAST.__dict__, "min_steps": 120, "max_steps": 120}),
    ).model
    images, labels = blobs(600, seed=1)
    wrong = (labels + 1) % 4  # replay labels that contradict what the parent (rightly) answers
    style = 255 - blobs(40, seed=2)[0]
    config = {**FAST.__dict__, "min_steps": 120, "max_steps": 120, "correction_share": 0.25}
    by_labels = finetune(base, style, np.full(40, 61), (images, wrong), FinetuneConfig(**config)).model
    by_parent = finetune(
        base, style, np.full(40, 61), (images, wrong), FinetuneConfig(**{**config, "distill": 1.0})
    ).model
    test_images, test_labels = blobs(200, seed=5)
    kept = (predict_probs(by_parent, test_images).argmax(1) == test_labels).mean()
    misled = (predict_probs(by_labels, test_images).argmax(1) == test_labels).mean()
    assert kept > 0.9 and misled < kept - 0.1, (kept, misled)


def _ten_step_candidate(tiny_model, **overrides) -> dict:
    """Weights by path of a 10-step fine-tune of ``tiny_model`` on the style, no recalibration."""
    replay, style = blobs(300, seed=1), 255 - blobs(40, seed=2)[0]
    config = FinetuneConfig(
        **{**FAST.__dict__, "prior_recalibration": False, "min_steps": 10, "max_steps": 10, **overrides}
    )
    return _weights_by_path(finetune(tiny_model, style, np.full(40, 61), replay, config).model)


def test_the_pull_to_the_parent_moves_weights_back_after_every_step(tiny_model):
    parent = _weights_by_path(tiny_model)
    free = _ten_step_candidate(tiny_model, pull_to_parent=0.0)
    held = _ten_step_candidate(tiny_model, pull_to_parent=1.0)  # all the way back after each step
    paths = [v.path for v in tiny_model.trainable_weights]
    assert all(np.allclose(held[p], parent[p]) for p in paths)
    assert not all(np.allclose(free[p], parent[p]) for p in paths)


def test_interpolation_keeps_the_chosen_share_of_the_way_from_the_parent(tiny_model):
    parent = _weights_by_path(tiny_model)
    # The same seed, but CPU training is not bit-exact: compare distances, not weights.
    full = _ten_step_candidate(tiny_model, interpolate=1.0)
    half = _ten_step_candidate(tiny_model, interpolate=0.5)
    paths = [v.path for v in tiny_model.trainable_weights]

    def distance(weights):
        return np.sqrt(sum(float(((weights[p] - parent[p]) ** 2).sum()) for p in paths))

    assert distance(full) > 0
    assert 0.4 < distance(half) / distance(full) < 0.6, (distance(half), distance(full))


def test_recalibration_can_match_the_parents_mean_prediction(tiny_model):
    from ml.finetune import recalibrate_prior

    images, labels = blobs(300, seed=1)
    allowed = np.eye(NUM_CLASSES, dtype=bool)[labels]
    target = np.full(NUM_CLASSES, 1.0)
    target[:4] = 50.0
    recalibrate_prior(tiny_model, images, allowed, target)
    mean = predict_probs(tiny_model, images).mean(axis=0)
    # One logit-adjustment step: the four present classes move towards the target's equal shares.
    assert np.ptp(mean[:4]) < 0.1


def test_case_merged_corrections_teach_either_case(tiny_model):
    from ml.data import CLASSES
    from ml.finetune import case_merged_masks

    masks = case_merged_masks()
    assert [CLASSES[c] for c in np.flatnonzero(masks[CLASSES.index("o")])] == ["O", "o"]
    assert [CLASSES[c] for c in np.flatnonzero(masks[CLASSES.index("a")])] == ["a"]
    style = 255 - blobs(40, seed=2)[0]
    merged = finetune(
        tiny_model,
        style,
        np.full(40, 61),
        blobs(300, seed=1),
        FinetuneConfig(**{**FAST.__dict__, "merge_case_corrections": True}),
    ).model
    probs = predict_probs(merged, 255 - blobs(40, seed=3)[0])
    assert (probs[:, [35, 61]].sum(axis=1) > 0.5).mean() > 0.9  # Z or z


def test_the_default_recipe_learns_the_style_on_a_tiny_model(tiny_model):
    defaults = FinetuneConfig()
    config = FinetuneConfig(
        **{
            **defaults.__dict__,
            "batch_size": 32,
            "min_steps": 60,
            "max_steps": 60,
            "learning_rate": 3e-3,
            "calibration_rows": 200,
        }
    )
    result = finetune(tiny_model, 255 - blobs(40, seed=2)[0], np.full(40, 36), blobs(600, seed=1), config)
    assert (
        predict_probs(result.model, 255 - blobs(40, seed=3)[0]).argmax(1) == 36
    ).mean() > 0.9  # "a": not a case-merged letter
    assert result.summary["prior_recalibration"]["target"] == "parent"


def test_bad_recipe_values_are_refused(tiny_model):
    replay = blobs(100, seed=1)
    with pytest.raises(ValueError, match="replay must be"):
        finetune(tiny_model, *blobs(4, seed=2), replay, FinetuneConfig(**{**FAST.__dict__, "replay": "some"}))
    with pytest.raises(ValueError, match="interpolate"):
        finetune(tiny_model, *blobs(4, seed=2), replay, FinetuneConfig(**{**FAST.__dict__, "interpolate": 0.0}))
    with pytest.raises(ValueError, match="recalibration_target"):
        finetune(
            tiny_model, *blobs(4, seed=2), replay, FinetuneConfig(**{**FAST.__dict__, "recalibration_target": "x"})
        )
