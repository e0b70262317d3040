"""Weights stored once in an artifact of several graphs.

A seq2seq artifact has two graphs (the encoder with the cross-attention K/V, and one cached
decoder) that read overlapping weights: the tied token embedding is the encoder's token
embedding and the decoder's token embedding and lm head. Written self-contained, each graph
holds its own copy. (Each other weight is read by one graph only, so one ONNX Runtime
session prepacks it; the earlier three-graph layout, a first-step decoder beside the
cached one, held every decoder weight in two graphs: 1069 MB of graphs for a 558 MB
bart-base-size checkpoint.)

`share` runs once every graph of an export is final (converted, and quantized when asked):
it moves each initializer of at least `INLINE_BELOW` bytes into ONE data file that all the
graphs reference as ONNX external data (location, offset, length), each distinct tensor
(by the sha256 of its bytes) written once. Offsets are aligned (`alignment`) so that ONNX
Runtime maps the tensors from the file instead of reading them into each session's memory.

Tensors are moved one at a time: a graph whose weights are already external (over 2 GB)
has them copied from its own data file in blocks, so memory stays at one graph's structure;
a self-contained graph (under 2 GB) is parsed whole once, as the export already did.
"""

from __future__ import annotations

import hashlib
import os

import onnx
from onnx import TensorProto

from exporter import external_data as ext
from exporter.errors import ExportError

DATA_FILE = "weights.onnx_data"
INLINE_BELOW = ext.INLINE_BELOW  # scalars and shape constants stay in the graph
# onnx's own `align_offset` rule: big tensors on the allocation granularity (64 KiB, what
# Windows maps at), small ones on a page, so padding stays a few KB per small tensor.
BIG_TENSOR = 1 << 20
PAGE = 4096


def alignment(nbytes):
    return ext.ALIGNMENT if nbytes >= BIG_TENSOR else PAGE


def share(folder, files, progress=None, data_file=DATA_FILE):
    """Move the weights of the graphs `files` (names in `folder`) into `folder/data_file`,
    each distinct tensor once; rewrite each graph to reference it and remove the data
    files the graphs used before. Returns the manifest's "shared_weights" block, or None
    when there are fewer than two graphs (nothing to share: a single graph stays as it
    is, self-contained under 2 GB)."""
    if len(files) < 2:
        return None
    if progress is not None:
        progress(f"storing the weights of {len(files)} graphs once, in {data_file}")
    if os.path.lexists(os.path.join(folder, data_file)):  # a graph's own data file
        raise ExportError(f"cannot share the weights of {', '.join(files)}: {data_file} "
                          "already exists in the artifact (a graph named "
                          f"{data_file[:-len('_data')]}?)")
    store = _Store(os.path.join(folder, data_file), data_file)
    previous = set()
    try:
        for file in files:
            path = os.path.join(folder, file)
            proto = onnx.load(path, load_external_data=False)
            previous |= ext.external_files(proto)
            for tensor in proto.graph.initializer:
                store.move(tensor, folder)
            with open(path, "wb") as f:
                f.write(proto.SerializeToString())
    finally:
        store.close()
    for name in previous - {data_file}:
        os.remove(os.path.join(folder, name))
    if progress is not None:
        progress(f"{data_file}: {len(store.written)} tensors, {store.offset / 1e6:.1f} MB "
                 f"({store.references} references)")
    return {"file": data_file, "bytes": store.offset, "tensors": len(store.written),
            "references": store.references, "graphs": list(files)}


class _Store:
    """The shared data file: appends tensor bytes at aligned offsets, hashing them on the
    way; a tensor whose bytes are already there is cut off again and points at the copy."""

    def __init__(self, path, location):
        self.path, self.location = path, location
        self._file = open(path, "wb")
        self.offset = 0
        self.written = {}  # sha256 -> (offset, length)
        self.references = 0

    def move(self, tensor, folder):
        """Make `tensor` (an initializer) reference the shared file, if it is big enough
        and its bytes can be read raw (typed fields and strings stay inline)."""
        source = _source(tensor, folder)
        if source is None:
            return
        length = source[2] if isinstance(source, tuple) else len(source)
        if length < INLINE_BELOW:
            return
        start = self.offset + (-self.offset) % alignment(length)
        self._file.write(b"\0" * (start - self.offset))
        digest = hashlib.sha256()
        for block in _blocks(source):
            digest.update(block)
            self._file.write(block)
        key = digest.hexdigest()
        if key in self.written:  # written before: drop this copy and its padding
            self._file.seek(self.offset)
            self._file.truncate()
            start, length = self.written[key]
        else:
            self.written[key] = (start, length)
            self.offset = start + length
        self.references += 1
        _point(tensor, self.location, start, length)

    def close(self):
        self._file.close()


def _source(tensor, folder):
    """A tensor's bytes: its raw_data, or (data file, offset, length) when external;
    None when it has neither (typed fields, strings)."""
    if tensor.data_location == TensorProto.EXTERNAL:
        info = {e.key: e.value for e in tensor.external_data}
        return (os.path.join(folder, info["location"]), int(info.get("offset", 0)),
                int(info["length"]))
    if tensor.HasField("raw_data") and tensor.data_type != TensorProto.STRING:
        return tensor.raw_data
    return None


def _blocks(source, chunk=ext.CHUNK_BYTES):
    if not isinstance(source, tuple):
        yield source
        return
    path, offset, length = source
    with open(path, "rb") as f:
        f.seek(offset)
        while length:
            block = f.read(min(chunk, length))
            if not block:
                raise OSError(f"{path} ends before the tensor at offset {offset} does")
            length -= len(block)
            yield block


def _point(tensor, location, offset, length):
    tensor.ClearField("raw_data")
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)),
                       ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    tensor.data_location = TensorProto.EXTERNAL
