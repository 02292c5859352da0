"""Handwritten character recognition on EMNIST ByClass (62 classes).

Pure Python + NumPy + Keras: nothing here imports Django, so the package can be
trained, tested and benchmarked on its own. Importing ``ml`` is cheap; TensorFlow
is imported only by the modules that need it (``ml.model``, ``ml.train``,
``ml.inference``), and only when they are imported.

Orientation: every 28x28 array in this package is in EMNIST's own storage
orientation (transposed with respect to how a person reads it; ``img.T`` is
upright), uint8, ink high, background 0. See ``ml.data.to_upright``.
"""
