"""Validation of exported graphs: ONNX Runtime against the Keras model they came from.

A spec's `validate` runs both on fresh inputs (other shapes than anything traced) and
feeds every pair of outputs to one `Comparison`, which keeps the worst difference per
output and where it happened. The verdict is computed from those numbers (`verdict`);
the exporter publishes nothing when it is False.
"""

from __future__ import annotations

import numpy as np

from exporter.errors import ValidationError

__all__ = ["Comparison", "ValidationError", "compare", "open_session", "verdict"]


def open_session(path):
    """An ONNX Runtime CPU session for validation and calibration. Prepacking is off: it
    would copy every MatMul weight into ONNX Runtime's packed layout, a second copy of the
    model for a handful of runs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_prepacking", "1")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def compare(expected: dict, actual: dict, context: str = "") -> dict:
    """Max abs diff per output of `expected` (Keras) against `actual` (ONNX Runtime).
    A shape mismatch is a ValidationError at once: no tolerance makes it right."""
    diffs = {}
    for name, want in expected.items():
        want = np.asarray(want, dtype="float32")
        got = np.asarray(actual[name], dtype="float32")
        if want.shape != got.shape:
            raise ValidationError(f"{context}output {name!r}: ONNX shape {got.shape}, "
                                  f"Keras shape {want.shape}")
        diffs[name] = float(np.max(np.abs(want - got))) if want.size else 0.0
    return diffs


def verdict(max_abs_diff: dict, atol: float, greedy_tokens_equal: bool = True) -> bool:
    """Whether an export passes: every output within `atol` of Keras (NaN fails) and, for
    generative models, greedy decoding picking Keras' tokens."""
    return bool(greedy_tokens_equal) and all(d <= atol for d in max_abs_diff.values())


class Comparison:
    """The running result of a validation: worst diff per output group, where it was seen,
    and whether greedy decoding followed Keras.

    Args:
        atol: the tolerance the verdict uses.
        group: maps an output name to the key it is reported under (e.g. every
            `present.*` KV tensor under "present"); default the name itself.
    """

    def __init__(self, atol, group=None):
        self.atol = float(atol)
        self.group = group or (lambda name: name)
        self.max_abs_diff = {}
        self._where = {}
        self.greedy_ok = True
        self._greedy_failure = None

    def add(self, expected, actual, context=""):
        """Compare one run's outputs; returns their diffs (per output name)."""
        diffs = compare(expected, actual, context)
        for name, diff in diffs.items():
            key = self.group(name)
            old = self.max_abs_diff.get(key, 0.0)
            if np.isnan(old):
                continue  # a NaN stays: a later finite diff in the group must not hide it
            if np.isnan(diff) or diff > old:
                self.max_abs_diff[key] = diff
                self._where[key] = (context, name)
        return diffs

    def greedy(self, keras_logits, onnx_logits, context=""):
        """Greedy choice on (batch, vocab) logits. Returns whether every row picks the same
        token; a different pick only fails the verdict where Keras has no near-tie (its two
        candidates more than `atol` apart)."""
        ours, theirs = np.argmax(keras_logits, -1), np.argmax(onnx_logits, -1)
        for row in np.flatnonzero(ours != theirs):
            gap = keras_logits[row, ours[row]] - keras_logits[row, theirs[row]]
            if gap > self.atol and self.greedy_ok:
                self.greedy_ok = False
                self._greedy_failure = (f"{context}greedy token differs from Keras in row "
                                        f"{row} ({theirs[row]} vs {ours[row]}, logit gap "
                                        f"{gap:.3g})")
        return bool((ours == theirs).all())

    @property
    def passed(self):
        return verdict(self.max_abs_diff, self.atol, self.greedy_ok)

    def failure(self):
        """Why the verdict is False (one line), or None when it passed."""
        if self.passed:
            return None
        bad = [k for k, d in self.max_abs_diff.items() if not d <= self.atol]
        if bad:
            key = max(bad, key=lambda k: np.nan_to_num(self.max_abs_diff[k], nan=np.inf))
            context, name = self._where[key]
            return (f"{context}output {name!r} differs from Keras by "
                    f"{self.max_abs_diff[key]:.3g} > atol {self.atol:g}")
        return self._greedy_failure

    def summary(self):
        """The progress line's account: each output's worst diff."""
        return ", ".join(f"{k} max abs diff {v:.2g}" for k, v in self.max_abs_diff.items())

    def check(self):
        """Raise ValidationError unless the verdict passed."""
        message = self.failure()
        if message is not None:
            raise ValidationError(message)

    def entry(self, cases):
        """The manifest's validation block: tolerance, worst diffs, the cases, verdict."""
        return {"atol": self.atol, "max_abs_diff": dict(self.max_abs_diff), "cases": cases,
                "passed": self.passed}
