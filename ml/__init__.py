"""Handwritten character recognition on EMNIST ByClass (62 classes).

Pure Python + NumPy + Keras: nothing here imports Django, so the package can be
trained, tested and benchmarked on its own. Importing ``ml`` is cheap; TensorFlow
is imported only where it is needed: on import by ``ml.model``, ``ml.train`` and
``ml.finetune``; by ``ml.inference.load_predictor`` and ``ml.evaluate.keras_probs`` only
when called, so that the web can import those modules.

Modules, one concern each: ``data`` (loading EMNIST), ``preprocess`` (an image -> the
model's input), ``morphology`` (dilation, erosion, stroke width), ``segment`` (a word ->
its characters, with ``strokes``, ``components`` and ``pieces``), ``synth`` (canvas-like
drawings for tests and benchmarks), ``model`` (the network), ``evaluate`` (probabilities,
scores, prior correction), ``train`` and ``finetune`` (the training CLIs), ``inference``
(serving).

Orientation: every 28x28 array in this package is in EMNIST's own storage
orientation (transposed with respect to how a person reads it; ``img.T`` is
upright), uint8, ink high, background 0. See ``ml.data.to_upright``.
"""
