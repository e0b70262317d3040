"""`Backbone`: base class of the encoder/decoder networks, with keras-hub's preset API."""

from __future__ import annotations

import inspect
import logging
import math
import os
import re

import keras

from model_defs import lora, preset_io, registry
from model_defs.errors import PresetError, describe
from model_defs.layers.activations import ACTIVATIONS
from model_defs.preset_files import require_file
from model_defs.preset_loader import get_preset_loader
from model_defs.weights import H5Reader, SafetensorsReader, apply_table, write_h5

log = logging.getLogger(__name__)

# Bounds on what a config may ask for, so that a corrupt or hostile config.json gets one
# clear error instead of an attempt to allocate terabytes or to build a million layers:
# widths, vocabularies and sequence lengths up to 10**6, layers, heads and segments up to
# 10**4, and at most 2 * 10**10 parameters as `parameter_estimate` counts them (80 GB in
# float32; the largest models this project knows have a few billion).
MAX_SIZE = 10**6
MAX_COUNT = 10**4
MAX_PARAMETERS = 2 * 10**10
DTYPE_NAMES = ("float32", "float16", "bfloat16", "mixed_float16", "mixed_bfloat16")


class classproperty:
    """A read-only property on the class (`BertBackbone.presets`)."""

    def __init__(self, fget):
        self.fget = fget

    def __get__(self, obj, owner):
        return self.fget(owner)


@registry.base_class("backbone")
class Backbone(keras.Model):
    """Base class of our backbones: a functional Keras model whose constructor arguments
    are its config.

    Subclasses build their graph in `__init__`, store every constructor argument, and
    provide the weight tables: `keras_hub_weight_table()` (names in keras-hub's
    `model.weights.h5`) and `hf_weight_table(prefix)` with `config_from_hf(hf_config)`
    for Transformers checkpoints of `hf_model_types`.

    Example:
    ```python
    backbone = Backbone.from_preset("bert_tiny_en_uncased", load_weights=False)
    backbone.save_to_preset("./my_preset")
    ```
    """

    hf_model_types = ()
    # The exporter's task when a preset holds a bare backbone (BART: "seq2seq_lm").
    default_task = "backbone"
    # The export spec of a bare backbone (exporter/specs/); None: export a task instead.
    export_spec = "backbone"

    @classproperty
    def family(cls):
        """The model family ("bert", "distil_bert", "xlm_roberta", "bart"): the class name
        without "Backbone", in snake case, as keras-hub names its folders."""
        name = cls.__name__.removesuffix("Backbone")
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()

    def __init__(self, *args, dtype=None, **kwargs):
        super().__init__(*args, **kwargs)
        if dtype is not None:
            # The functional init does not take a dtype; every layer already got it.
            self.dtype_policy = keras.dtype_policies.get(dtype)

    # -- config -------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "dtype": preset_io.dtype_config(self.dtype_policy)}

    @classmethod
    def from_config(cls, config):
        return cls(**preset_io.deserialize_config(config))

    @property
    def token_embedding(self):
        """The `keras.layers.Embedding` of token ids (its matrix is tied to LM heads)."""
        return self.get_layer("token_embedding")

    # -- presets ------------------------------------------------------------------
    @classproperty
    def presets(cls):
        """Built-in presets this class can load, name -> metadata."""
        return {name: entry["metadata"] for name, entry in registry.builtin_presets().items()
                if issubclass(entry["cls"], cls)}

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Build the backbone a preset holds and load its weights.

        Args:
            preset: built-in name, `kaggle://...`, `hf://...`, or a local directory in
                keras-hub or Transformers format.
            load_weights: False builds the architecture with random weights.
            **kwargs: constructor overrides, e.g. `dtype="bfloat16"`.
        """
        # The preset's loader (keras-hub or Transformers format) checks that it holds a
        # `cls`, reads its config and weights: model_defs/preset_loader.py.
        return get_preset_loader(preset, download=load_weights).load_backbone(
            cls, load_weights, **kwargs)

    @classmethod
    def checked_config(cls, config, where, source=None):
        """`config` (constructor arguments read from the file `where`) with every value
        checked against its argument's type and bounds (PresetError naming the first bad
        one); keys the constructor does not take are dropped with a warning. `source`: the
        Transformers config the arguments came from, to name its keys in errors."""
        params = inspect.signature(cls.__init__).parameters
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        accepted = {n for n, p in params.items() if p.kind in named} - {"self"}
        accepted |= {"name", "trainable", "dtype"}  # keras.Model's, from `get_config`
        unknown = sorted(set(config) - accepted)
        if unknown:
            log.warning("%s: ignoring keys %s, which %s does not take", where, unknown,
                        cls.__name__)
        config = {k: v for k, v in config.items() if k in accepted}
        missing = [n for n, p in params.items() if n != "self" and p.kind in named
                   and p.default is p.empty and n not in config]
        if missing:
            raise PresetError(f"{where} lacks {missing}, which {cls.__name__} needs")
        for key, value in config.items():
            expected = _expected(key, value)
            if expected:
                key = _source_key(source, value) or key
                raise PresetError(f"{where}: {key} must be {expected}, got {describe(value)}")
        count = parameter_estimate(config)
        if count > MAX_PARAMETERS:
            raise PresetError(f"{where} asks for about {count:.2g} parameters (more than "
                              f"{MAX_PARAMETERS:.0e}): a corrupt config?")
        return config

    def load_preset_weights(self, directory):
        """Assign the weights of a keras-hub preset's model.weights.h5 (the loader calls
        this)."""
        reader = H5Reader(require_file(directory, "model.weights.h5"))
        try:
            apply_table(self, self.keras_hub_weight_table(), reader,
                        where=os.path.join(directory, "model.weights.h5"))
        finally:
            reader.close()

    def load_transformers_weights(self, directory, ignore_unused=()):
        """Assign the backbone's weights from a Transformers model.safetensors (the loader
        calls this; XLM-RoBERTa overrides it)."""
        reader = SafetensorsReader(require_file(directory, "model.safetensors"))
        prefix = hf_prefix(reader.names(), self.hf_prefixes)
        table = self.hf_weight_table(prefix, reader.names())
        # A task checkpoint also holds its head: only the backbone's part must be used up.
        view = _PrefixedView(reader, prefix)
        ignore = tuple(ignore_unused) + tuple(self.hf_ignored)
        apply_table(self, table, view, ignore_unused=ignore,
                    where=os.path.join(directory, "model.safetensors"))

    # Transformers checkpoints name the backbone "bert.", "distilbert." ... inside task models.
    hf_prefixes = ()
    # Tensors a Transformers checkpoint may carry that the backbone does not use (task heads).
    hf_ignored = ()

    def save_to_preset(self, preset_dir):
        """Write config.json, model.weights.h5 and metadata.json in keras-hub format."""
        with preset_io.preset_folder(preset_dir) as tmp:
            self.write_preset_files(tmp)

    def write_preset_files(self, directory):
        preset_io.write_json(directory, "config.json",
                             preset_io.serialize(self, self.get_config()))
        # LoRA factors are merged into the kernels: the preset holds a plain model.
        write_h5(os.path.join(directory, "model.weights.h5"), lora.MergedWeights(self),
                 self.keras_hub_weight_table())
        preset_io.write_json(directory, "metadata.json", preset_io.metadata(self))

    # -- LoRA ---------------------------------------------------------------------
    def default_lora_layer_names(self):
        """Names of the Dense layers `enable_lora` targets: the query and value projections."""
        return list(lora.DEFAULT_TARGETS)

    def enable_lora(self, rank, target_layer_names=None):
        """Freeze all backbone weights and add rank-`rank` LoRA factors to the query and
        value projections of every attention layer; only the factors train.

        Example:
        ```python
        backbone.enable_lora(4)
        [v.path for v in backbone.trainable_weights]  # .../query/lora_kernel_a, ...
        ```
        """
        lora.enable_lora(self, rank, target_layer_names or self.default_lora_layer_names())

    def save_lora_weights(self, filepath):
        """Write the LoRA factors to `filepath` (`*.lora.h5`, keras-hub's layout)."""
        lora.save_lora_weights(self, filepath)

    def load_lora_weights(self, filepath):
        """Load factors saved by `save_lora_weights` (enables LoRA at their rank if needed;
        a model with another rank raises `LoraError`)."""
        lora.load_lora_weights(self, filepath)

    # -- to be provided by subclasses ---------------------------------------------
    def keras_hub_weight_table(self):
        raise NotImplementedError(f"{type(self).__name__} has no keras-hub weight table")

    def hf_weight_table(self, prefix, names):
        raise NotImplementedError(f"{type(self).__name__} cannot read Transformers weights")

    @classmethod
    def config_from_hf(cls, hf_config):
        raise NotImplementedError(f"{cls.__name__} cannot read Transformers configs")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _int_in(low, high):
    return (lambda v: _is_int(v) and low <= v <= high), f"an integer in [{low}, {high}]"


def _dtype_ok(value):
    if isinstance(value, dict):  # the envelope `get_config` writes
        inner = value.get("config")
        return (value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy")
                and isinstance(inner, dict) and inner.get("name") in DTYPE_NAMES)
    return value is None or (isinstance(value, str) and value in DTYPE_NAMES)


# Constructor argument -> (check, what it must be). Arguments not listed here are left to
# the constructor (its ValueError/TypeError becomes a PresetError too).
_ARGUMENT_CHECKS = {
    **{k: _int_in(1, MAX_SIZE) for k in ("vocabulary_size", "hidden_dim",
                                          "intermediate_dim", "max_sequence_length")},
    **{k: _int_in(1, MAX_COUNT) for k in ("num_layers", "num_heads", "num_segments")},
    "position_offset": _int_in(0, MAX_SIZE),
    "dropout": (lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "layer_norm_epsilon": (lambda v: _is_number(v) and 0 < v < 1, "a number in (0, 1)"),
    **{k: (lambda v: isinstance(v, str) and v in ACTIVATIONS,
           f"one of the activation names {sorted(ACTIVATIONS)}")
       for k in ("intermediate_activation", "activation")},
    **{k: (lambda v: isinstance(v, bool), "true or false")
       for k in ("scale_embedding", "trainable")},
    "name": (lambda v: v is None or isinstance(v, str), "a string"),
    "dtype": (_dtype_ok, f"one of {list(DTYPE_NAMES)} or a DTypePolicy of one"),
}


def _expected(key, value):
    """None when `value` suits the constructor argument `key`, else what it must be."""
    check, expected = _ARGUMENT_CHECKS.get(key, (None, None))
    return None if check is None or check(value) else expected


def _source_key(source, value):
    # The Transformers key a bad value came from (the same object), to name it.
    return next((k for k, v in (source or {}).items() if v is value), None)


def parameter_estimate(config) -> int:
    """About how many parameters a (checked) backbone config asks for: embeddings plus
    attention and feedforward kernels (an overestimate for small models is fine)."""
    hidden = config.get("hidden_dim", 0)
    embeddings = (config.get("vocabulary_size", 0) + config.get("max_sequence_length", 0)) * hidden
    per_layer = 4 * hidden * hidden + 2 * hidden * config.get("intermediate_dim", 0)
    return embeddings + 2 * config.get("num_layers", 0) * per_layer  # 2: decoders too


def hf_prefix(names, prefixes):
    """The prefix ("bert.", "" ...) under which a checkpoint stores the backbone."""
    for prefix in prefixes:
        if any(n.startswith(prefix) for n in names):
            return prefix
    return ""


class _PrefixedView:
    """The weight tensors of `reader` whose names start with `prefix` ("" for all)."""

    def __init__(self, reader, prefix):
        self._reader = reader
        self._prefix = prefix

    def names(self):
        # Old checkpoints also store the `position_ids` buffer (0..max_len), not a weight.
        return [n for n in self._reader.names()
                if n.startswith(self._prefix) and not n.endswith(".position_ids")]

    def get(self, name):
        return self._reader.get(name)
