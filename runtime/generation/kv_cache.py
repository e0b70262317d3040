"""`KVCache`: the key/value tensors of one generate call, in buffers that ONNX Runtime reads
and writes in place through IO bindings.

Architecture-neutral: entries are named by their graph input (`past_key_values.*`); the
graph output that refreshes one is its `present.*` partner. Two kinds:

- growing entries (self-attention K/V): each has two buffers that swap roles every step
  (the graph writes `present` into one while it reads `past` from the other), sized for
  the longest cache seen and grown by doubling from `INITIAL_POSITIONS`, so a step
  allocates nothing and copies nothing but the graph's own Concat;
- static entries (a seq2seq model's cross-attention K/V): written once by the encoder
  graph, then fed back unchanged.

Buffers are numpy arrays on CPU and `OrtValue`s on CUDA; every tensor is
(rows, num_heads, positions, head_dim) (num_heads: the key/value heads).
"""

from __future__ import annotations

import numpy as np

from runtime.errors import ArtifactError

# Growing buffers first hold this many positions (capped at max_length), then double: a
# 64-token generation allocates each buffer once.
INITIAL_POSITIONS = 128


def present_name(past_name):
    """`past_key_values.X` -> `present.X`, the output that gives the entry's next value."""
    return "present." + past_name[len("past_key_values."):]


class KVCache:
    """The cache of `rows` search rows, at most `max_length` positions.

    Args:
        growing: names of the entries that gain a position every step.
        rows, num_heads, head_dim, max_length: the tensors' sizes.
        dtype: "float32" or "float16".
        device: "cpu" or "cuda".

    A step binds, runs its graph, then calls `advance(length)`:

    ```python
    cache.bind_present(binding, length + 1)   # outputs: into the spare buffers
    cache.bind_past(binding)                  # inputs: the current buffers
    session.run_with_iobinding(binding)
    cache.advance(length + 1)                 # what the graph wrote is the cache now
    ```
    """

    def __init__(self, growing, rows, num_heads, head_dim, max_length, dtype="float32",
                 device="cpu"):
        self.growing = list(growing)
        self.rows, self.heads, self.head_dim = rows, num_heads, head_dim
        self.max_length = max_length
        self.dtype = np.dtype(dtype)
        self.element = self.dtype.type  # what IOBinding takes as element_type
        self.device = device
        self.length = 0  # positions held
        self.buffers = {name: [None, None] for name in self.growing}
        self.current = 0  # which buffer of each pair holds the cache
        self.static = {}  # name -> (buffer, shape)

    # -- growing entries ---------------------------------------------------------------
    def shape(self, length=None):
        return (self.rows, self.heads, self.length if length is None else length,
                self.head_dim)

    def bind_past(self, binding):
        """Bind every growing entry as a graph input, at the current length."""
        shape = self.shape()
        for name in self.growing:
            binding.bind_input(name, self.device, 0, self.element, shape,
                               _pointer(self.buffers[name][self.current]))

    def bind_present(self, binding, length):
        """Bind every growing entry's `present` output, `length` positions, into its spare
        buffer."""
        shape = self.shape(length)
        size = int(np.prod(shape))
        for name in self.growing:
            binding.bind_output(present_name(name), self.device, 0, self.element, shape,
                                _pointer(self._spare(name, size)))

    def advance(self, length):
        """The graph has written the `present` outputs: they are the cache now."""
        self.current = 1 - self.current
        self.length = length

    def _spare(self, name, size):
        """The buffer the next `present` of `name` goes to, holding >= `size` elements.
        Growing it loses nothing: the graph writes the whole output into it. It doubles,
        so a long decode reallocates O(log n) times."""
        pair = self.buffers[name]
        spare = 1 - self.current
        buffer = pair[spare]
        if buffer is None or _size(buffer) < size:
            old = 0 if buffer is None else _size(buffer)
            per_position = self.rows * self.heads * self.head_dim
            first = per_position * min(self.max_length, INITIAL_POSITIONS)
            limit = per_position * self.max_length
            pair[spare] = buffer = self._alloc(max(size, min(max(2 * old, first), limit)))
        return buffer

    # -- static entries ------------------------------------------------------------------
    def bind_static_outputs(self, binding, names, positions):
        """Bind the `present` outputs of the static entries `names` (`positions` long,
        e.g. the encoder's length) into new buffers."""
        shape = self.shape(positions)
        for name in names:
            buffer = self._alloc(int(np.prod(shape)))
            self.static[name] = (buffer, shape)
            binding.bind_output(present_name(name), self.device, 0, self.element, shape,
                                _pointer(buffer))

    def gather_static(self, source, rows):
        """Static entries from `source`, a cache over other rows (a beam search's inputs):
        row i of each is `source`'s row `rows[i]`."""
        rows = np.asarray(rows)
        for name, (buffer, shape) in source.static.items():
            gathered = source._host(buffer, shape)[rows]
            self.static[name] = (self._from_host(gathered), gathered.shape)

    def bind_static_inputs(self, binding):
        for name, (buffer, shape) in self.static.items():
            binding.bind_input(name, self.device, 0, self.element, shape, _pointer(buffer))

    # -- beam search ---------------------------------------------------------------------
    def reorder(self, rows, static=False):
        """Row i of every growing entry (and of every static one, with `static`) becomes
        old row `rows[i]`."""
        shape = self.shape()
        spare = 1 - self.current
        for name in self.growing:
            pair = self.buffers[name]
            source = self._host(pair[self.current], shape)
            if self.device == "cpu":
                out = self._host(self._spare(name, source.size), shape)
                np.take(source, rows, axis=0, out=out)
            else:
                pair[spare] = self._from_host(source[rows], _size(pair[self.current]))
        self.current = spare
        if static:
            for name, (buffer, shape) in list(self.static.items()):
                self.static[name] = (self._from_host(self._host(buffer, shape)[rows]), shape)

    def release(self):
        for pair in self.buffers.values():
            pair[:] = [None, None]
        self.static.clear()

    # -- memory --------------------------------------------------------------------------
    def _alloc(self, size):
        if self.device == "cpu":
            return np.empty(size, self.dtype)
        import onnxruntime as ort

        return ort.OrtValue.ortvalue_from_shape_and_type([size], self.element, "cuda", 0)

    def _host(self, buffer, shape):
        """A numpy view (CPU) or copy (CUDA) of the first prod(shape) elements."""
        n = int(np.prod(shape))
        flat = buffer if isinstance(buffer, np.ndarray) else buffer.numpy()
        return flat[:n].reshape(shape)

    def _from_host(self, array, capacity=None):
        """A new buffer holding `array` (flat), at least `capacity` elements."""
        size = max(array.size, capacity or 0)
        if self.device == "cpu":
            buffer = np.empty(size, self.dtype)
            buffer[:array.size] = array.ravel()
            return buffer
        import onnxruntime as ort

        flat = np.zeros(size, self.dtype)
        flat[:array.size] = array.ravel()
        return ort.OrtValue.ortvalue_from_numpy(flat, "cuda", 0)


def _pointer(buffer):
    return buffer.ctypes.data if isinstance(buffer, np.ndarray) else buffer.data_ptr()


def _size(buffer):
    return buffer.size if isinstance(buffer, np.ndarray) else int(np.prod(buffer.shape()))


def check_io_names(session, side, names, label):
    """One ArtifactError line when the session's `side` ("inputs" or "outputs") lacks one of
    `names` (or, for inputs, has one more: a graph fed less than it reads cannot run).
    `label` names the graph in the message."""
    have = [a.name for a in (session.get_inputs() if side == "inputs"
                             else session.get_outputs())]
    lacking = [n for n in names if n not in have]
    extra = [n for n in have if n not in names] if side == "inputs" else []
    if lacking or extra:
        what = "; ".join(filter(None, [
            lacking and f"lacks {lacking[:3]}", extra and f"has unexpected {extra[:3]}"]))
        raise ArtifactError(f"{label} does not match the manifest's KV cache names: its "
                            f"{side} {what}; re-export the artifact")


def check_kv_shapes(session, names, heads, head_dim, label):
    """Every past input of `session` is (batch, heads, seq, head_dim) as the manifest says."""
    shapes = {a.name: a.shape for a in session.get_inputs()}
    for name in names:
        shape = shapes[name]
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != heads) or (
                isinstance(shape[3], int) and shape[3] != head_dim):
            raise ArtifactError(f"{name} has shape {shape} in {label}, the "
                                f"manifest says (batch, {heads}, seq, {head_dim})")
