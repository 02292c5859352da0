"""The CNN, its augmentation layer, its loss, and loading a saved one.

The architecture was picked by measurement on this 2-core CPU (see ``ml/MODEL.md``):
the widest network that still classifies a 1,024-image batch at over 5,000 images/s
and one image in under 2 ms, trained for the most epochs an hour allows.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
from keras import layers, ops

from ml.data import IMAGE_SIZE, NUM_CLASSES


def build_model(width: int = 32, dense: int = 256, dropout: float = 0.3) -> keras.Model:
    """The 62-class classifier.

    Args:
        width: filters of the first convolution; later stages use 2x and 4x.
        dense: units of the hidden fully connected layer.
        dropout: dropout rate before the output layer.

    Returns:
        A model mapping float32 (B, 28, 28, 1) raw pixel values in 0..255 (EMNIST
        orientation) to float32 (B, 62) logits.
    """
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    x = layers.Rescaling(1 / 255)(inputs)
    for filters, convs in ((width, 1), (2 * width, 2), (4 * width, 1)):
        for _ in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
        if filters != 4 * width:
            x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, outputs, name="emnist_cnn")


def load_model(path: str | Path) -> keras.Model:
    """A saved ``.keras`` (or legacy ``.h5``) model, uncompiled: for prediction or fine-tuning.

    Loading through this module registers ``RandomDistortion``, which a saved model may hold.
    Raises whatever Keras raises for a missing or malformed file.
    """
    return keras.models.load_model(Path(path), compile=False)


@keras.saving.register_keras_serializable(package="ml")
class RandomDistortion(layers.Layer):
    """Per-image random affine (rotation, scale, shear, shift) plus elastic distortion.

    One resampling per image: the affine map and a smooth random displacement field
    (coarse Gaussian noise upsampled bilinearly, as in Simard et al. 2003) are combined
    into one set of sampling coordinates. Active only when ``training=True``.
    Input and output: float32 (B, 28, 28, 1).
    """

    def __init__(
        self,
        rotation_deg: float = 12.0,
        scale: tuple[float, float] = (0.85, 1.12),
        shear: float = 0.2,
        shift: float = 2.5,
        elastic_alpha: float = 1.2,
        elastic_grid: int = 4,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.rotation_deg, self.scale, self.shear, self.shift = rotation_deg, tuple(scale), shear, shift
        self.elastic_alpha, self.elastic_grid, self.seed = elastic_alpha, elastic_grid, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @classmethod
    def scaled(cls, strength: float, seed: int | None = None) -> RandomDistortion:
        """The default distortion ranges multiplied by ``strength`` (0 = none)."""
        return cls(
            rotation_deg=12.0 * strength,
            scale=(1 - 0.15 * strength, 1 + 0.12 * strength),
            shear=0.2 * strength,
            shift=2.5 * strength,
            elastic_alpha=1.2 * strength,
            seed=seed,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "rotation_deg": self.rotation_deg,
            "scale": self.scale,
            "shear": self.shear,
            "shift": self.shift,
            "elastic_alpha": self.elastic_alpha,
            "elastic_grid": self.elastic_grid,
            "seed": self.seed,
        }

    def _uniform(self, batch, low, high):
        return keras.random.uniform((batch,), low, high, seed=self.seed_generator)

    def call(self, images, training=None):
        if not training:
            return images
        batch = ops.shape(images)[0]
        size = IMAGE_SIZE
        angle = self._uniform(batch, -1.0, 1.0) * (self.rotation_deg * math.pi / 180)
        scale = self._uniform(batch, *self.scale)
        shear = self._uniform(batch, -self.shear, self.shear)
        tx = self._uniform(batch, -self.shift, self.shift)
        ty = self._uniform(batch, -self.shift, self.shift)
        # Inverse map: output pixel (r, c), centred -> input position.
        cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
        a00, a01 = cos, -sin + shear * cos
        a10, a11 = sin, cos + shear * sin
        centre = (size - 1) / 2
        grid = ops.arange(size, dtype="float32") - centre
        rr = ops.reshape(grid, (1, size, 1))
        cc = ops.reshape(grid, (1, 1, size))

        def per_image(v):
            return ops.reshape(v, (-1, 1, 1))

        rows = per_image(a00) * rr + per_image(a01) * cc + centre + per_image(ty)
        cols = per_image(a10) * rr + per_image(a11) * cc + centre + per_image(tx)
        if self.elastic_alpha > 0:
            g = self.elastic_grid
            noise = keras.random.normal((batch, g, g, 2), seed=self.seed_generator) * self.elastic_alpha
            field = ops.image.resize(noise, (size, size), interpolation="bilinear")
            rows = rows + field[..., 0]
            cols = cols + field[..., 1]
        return ops.expand_dims(_bilinear_sample(images[..., 0], rows, cols), -1)

    def compute_output_shape(self, input_shape):
        return input_shape


def _bilinear_sample(images, rows, cols):
    """Sample (B, H, W) ``images`` at float positions ``rows``/``cols`` (B, H, W); zero outside.

    Written with gathers on the flattened batch because ``ops.image.map_coordinates``
    cannot take a batch of unknown size on the TensorFlow backend.
    """
    shape = ops.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    flat = ops.reshape(images, (-1,))
    base = ops.reshape(ops.arange(batch) * (height * width), (-1, 1, 1))
    r0, c0 = ops.floor(rows), ops.floor(cols)
    out = 0.0
    for dr in (0, 1):
        for dc in (0, 1):
            r, c = r0 + dr, c0 + dc
            weight = (1 - ops.abs(rows - r)) * (1 - ops.abs(cols - c))
            inside = (
                (r >= 0) & (r <= ops.cast(height - 1, "float32")) & (c >= 0) & (c <= ops.cast(width - 1, "float32"))
            )
            ri = ops.cast(ops.clip(r, 0, height - 1), "int32")
            ci = ops.cast(ops.clip(c, 0, width - 1), "int32")
            values = ops.take(flat, base + ri * width + ci)
            out = out + ops.where(inside, weight * values, 0.0)
    return out


def allowed_set_loss(allowed, logits):
    """Negative log of the probability mass the model puts on the allowed classes.

    For a one-hot ``allowed`` this is ordinary cross-entropy; for a merged label (say
    "C or c") the model is free to split the mass between the two, so ByMerge and
    Letters rows teach shape without teaching a wrong case.

    Args:
        allowed: (B, 62) 0/1 mask of the classes the label allows (at least one).
        logits: (B, 62) float logits.

    Returns:
        (B,) float32 loss per sample.
    """
    allowed = ops.cast(allowed, logits.dtype)
    masked = ops.where(allowed > 0, logits, ops.full_like(logits, -1e9))
    return ops.logsumexp(logits, axis=-1) - ops.logsumexp(masked, axis=-1)


def allowed_set_accuracy(allowed, logits):
    """1.0 where the arg-max class is one of the allowed classes, else 0.0; shape (B,)."""
    top = ops.argmax(logits, axis=-1)
    hit = ops.take_along_axis(ops.cast(allowed, "float32"), ops.expand_dims(top, -1), axis=-1)
    return ops.squeeze(hit, -1)


def distillation_loss(weight: float, temperature: float):
    """A loss for targets ``[allowed | teacher probabilities]`` (B, 124): knowledge distillation.

    ``(1 - weight) * allowed_set_loss`` on the label, plus ``weight * T^2 *`` the
    cross-entropy between the teacher's and the student's softmax at temperature ``T``
    (Hinton et al. 2015; the T^2 keeps the soft part's gradients at the hard part's
    scale). The teacher's probabilities come in already softened at ``T``; they tell a
    smaller network which case a merged-label row (ByMerge, Letters) most likely is and how
    ambiguous each glyph looks, which hard labels cannot.
    """

    def loss(targets, logits):
        allowed, soft = targets[:, :NUM_CLASSES], targets[:, NUM_CLASSES:]
        hard = allowed_set_loss(allowed, logits)
        student = ops.log_softmax(logits / temperature, axis=-1)
        distilled = -ops.sum(ops.cast(soft, logits.dtype) * student, axis=-1) * temperature**2
        return (1 - weight) * hard + weight * distilled

    loss.__name__ = "distillation_loss"
    return loss


def distillation_accuracy(targets, logits):
    """``allowed_set_accuracy`` on the label half of distillation targets."""
    return allowed_set_accuracy(targets[:, :NUM_CLASSES], logits)
