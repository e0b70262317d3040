"""ONNX Runtime sessions: CUDA when asked and available, else CPU with a warning."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import onnxruntime as ort

log = logging.getLogger(__name__)
_warned = set()


def _warn_once(message):
    # One warning per process, not one per graph (a seq2seq artifact opens three).
    if message not in _warned:
        _warned.add(message)
        log.warning(message)

DEVICES = ("cpu", "cuda")


def providers_for(device: str) -> list:
    """Execution providers for `device`; falls back to CPU (with a warning) when CUDA is
    not available in this onnxruntime build or on this machine."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; choose one of {DEVICES}")
    if device == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        _warn_once("CUDA was asked for but onnxruntime has no CUDAExecutionProvider here "
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
    try:
        # onnxruntime prints its own CUDA fallback notice to stdout, where CLI results go.
        with contextlib.redirect_stdout(sys.stderr):
            session = ort.InferenceSession(path, options, providers=providers)
    except Exception as e:  # onnxruntime's errors derive from Exception only
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot load {os.path.basename(path)}: {first[:300]} "
                         "(re-export the artifact)") from None
    # Only when CUDA was really tried: without the provider, providers_for already warned.
    if "CUDAExecutionProvider" in providers and (
            "CUDAExecutionProvider" not in session.get_providers()):
        _warn_once("the CUDA provider failed to initialise; running on CPU.")
    return session
