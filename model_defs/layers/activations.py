"""Activations written so they trace to ONNX operators ONNX Runtime runs.

TensorFlow 2.21 lowers `tf.nn.gelu(approximate=False)` to `Erfc`, which tf2onnx cannot
convert. Writing exact GELU with `erf` gives the same values (to float rounding) and maps
to ONNX `Erf`.
"""

import math

from keras import ops


def gelu(x):
    """Exact GELU, x * Phi(x).

    Written as `0.5 * x * (1 + erf(x / sqrt(2)))` with a division: that is the pattern ONNX
    Runtime fuses into one Gelu kernel (with `x * (1 / sqrt(2))` it keeps five nodes).
    """
    return 0.5 * x * (1.0 + ops.erf(x / math.sqrt(2.0)))


def gelu_approximate(x):
    """The tanh approximation of GELU (keras-hub's BERT layers use it)."""
    c = math.sqrt(2.0 / math.pi)
    return 0.5 * x * (1.0 + ops.tanh(c * (x + 0.044715 * ops.power(x, 3))))


def relu(x):
    return ops.relu(x)


def tanh(x):
    return ops.tanh(x)


# Config names -> functions. The names are the ones keras-hub and Transformers configs use
# ("gelu" is exact in both, "gelu_new"/"gelu_pytorch_tanh" are the tanh approximation).
ACTIVATIONS = {
    "gelu": gelu,
    "gelu_approximate": gelu_approximate,
    "gelu_new": gelu_approximate,
    "gelu_pytorch_tanh": gelu_approximate,
    "relu": relu,
    "tanh": tanh,
}


def get_activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]
