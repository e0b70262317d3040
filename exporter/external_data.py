"""ONNX external data, written straight from the Keras variables.

protobuf cannot serialize a message over 2 GiB, so a graph whose weights pass that limit
keeps them in one file beside it (`model.onnx` + `model.onnx_data`, DESIGN.md). Rather than
building the whole `ModelProto` in memory with every weight inline and letting
`onnx.save_model` move them out afterwards (two extra copies of the weights, transiently),
`ExternalDataWriter` writes each variable's bytes to the data file as its initializer is
created, and the proto only holds (location, offset, length) references. Peak memory of an
export is then the Keras model plus one tensor, not three times the weights.

Offsets are aligned (64 KiB) so that ONNX Runtime can map the tensors from the file.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# protobuf's hard limit is 2 GiB; keep a margin for the graph itself.
LIMIT_BYTES = 2_000_000_000 - 50_000_000
ALIGNMENT = 64 * 1024
INLINE_BELOW = 1024
CHUNK_BYTES = 64 * 1024 * 1024
# Weights past this are streamed to disk during conversion (memory stays ~1x the model).
STREAM_ABOVE = 64 * 1024 * 1024  # small tensors (biases of tiny models, scalars) stay in the graph


def data_location(model_path: str) -> str:
    """`model.onnx` -> `model.onnx_data` (relative to the graph's folder)."""
    return os.path.basename(model_path) + "_data"


def weights_bytes(variables) -> int:
    """Bytes the variables take as initializers."""
    total = 0
    for v in variables:
        total += int(np.prod(v.shape, dtype=np.int64)) * np.dtype(_np_dtype(v.dtype)).itemsize
    return total


def needs_external_data(variables) -> bool:
    return weights_bytes(variables) > LIMIT_BYTES


def writer_for(variables, model_path):
    """An `ExternalDataWriter` for `model_path` when the weights are big enough for memory
    to matter (`STREAM_ABOVE`), else None. `finish` later keeps them external only past
    protobuf's limit; under it they are streamed back into one file."""
    return ExternalDataWriter(model_path) if weights_bytes(variables) > STREAM_ABOVE else None


def finish(proto, path, external=None) -> bool:
    """Write a graph whose weights an `ExternalDataWriter` put beside it: as is (external
    data) when they pass `LIMIT_BYTES` or `external` is True, else as one self-contained
    file (the data file is then removed). Returns True when the data stays external."""
    files = external_files(proto)
    folder = os.path.dirname(os.path.abspath(path))
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    if external is None:
        external = size > LIMIT_BYTES
    if external:
        with open(path, "wb") as f:
            f.write(proto.SerializeToString())
        return True
    write_inline(proto, path)
    for name in files:
        os.remove(os.path.join(folder, name))
    return False


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# Length-delimited field tags: ModelProto.graph (7), GraphProto.initializer (5),
# TensorProto.raw_data (9).
_GRAPH, _INITIALIZER, _RAW_DATA = b"\x3a", b"\x2a", b"\x4a"


def write_inline(proto, path, chunk=CHUNK_BYTES):
    """Serialize `proto` into one file, copying each external tensor's bytes from its data
    file while writing, so the full message never exists in memory.

    protobuf parsers accept fields in any order and repeated fields spread out, so the file
    is: the model without its graph, then the graph field made of the graph without its
    initializers followed by each initializer (its header, then its raw_data field).
    """
    folder = os.path.dirname(os.path.abspath(path))
    graph = proto.graph
    pieces = []  # (header bytes, (data file, offset, length) or None) per initializer
    for tensor in graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            pieces.append((tensor.SerializeToString(), None))
            continue
        info = {e.key: e.value for e in tensor.external_data}
        head = TensorProto()
        head.CopyFrom(tensor)
        del head.external_data[:]
        head.data_location = TensorProto.DEFAULT
        source = (os.path.join(folder, info["location"]), int(info.get("offset", 0)),
                  int(info["length"]))
        pieces.append((head.SerializeToString(), source))
    graph_head = onnx.GraphProto()
    graph_head.CopyFrom(graph)
    del graph_head.initializer[:]
    graph_bytes = graph_head.SerializeToString()
    model_head = onnx.ModelProto()
    model_head.CopyFrom(proto)
    model_head.ClearField("graph")

    def tensor_length(head, source):
        if source is None:
            return len(head)
        n = source[2]
        return len(head) + len(_RAW_DATA) + len(_varint(n)) + n

    graph_length = len(graph_bytes) + sum(
        len(_INITIALIZER) + len(_varint(tensor_length(h, s))) + tensor_length(h, s)
        for h, s in pieces)
    with open(path, "wb") as out:
        out.write(model_head.SerializeToString())
        out.write(_GRAPH + _varint(graph_length))
        out.write(graph_bytes)
        for head, source in pieces:
            out.write(_INITIALIZER + _varint(tensor_length(head, source)))
            out.write(head)
            if source is None:
                continue
            data_path, offset, length = source
            out.write(_RAW_DATA + _varint(length))
            with open(data_path, "rb") as data:
                data.seek(offset)
                left = length
                while left:
                    block = data.read(min(chunk, left))
                    if not block:
                        raise OSError(f"{data_path} ends before tensor {head[:40]!r}")
                    out.write(block)
                    left -= len(block)


def _np_dtype(dtype):
    name = getattr(dtype, "name", None) or str(dtype)
    return np.dtype(name.replace("tf.", ""))


class ExternalDataWriter:
    """Appends tensors to one external data file and returns their referencing
    `TensorProto`s.

    >>> with ExternalDataWriter("out/model.onnx") as writer:
    ...     tensor = writer.add(np.zeros((4096, 1024), "float32"), "embeddings")
    """

    def __init__(self, model_path: str, alignment: int = ALIGNMENT):
        self.model_path = model_path
        self.location = data_location(model_path)
        self.path = os.path.join(os.path.dirname(os.path.abspath(model_path)), self.location)
        self.alignment = alignment
        self._file = open(self.path, "wb")
        self.offset = 0
        self.count = 0

    def add(self, array, name: str) -> TensorProto:
        array = np.ascontiguousarray(array)
        if array.nbytes < INLINE_BELOW:
            return numpy_helper.from_array(array, name=name)
        if array.dtype.byteorder == ">":  # ONNX raw data is little-endian
            array = array.astype(array.dtype.newbyteorder("<"))
        tensor = self._begin(name, array.dtype, array.shape)
        self._file.write(memoryview(array).cast("B"))  # no copy
        return self._finish(tensor, array.nbytes)

    def add_variable(self, variable, name: str) -> TensorProto:
        """Like `add`, reading the variable in row blocks of about `CHUNK_BYTES`, so a 1 GB
        embedding never exists twice in memory (a whole-tensor read copies it, and
        TensorFlow keeps the freed buffer in its allocator's pool)."""
        shape = tuple(int(d) for d in variable.shape)
        dtype = _np_dtype(variable.dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        value = getattr(variable, "value", variable)
        if len(shape) == 0 or nbytes <= CHUNK_BYTES:
            return self.add(np.asarray(value), name)
        tensor = self._begin(name, dtype, shape)
        rows = max(1, CHUNK_BYTES // (nbytes // shape[0]))
        for start in range(0, shape[0], rows):
            block = np.ascontiguousarray(np.asarray(value[start:start + rows]), dtype=dtype)
            self._file.write(memoryview(block).cast("B"))
            del block
        return self._finish(tensor, nbytes)

    def _begin(self, name, dtype, shape) -> TensorProto:
        pad = (-self.offset) % self.alignment
        if pad:
            self._file.write(b"\0" * pad)
            self.offset += pad
        tensor = TensorProto()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        tensor.dims.extend(shape)
        return tensor

    def _finish(self, tensor, nbytes) -> TensorProto:
        for key, value in (("location", self.location), ("offset", str(self.offset)),
                           ("length", str(nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        tensor.data_location = TensorProto.EXTERNAL
        self.offset += nbytes
        self.count += 1
        return tensor

    def close(self):
        if not self._file.closed:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def has_external_data(proto) -> bool:
    return any(t.data_location == TensorProto.EXTERNAL for t in proto.graph.initializer)


def external_files(proto) -> set:
    """The data files the graph's initializers reference."""
    files = set()
    for t in proto.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            for entry in t.external_data:
                if entry.key == "location":
                    files.add(entry.value)
    return files


class TensorReader:
    """The values of a graph's initializers, inline or in external data files in `folder`,
    read one tensor at a time (by offset and length), so that a big graph can be
    rewritten without its weights all in memory."""

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        self.moved = {}  # data file -> where it was moved aside to (still read from there)

    def __call__(self, tensor) -> np.ndarray:
        if tensor.data_location != TensorProto.EXTERNAL:
            return numpy_helper.to_array(tensor)
        info = {e.key: e.value for e in tensor.external_data}
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type))
        with open(self.path(info["location"]), "rb") as f:
            f.seek(int(info.get("offset", 0)))
            count = int(info["length"]) // dtype.itemsize if "length" in info else -1
            array = np.fromfile(f, dtype=dtype, count=count)
        return array.reshape(tuple(tensor.dims))

    def nbytes(self, tensor) -> int:
        if tensor.data_location == TensorProto.EXTERNAL:
            info = {e.key: e.value for e in tensor.external_data}
            if "length" in info:
                return int(info["length"])
            return os.path.getsize(self.path(info["location"])) - int(info.get("offset", 0))
        return tensor.ByteSize()

    def move_aside(self, path: str) -> str:
        """Rename data file `path` (to write a new one of its name) and keep reading its
        tensors from the new name, which is returned."""
        if os.path.dirname(os.path.abspath(path)) != self.folder:
            raise ValueError(f"{path} is not in {self.folder}")
        path = os.path.join(self.folder, os.path.basename(path))
        aside = path + ".reading"
        os.replace(path, aside)
        self.moved[path] = aside
        return aside

    def path(self, location: str) -> str:
        """Where the data file `location` (a plain file name in the folder) is read."""
        if os.path.isabs(location) or os.path.basename(location) != location:
            raise ValueError(f"external data location {location!r} is not a file name")
        path = os.path.join(self.folder, location)
        return self.moved.get(path, path)
