"""Two int8 speed figures of issue 11 ("Speed and quality"), measured as ratios in one run
(the machine is shared and noisy: compare the ratios, not the absolute times).

(a) DistilBERT-base encoder, batch 1 x 128 and 8 x 128: our `--quantize int8`
    model.onnx against Optimum's int8 of the same checkpoint (target: ours <= 1.0x
    Optimum's time).
    The checkpoint is transformers' DistilBertModel with DistilBertConfig()'s defaults
    (= distilbert-base-uncased's dimensions), random weights, save_pretrained, plus a
    locally written vocab.txt of 30522 tokens (no downloads).
    Ours:      python -m exporter --preset HF --task backbone [--quantize int8] --output DIR
    Optimum's: optimum-cli export onnx --model HF --task feature-extraction DIR, then
               ORTQuantizer + AutoQuantizationConfig.avx512_vnni(is_static=False,
               per_channel=True), run by the side virtualenv's python (below).
    All four .onnx files (the int8 ones and both float32, for reference) are timed in this
    one process, with this environment's onnxruntime, the same SessionOptions (ORT's defaults:
    all graph optimizations, default thread count), in alternating rounds; medians.

(b) BART-base-size seq2seq, per generated token: our int8 against our float32, both with
    the runtime's `Generator`, greedy, 64 new tokens, no early stop, alternating rounds
    (target: int8 <= 0.75x float32). The checkpoint is bench_generate.py's (bart-base
    dimensions, random weights, byte-level BPE vocab), built in --workdir unless given.

    python benchmarks/bench_int8_peer.py                        # both sections
    python benchmarks/bench_int8_peer.py --skip bart --rounds 11
    python benchmarks/bench_int8_peer.py --bart-hf /tmp/h2/hf   # reuse a BART checkpoint
    python benchmarks/bench_int8_peer.py --skip bart --variants # where the gap comes from

Optimum: optimum-onnx 0.1.0 pins transformers<4.58, so it runs from a side virtualenv
(--optimum-python, default /work/venvs/optimum/bin/python) made as bench_generate.py's
docstring says (--system-site-packages; it shadows only transformers, tokenizers,
huggingface_hub, optimum, optimum-onnx).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

OPTIMUM_PYTHON = "/work/venvs/optimum/bin/python"
SEQ = 128

# Run by the side virtualenv: Optimum's dynamic, per-channel avx512_vnni int8 of its export.
OPTIMUM_QUANTIZE = """
import sys
from optimum.onnxruntime import ORTQuantizer
from optimum.onnxruntime.configuration import AutoQuantizationConfig
quantizer = ORTQuantizer.from_pretrained(sys.argv[1], file_name="model.onnx")
config = AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)
quantizer.quantize(save_dir=sys.argv[2], quantization_config=config)
"""


def log(message):
    print(message, file=sys.stderr, flush=True)


def run(cmd, what):
    log("$ " + " ".join(cmd))
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: {what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


# -- (a) DistilBERT-base -----------------------------------------------------------------
def write_vocab(path, size=30522):
    """A BERT-style uncased vocab of `size` entries: specials at BERT's ids, then letters,
    digits, '##' pieces and made-up words (the tokenizer only has to load and round-trip)."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]",
                                                                  "[MASK]"]
    base = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'\"()-")
    tokens += base + ["##" + c for c in base]
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(tokens) < size:  # deterministic made-up words: aa, ab, ..., aaa, ...
        word, n = "", i
        while True:
            word = letters[n % 26] + word
            n = n // 26 - 1
            if n < 0:
                break
        if len(word) > 1:
            tokens.append(word)
        i += 1
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens[:size]) + "\n")


def build_distilbert(folder):
    if os.path.isfile(os.path.join(folder, "model.safetensors")):
        return folder
    import torch
    from transformers import DistilBertConfig, DistilBertModel, DistilBertTokenizer

    log(f"building a random-weight distilbert-base checkpoint in {folder} ...")
    torch.manual_seed(0)
    model = DistilBertModel(DistilBertConfig()).eval()
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    vocab = os.path.join(folder, "vocab.txt")
    write_vocab(vocab)
    DistilBertTokenizer(vocab, do_lower_case=True).save_pretrained(folder)
    return folder


def export_ours(hf_dir, folder, task, quantize):
    """Our export of `hf_dir` (`quantize`: a --quantize mode or None for float32), made
    afresh every run: it is what is measured (a kept one may be of older code)."""
    cmd = [sys.executable, "-m", "exporter", "--preset", hf_dir, "--task", task,
           "--output", folder, "--overwrite"]
    if quantize:
        cmd += ["--quantize", quantize]
    run(cmd, "our export")
    return folder


def export_optimum(python, hf_dir, fp32_dir, int8_dir):
    cli = os.path.join(os.path.dirname(python), "optimum-cli")
    if not os.path.isfile(os.path.join(fp32_dir, "model.onnx")):
        run([cli, "export", "onnx", "--model", hf_dir, "--task", "feature-extraction",
             fp32_dir], "optimum-cli export")
    if not os.path.isfile(os.path.join(int8_dir, "model_quantized.onnx")):
        run([python, "-c", OPTIMUM_QUANTIZE, fp32_dir, int8_dir], "ORTQuantizer")
    return os.path.join(fp32_dir, "model.onnx"), os.path.join(int8_dir, "model_quantized.onnx")


def feeds_for(session, batch, seed=0):
    """Token ids and an all-ones mask for whatever the graph names its inputs."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 30000, size=(batch, SEQ))
    feeds = {}
    for arg in session.get_inputs():
        dtype = np.int32 if arg.type == "tensor(int32)" else (
            np.bool_ if arg.type == "tensor(bool)" else np.int64)
        if "mask" in arg.name:
            feeds[arg.name] = np.ones((batch, SEQ), dtype)
        elif "segment" in arg.name or "type" in arg.name:
            feeds[arg.name] = np.zeros((batch, SEQ), dtype)
        else:
            feeds[arg.name] = ids.astype(dtype)
    return feeds


def alternating(contenders, rounds, calls):
    """Median over rounds of the mean time of `calls` calls; contenders interleaved per
    round (and their order rotated) so load changes hit all of them alike."""
    for fn in contenders.values():
        fn()  # warm-up
    times = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            for _ in range(calls):
                contenders[name]()
            times[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(t) for name, t in times.items()}


def op_counts(path):
    """How much of the graph is int8: MatMulInteger vs float MatMul (weights and
    activation x activation alike), and the DynamicQuantizeLinear that feed them."""
    import collections

    import onnx

    ops = collections.Counter(n.op_type for n in onnx.load(path, load_external_data=False)
                              .graph.node)
    keys = ("MatMulInteger", "MatMul", "DynamicQuantizeLinear", "Gather", "DequantizeLinear")
    return ", ".join(f"{k} {ops[k]}" for k in keys if ops[k])


def variant_all_matmuls(fp32_path, out):
    """A diagnostic row, not a product mode: our float32 graph quantized with our settings
    and, like Optimum, also the activation x activation MatMuls of attention (QK^T,
    weights x V) quantized per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if not os.path.isfile(out):
        quantize_dynamic(fp32_path, out, op_types_to_quantize=["MatMul", "Gemm"],
                         per_channel=True, reduce_range=False, weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": False})
    return out


def section_distilbert(args):
    import onnxruntime as ort

    hf = build_distilbert(os.path.join(args.workdir, "distilbert_hf"))
    paths = {f"ours {mode or 'fp32'}": os.path.join(export_ours(
        hf, os.path.join(args.workdir, f"ours_{mode or 'fp32'}"), "backbone", mode),
        "model.onnx") for mode in ("int8", None)}
    opt_fp32, opt_int8 = export_optimum(args.optimum_python, hf,
                                        os.path.join(args.workdir, "optimum_fp32"),
                                        os.path.join(args.workdir, "optimum_int8"))
    paths["optimum int8"], paths["optimum fp32"] = opt_int8, opt_fp32
    if args.variants:
        paths["ours all-MM"] = variant_all_matmuls(paths["ours fp32"], os.path.join(
            args.workdir, "variant_all_matmul_int8.onnx"))
    sessions = {name: ort.InferenceSession(p, ort.SessionOptions(),
                                           providers=["CPUExecutionProvider"])
                for name, p in paths.items()}
    print(f"\n(a) DistilBERT-base, onnxruntime {ort.__version__}, ORT default SessionOptions")
    for name, p in paths.items():
        print(f"    {name:13s} {os.path.getsize(p) / 2**20:7.1f} MiB  {p}\n"
              f"    {'':13s} {op_counts(p)}")
    for batch in (1, 8):
        fns = {}
        for name, s in sessions.items():
            feeds = feeds_for(s, batch)
            fns[name] = (lambda s=s, f=feeds: s.run(None, f))
        rounds = args.rounds if batch == 1 else max(5, args.rounds // 2)
        calls = 5 if batch == 1 else 1
        med = alternating(fns, rounds, calls)
        print(f"\n  batch {batch} x {SEQ}: median of {rounds} alternating rounds "
              f"({calls} call(s) each)")
        for name in paths:
            print(f"    {name:13s} {med[name] * 1000:8.1f} ms")
        print(f"    ours int8 / optimum int8 = "
              f"{med['ours int8'] / med['optimum int8']:.3f}   (target <= 1.0)")
        print(f"    ours fp32 / optimum fp32 = {med['ours fp32'] / med['optimum fp32']:.3f}")
        print(f"    int8 / fp32: ours {med['ours int8'] / med['ours fp32']:.3f}, "
              f"optimum {med['optimum int8'] / med['optimum fp32']:.3f}")
        if "ours all-MM" in med:
            print(f"    ours all-MM / optimum int8 = "
                  f"{med['ours all-MM'] / med['optimum int8']:.3f}")


# -- (b) BART-base int8 vs fp32 per token --------------------------------------------------
def section_bart(args):
    import bench_generate as bg

    from runtime.generator import Generator

    hf = args.bart_hf or bg.build_checkpoint(os.path.join(args.workdir, "bart_hf"))
    folders = {"ours int8": export_ours(hf, os.path.join(args.workdir, "bart_int8"),
                                        "seq2seq_lm", "int8"),
               "ours fp32": export_ours(hf, os.path.join(args.workdir, "bart_fp32"),
                                        "seq2seq_lm", None)}
    n = args.new_tokens
    fns = {}
    for name, folder in folders.items():
        gen = Generator(folder)
        x, _, _ = gen.pack(bg.PROMPT, max_length=len(bg.START) + n)
        fns[name] = (lambda g=gen, x=x: g.generate(x, sampler="greedy", stop_token_ids=None))
    med = alternating(fns, max(5, args.rounds // 2), 1)
    print(f"\n(b) BART-base-size seq2seq ({hf}), Generator, greedy, batch 1, {n} new tokens,"
          f" median of {max(5, args.rounds // 2)} alternating rounds")
    for name in folders:
        print(f"    {name:10s} {med[name] * 1000 / n:7.2f} ms/token  {folders[name]}")
    print(f"    int8 / fp32 per token = {med['ours int8'] / med['ours fp32']:.3f}"
          f"   (target <= 0.75)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="/tmp/bench_int8_peer")
    parser.add_argument("--optimum-python", default=OPTIMUM_PYTHON)
    parser.add_argument("--bart-hf", help="an existing bart-base-size Transformers checkpoint")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--variants", action="store_true",
                        help="also time a diagnostic int8 variant of our float32 graph: "
                        "all-MM (also attention's activation MatMuls int8, as Optimum does)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["distilbert", "bart"])
    args = parser.parse_args()
    if "distilbert" not in args.skip and not os.path.isfile(args.optimum_python):
        sys.exit(f"error: no Optimum python at {args.optimum_python}; make the side "
                 "virtualenv (see this file's docstring) or pass --optimum-python")
    os.makedirs(args.workdir, exist_ok=True)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if "distilbert" not in args.skip:
        section_distilbert(args)
    if "bart" not in args.skip:
        section_bart(args)


if __name__ == "__main__":
    main()
