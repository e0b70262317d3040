"""`python -m exporter --preset distil_bert_base_en_uncased` (also `hubonnx export ...`).

The output is for people: progress as `[export] ...` lines on stderr, then on stdout what
was written and the `python -m runtime` command that serves it. TensorFlow's native
start-up lines (absl, oneDNN, cudart, cpu_feature_guard, cuInit) stay hidden unless
`--verbose`; `--help` imports no TensorFlow at all.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import threading

# The runtime command serving each task, with an example input ({mask}: the mask token).
SERVE = {
    "masked_lm": ("fill-mask", "Paris is the {mask} of France."),
    "backbone": ("encode", "This is an example sentence."),
    "text_classifier": ("classify", "What a great film!"),
    "seq2seq_lm": ("generate", "The quick brown fox."),
    "causal_lm": ("generate", "The quick brown fox."),
}

# exporter/quantize.py's MODES, repeated here so --help imports nothing (a test keeps
# the two equal).
QUANTIZE_MODES = ("int8", "int4")

# The quality gate's limits: flag, GateLimits field, its default (exporter/quality_gate.py;
# repeated here so --help imports nothing) and what it bounds.
GATE_FLAGS = [
    ("--min-cosine-mean", "cosine_mean", "0.98, int4 0.95",
     "lowest mean cosine similarity of outputs"),
    ("--min-cosine", "cosine_min", "0.95, int4 0.7",
     "lowest cosine similarity of any validation row"),
    ("--min-top1", "top1", "0.9, int4 0.65", "lowest top-1 agreement of logits"),
    ("--min-top5", "top5", "0.97, int4 0.85",
     "lowest share of Keras' best class (or a near-tie) in the top 5"),
    ("--min-greedy", "greedy", "0.9, int4 0.65",
     "lowest greedy-token agreement of generation"),
]

# Lines native code (absl / TSL logging) writes to fd 2: "I0000 00:00:17.8 123 port.cc:153]",
# absl's pre-init notice, and the continuation of cpu_feature_guard's message. Fatal (F)
# lines are kept: they explain a crash.
NATIVE_NOISE = re.compile(
    rb"^([IWE]\d{4} [\d:.]+ +\d+ [^ ]+:\d+\]"
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|To enable the following instructions: .*rebuild TensorFlow)")


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m exporter",
        description="Export a keras-hub style preset to a validated ONNX artifact folder.")
    p.add_argument("--preset", help="built-in name, kaggle://..., hf://... or a directory "
                   "in keras-hub or Transformers format")
    p.add_argument("--task", help="backbone, masked_lm, text_classifier, seq2seq_lm, causal_lm "
                   "(default: what the preset holds)")
    p.add_argument("--output", help="artifact folder (default: artifacts/<preset name>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--atol", type=float, default=None,
                   help="validation tolerance, max abs diff vs Keras (default 1e-4)")
    p.add_argument("--random-weights", action="store_true",
                   help="build the architecture with random weights (no download)")
    p.add_argument("--dtype", choices=["float32", "float16"], default=None,
                   help="weights and compute dtype of the exported graph")
    p.add_argument("--opset", type=int, default=None, choices=range(17, 19),
                   metavar="{17,18}", help="ONNX opset (default 17; LayerNormalization "
                   "needs 17)")
    p.add_argument("--quantize", choices=QUANTIZE_MODES, default=None,
                   help="int8: dynamic int8 MatMul / Gemm weights (per-channel), smaller "
                   "and faster on CPU, the few outlier input channels calibration finds "
                   "kept float32; int4 (causal LMs): weight-only 4-bit MatMulNBits "
                   "blocks of 32, as onnxruntime-genai's builder writes them; checked by "
                   "a quality gate, not --atol")
    p.add_argument("--optimize", choices=["basic", "fused"], default=None,
                   help="graph rewrites: basic (default) fuses Dense, LayerNorm and GELU; "
                   "fused also turns each attention block into ONNX Runtime's fused "
                   "MultiHeadAttention (CPU and CUDA), e.g. with --dtype float16 for GPUs")
    gate = p.add_argument_group(
        "quality gate of --quantize (the export fails, writing nothing, below a limit; "
        "measured against the float32 Keras model on the validation cases)")
    for flag, dest, default, what in GATE_FLAGS:
        gate.add_argument(flag, dest=dest, type=float, default=None, metavar="X",
                          help=f"{what} (default {default})")
    p.add_argument("--list-presets", action="store_true", help="list built-in presets")
    p.add_argument("--verbose", action="store_true",
                   help="also show TensorFlow's and tf2onnx's own log lines")
    args = p.parse_args(argv)
    if not args.list_presets and not args.preset:
        p.error("--preset is required")
    return args


class NativeLogFilter:
    """Routes fd 2 through a pipe whose reader drops `NATIVE_NOISE` lines, for TF's C++
    logging, which ignores TF_CPP_MIN_LOG_LEVEL for its start-up lines and goes on writing
    later (device set-up at the first op). Python's own `sys.stderr` (our progress lines,
    warnings, tracebacks) writes to the real stderr directly. `close()` restores fd 2."""

    def __init__(self):
        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._saved_stderr = sys.stderr
        sys.stderr = open(os.dup(self._saved_fd), "w", buffering=1,  # noqa: SIM115
                          encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                          errors="backslashreplace")
        self._thread = threading.Thread(target=self._pump, args=(read_fd,), daemon=True)
        self._thread.start()

    def _pump(self, read_fd):
        with os.fdopen(read_fd, "rb") as pipe:
            for line in pipe:
                if not NATIVE_NOISE.match(line):
                    os.write(self._saved_fd, line)

    def close(self):
        # The replacement sys.stderr stays open: logging handlers may still hold it, and
        # it writes to a copy of the real stderr.
        sys.stderr.flush()
        os.dup2(self._saved_fd, 2)  # drops the pipe's last writer: the reader sees EOF
        self._thread.join(timeout=5)
        sys.stderr = self._saved_stderr
        if not self._thread.is_alive():
            os.close(self._saved_fd)


def quiet_python_logs():
    """TF, absl and tf2onnx Python loggers: warnings and errors only."""
    import logging

    for name in ("tensorflow", "absl", "tf2onnx", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR if name != "tf2onnx"
                                         else logging.WARNING)


def serve_command(output, manifest):
    """The `python -m runtime` command line that serves the artifact, or None."""
    command, example = SERVE.get(manifest["task"], (None, None))
    if command is None:
        return None
    packing = (manifest.get("tokenizer") or {}).get("packing") or {}
    text = example.format(mask=packing.get("mask_token") or "[MASK]")
    quoted = f'"{text}"' if not re.search(r'["$`\\]', text) else shlex.quote(text)
    return f"python -m runtime {command} {shlex.quote(output)} {quoted}"


def report(args, output, result, stderr):
    """What was written (stdout), a note when the preset held only a backbone, and last
    the task with the serve command."""
    task = result["task"]
    if args.task is None and task == "backbone":
        pooling = result.get("pooling") or {}
        how = (f"; encode pools {pooling['mode']}"
               + (" and L2-normalises" if pooling.get("normalize") else "")
               + f" ({pooling.get('source')})") if pooling else ""
        print(f"[export] {args.preset} holds a bare backbone (no task head), so the "
              f"artifact is the backbone{how}; pass --task to export a task with a new, "
              "untrained head", file=stderr)
    graphs = ", ".join(g["file"] for g in result["graphs"].values())
    print(f"exported {args.preset} as {task} ({result['class_name']}) to {output}: {graphs}")
    command = serve_command(output, result)
    print(f"task {task}; serve it: {command}" if command else f"task {task}")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # what native code honours, before import
    native = None if args.verbose or "tensorflow" in sys.modules else NativeLogFilter()
    try:
        return run(args)
    finally:
        if native is not None:
            native.close()


def run(args):
    import logging

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s", stream=sys.stderr)
    from exporter.export import (
        ExportError,
        ValidationError,
        default_output,
        export_preset,
    )
    from model_defs.preset import PresetError, builtin_presets
    from model_defs.weights import WeightMapError

    if not args.verbose:
        quiet_python_logs()
    if args.list_presets:
        for name, entry in sorted(builtin_presets().items()):
            params = entry["metadata"]["params"] / 1e6
            print(f"{name:32s} {entry['cls'].__name__:24s} {params:8.2f}M")
        return 0
    kwargs = {k: v for k, v in {"atol": args.atol, "opset": args.opset,
                                "dtype": args.dtype, "quantize": args.quantize,
                                "optimize": args.optimize}.items()
              if v is not None}
    limits = {dest: getattr(args, dest) for _, dest, _, _ in GATE_FLAGS
              if getattr(args, dest) is not None}
    output = args.output or default_output(args.preset)
    from exporter.interrupts import Interrupted, signals_interrupt

    try:
        if limits:
            from exporter.quality_gate import GateLimits

            kwargs["gate"] = GateLimits(**limits, mode=args.quantize or "int8")
        with signals_interrupt():
            result = export_preset(args.preset, task=args.task, output=output,
                                   overwrite=args.overwrite,
                                   random_weights=args.random_weights, **kwargs)
    except (ExportError, PresetError, WeightMapError, ValidationError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"error: interrupted by {e.name}; {output} was left as it was",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        # The staging folder is gone already. Skip the interpreter's teardown: TensorFlow
        # objects the signal cut short print "Exception ignored" noise from __del__ there.
        os._exit(e.exit_code)
    report(args, output, result, sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
