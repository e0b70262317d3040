"""Export specs of the single-graph encoder tasks: `backbone`, `masked_lm` and
`text_classifier` (BERT, DistilBERT, XLM-RoBERTa...). Each writes `model.onnx`, the model's
`call` on its integer inputs, validated on two fresh shapes with padding."""

from __future__ import annotations

import time

import numpy as np

from exporter import convert
from exporter.errors import ExportError
from exporter.specs.base import CALIBRATION_SEED, ExportSpec, Graph, backbone_of
from exporter.validate import Comparison

# (batch, length) checked after export: other shapes than anything traced (tracing is
# shape-free), with padding on all rows but the first.
VALIDATION_CASES = ((1, 7), (3, 128))
# (batch, length) of the int8 calibration runs (seed: base.CALIBRATION_SEED).
CALIBRATION_CASES = ((1, 16), (3, 40), (2, 128))
TEXT = ["batch_size", "sequence_length"]
NUM_MASKS = 3  # mask positions per row in the validation inputs


def _padded_lengths(batch, length, rng):
    lengths = np.full(batch, length)
    if batch > 1:
        lengths[1:] = rng.integers(max(1, length // 3), length + 1, batch - 1)
    return lengths


def encoder_inputs(input_names, batch, length, vocabulary_size, rng, num_segments=2):
    """Random integer inputs named `input_names`: right padding on all rows but the first
    (so masking is exercised) and mask positions inside the real tokens."""
    lengths = _padded_lengths(batch, length, rng)
    padding_mask = (np.arange(length)[None, :] < lengths[:, None]).astype("int32")
    makers = {
        "token_ids": lambda: rng.integers(1, vocabulary_size, (batch, length)) * padding_mask,
        "padding_mask": lambda: padding_mask,
        "segment_ids": lambda: rng.integers(0, num_segments, (batch, length)) * padding_mask,
        "mask_positions": lambda: np.stack([rng.integers(0, n, NUM_MASKS) for n in lengths]),
    }
    unknown = [n for n in input_names if n not in makers]
    if unknown:
        raise ExportError(f"no validation inputs for {unknown}: add them to "
                          "exporter/specs/encoder.py")
    # Made in this fixed order whatever the graph's order, so the random draws are stable.
    return {n: makers[n]().astype("int32") for n in makers if n in input_names}


class EncoderSpec(ExportSpec):
    """`model.onnx`: the model's `call` on its integer inputs (int32, dynamic batch and
    length). Subclasses give the axes of their inputs and outputs."""

    file = "model.onnx"
    # name -> axes of every input the task may take (the backbone's inputs are a subset).
    input_axes = {"token_ids": TEXT, "padding_mask": TEXT, "segment_ids": TEXT}
    # name -> axes of every output; `single_output` names a call returning one tensor.
    output_axes = {}
    single_output = None

    def input_names(self, model):
        return list(model.input) if isinstance(model.input, dict) else ["token_ids"]

    def output_names(self, model):
        return list(model.output) if isinstance(model.output, dict) else [self.single_output]

    def call(self, model):
        def fn(inputs):
            out = model(inputs, training=False)
            return out if isinstance(out, dict) else {self.single_output: out}
        return fn

    def graphs(self, model):
        inputs, outputs = self.input_names(model), self.output_names(model)
        unknown = [n for n in inputs + outputs if n not in {**self.input_axes,
                                                            **self.output_axes}]
        if unknown:
            raise ExportError(f"{type(self).__name__} has no axes for {unknown} of "
                              f"{type(model).__name__}; add them to its spec")
        axes = {n: self.input_axes[n] for n in inputs}
        axes.update({n: self.output_axes[n] for n in outputs})
        specs = {n: convert.tensor_spec(n, "int32", 2) for n in inputs}
        return [Graph("model", self.file, self.call(model), specs, axes, model.weights)]

    def calibration(self, model, paths):
        backbone = backbone_of(model)
        rng = np.random.default_rng(CALIBRATION_SEED)
        return {"model": [
            encoder_inputs(self.input_names(model), batch,
                           min(length, backbone.max_sequence_length),
                           backbone.vocabulary_size, rng, getattr(backbone, "num_segments", 2))
            for batch, length in CALIBRATION_CASES]}

    def validate(self, model, paths, atol, progress, gate=None):
        import onnxruntime as ort

        t = time.perf_counter()
        session = ort.InferenceSession(paths["model"], providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        backbone = backbone_of(model)
        rng = np.random.default_rng(1234)
        # A quantized export is held to its quality gate (GateLimits), not to atol.
        comparison = gate.comparison() if gate is not None else Comparison(atol)
        cases, fn = [], self.call(model)
        for batch, length in VALIDATION_CASES:
            length = min(length, backbone.max_sequence_length)
            x = encoder_inputs(self.input_names(model), batch, length,
                               backbone.vocabulary_size, rng,
                               getattr(backbone, "num_segments", 2))
            expected = {k: np.asarray(v) for k, v in fn(x).items()}
            actual = dict(zip(names, session.run(None, x)))
            diffs = comparison.add(expected, actual, f"batch {batch}, length {length}: ")
            cases.append({"batch": batch, "length": length, "max_abs_diff": diffs})
        progress(f"validated against Keras in {time.perf_counter() - t:.1f} s: "
                 f"{comparison.summary()}")
        comparison.check()
        return comparison.entry(cases)


class BackboneSpec(EncoderSpec):
    """A bare encoder backbone, served by the runtime's `encode` (pooled as the preset
    declares)."""

    task = "backbone"
    output_axes = {"sequence_output": ["batch_size", "sequence_length", "hidden"],
                   "pooled_output": ["batch_size", "hidden"]}
    single_output = "sequence_output"

    def manifest(self, model, source, progress):
        from model_defs import preset as P

        # How `encode` pools: what the preset declares (modules.json, a TextEmbedder
        # task.json, the built-in entry), else mean.
        if source.preset is None:
            pooling = {"mode": "mean", "normalize": False, "source": "default"}
        else:
            pooling = P.pooling_spec(source.preset, download=not source.random_weights)
        if pooling.get("unsupported"):
            progress(f"warning: {pooling['unsupported']}; encode will refuse to embed")
        return {"pooling": pooling}


class MaskedLMSpec(EncoderSpec):
    """A masked LM: logits at `mask_positions`, served by `fill-mask`."""

    task = "masked_lm"
    input_axes = {**EncoderSpec.input_axes, "mask_positions": ["batch_size", "num_masks"]}
    output_axes = {"logits": ["batch_size", "num_masks", "vocabulary_size"]}
    single_output = "logits"


class TextClassifierSpec(EncoderSpec):
    """A text classifier: (batch, num_classes) scores, served by `classify`."""

    task = "text_classifier"
    output_axes = {"logits": ["batch_size", "num_classes"]}
    single_output = "logits"

    def manifest(self, model, source, progress):
        """What `classify` needs to turn the output into class scores: num_classes and
        the head's activation ("linear": logits)."""
        import keras

        activation = keras.activations.serialize(getattr(model, "activation", None)
                                                 or "linear")
        if isinstance(activation, dict):  # a custom activation object
            activation = activation.get("config", {}).get("name", "custom")
        return {"classifier": {"num_classes": int(model.num_classes),
                               "activation": activation}}
