"""Weight maps as data: a table of (source name, our variable path, transform) rows applied
to a checkpoint reader. Every row must find its tensor with the right shape, every variable
of the model must be covered exactly once, and every tensor of the checkpoint must be used
(a few known extras, like optimizer state, may be ignored by the caller).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_defs.errors import WeightMapError  # noqa: F401  (defined there, imported from here)


@dataclass(frozen=True)
class Entry:
    """One row of a weight table.

    source: the tensor's name in the checkpoint (h5 dataset path or safetensors key).
    target: our variable's path relative to the model, e.g. "transformer_layer_0/...".
    transform: None, "transpose" (PyTorch Linear (out, in) -> Keras (in, out)), or a tuple
        giving the checkpoint's shape when it differs from ours only by a reshape (keras-hub
        stores attention kernels as (hidden, heads, head_dim); we use (hidden, hidden)).
    """

    source: str
    target: str
    transform: object = None
    # Optional rows keep the variable's initial value when the checkpoint lacks the tensor
    # (e.g. Transformers' BertForMaskedLM has no pooler).
    optional: bool = False

    def to_ours(self, array, shape):
        if self.transform == "transpose":
            array = array.T
        elif isinstance(self.transform, tuple):
            array = array.reshape(shape)
        return array

    def to_source(self, array):
        if self.transform == "transpose":
            return array.T
        if isinstance(self.transform, tuple):
            return array.reshape(self.transform)
        return array


def variables_by_path(model) -> dict:
    """Our variables keyed by their path with the model's own name stripped."""
    out = {}
    for v in model.weights:
        path = v.path
        prefix = model.name + "/"
        if path.startswith(prefix):
            path = path[len(prefix):]
        if path in out and out[path] is not v:
            raise WeightMapError(f"two variables share the path {path!r}")
        out[path] = v
    return out


def apply_table(model, table, reader, ignore_unused=(), where="checkpoint"):
    """Assign every variable of `model` from `reader` (name -> numpy array) through `table`.

    `ignore_unused`: prefixes of checkpoint tensors that may stay unused (optimizer state,
    heads of other tasks). Raises WeightMapError naming the first problems found.
    """
    ours = variables_by_path(model)
    problems = []
    covered = set()
    assignments = []
    available = set(reader.names())
    for entry in table:
        if entry.target not in ours:
            problems.append(f"table names unknown variable {entry.target!r}")
            continue
        if entry.target in covered:
            problems.append(f"variable {entry.target!r} mapped twice")
            continue
        if entry.source not in available:
            if entry.optional:
                covered.add(entry.target)
                continue
            problems.append(f"missing tensor {entry.source!r}")
            continue
        var = ours[entry.target]
        array = reader.get(entry.source)
        try:
            array = entry.to_ours(array, tuple(var.shape))
        except ValueError:
            pass  # reported by the shape check below
        if tuple(array.shape) != tuple(var.shape):
            problems.append(
                f"tensor {entry.source!r} has shape {tuple(array.shape)}, "
                f"variable {entry.target!r} needs {tuple(var.shape)}"
            )
            continue
        covered.add(entry.target)
        assignments.append((var, entry))  # read again when assigned: one tensor at a time
        del array
    missing = sorted(set(ours) - covered)
    if missing and not problems:
        problems.append(f"no tensor for variables {missing[:5]}")
    used = {e.source for e in table}
    unused = sorted(n for n in available - used if not n.startswith(tuple(ignore_unused)))
    if unused and not problems:
        problems.append(f"unused tensors {unused[:5]} (the config does not fit the weights?)")
    if problems:
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        raise WeightMapError(f"{where} does not fit the model: " + "; ".join(problems[:3]) + more)
    for var, entry in assignments:
        _assign(var, entry.to_ours(reader.get(entry.source), tuple(var.shape)))


ASSIGN_CHUNK_BYTES = 64 * 1024 * 1024


def _assign(var, array):
    """var = array. On TensorFlow a big array goes into the variable in row blocks, so a
    bfloat16 checkpoint loaded as float32 (Gemma's 1 GB embedding) never has a whole
    float32 copy and its TensorFlow copy beside the variable."""
    import keras

    dtype = np.dtype(var.dtype)
    nbytes = array.size * dtype.itemsize
    if array.ndim == 0 or nbytes <= ASSIGN_CHUNK_BYTES or keras.backend.backend() != "tensorflow":
        var.assign(np.asarray(array, dtype=dtype))
        return
    rows = max(1, ASSIGN_CHUNK_BYTES // (nbytes // array.shape[0]))
    target = var.value  # the backend's tf.Variable: its slices assign in place
    for start in range(0, array.shape[0], rows):
        target[start:start + rows].assign(np.asarray(array[start:start + rows], dtype=dtype))


class H5Reader:
    """Datasets of a Keras `.weights.h5` file, by path."""

    def __init__(self, path):
        import h5py

        self.path = path
        try:
            self._file = h5py.File(path, "r")
        except OSError as e:
            raise WeightMapError(f"cannot read weights file {path}: {e}") from None
        self._names = []
        self._file.visititems(
            lambda name, obj: self._names.append(name) if isinstance(obj, h5py.Dataset) else None
        )

    def names(self):
        return list(self._names)

    def get(self, name):
        try:
            dataset = self._file[name]
            array = dataset[()]
        except OSError as e:  # a truncated file fails on read, not on open
            raise WeightMapError(f"cannot read tensor {name!r} from {self.path}: {e}") from None
        if dataset.attrs.get("dtype") == "bfloat16":  # Keras stores bfloat16 as opaque 2 bytes
            import ml_dtypes

            array = array.view(ml_dtypes.bfloat16)
        return array

    def close(self):
        self._file.close()


class SafetensorsReader:
    """Tensors of a `.safetensors` file, by key (read lazily, no torch needed)."""

    def __init__(self, path):
        from safetensors import safe_open

        self.path = path
        try:
            self._file = safe_open(path, framework="numpy")
            self._names = list(self._file.keys())
        except Exception as e:  # safetensors raises its own error types for bad headers
            raise WeightMapError(f"cannot read weights file {path}: {e}") from None

    def names(self):
        return list(self._names)

    def get(self, name):
        try:
            return self._file.get_tensor(name)
        except Exception as e:
            raise WeightMapError(f"cannot read tensor {name!r} from {self.path}: {e}") from None

    def close(self):
        pass


def write_h5(path, model, table):
    """Write `model`'s variables into a Keras-format `.weights.h5` at the table's sources."""
    import h5py

    ours = variables_by_path(model)
    with h5py.File(path, "w") as f:
        for entry in table:
            array = entry.to_source(np.asarray(ours[entry.target]))
            if array.dtype.name == "bfloat16":  # as Keras writes it: opaque bytes + dtype attr
                f.create_dataset(entry.source, data=array.view("V2")).attrs["dtype"] = "bfloat16"
            else:
                f.create_dataset(entry.source, data=array)
