"""LoRA for backbones: enable it on the query/value projections, save and load the low-rank
factors, and read the weights with the factors merged into the kernels.

keras Dense layers carry LoRA themselves (`Dense.enable_lora`): their `kernel` property is
`kernel + (alpha / rank) * lora_kernel_a @ lora_kernel_b`. Our attention layers use plain
Dense projections named "query", "key", "value", "attention_output", so LoRA is exact here.

File format (`*.lora.h5`), keras-hub's layout: a group `lora` holding `rank`, and per
LoRA layer a group `lora/<index>` with `lora_kernel_a` and `lora_kernel_b`, where <index>
counts the backbone's layers that hold weights in `_flatten_layers` order. keras-hub's
factors are EinsumDense-shaped, ours Dense-shaped, so files do not cross between the two
projects; we also write each layer's path (`lora/<index>/path`) and check it on load.
"""

from __future__ import annotations

import numpy as np

DEFAULT_TARGETS = ("query_dense", "value_dense", "query", "value")
FILE_SUFFIX = ".lora.h5"


class LoraError(ValueError):
    """A LoRA file that does not fit the model; the message says what to do."""


def _weighted_layers(backbone):
    return [layer for layer in backbone._flatten_layers(include_self=False) if layer.weights]


def enable_lora(backbone, rank, target_layer_names=None):
    """Freeze every backbone weight and add rank-`rank` LoRA factors to the target Dense
    layers (query and value projections of every attention layer). Only the factors train:
    the targets' kernels and biases stay frozen too."""
    if getattr(backbone, "_lora_rank", None):
        raise LoraError(f"LoRA is already enabled (rank {backbone._lora_rank}); enable it once")
    rank = int(rank)
    if rank < 1:
        raise LoraError(f"LoRA rank must be a positive integer, got {rank}")
    targets = set(target_layer_names or DEFAULT_TARGETS)
    backbone.trainable = True
    layers = _weighted_layers(backbone)
    for layer in backbone._flatten_layers(include_self=False):
        layer.trainable = False
    enabled = []
    for index, layer in enumerate(layers):
        if layer.name in targets and hasattr(layer, "enable_lora"):
            layer.trainable = True
            layer.enable_lora(rank)
            # keras leaves the bias trainable; LoRA here trains the factors alone.
            if getattr(layer, "bias", None) is not None:
                layer.bias.trainable = False
            enabled.append(index)
    if not enabled:
        raise LoraError(f"no Dense layer named {sorted(targets)} in {backbone.name}")
    backbone._lora_rank = rank
    backbone._lora_enabled_layers = enabled
    return enabled


def lora_layers(backbone):
    """[(index, layer)] of the backbone's LoRA-enabled layers."""
    layers = _weighted_layers(backbone)
    return [(i, layers[i]) for i in getattr(backbone, "_lora_enabled_layers", [])]


def _layer_path(backbone, layer):
    prefix = backbone.name + "/"
    path = layer.path
    return path[len(prefix):] if path.startswith(prefix) else path


def save_lora_weights(backbone, filepath):
    """Write the LoRA factors to `filepath` (must end in .lora.h5)."""
    import h5py

    if not getattr(backbone, "_lora_enabled_layers", None):
        raise LoraError("this backbone has no LoRA layers; call enable_lora(rank) first")
    filepath = str(filepath)
    if not filepath.endswith(FILE_SUFFIX):
        raise LoraError(f"the LoRA weights file name must end in {FILE_SUFFIX}, got {filepath}")
    with h5py.File(filepath, "w") as f:
        group = f.create_group("lora")
        group["rank"] = backbone._lora_rank
        for index, layer in lora_layers(backbone):
            inner = group.create_group(str(index))
            inner["lora_kernel_a"] = np.asarray(layer.lora_kernel_a)
            inner["lora_kernel_b"] = np.asarray(layer.lora_kernel_b)
            inner["path"] = _layer_path(backbone, layer)


def load_lora_weights(backbone, filepath):
    """Read factors written by `save_lora_weights`; enables LoRA at the file's rank first
    when the backbone has none. A backbone with another rank or other layers is an error."""
    import h5py

    try:
        f = h5py.File(str(filepath), "r")
    except OSError as e:
        raise LoraError(f"cannot read LoRA weights {filepath}: {e}") from None
    with f:
        if "lora" not in f or "rank" not in f["lora"]:
            raise LoraError(f"{filepath} is not a LoRA weights file (no lora/rank)")
        rank = int(f["lora"]["rank"][()])
        current = getattr(backbone, "_lora_rank", None)
        if current is None:
            enable_lora(backbone, rank)
        elif current != rank:
            raise LoraError(f"{filepath} holds rank-{rank} LoRA weights but the model has "
                            f"enable_lora(rank={current}); use enable_lora({rank}) or a "
                            f"rank-{current} file")
        stored = sorted(k for k in f["lora"] if k != "rank")
        ours = lora_layers(backbone)
        if sorted(str(i) for i, _ in ours) != stored:
            raise LoraError(f"{filepath} holds LoRA weights for {len(stored)} layers, the model "
                            f"has {len(ours)}: it was saved from another architecture")
        values = []
        for index, layer in ours:
            group = f["lora"][str(index)]
            if "path" in group:
                path = group["path"][()]
                path = path.decode() if isinstance(path, bytes) else str(path)
                if path != _layer_path(backbone, layer):
                    raise LoraError(f"{filepath}: layer {index} is {path}, the model's is "
                                    f"{_layer_path(backbone, layer)}")
            a, b = group["lora_kernel_a"][()], group["lora_kernel_b"][()]
            if a.shape != tuple(layer.lora_kernel_a.shape) or b.shape != tuple(
                    layer.lora_kernel_b.shape):
                raise LoraError(f"{filepath}: LoRA factors of {_layer_path(backbone, layer)} "
                                f"have shapes {a.shape}, {b.shape}; the model needs "
                                f"{tuple(layer.lora_kernel_a.shape)}, "
                                f"{tuple(layer.lora_kernel_b.shape)}")
            values.append((layer, a, b))
    for layer, a, b in values:
        layer.lora_kernel_a.assign(a)
        layer.lora_kernel_b.assign(b)


def merged_kernel(layer):
    """The Dense kernel with its LoRA update folded in, in the kernel's dtype (numpy)."""
    stored = np.asarray(layer._kernel)
    kernel = stored.astype("float32")
    if getattr(layer, "lora_enabled", False):
        a = np.asarray(layer.lora_kernel_a, dtype="float32")
        b = np.asarray(layer.lora_kernel_b, dtype="float32")
        kernel = kernel + (layer.lora_alpha / layer.lora_rank) * (a @ b)
    return kernel.astype(stored.dtype)  # float32 / float16 / bfloat16 (ml_dtypes)


class _Value:
    """A variable's path and value, as `weights.variables_by_path` reads them."""

    def __init__(self, path, value):
        self.path = path
        self._value = value
        self.shape = value.shape
        self.dtype = value.dtype

    def __array__(self, dtype=None, copy=None):
        return self._value if dtype is None else self._value.astype(dtype)


class MergedWeights:
    """`model`'s weights with LoRA merged into the kernels and the factors left out: what a
    model without LoRA holds. Offers `.name` and `.weights` like a Keras model, so the weight
    tables write it unchanged."""

    def __init__(self, model):
        self.name = model.name
        lora_ids, kernels = set(), {}
        for layer in model._flatten_layers(include_self=False):
            if getattr(layer, "lora_enabled", False):
                lora_ids |= {id(layer.lora_kernel_a), id(layer.lora_kernel_b)}
                kernels[id(layer._kernel)] = merged_kernel(layer)
        self.weights = [
            _Value(v.path, kernels[id(v)]) if id(v) in kernels else v
            for v in model.weights if id(v) not in lora_ids
        ]


def has_lora(model):
    return any(getattr(layer, "lora_enabled", False)
               for layer in model._flatten_layers(include_self=False))


def merged_copy(model):
    """A copy of `model` (backbone or task) without LoRA layers whose kernels hold the
    merged weights: the same outputs, the base model's graph. `model` itself if it has no
    LoRA. The copy shares the preprocessor."""
    if not has_lora(model):
        return model
    from model_defs.weights import variables_by_path

    config = model.get_config()
    if "preprocessor" in config:
        config["preprocessor"] = None  # shared below, not rebuilt (it holds the vocabulary)
    clone = type(model).from_config(config)
    if getattr(model, "preprocessor", None) is not None:
        clone.preprocessor = model.preprocessor
    source = variables_by_path(MergedWeights(model))
    target = variables_by_path(clone)
    if set(source) != set(target):
        raise LoraError(f"merged copy of {model.name} has other variables: "
                        f"{sorted(set(source) ^ set(target))[:5]}")
    for path, var in target.items():
        var.assign(np.asarray(source[path], dtype=var.dtype))
    return clone
