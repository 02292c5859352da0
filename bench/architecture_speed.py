"""Speed of candidate architectures on this CPU: what the 5,000 images/s batch target allows.

    python bench/architecture_speed.py

For each candidate: parameters, batch inference (1,024-image calls of a tf.function),
one-image latency, and training throughput (Keras fit, batch 256, no augmentation).
"``ml.model.build_model`` (width 32)" is the shipped shape; "vgg" candidates put two
convolutions in every stage.
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

from ml.model import build_model  # noqa: E402


def vgg(width: int) -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    x = layers.Rescaling(1 / 255)(inputs)
    for filters, convs, pool in ((width, 2, True), (2 * width, 2, True), (4 * width, 1, False)):
        for _ in range(convs):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        if pool:
            x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256)(x)
    x = layers.ReLU()(x)
    return keras.Model(inputs, layers.Dense(62)(x))


def measure(name: str, model: keras.Model) -> None:
    x = np.random.default_rng(0).integers(0, 255, (4096, 28, 28, 1)).astype("float32")
    call = tf.function(lambda z: model(z, training=False))
    call(x[:1024])
    t = time.perf_counter()
    for k in range(4):
        call(x[k * 1024 : (k + 1) * 1024]).numpy()
    batch = 4096 / (time.perf_counter() - t)
    call(x[:1])
    singles = []
    for k in range(100):
        t = time.perf_counter()
        call(x[k : k + 1]).numpy()
        singles.append(time.perf_counter() - t)
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False
    )
    y = np.random.default_rng(1).integers(0, 62, 4096)
    model.fit(x[:1024], y[:1024], batch_size=256, verbose=0)
    t = time.perf_counter()
    model.fit(x, y, batch_size=256, verbose=0)
    train = 4096 / (time.perf_counter() - t)
    print(
        f"{name:32s} params {model.count_params():>9,}  batch {batch:6.0f} img/s  "
        f"single {1000 * np.median(singles):.2f} ms  train {train:5.0f} img/s",
        flush=True,
    )


if __name__ == "__main__":
    measure("ml.model.build_model (width 32)", build_model(width=32))
    measure("ml.model.build_model (width 48)", build_model(width=48))
    measure("vgg (width 24)", vgg(24))
    measure("vgg (width 32)", vgg(32))
