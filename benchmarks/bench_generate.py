"""Greedy generation speed of a bart_base_en-sized BART (random weights), side by side in one
run on this CPU: our ONNX Runtime `Generator`, our Keras `generate`, keras-hub's `generate`,
Hugging Face Optimum's `ORTModelForSeq2SeqLM.generate` on its own ONNX export,
transformers/PyTorch `generate`, and a no-cache baseline that reruns decoder_model.onnx on
the whole prefix each step. Batch 1, 64 new tokens, no early stop. Then the position
flatness of our loop (tokens 200-256 vs 1-50 of a 256-token decode) and what one cached
decoder step costs in the graph itself (ours: decoder_model.onnx, Optimum's:
decoder_with_past_model.onnx). Last, the weights-once layout (issue 11 item 4): artifact
bytes against the checkpoint's, and serving memory (RSS and PSS of a process holding a
Generator, from /proc/PID/smaps_rollup) and ms per token, for an artifact with each graph
self-contained (before) and with weights.onnx_data (after); `--previous ARTIFACT CHECKOUT`
adds a row for an artifact of an earlier layout served by that checkout's runtime, e.g.
the three-graph seq2seq layout (a first-step decoder_model.onnx beside
decoder_with_past_model.onnx, whose two sessions each prepacked the decoder weights):

    python benchmarks/bench_generate.py                  # builds everything in --workdir
    python benchmarks/bench_generate.py --optimum-python /tmp/optimum-venv/bin/python
    git archive OLD_COMMIT | tar -x -C /tmp/old   # its bench_generate.py exports ARTIFACT
    python benchmarks/bench_generate.py --previous ARTIFACT /tmp/old --skip self_contained

The checkpoint: transformers' BartForConditionalGeneration with bart-base dimensions
(d_model 768, 6+6 layers, 12 heads, FFN 3072, 50265 tokens, 1024 positions; note that
`BartConfig()`'s defaults are bart-large's), random weights, saved with save_pretrained
plus a byte-level BPE vocab.json/merges.txt of 50265 ids trained with `tokenizers`.

Optimum: optimum-onnx 0.1.0 (the newest) pins transformers<4.58, which would replace the
pinned transformers 5.23, so it runs from a side virtualenv that shadows only
transformers/tokenizers/huggingface_hub/optimum (everything else comes from this
environment: torch, onnx, onnxruntime):

    python -m venv --system-site-packages /tmp/optimum-venv
    /tmp/optimum-venv/bin/pip install "optimum-onnx==0.1.0" "transformers==4.57.6" \\
        "tokenizers==0.22.2" "huggingface_hub==0.36.2" "optimum==2.1.0"

Without it (no --optimum-python and no /tmp/optimum-venv), the Optimum column is left out.
The machine is shared and noisy: compare ratios within one run.
"""

import argparse
import json
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

BART_BASE = dict(vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6,
                 encoder_attention_heads=12, decoder_attention_heads=12,
                 encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024)
PROMPT = "The quick brown fox jumped over the lazy dog while the whale sang in the sea."
START = [2, 0]  # keras-hub's BART decoder start: </s> <s>


def log(message):
    print(message, file=sys.stderr, flush=True)


# -- the checkpoint ----------------------------------------------------------------------
def corpus_files():
    import sysconfig

    lib = sysconfig.get_paths()["stdlib"]
    return sorted(os.path.join(lib, f) for f in os.listdir(lib) if f.endswith(".py"))


def build_checkpoint(folder):
    """bart-base-sized BartForConditionalGeneration (random weights) + BPE vocab."""
    if os.path.isfile(os.path.join(folder, "model.safetensors")):
        return folder
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration

    os.makedirs(folder, exist_ok=True)
    log("training a 50265-id byte-level BPE vocabulary on the Python stdlib sources ...")
    bpe = ByteLevelBPETokenizer()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    bpe.train(corpus_files(), vocab_size=BART_BASE["vocab_size"] - 1,
              special_tokens=specials, show_progress=False)
    vocab = bpe.get_vocab()
    n = 0
    while len(vocab) < BART_BASE["vocab_size"] - 1:  # a small corpus may stop short
        vocab.setdefault(f"filler{n}", len(vocab))
        n += 1
    vocab["<mask>"] = len(vocab)  # BART's layout: <mask> is the last id
    bpe.save_model(folder)  # merges.txt (vocab.json rewritten below)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    torch.manual_seed(0)
    config = BartConfig(**BART_BASE, forced_bos_token_id=0)
    model = BartForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    return folder


def export_ours(hf_dir, folder):
    if not os.path.isfile(os.path.join(folder, "manifest.json")):
        from exporter.export import export_preset

        log("exporting with our exporter ...")
        export_preset(hf_dir, output=folder)
    return folder


def keras_hub_preset(hf_dir, folder):
    """Our model loaded from the Transformers checkpoint, written in keras-hub format."""
    if not os.path.isfile(os.path.join(folder, "config.json")):
        from model_defs import BartSeq2SeqLM

        ours = BartSeq2SeqLM.from_preset(hf_dir)
        # keras-hub's BART has no final_logits_bias (zero in this random checkpoint).
        plain = BartSeq2SeqLM(backbone=ours.backbone, preprocessor=ours.preprocessor)
        plain.save_to_preset(folder)
    return folder


# -- timing ----------------------------------------------------------------------------
def timed(fn, repeats):
    fn()  # warm-up (tracing, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_runtime(artifact, new_tokens):
    from runtime.generator import Generator

    gen = Generator(artifact)
    x = _packed(gen, new_tokens)
    out = {}

    def run():
        out["ids"] = gen.generate(x, sampler="greedy",
                                  stop_token_ids=None)["decoder_token_ids"]

    return run, out


def _packed(gen, new_tokens):
    x, _, _ = gen.pack(PROMPT, max_length=len(START) + new_tokens)
    return x


def bench_no_cache(artifact, new_tokens):
    """Greedy with decoder_model.onnx on the whole prefix each step, from an empty past
    (no KV cache kept)."""
    from runtime.artifact import Artifact
    from runtime.generator import Generator

    art = Artifact(artifact)
    x = _packed(Generator(art), new_tokens)
    encoder, decoder = art.session("encoder"), art.session("decoder")
    kv = art.manifest["kv_cache"]

    def run():
        outputs = encoder.run(None, {"token_ids": x["encoder_token_ids"],
                                     "padding_mask": x["encoder_padding_mask"]})
        named = dict(zip([o.name for o in encoder.get_outputs()], outputs, strict=True))
        past = {n: named["present." + n[len("past_key_values."):]]
                for n in kv["cross_attention"]}
        empty = np.zeros((1, kv["num_heads"], 0, kv["head_dim"]), "float32")
        past.update({n: empty for n in kv["self_attention"]})
        ids = x["decoder_token_ids"][:, :len(START)]
        for _ in range(new_tokens):
            logits = decoder.run(["logits"], {
                "decoder_token_ids": ids, "encoder_padding_mask": x["encoder_padding_mask"],
                **past})[0]
            ids = np.concatenate([ids, logits[:, -1].argmax(-1)[:, None].astype("int32")], 1)

    return run


def bench_keras(hf_dir, new_tokens):
    from model_defs import BartSeq2SeqLM

    model = BartSeq2SeqLM.from_preset(hf_dir)
    model.preprocessor.encoder_sequence_length = 64
    model.compile(sampler="greedy")
    out = {}

    def run():
        out["text"] = model.generate(PROMPT, max_length=len(START) + new_tokens,
                                     stop_token_ids=None)

    return run


def bench_keras_hub(preset, new_tokens):
    import keras_hub

    model = keras_hub.models.BartSeq2SeqLM.from_preset(preset)
    model.preprocessor.encoder_sequence_length = 64
    model.compile(sampler="greedy")

    def run():
        model.generate(PROMPT, max_length=len(START) + new_tokens, stop_token_ids=None)

    return run


def bench_torch(hf_dir, gen_x, new_tokens):
    import torch
    from transformers import BartForConditionalGeneration

    torch.set_num_threads(os.cpu_count() or 1)
    model = BartForConditionalGeneration.from_pretrained(hf_dir).eval()
    inputs = _torch_inputs(gen_x)
    out = {}

    def run():
        with torch.no_grad():
            out["ids"] = model.generate(**inputs, **HF_GREEDY(new_tokens)).numpy()

    return run, out


def _torch_inputs(x):
    import torch

    return {"input_ids": torch.tensor(x["encoder_token_ids"], dtype=torch.long),
            "attention_mask": torch.tensor(x["encoder_padding_mask"], dtype=torch.long),
            "decoder_input_ids": torch.tensor([START], dtype=torch.long)}


def HF_GREEDY(new_tokens):  # noqa: N802 - a constant-like helper
    return dict(do_sample=False, num_beams=1, max_new_tokens=new_tokens,
                min_new_tokens=new_tokens, forced_bos_token_id=None,
                forced_eos_token_id=None, no_repeat_ngram_size=0, use_cache=True)


OPTIMUM_SCRIPT = r"""
import json, os, sys, time
import torch
from optimum.onnxruntime import ORTModelForSeq2SeqLM
hf_dir, onnx_dir, new_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
x = json.loads(sys.stdin.readline())
if not os.path.isfile(os.path.join(onnx_dir, "config.json")):
    t = time.perf_counter()
    model = ORTModelForSeq2SeqLM.from_pretrained(hf_dir, export=True, use_cache=True)
    model.save_pretrained(onnx_dir)
    print(f"optimum export {time.perf_counter() - t:.1f} s", file=sys.stderr)
model = ORTModelForSeq2SeqLM.from_pretrained(onnx_dir, use_cache=True)
inputs = {"input_ids": torch.tensor(x["encoder_token_ids"], dtype=torch.long),
          "attention_mask": torch.tensor(x["encoder_padding_mask"], dtype=torch.long),
          "decoder_input_ids": torch.tensor([x["start"]], dtype=torch.long)}
kw = dict(do_sample=False, num_beams=1, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
          forced_bos_token_id=None, forced_eos_token_id=None, no_repeat_ngram_size=0,
          use_cache=True)
files = sorted(f for f in os.listdir(onnx_dir) if f.endswith(".onnx"))
print(json.dumps({"ready": True, "files": files}), flush=True)
for line in sys.stdin:  # one generate per line: the timing is interleaved with the others
    t = time.perf_counter()
    ids = model.generate(**inputs, **kw)
    print(json.dumps({"seconds": time.perf_counter() - t, "ids": ids.numpy().tolist()}),
          flush=True)
"""


class OptimumServer:
    """Optimum in its own interpreter (its virtualenv), driven one generate at a time so
    its runs interleave with the other columns'."""

    def __init__(self, python, hf_dir, onnx_dir, gen_x, new_tokens):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.proc = subprocess.Popen(
            [python, "-c", OPTIMUM_SCRIPT, hf_dir, onnx_dir, str(new_tokens)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd="/")
        self.proc.stdin.write(json.dumps({
            "encoder_token_ids": gen_x["encoder_token_ids"].tolist(),
            "encoder_padding_mask": gen_x["encoder_padding_mask"].tolist(),
            "start": START}) + "\n")
        self.proc.stdin.flush()
        self.info = self._read()
        self.out = {}

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the Optimum process died (see its stderr above)")
        return json.loads(line)

    def __call__(self):
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        result = self._read()
        self.out["ids"] = np.asarray(result["ids"])
        return result["seconds"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def interleaved(contenders, rounds):
    """Median seconds per contender, timed round-robin (A B C A B C ...) after one
    warm-up each, so the shared machine's load drifts hit every column alike."""
    times = {name: [] for name in contenders}
    for fn in contenders.values():
        fn()
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            inner = fn()
            times[name].append(inner if isinstance(inner, float)
                               else time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


# -- flatness and graph cost -----------------------------------------------------------------
def flatness(artifact, tokens=256):
    """Per-token times of one `tokens`-token decode (from the streaming timestamps)."""
    from runtime.generator import Generator

    gen = Generator(artifact)
    x = _packed(gen, tokens)
    gen.generate(_packed(gen, 16), sampler="greedy", stop_token_ids=None)  # warm-up
    stamps = []
    t0 = time.perf_counter()
    gen.generate(x, sampler="greedy", stop_token_ids=None,
                 callback=lambda token: stamps.append(time.perf_counter()))
    steps = np.diff([t0, *stamps]) * 1000  # steps[0] includes the encoder
    early, late = steps[1:50], steps[199:256]
    return float(np.mean(early)), float(np.mean(late)), steps


def _step_feeds(session, past, enc_len=20, heads=12, head_dim=64):
    """Feeds for one decoder_with_past step of either export (ours: int32 names of
    DESIGN.md; Optimum's: int64 input_ids/encoder_attention_mask), by input name."""
    rng = np.random.default_rng(0)
    feeds = {}
    for arg in session.get_inputs():
        if arg.type.startswith("tensor(int"):
            dtype = "int64" if "int64" in arg.type else "int32"
            is_mask = "mask" in arg.name
            feeds[arg.name] = (np.ones((1, enc_len), dtype) if is_mask
                               else np.full((1, 1), 5, dtype))
        else:
            seq = past if ".decoder." in arg.name else enc_len
            feeds[arg.name] = rng.normal(size=(1, heads, seq, head_dim)).astype("float32")
    return feeds


def graph_step_costs(paths, lengths=(1, 64, 256), repeats=30):
    """decoder_with_past graphs alone (name -> path), one token, past of each length:
    ms per call, the graphs timed alternately so load drifts hit both alike."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Two sessions alternate here: threads spinning after one's run would slow the other.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = {name: ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
                for name, path in paths.items()}
    out = {name: {} for name in paths}
    for length in lengths:
        feeds = {name: _step_feeds(s, length) for name, s in sessions.items()}
        times = {name: [] for name in paths}
        for name, s in sessions.items():
            s.run(None, feeds[name])
        for _ in range(repeats):
            for name, s in sessions.items():
                start = time.perf_counter()
                s.run(None, feeds[name])
                times[name].append(time.perf_counter() - start)
        for name in paths:
            out[name][length] = statistics.median(times[name]) * 1000
    return out


def op_profile(path, past=64, runs=20):
    """Where one decoder_with_past step spends its time, by op type (ORT profiler)."""
    import tempfile

    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort_profile")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feeds = _step_feeds(session, past)
    for _ in range(runs):
        session.run(None, feeds)
    profile = session.end_profiling()
    with open(profile, encoding="utf-8") as f:
        events = json.load(f)
    os.remove(profile)
    by_op = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"]["op_name"]
            by_op[op] = by_op.get(op, 0) + e["dur"] / runs / 1000
    return dict(sorted(by_op.items(), key=lambda kv: -kv[1]))


# -- weights stored once: bytes, serving memory ------------------------------------------
SERVE_SCRIPT = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from runtime.generator import Generator
folder, new_tokens, prompt = sys.argv[2], int(sys.argv[3]), sys.argv[4]

def rollup():
    fields = {}
    for line in open("/proc/self/smaps_rollup"):
        parts = line.split()
        if parts[-1] == "kB":  # the first line names the mapping
            fields[parts[0].rstrip(":")] = int(parts[1]) * 1024
    return fields

gen = Generator(folder)
x, _, _ = gen.pack(prompt, max_length=2 + new_tokens)
gen.generate(x, sampler="greedy", stop_token_ids=None)  # every graph run: pages touched
memory = rollup()
times = []
for _ in range(5):
    t = time.perf_counter()
    gen.generate(x, sampler="greedy", stop_token_ids=None)
    times.append(time.perf_counter() - t)
print(json.dumps({"rss": memory["Rss"], "pss": memory["Pss"], "anonymous": memory["Anonymous"],
                  "file_backed": memory["Rss"] - memory["Anonymous"],
                  "seconds": statistics.median(times)}))
"""


def export_self_contained(hf_dir, folder):
    """The layout before weights were shared: each graph self-contained (the share pass
    skipped), for the before/after lines."""
    if not os.path.isfile(os.path.join(folder, "manifest.json")):
        from unittest import mock

        from exporter.export import export_preset

        log("exporting the self-contained layout (before) ...")
        with mock.patch("exporter.shared_weights.share", return_value=None):
            export_preset(hf_dir, output=folder)
    return folder


def artifact_bytes(folder):
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        files = json.load(f)["files"]
    return sum(info["bytes"] for info in files.values())


def serving(folder, new_tokens, repo=REPO):
    """RSS, PSS, anonymous and file-backed bytes, and the median seconds per generate, of a
    fresh process serving `folder` with a Generator (the runtime of the checkout `repo`)."""
    out = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, repo, folder, str(new_tokens),
                          PROMPT], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"serving {folder} failed: {out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def weights_once(hf_dir, after, workdir, new_tokens, previous=None, self_contained=True):
    """Lines: checkpoint, before and after bytes; serving RSS / PSS / ms per token.
    `previous`: (artifact, checkout) of an earlier layout served by that checkout's runtime,
    e.g. the three-graph seq2seq layout (decoder_model.onnx + decoder_with_past_model.onnx),
    a row beside the current one."""
    checkpoint = os.path.getsize(os.path.join(hf_dir, "model.safetensors"))
    print(f"\nweights once: checkpoint model.safetensors {checkpoint / 1e6:.1f} MB")
    rows = {}
    if self_contained:
        before = export_self_contained(hf_dir, os.path.join(workdir,
                                                            "artifact_self_contained"))
        rows["before (self-contained graphs)"] = (before, REPO)
    if previous is not None:
        rows["previous layout (its checkout)"] = previous
    rows["after (weights.onnx_data)"] = (after, REPO)
    for name, (folder, _) in rows.items():
        size = artifact_bytes(folder)
        graphs = sorted(f for f in os.listdir(folder) if f.endswith(".onnx"))
        print(f"{name:32} artifact {size / 1e6:7.1f} MB = {size / checkpoint:.2f}x the "
              f"checkpoint ({', '.join(graphs)})")
    results = {name: [] for name in rows}
    for _ in range(3):  # processes alternate, so load drifts hit both alike
        for name, (folder, repo) in rows.items():
            results[name].append(serving(folder, new_tokens, repo))
    for name, runs in results.items():
        m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{name:32} serving RSS {m['rss'] / 2**20:6.0f} MiB, PSS "
              f"{m['pss'] / 2**20:6.0f} MiB (anonymous {m['anonymous'] / 2**20:.0f}, "
              f"file-backed {m['file_backed'] / 2**20:.0f}), "
              f"{m['seconds'] * 1000 / new_tokens:.2f} ms/token (median of {len(runs)})")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", default=os.path.join(REPO, "artifacts", "bench_generate"))
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--flat-tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--optimum-python", default="/tmp/optimum-venv/bin/python")
    p.add_argument("--skip", default="", help="comma list: keras,keras_hub,torch,optimum,"
                                              "no_cache,flat,graph,profile,memory,"
                                              "self_contained")
    p.add_argument("--previous", nargs=2, metavar=("ARTIFACT", "CHECKOUT"),
                   help="a serving-memory row for an artifact of an earlier layout, served "
                        "by that checkout's runtime (e.g. `git archive` of the commit)")
    args = p.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    os.makedirs(args.workdir, exist_ok=True)
    hf_dir = build_checkpoint(os.path.join(args.workdir, "hf"))
    artifact = export_ours(hf_dir, os.path.join(args.workdir, "artifact"))
    n = args.new_tokens
    from runtime.generator import Generator

    gen_x = _packed(Generator(artifact), n)
    contenders, outs, checks = {}, {}, []
    run, outs["ours"] = bench_runtime(artifact, n)
    contenders["ours: runtime Generator (ONNX Runtime, KV cache)"] = run
    optimum = None
    if "optimum" not in skip and os.path.isfile(args.optimum_python):
        log("optimum (export on first use) ...")
        try:
            optimum = OptimumServer(args.optimum_python, hf_dir,
                                    os.path.join(args.workdir, "optimum"), gen_x, n)
            contenders["Optimum ORTModelForSeq2SeqLM"] = optimum
        except RuntimeError as e:
            log(f"{e}: the Optimum column is left out")
    elif "optimum" not in skip:
        log(f"no {args.optimum_python}: the Optimum column is left out (see the docstring)")
    if "torch" not in skip:
        run, outs["torch"] = bench_torch(hf_dir, gen_x, n)
        contenders["transformers/PyTorch generate"] = run
    if "no_cache" not in skip:
        contenders["no-cache baseline (decoder_model.onnx on the prefix)"] = bench_no_cache(
            artifact, n)
    if "keras" not in skip:
        contenders["ours: Keras BartSeq2SeqLM.generate"] = bench_keras(hf_dir, n)
    if "keras_hub" not in skip:
        preset = keras_hub_preset(hf_dir, os.path.join(args.workdir, "keras_hub"))
        contenders["keras-hub BartSeq2SeqLM.generate"] = bench_keras_hub(preset, n)
    log(f"timing {len(contenders)} columns, {args.repeats} interleaved rounds ...")
    rows = interleaved(contenders, args.repeats)
    if optimum is not None:
        checks.append(("Optimum ids == ours",
                       np.array_equal(optimum.out["ids"], outs["ours"]["ids"])))
        checks.append(("Optimum's graphs", ", ".join(optimum.info["files"])))
        optimum.close()
    if "torch" in outs:
        checks.append(("transformers ids == ours",
                       np.array_equal(outs["torch"]["ids"], outs["ours"]["ids"])))

    print(f"\nbart_base_en-sized BART, random weights, batch 1, greedy, {n} new tokens, "
          f"{os.cpu_count()} CPUs, median of {args.repeats} interleaved rounds")
    base = rows.get("Optimum ORTModelForSeq2SeqLM")
    print(f"{'':56} {'ms/token':>9} {'vs Optimum':>11}")
    for name, seconds in rows.items():
        ratio = f"{seconds / base:10.2f}x" if base else f"{'-':>11}"
        print(f"{name:56} {seconds * 1000 / n:9.2f} {ratio}")
    for name, value in checks:
        print(f"{name}: {value}")

    if "flat" not in skip:
        early, late, _ = flatness(artifact, args.flat_tokens)
        print(f"\nflatness, one {args.flat_tokens}-token decode: tokens 1-50 {early:.2f} ms, "
              f"200-256 {late:.2f} ms per token: {late / early:.2f}x (target <= 1.3x)")
    graphs = {"ours": os.path.join(artifact, "decoder_model.onnx"),  # the one decoder
              "Optimum": os.path.join(args.workdir, "optimum", "decoder_with_past_model.onnx")}
    graphs = {k: v for k, v in graphs.items() if os.path.isfile(v)}
    if "graph" not in skip:
        for name, cost in graph_step_costs(graphs).items():
            print(f"{name} decoder_with_past alone (session.run, batch 1): " + ", ".join(
                f"past {k}: {v:.2f} ms" for k, v in cost.items()))
    if "memory" not in skip:
        weights_once(hf_dir, artifact, args.workdir, n, previous=args.previous,
                     self_contained="self_contained" not in skip)
    if "profile" not in skip:
        for name, path in graphs.items():
            profile = op_profile(path)
            print(f"{name} decoder_with_past op time at past 64: "
                  f"{sum(profile.values()):.2f} ms; " + ", ".join(
                      f"{op} {ms:.2f}" for op, ms in list(profile.items())[:8]))


if __name__ == "__main__":
    main()
