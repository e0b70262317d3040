"""The quality gate of quantized exports: how close ONNX Runtime stays to the float32 Keras
model, in the measures that matter to a user, instead of a max abs diff (which int8
weights exceed by design).

Over the validation cases of the spec (the same inputs and decode as for a float export):
- cosine similarity of every float output to Keras', one value per row (a sequence: its
  whole output, e.g. all its token vectors), mean and minimum over all rows;
- for logits (outputs named `logits`, last axis the classes or vocabulary): top-1
  agreement (ONNX Runtime's best is Keras' best, or a near-tie of it: `TIE`) and top-5
  agreement (Keras' best, or a near-tie, is among ONNX Runtime's five best), one
  prediction per vector;
- for generation: greedy-token agreement, ONNX Runtime's pick against Keras' at every
  step of the spec's decode (both fed Keras' tokens, so one miss does not derail the
  rest; near-ties agree as for top-1).
Each is checked against its limit (`GateLimits`, the CLI's --min-* flags); the numbers
and the limits go into the manifest's validation block.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from exporter.errors import ExportError, ValidationError
from exporter.validate import compare

# The defaults of each --quantize mode. int8's hold with margin on the real
# all-MiniLM-L6-v2 (on the validation inputs: cosine mean 0.997, min 0.995; see the
# README's "Smaller and faster artifacts") and on the tiny test models. int4 is coarser by
# design (onnxruntime-genai's builder writes it with no gate at all): its limits are
# there to catch a broken graph, set below what int4 gave on the perturbed GPT-2 / Gemma
# test models 16 to 128 wide: cosine mean >= 0.98, lowest row >= 0.89, top-1 >= 0.79,
# top-5 >= 0.96, greedy >= 0.78; except a harsher Gemma (64 wide, noise 0.2 on every
# weight: lowest row 0.79, top-5 0.845, which fails the top-5 default). Not measured on
# a real pretrained causal LM (none can be had on this machine).
DEFAULTS = {
    "int8": {"cosine_mean": 0.98, "cosine_min": 0.95, "top1": 0.9, "top5": 0.97,
             "greedy": 0.9},
    "int4": {"cosine_mean": 0.95, "cosine_min": 0.7, "top1": 0.65, "top5": 0.85,
             "greedy": 0.65},
}


@dataclass(frozen=True)
class GateLimits:
    """The lowest value each measure may take; None: the default of `mode` (`DEFAULTS`)."""

    cosine_mean: float | None = None
    cosine_min: float | None = None
    top1: float | None = None
    top5: float | None = None
    greedy: float | None = None
    # The --quantize mode being gated: its defaults, and named in the failure line.
    mode: str = field(default="int8", compare=False)

    def __post_init__(self):
        for name, value in self.values().items():
            if not 0.0 <= float(value) <= 1.0:
                raise ExportError(f"--min-{name.replace('_', '-')} must be within [0, 1], "
                                  f"not {value}")

    def values(self):
        """The limits by name, defaults filled in (what the manifest records)."""
        defaults = DEFAULTS.get(self.mode, DEFAULTS["int8"])
        given = {k: v for k, v in asdict(self).items() if k != "mode"}
        return {k: defaults[k] if v is None else v for k, v in given.items()}

    def comparison(self, group=None):
        return GateComparison(self, group)


# Two classes whose Keras logits differ by less than this share of the vector's logit
# range are a near-tie: ONNX Runtime picking either agrees with Keras.
TIE = 0.01

# The flag naming each limit in error messages.
FLAGS = {"cosine_mean": "--min-cosine-mean", "cosine_min": "--min-cosine",
         "top1": "--min-top1", "top5": "--min-top5", "greedy": "--min-greedy"}


def cosines(expected, actual):
    """Cosine similarity per row (axis 0) of two arrays, each row flattened."""
    want = np.asarray(expected, "float64").reshape(len(expected), -1)
    got = np.asarray(actual, "float64").reshape(len(expected), -1)
    dot = np.sum(want * got, axis=1)
    norms = np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1)
    both_zero = (norms == 0) & np.all(want == got, axis=1)
    return np.where(both_zero, 1.0, dot / np.maximum(norms, 1e-30))


def topk_agreement(expected, actual, k):
    """Per vector (last axis): whether one of ONNX Runtime's k best classes is Keras' best,
    or a near-tie of it in Keras' own logits (within `TIE` of the vector's logit range:
    for such a vector either answer is the model's)."""
    want = np.asarray(expected, "float32").reshape(-1, expected.shape[-1])
    got = np.asarray(actual, "float32").reshape(-1, expected.shape[-1])
    k = min(k, want.shape[-1])
    top = np.argpartition(-got, k - 1, axis=-1)[:, :k]
    best = want.max(axis=-1)
    closest = np.take_along_axis(want, top, axis=-1).max(axis=-1)
    return best - closest <= TIE * (best - want.min(axis=-1))


def top1_agreement(expected, actual):
    return topk_agreement(expected, actual, 1)


class Measure:
    """A running mean and minimum of per-row values, and where the minimum was seen."""

    def __init__(self):
        self.total, self.count, self.min, self.where = 0.0, 0, 1.0, ""

    def add(self, values, where):
        values = np.nan_to_num(np.asarray(values, "float64"), nan=-1.0)
        if values.size == 0:
            return
        self.total += float(values.sum())
        self.count += int(values.size)
        if float(values.min()) < self.min:
            self.min, self.where = float(values.min()), where

    @property
    def mean(self):
        return self.total / self.count if self.count else 1.0


class GateComparison:
    """The quality-gate counterpart of `exporter.validate.Comparison` (same calls, so a
    spec validates a quantized export the way it validates a float one)."""

    def __init__(self, limits, group=None):
        self.limits = limits
        self.group = group or (lambda name: name)
        self.max_abs_diff = {}
        self.cosine = {}  # output group -> Measure
        self.top1, self.top5, self.greedy_tokens = Measure(), Measure(), Measure()

    def add(self, expected, actual, context=""):
        """Measure one run's outputs; returns their max abs diffs (recorded, not gated)."""
        diffs = compare(expected, actual, context)
        for name, want in expected.items():
            key = self.group(name)
            got = np.asarray(actual[name])
            want = np.asarray(want)
            self.max_abs_diff[key] = max(self.max_abs_diff.get(key, 0.0), diffs[name])
            if want.size == 0 or not np.issubdtype(want.dtype, np.floating):
                continue
            where = f"{context}output {name!r}"
            self.cosine.setdefault(key, Measure()).add(cosines(want, got), where)
            if name == "logits" and want.shape[-1] > 1:
                self.top1.add(top1_agreement(want, got), where)
                self.top5.add(topk_agreement(want, got, 5), where)
        return diffs

    def greedy(self, keras_logits, onnx_logits, context=""):
        """Greedy picks on (batch, vocab) logits (a near-tie agrees, as for top-1);
        returns whether every row picks Keras' very token."""
        self.greedy_tokens.add(top1_agreement(keras_logits, onnx_logits),
                               f"{context}greedy token")
        return bool((np.argmax(keras_logits, -1) == np.argmax(onnx_logits, -1)).all())

    def measures(self):
        """(name, value, limit, where) of every gated measure that saw data."""
        out = []
        if self.cosine:
            worst = min(self.cosine.values(), key=lambda m: m.min)
            count = sum(m.count for m in self.cosine.values())
            mean = sum(m.total for m in self.cosine.values()) / count
            out += [("cosine_mean", mean, ""), ("cosine_min", worst.min, worst.where)]
        for name in ("top1", "top5"):
            m = getattr(self, name)
            if m.count:
                out.append((name, m.mean, m.where))
        if self.greedy_tokens.count:
            out.append(("greedy", self.greedy_tokens.mean, self.greedy_tokens.where))
        limits = self.limits.values()
        return [(n, v, limits[n], w) for n, v, w in out]

    @property
    def passed(self):
        return all(value >= limit for _, value, limit, _ in self.measures())

    def failure(self):
        """Why the gate failed (one line, the worst measure first), or None."""
        for name, value, limit, where in self.measures():
            if not value >= limit:
                label = name.replace("_", " ").replace("top", "top-")
                at = f" (lowest at {where})" if where and name != "top5" else ""
                shown = math.floor(value * 1e6) / 1e6  # never rounded up to the limit
                return (f"{self.limits.mode} quality gate: {label} {shown:.6g} < "
                        f"{FLAGS[name]} {limit:g}{at}; nothing was written")
        return None

    def summary(self):
        """The progress line's account: each gated measure against its limit."""
        return "quality gate " + ", ".join(
            f"{name.replace('_', ' ').replace('top', 'top-')} {math.floor(value * 1e4) / 1e4:.4f}"
            f" (>= {limit:g})" for name, value, limit, _ in self.measures())

    def check(self):
        message = self.failure()
        if message is not None:
            raise ValidationError(message)

    def entry(self, cases):
        """The manifest's validation block: the gate's limits and measures, the cases."""
        measured = {name: round(value, 6) for name, value, _, _ in self.measures()}
        per_output = {k: {"mean": round(m.mean, 6), "min": round(m.min, 6)}
                      for k, m in self.cosine.items()}
        return {"method": "quality_gate", "reference": "float32 Keras model",
                "limits": self.limits.values(), "measured": measured,
                "cosine_per_output": per_output,
                "max_abs_diff": dict(self.max_abs_diff), "cases": cases,
                "passed": self.passed}
