"""GPU check of `--dtype float16 --optimize fused` artifacts, for a machine with CUDA.

    python benchmarks/cuda_check.py                  # on a CUDA box (onnxruntime-gpu 1.31)
    python benchmarks/cuda_check.py --dry-run --models tiny_encoder,tiny_causal_lm   # any CPU

For each model (random weights, built in memory; --models picks them):
  tiny_encoder    DistilBERT, 2 layers, 64 wide
  base_encoder    DistilBERT-base widths (6 layers, 768 wide, 12 heads)
  tiny_causal_lm  GPT-2, 2 layers, 64 wide
  causal_lm       GPT-2 small widths (12 layers, 768 wide, 12 heads)
it exports, each validated against Keras on CPU as every export is:
  * the float32 artifact (`--optimize basic`): the reference, run on the CPU provider;
  * the float16 artifact with `--optimize fused` (the float16 twin of the same weights);
  * the float16 artifact with `--optimize basic` (unless --no-basic), to time the fusion;
then runs the float16 graphs (the encoder's model, the causal LM's prefill `decoder`) with
CUDAExecutionProvider through IO binding (inputs copied to the GPU once, outputs left there
while timing), checks them against the float32 CPU outputs (cosine per row >= --min-cosine,
max abs diff <= --atol, on real tokens), and prints median latencies. It exits 1 when a
check fails, 2 (one `error:` line) when CUDAExecutionProvider is not there.

--dry-run runs all of it with the CPU provider standing in for CUDA (IO binding on CPU), so
the script itself is checked on a machine without a GPU. Most of the time is export and
Keras validation on the CPU: on a shared 2-core machine `--dry-run --models
base_encoder,causal_lm --no-basic --shapes 2x64` took 302 s; a GPU host's CPUs do it in
less, and --no-basic saves a third of the exports. It has not yet run on a GPU.
Needs the export extra (`pip install -e ".[export,gpu]"`) with only the GPU wheel of ONNX
Runtime installed (README: Set up).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

CUDA = "CUDAExecutionProvider"
ENCODER = dict(cls="DistilBertBackbone", task=None)
CAUSAL = dict(cls="GPT2Backbone", task="GPT2CausalLM")
MODELS = {
    "tiny_encoder": {**ENCODER, "config": dict(
        vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
        intermediate_dim=128, max_sequence_length=512)},
    "base_encoder": {**ENCODER, "config": dict(
        vocabulary_size=30522, num_layers=6, num_heads=12, hidden_dim=768,
        intermediate_dim=3072, max_sequence_length=512)},
    "tiny_causal_lm": {**CAUSAL, "config": dict(
        vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
        intermediate_dim=128, max_sequence_length=512)},
    "causal_lm": {**CAUSAL, "config": dict(
        vocabulary_size=50257, num_layers=12, num_heads=12, hidden_dim=768,
        intermediate_dim=3072, max_sequence_length=1024)},
}
SHAPES = "1x128,8x128,32x512"  # (batch x length) timed and checked


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true",
                   help="use the CPU provider in place of CUDA (checks the script itself)")
    p.add_argument("--models", default="tiny_encoder,base_encoder,causal_lm",
                   help=f"comma-separated, from {', '.join(MODELS)}")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per shape (default 50 on CUDA, 3 in a dry run)")
    p.add_argument("--shapes", default=SHAPES, help=f"batch x length, comma-separated "
                   f"(default {SHAPES})")
    p.add_argument("--no-basic", action="store_true",
                   help="skip the float16 --optimize basic artifact and its timings")
    p.add_argument("--atol", type=float, default=5e-2,
                   help="max abs diff float16 (GPU) vs float32 (CPU) on real tokens")
    p.add_argument("--min-cosine", type=float, default=0.999,
                   help="lowest cosine similarity of any row, float16 vs float32")
    p.add_argument("--keep", metavar="DIR", help="write the artifacts here (default: a "
                   "temporary folder)")
    args = p.parse_args(argv)
    unknown = [m for m in args.models.split(",") if m not in MODELS]
    if unknown:
        p.error(f"unknown --models {unknown}; choose from {', '.join(MODELS)}")
    try:
        args.shapes = [tuple(int(n) for n in s.split("x")) for s in args.shapes.split(",")]
    except ValueError:
        p.error(f"--shapes takes batch x length pairs like {SHAPES}, not {args.shapes!r}")
    if any(len(s) != 2 or min(s) < 1 for s in args.shapes):
        p.error(f"--shapes takes batch x length pairs like {SHAPES}, not {args.shapes!r}")
    return args


def check_provider(dry_run):
    """The provider the float16 graphs run on, or exit 2 with one line when CUDA is absent."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if dry_run:
        print(f"dry run: CPUExecutionProvider stands in for {CUDA} "
              f"(available here: {', '.join(available)})")
        return "CPUExecutionProvider"
    if CUDA not in available:
        print(f"error: {CUDA} is not available in onnxruntime {ort.__version__} (providers: "
              f"{', '.join(available)}); on a CUDA machine install only the GPU wheel "
              "(pip uninstall -y onnxruntime onnxruntime-gpu && pip install "
              "onnxruntime-gpu==1.31.1), or pass --dry-run to check this script on CPU",
              file=sys.stderr)
        sys.exit(2)
    return CUDA


def build(entry, dtype, weights=None):
    """The model of `entry` in `dtype`; with `weights` (another dtype's), the same values."""
    import model_defs

    backbone = getattr(model_defs, entry["cls"])(**entry["config"], dtype=dtype)
    model = backbone
    if entry["task"]:
        model = getattr(model_defs, entry["task"])(backbone=backbone, preprocessor=None)
    if weights is None:
        from tests.conftest import perturb

        perturb(model, scale=0.02)  # random biases and norms, not zeros and ones
    else:
        model.set_weights([w.astype(dtype) for w in weights])
    return model


def export_all(name, entry, root, with_basic):
    """{label: artifact folder}: fp32 basic, fp16 fused (and fp16 basic), same weights."""
    from exporter.export import export_model

    fp32 = build(entry, "float32")
    fp16 = build(entry, "float16", fp32.get_weights())
    plan = [("fp32 basic", fp32, "basic"), ("fp16 fused", fp16, "fused")]
    if with_basic:
        plan.append(("fp16 basic", fp16, "basic"))
    folders = {}
    for label, model, level in plan:
        folder = os.path.join(root, f"{name}_{label.replace(' ', '_')}")
        start = time.perf_counter()
        manifest = export_model(model, folder, overwrite=True, optimize=level)
        counts = {g: c.get("attention_fused", 0)
                  for g, c in manifest["optimization"]["graphs"].items()}
        print(f"  exported {label} in {time.perf_counter() - start:.1f} s "
              f"(validated on CPU, max abs diff "
              f"{max(manifest['validation']['max_abs_diff'].values()):.2g}; "
              f"fused attention per graph {json.dumps(counts)})", flush=True)
        folders[label] = folder
    return folders


def graph_path(folder):
    """The graph to check: the encoder's model, the causal LM's prefill decoder."""
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    graphs = manifest["graphs"]
    graph = graphs.get("model") or graphs["decoder"]
    return os.path.join(folder, graph["file"])


def session(path, provider):
    import onnxruntime as ort

    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3  # float16 constant-folding notes on CPU are not news
    if provider == "CPUExecutionProvider":
        return ort.InferenceSession(path, quiet, providers=[provider])
    # First with CPU fallback off: a node CUDA cannot run (an unsupported fused op or dtype)
    # is reported, not silently moved to the CPU. ORT may keep shape arithmetic on the CPU on
    # purpose, so a refusal here is a note, and the session is made with fallback.
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    try:
        made = ort.InferenceSession(path, options, providers=[CUDA, "CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - any refusal is the information we want
        print(f"  note: {os.path.basename(os.path.dirname(path))} does not run wholly on "
              f"CUDA: {str(e).splitlines()[0][:200]}")
        made = ort.InferenceSession(path, quiet, providers=[CUDA, "CPUExecutionProvider"])
    if made.get_providers()[0] != CUDA:
        print(f"error: the session fell back to {made.get_providers()}", file=sys.stderr)
        sys.exit(1)
    return made


def inputs_for(sess, batch, length, vocabulary_size, rng):
    """Inputs by name: token ids, a padding mask with right padding on every row but the
    first, and an empty KV cache (past length 0) where a decoder graph takes one."""
    lengths = np.full(batch, length)
    lengths[1:] = rng.integers(length // 2, length + 1, batch - 1)
    mask = (np.arange(length)[None] < lengths[:, None]).astype("int32")
    x = {}
    for i in sess.get_inputs():
        if "mask" in i.name:
            x[i.name] = mask
        elif i.name in ("token_ids", "segment_ids"):
            high = vocabulary_size if i.name == "token_ids" else 2
            x[i.name] = (rng.integers(1, high, (batch, length)) * mask).astype("int32")
        elif i.name.startswith("past_key_values.") and len(i.shape) == 4:
            # (batch, kv heads, past length, head dim): the two middle ones are fixed.
            dtype = np.float16 if "float16" in i.type else np.float32
            x[i.name] = np.zeros((batch, i.shape[1], 0, i.shape[3]), dtype)
        else:
            raise SystemExit(f"error: no input maker for graph input {i.name!r}")
    return x, mask


class Bound:
    """An IO-bound session: inputs copied to the device once, outputs kept there."""

    def __init__(self, sess, x, device):
        import onnxruntime as ort

        self.sess, self.binding = sess, sess.io_binding()
        self.device = device
        types = {i.name: i.type for i in sess.get_inputs()}
        for name, value in x.items():
            if value.dtype.kind == "f":  # a KV cache: in the graph's own float dtype
                value = value.astype(np.float16 if "float16" in types[name] else np.float32)
            self.binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(
                value, device, 0))
        for out in sess.get_outputs():
            self.binding.bind_output(out.name, device, 0)

    def run(self):
        self.sess.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()

    def outputs(self):
        names = [o.name for o in self.sess.get_outputs()]
        return dict(zip(names, self.binding.copy_outputs_to_cpu()))


def compare(reference, got, mask, atol, min_cosine):
    """Worst max abs diff and row cosine over the outputs, on real tokens."""
    worst_diff, worst_cos = 0.0, 1.0
    for name, want in reference.items():
        have = got[name].astype("float32")
        want = want.astype("float32")
        if want.shape[:2] == mask.shape:  # (batch, seq, ...): real tokens only
            want, have = want[mask.astype(bool)], have[mask.astype(bool)]
        rows_w, rows_h = want.reshape(len(want), -1), have.reshape(len(have), -1)
        cos = (rows_w * rows_h).sum(1) / (np.linalg.norm(rows_w, axis=1)
                                          * np.linalg.norm(rows_h, axis=1) + 1e-12)
        worst_diff = max(worst_diff, float(np.abs(want - have).max()))
        worst_cos = min(worst_cos, float(cos.min()))
    return worst_diff, worst_cos, worst_diff <= atol and worst_cos >= min_cosine


def timed(bound, repeats):
    for _ in range(3):
        bound.run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        bound.run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def check_model(name, entry, folders, provider, args):
    device = "cuda" if provider == CUDA else "cpu"
    reference = session(graph_path(folders["fp32 basic"]), "CPUExecutionProvider")
    candidates = {label: session(graph_path(f), provider) for label, f in folders.items()}
    rng = np.random.default_rng(0)
    ok = True
    print(f"  {'shape':>8} " + " ".join(f"{label + ' ms':>15}" for label in candidates)
          + f" {'fp16 fused vs fp32 CPU':>34}")
    for batch, length in args.shapes:
        x, mask = inputs_for(reference, batch, length, entry["config"]["vocabulary_size"],
                             rng)
        want = dict(zip([o.name for o in reference.get_outputs()], reference.run(None, x)))
        times, verdict = [], ""
        for label, sess in candidates.items():
            bound = Bound(sess, x, device)
            times.append(timed(bound, args.repeats))
            if label == "fp16 fused":
                bound.run()
                diff, cos, passed = compare(want, bound.outputs(), mask, args.atol,
                                            args.min_cosine)
                ok &= passed
                verdict = (f"max abs diff {diff:.2g}, min cosine {cos:.5f} "
                           + ("ok" if passed else "FAILED"))
        print(f"  {batch:>3}x{length:<4} " + " ".join(f"{t:15.2f}" for t in times)
              + f" {verdict:>34}", flush=True)
    return ok


def main(argv=None):
    args = parse_args(argv)
    provider = check_provider(args.dry_run)
    args.repeats = args.repeats or (50 if provider == CUDA else 3)
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, float16 graphs on {provider}")
    root = args.keep or tempfile.mkdtemp(prefix="cuda_check_")
    start, ok = time.perf_counter(), True
    for name in args.models.split(","):
        print(f"{name}:", flush=True)
        folders = export_all(name, MODELS[name], root, not args.no_basic)
        ok &= check_model(name, MODELS[name], folders, provider, args)
    print(f"{'all checks passed' if ok else 'a check FAILED'} in "
          f"{time.perf_counter() - start:.0f} s (artifacts in {root})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
