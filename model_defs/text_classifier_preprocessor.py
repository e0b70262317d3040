"""`TextClassifierPreprocessor`: raw strings (one or more segments) -> packed token ids;
labels pass through."""

import keras

from model_defs.packing_preprocessor import PackingPreprocessor


class TextClassifierPreprocessor(PackingPreprocessor):
    """Tokenize and pack `[start] a [sep] b [end]` to `sequence_length`.

    Args:
        tokenizer: the model's tokenizer.
        sequence_length: int, packed length.
        truncate: "round_robin" or "waterfall", how segments are cut to fit.

    Call: `x` is a string, a list of strings, or a tuple of such (segments); `y` and
    `sample_weight` pass through. Returns keras-hub's packing: `x` alone, `(x, y)` or
    `(x, y, sample_weight)`.
    """

    config_keys = ("sequence_length", "truncate")

    @classmethod
    def defaults(cls):
        return {"sequence_length": 512, "truncate": "round_robin"}

    def __call__(self, x, y=None, sample_weight=None):
        return keras.utils.pack_x_y_sample_weight(self.pack(x), y, sample_weight)
