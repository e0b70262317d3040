"""Feeding raw text through a task's preprocessor in `fit`, `evaluate` and `predict`.

keras-hub maps its preprocessor over a `tf.data` pipeline; ours is plain Python (the
tokenizers live in `runtime`), so raw text goes through a `keras.utils.PyDataset` that calls
the preprocessor once per batch. Every call draws fresh random masks, so a masked LM sees new
masks every epoch (dynamic masking). Integer inputs (dicts of arrays) skip the preprocessor.
"""

from __future__ import annotations

import math

import keras
import numpy as np


def is_raw_text(x) -> bool:
    """True for text a preprocessor takes: a string, a list/array of strings, or a tuple of
    those (one entry per segment)."""
    if isinstance(x, (str, bytes)):
        return True
    if isinstance(x, tuple):
        return len(x) > 0 and all(is_raw_text(s) for s in x)
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "USO" and (x.size == 0 or isinstance(x.flat[0], (str, bytes)))
    if isinstance(x, list):
        return len(x) > 0 and isinstance(x[0], (str, bytes, np.str_, np.bytes_))
    return _is_string_tensor(x)


def _is_string_tensor(x) -> bool:
    try:
        import tensorflow as tf
    except ImportError:
        return False
    return isinstance(x, tf.Tensor) and x.dtype == tf.string


def is_tf_dataset(x) -> bool:
    try:
        import tensorflow as tf
    except ImportError:
        return False
    return isinstance(x, tf.data.Dataset)


def _as_array(x):
    if _is_string_tensor(x):
        x = x.numpy()
    if isinstance(x, (str, bytes)):
        return np.asarray([x], dtype=object)
    return np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x


def _texts(batch):
    """A numpy batch of str/bytes -> list of str (what the tokenizers take)."""
    return [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in batch.tolist()]


def unpack(data):
    """keras-hub's `(x, y, sample_weight)` packing -> a 3-tuple."""
    if isinstance(data, tuple) and not is_raw_text(data):
        return tuple(data) + (None,) * (3 - len(data))
    return data, None, None


class PreprocessedBatches(keras.utils.PyDataset):
    """Raw text (and labels) in memory, cut into batches and preprocessed per batch.

    Args:
        preprocessor: a task preprocessor, `preprocessor(x, y, sample_weight)`.
        x: raw text: a list/array of strings or a tuple of them (segments).
        y, sample_weight: arrays with one row per example, or None.
        batch_size: int, examples per batch.
        shuffle: reshuffle the examples at every epoch.
        seed: int or None, for the shuffling.
    """

    def __init__(self, preprocessor, x, y=None, sample_weight=None, batch_size=32,
                 shuffle=False, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.preprocessor = preprocessor
        self.segments = tuple(_as_array(s) for s in x) if isinstance(x, tuple) else None
        self.x = None if self.segments else _as_array(x)
        self.y = None if y is None else np.asarray(y)
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        first = self.segments[0] if self.segments else self.x
        self.n = len(first)
        for name, part in (("y", self.y), ("sample_weight", self.sample_weight),
                           *((f"segment {i}", s) for i, s in enumerate(self.segments or ()))):
            if part is not None and len(part) != self.n:
                raise ValueError(f"{name} has {len(part)} rows but x has {self.n} examples")
        if self.n == 0:
            raise ValueError("no examples to feed: x is empty")
        self.batch_size = int(batch_size or 32)
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(self.n)
        if shuffle:
            self._rng.shuffle(self._order)

    def __len__(self):
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, index):
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        if self.segments:
            x = tuple(_texts(s[rows]) for s in self.segments)
        else:
            x = _texts(self.x[rows])
        y = None if self.y is None else self.y[rows]
        sw = None if self.sample_weight is None else self.sample_weight[rows]
        out = self.preprocessor(x, y, sw)
        return tuple(v for v in unpack(out) if v is not None) if isinstance(out, tuple) else out

    def on_epoch_end(self):
        if self.shuffle:
            self._rng.shuffle(self._order)


def map_tf_dataset(dataset, preprocessor):
    """A batched `tf.data.Dataset` of raw text (`x`, `(x, y)` or `(x, y, sample_weight)`)
    with the preprocessor mapped over it through `tf.numpy_function`."""
    import tensorflow as tf

    def call(*parts):
        x, y, sw = (list(parts) + [None] * 3)[:3]
        x = tuple(_texts(np.asarray(s)) for s in x) if isinstance(x, tuple) else _texts(
            np.asarray(x))
        out = preprocessor(x, y, sw)
        return tuple(v for v in unpack(out) if v is not None) if isinstance(out, tuple) else out

    element = next(iter(dataset.take(1)))
    parts = element if isinstance(element, tuple) and not _is_string_tensor(element) else (
        element,)
    sample = call(*[p.numpy() if hasattr(p, "numpy") else p for p in parts])
    flat = keras.tree.flatten(sample)
    dtypes = [tf.as_dtype(np.asarray(v).dtype) for v in flat]
    shapes = [(None,) * np.asarray(v).ndim for v in flat]

    def mapped(*args):
        out = tf.numpy_function(
            lambda *a: [np.asarray(v) for v in keras.tree.flatten(call(*a))], list(args),
            dtypes)
        out = [tf.ensure_shape(t, s) for t, s in zip(out, shapes)]
        return keras.tree.pack_sequence_as(sample, out)

    return dataset.map(mapped)


def prepare(task, x, y=None, sample_weight=None, batch_size=None, shuffle=False):
    """(x, y, sample_weight, batch_size) for keras: raw text becomes batches preprocessed
    by `task.preprocessor`; anything else passes through unchanged."""
    preprocessor = getattr(task, "preprocessor", None)
    if preprocessor is None or not (is_raw_text(x) or is_tf_dataset(x)):
        # Integer data: keras takes arrays, not Python lists (`y=[[3, 5]] * 2`).
        return _arrays(x), _arrays(y), _arrays(sample_weight), batch_size
    if is_tf_dataset(x):
        spec = x.element_spec
        first = spec[0] if isinstance(spec, tuple) else spec
        first = first[0] if isinstance(first, tuple) else first
        if getattr(first, "dtype", None) is not None and first.dtype.name == "string":
            return map_tf_dataset(x, preprocessor), None, None, None
        return x, y, sample_weight, batch_size
    data = PreprocessedBatches(preprocessor, x, y, sample_weight, batch_size=batch_size or 32,
                               shuffle=shuffle)
    return data, None, None, None


def _arrays(data):
    """Python lists (also as dict values) -> numpy arrays; anything else unchanged."""
    if isinstance(data, list):
        return np.asarray(data)
    if isinstance(data, dict):
        return {k: np.asarray(v) if isinstance(v, list) else v for k, v in data.items()}
    return data


def split_validation(x, y, sample_weight, validation_split):
    """keras' `validation_split` for raw text: the last share of the examples, before any
    shuffling, becomes `validation_data`. Returns (x, y, sample_weight, validation_data)."""
    def cut(part, start, stop, text=False):
        if part is None:
            return None
        if isinstance(part, tuple):
            return tuple(cut(p, start, stop, text) for p in part)
        return (_as_array(part) if text else np.asarray(part))[start:stop]

    first = x[0] if isinstance(x, tuple) else x
    n = len(_as_array(first))
    at = int(n * (1.0 - validation_split))
    if not 0 < at < n:
        raise ValueError(f"validation_split={validation_split} leaves no training or no "
                         f"validation examples out of {n}")
    val = tuple(v for v in (cut(x, at, n, True), cut(y, at, n), cut(sample_weight, at, n))
                if v is not None)
    return cut(x, 0, at, True), cut(y, 0, at), cut(sample_weight, 0, at), val


def prepare_validation(task, validation_data, batch_size=None):
    """`validation_data` as raw text `x` or `(x, y[, sample_weight])`, preprocessed."""
    if validation_data is None or getattr(task, "preprocessor", None) is None:
        return validation_data
    x, y, sw = unpack(validation_data)
    if not (is_raw_text(x) or is_tf_dataset(x)):
        return validation_data
    data, _, _, _ = prepare(task, x, y, sw, batch_size)
    return data
