"""ONNX Runtime sessions: CUDA when asked and available, else CPU with a warning."""

from __future__ import annotations

import logging
import os

import onnxruntime as ort

log = logging.getLogger(__name__)

DEVICES = ("cpu", "cuda")


def providers_for(device: str) -> list:
    """Execution providers for `device`; falls back to CPU (with a warning) when CUDA is
    not available in this onnxruntime build or on this machine."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {DEVICES}")
    if device == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        log.warning("CUDA was asked for but onnxruntime has no CUDAExecutionProvider here "
                    "(install hubonnx[gpu] on a CUDA machine); running on CPU.")
    return ["CPUExecutionProvider"]


def make_session(path: str, device: str = "cpu", threads: int | None = None):
    """An InferenceSession for the graph at `path` with full graph optimisations."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ONNX graph not found: {path}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    providers = providers_for(device)
    session = ort.InferenceSession(path, options, providers=providers)
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        log.warning("the CUDA provider failed to initialise; running %s on CPU.",
                    os.path.basename(path))
    return session
