"""Greedy decoding speed of decoder-only artifacts against the best peers, in one run on
this CPU (random weights at the real widths; no Hugging Face download happens here):

1. GPT-2 base (transformers' `GPT2Config()` defaults = gpt2, 124M), batch 1, greedy,
   128 new tokens: our artifact (`python -m exporter --preset DIR` on the Transformers
   checkpoint, served by `runtime.generator.Generator`) vs Optimum's `ORTModelForCausalLM`
   on its own export of the same checkpoint (with KV cache). Then the position flatness
   of our loop: tokens 200-256 vs tokens 1-50 of one 256-token decode.
2. Gemma at gemma_2b_en widths (hidden 2048, 8 query heads, 1 KV head, head_dim 256,
   FFN 16384, vocabulary 256000) with `--gemma-layers` layers (default 2), fp32, batch 1:
   our per-token time vs onnxruntime-genai's on its own export of the same checkpoint
   (`python -m onnxruntime_genai.models.builder -i DIR -o OUT -p fp32 -e cpu`, then its
   `og.Generator` loop), and vs the memory floor: the step's weight bytes over the
   bandwidth that one plain batch-1 fp32 MatMul (1 x K) x (K x N) over ~2 GB of weights
   reaches in an ONNX Runtime session, measured in the same run.
   With `--int4`: our `--quantize int4` vs genai `-p int4` (both look the tokens up
   from the lm head's 4-bit blocks), and the two artifacts' bytes.

    python benchmarks/bench_causal_lm.py                      # everything, in --workdir
    python benchmarks/bench_causal_lm.py --skip gemma         # GPT-2 only
    python benchmarks/bench_causal_lm.py --skip gpt2 --gemma-layers 4 --profile

Every column runs in its own process (ours: this one, which imports the runtime only;
each peer: its virtualenv's interpreter), driven one generate at a time and timed
round-robin, so load drifts of the shared machine hit every column alike; the figures are
medians of `--rounds` rounds, the ratios from the same run. Both sides use ONNX Runtime's
default thread count. `--profile` adds ONNX Runtime's per-op profile of our decode step.

The peers pin other transformers versions than this project, so each runs from a side
virtualenv that shadows only what it needs (torch, onnx, onnxruntime come from this
environment through --system-site-packages):

    # Optimum: optimum-onnx 0.1.0 pins transformers<4.58
    python -m venv --system-site-packages /work/venvs/optimum
    /work/venvs/optimum/bin/pip install "optimum-onnx==0.1.0" "transformers==4.57.6" \\
        "tokenizers==0.22.2" "huggingface_hub==0.36.2" "optimum==2.1.0"
    # onnxruntime-genai 0.18: its model builder needs transformers>=5 (this environment's
    # 5.23 serves) and onnx_ir
    python -m venv --system-site-packages /work/venvs/ortgenai
    /work/venvs/ortgenai/bin/pip install "onnxruntime-genai==0.18.*" onnx_ir

A peer whose interpreter is missing is left out of the table.

The checkpoints (built once in --workdir): `GPT2LMHeadModel` / `GemmaForCausalLM` with
random weights (seed 0), saved with save_pretrained; GPT-2's vocab.json/merges.txt is a
byte-level BPE of 50257 ids trained with `tokenizers` on the Python stdlib sources,
Gemma's tokenizer.model a SentencePiece BPE trained on the same sources and padded with
unused pieces to 256000 ids.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

GEMMA_2B = dict(vocab_size=256000, hidden_size=2048, intermediate_size=16384,
                num_attention_heads=8, num_key_value_heads=1, head_dim=256,
                max_position_embeddings=8192)
GPT2_VOCAB = 50257
PROMPT = "The quick brown fox jumped over the lazy dog while the whale sang in the sea."
OPTIMUM_PYTHON = "/work/venvs/optimum/bin/python"
GENAI_PYTHON = "/work/venvs/ortgenai/bin/python"


def log(message):
    print(message, file=sys.stderr, flush=True)


def run_command(cmd, **kwargs):
    """Run a command line (logged), raising with its tail on failure."""
    log("$ " + " ".join(cmd))
    start = time.perf_counter()
    subprocess.run(cmd, check=True, **kwargs)
    log(f"  ({time.perf_counter() - start:.0f} s)")


def peer_env():
    """The environment for a peer's interpreter: this repository off its path."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["USE_TF"] = "0"  # transformers 4.x would import this environment's TensorFlow
    return env


# -- the checkpoints ---------------------------------------------------------------------
def corpus_files():
    import sysconfig

    lib = sysconfig.get_paths()["stdlib"]
    return sorted(os.path.join(lib, f) for f in os.listdir(lib) if f.endswith(".py"))


def build_gpt2(folder):
    """gpt2-base GPT2LMHeadModel (random weights) + a 50257-id byte-level BPE."""
    if os.path.isfile(os.path.join(folder, "model.safetensors")):
        return folder
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel

    os.makedirs(folder, exist_ok=True)
    log("training a 50257-id byte-level BPE vocabulary on the Python stdlib sources ...")
    bpe = ByteLevelBPETokenizer()
    bpe.train(corpus_files(), vocab_size=GPT2_VOCAB - 1, show_progress=False)
    vocab = bpe.get_vocab()
    n = 0
    while len(vocab) < GPT2_VOCAB - 1:  # a small corpus may stop short of the size
        vocab.setdefault(f"filler{n}", len(vocab))
        n += 1
    vocab["<|endoftext|>"] = GPT2_VOCAB - 1  # GPT-2's layout: the one special, last
    bpe.save_model(folder)  # merges.txt (vocab.json rewritten below)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).eval().save_pretrained(folder)
    return folder


def gemma_spm(vocab_size):
    """A Gemma-layout SentencePiece model (<pad>=0 <eos>=1 <bos>=2 <unk>=3, byte fallback)
    trained on the stdlib sources, padded with unused pieces to `vocab_size` ids (a small
    corpus cannot train 256000 pieces; the padding only sets the vocabulary's size)."""
    import io
    import struct

    import sentencepiece as spm

    text = []
    for path in corpus_files()[:120]:
        with open(path, encoding="utf-8", errors="replace") as f:
            text.extend(line.rstrip("\n") for line in f if line.strip())
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_writer=buffer, vocab_size=8000,
        model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>",
        eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>", byte_fallback=True,
        split_digits=True, add_dummy_prefix=False, remove_extra_whitespaces=False,
        normalization_rule_name="identity", hard_vocab_limit=False, minloglevel=2)
    proto = buffer.getvalue()
    have = spm.SentencePieceProcessor(model_proto=proto).vocab_size()
    # Appended ModelProto.pieces entries (field 1; piece=1, score=2, type=3 USER_DEFINED):
    # a repeated field may continue anywhere in the message, so no protobuf module (whose
    # generated code may not match the installed runtime) is needed.
    extra = bytearray()
    for i in range(vocab_size - have):
        name = f"<unused{i}>".encode()
        piece = (b"\x0a" + _varint(len(name)) + name + b"\x15" + struct.pack("<f", -1e9)
                 + b"\x18\x04")
        extra += b"\x0a" + _varint(len(piece)) + piece
    return proto + bytes(extra)


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def build_gemma(folder, layers):
    """GemmaForCausalLM at gemma_2b_en widths with `layers` layers (random weights, fp32)
    + tokenizer.model."""
    if os.path.isfile(os.path.join(folder, "config.json")):
        return folder
    import torch
    from transformers import GemmaConfig, GemmaForCausalLM

    os.makedirs(folder, exist_ok=True)
    log(f"building a {layers}-layer Gemma at gemma_2b_en widths ...")
    with open(os.path.join(folder, "tokenizer.model"), "wb") as f:
        f.write(gemma_spm(GEMMA_2B["vocab_size"]))
    torch.manual_seed(0)
    config = GemmaConfig(**GEMMA_2B, num_hidden_layers=layers, torch_dtype="float32")
    GemmaForCausalLM(config).eval().save_pretrained(folder)
    _gemma_tokenizer_files(folder)
    return folder


def _gemma_tokenizer_files(folder):
    """tokenizer.json + tokenizer_config.json beside tokenizer.model, for the peers'
    AutoTokenizer (genai's builder loads and copies it). Written with `tokenizers` from
    the SentencePiece pieces: transformers' own conversion needs a protobuf module that
    may not match the installed runtime. The benchmark feeds token ids, so only the
    special tokens must agree."""
    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, normalizers
    from tokenizers.models import BPE
    from transformers.tokenization_utils_base import generate_merges

    sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
    vocab = {sp.id_to_piece(i): i for i in range(sp.vocab_size())}
    trained = {p: i for p, i in vocab.items() if not p.startswith("<unused")}
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=generate_merges(trained),
                              unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tokenizer.normalizer = normalizers.Replace(" ", "\u2581")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "),
                                           decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.add_special_tokens(["<pad>", "<eos>", "<bos>", "<unk>"])
    tokenizer.save(os.path.join(folder, "tokenizer.json"))
    config = {"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<eos>",
              "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": True,
              "add_eos_token": False}
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f)


def export_ours(checkpoint, folder, *extra):
    """Our artifact of `checkpoint`, exported afresh every run by the CLI (in its own
    process, so this one never imports TensorFlow): it is what is measured, and a kept
    one may be of older code."""
    run_command([sys.executable, "-m", "exporter", "--preset", checkpoint,
                 "--output", folder, "--overwrite", *extra], cwd=REPO)
    return folder


# -- the peers, each in its own interpreter -----------------------------------------------
OPTIMUM_SCRIPT = r"""
import json, os, sys, time
import torch
from transformers.generation.streamers import BaseStreamer
from optimum.onnxruntime import ORTModelForCausalLM
hf_dir, onnx_dir = sys.argv[1], sys.argv[2]
if not os.path.isfile(os.path.join(onnx_dir, "config.json")):
    t = time.perf_counter()
    model = ORTModelForCausalLM.from_pretrained(hf_dir, export=True, use_cache=True)
    model.save_pretrained(onnx_dir)
    print(f"optimum export {time.perf_counter() - t:.1f} s", file=sys.stderr)
model = ORTModelForCausalLM.from_pretrained(onnx_dir, use_cache=True)

class Stamps(BaseStreamer):  # put() gets the prompt, then each new token as it is chosen
    def __init__(self):
        self.times = []
    def put(self, value):
        self.times.append(time.perf_counter())
    def end(self):
        pass

files = sorted(f for f in os.listdir(onnx_dir) if f.endswith(".onnx"))
print(json.dumps({"ready": True, "files": files}), flush=True)
for line in sys.stdin:  # one generate per line: the timing interleaves with ours
    request = json.loads(line)
    ids = torch.tensor([request["ids"]], dtype=torch.long)
    stamps = Stamps()
    t = time.perf_counter()
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         num_beams=1, max_new_tokens=request["new"],
                         min_new_tokens=request["new"], use_cache=True, streamer=stamps,
                         pad_token_id=0)
    total = time.perf_counter() - t
    print(json.dumps({"seconds": total, "stamps": [s - t for s in stamps.times[1:]],
                      "ids": out[0, ids.shape[1]:].tolist()}), flush=True)
"""

GENAI_SCRIPT = r"""
import json, os, sys, time
import onnxruntime_genai as og
model = og.Model(sys.argv[1])
files = sorted(f for f in os.listdir(sys.argv[1]) if f.endswith(".onnx"))
print(json.dumps({"ready": True, "files": files}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    length = len(request["ids"]) + request["new"]
    params = og.GeneratorParams(model)
    params.set_search_options(do_sample=False, max_length=length, min_length=length)
    t = time.perf_counter()
    generator = og.Generator(model, params)
    generator.append_tokens(request["ids"])  # the prompt's pass: the first token's logits
    stamps, ids = [], []
    while not generator.is_done():
        generator.generate_next_token()
        ids.append(int(generator.get_next_tokens()[0]))
        stamps.append(time.perf_counter() - t)
    total = time.perf_counter() - t
    del generator
    print(json.dumps({"seconds": total, "stamps": stamps, "ids": ids}), flush=True)
"""


class Peer:
    """A peer's generate loop in its own interpreter, one request per line (prompt ids and
    the number of new tokens); answers the seconds, per-token time stamps and ids."""

    def __init__(self, name, python, script, *args):
        self.name = name
        log(f"starting {name} ({python}) ...")
        args = [os.path.abspath(a) if os.path.exists(a) or os.sep in a else a for a in args]
        self.proc = subprocess.Popen([python, "-c", script, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=peer_env(),
                                     cwd="/")
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.name} process died (see its stderr above)")
        return json.loads(line)

    def generate(self, ids, new):
        self.proc.stdin.write(json.dumps({"ids": [int(i) for i in ids], "new": new}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(folder) for name in names)


class Ours:
    """Our runtime `Generator` in this process, answering as a `Peer` does."""

    name = "ours"

    def __init__(self, artifact):
        from runtime.generator import Generator

        self.gen = Generator(artifact)
        self.info = {"files": sorted(f for f in os.listdir(artifact) if f.endswith(".onnx"))}

    def prompt_ids(self, text):
        """The prompt as the artifact packs it (start token included)."""
        x, _, _ = self.gen.pack(text, max_length=None)
        return x["token_ids"][0][x["padding_mask"][0].astype(bool)]

    def generate(self, ids, new):
        n = len(ids)
        x = {"token_ids": np.zeros((1, n + new), "int32"),
             "padding_mask": np.zeros((1, n + new), "int32")}
        x["token_ids"][0, :n], x["padding_mask"][0, :n] = ids, 1
        stamps = []
        t = time.perf_counter()
        out = self.gen.generate(x, sampler="greedy", stop_token_ids=None,
                                callback=lambda token: stamps.append(time.perf_counter() - t))
        total = time.perf_counter() - t
        return {"seconds": total, "stamps": stamps, "ids": out["token_ids"][0, n:].tolist()}

    def close(self):
        pass


def decode_ms(result):
    """ms per generated token after the first (the first one carries the prompt's pass)."""
    stamps = result["stamps"]
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1) * 1000


def interleaved(contenders, ids, new, rounds):
    """Each contender generates `new` tokens after `ids`, round-robin (A B A B ...) after
    one warm-up each. Returns name -> (median decode ms/token, median total s, ids)."""
    results = {c.name: [] for c in contenders}
    for c in contenders:
        c.generate(ids, min(new, 8))
    for r in range(rounds):
        for c in contenders:
            results[c.name].append(c.generate(ids, new))
        log(f"  round {r + 1}: " + ", ".join(
            f"{name} {decode_ms(rs[-1]):.1f} ms/token" for name, rs in results.items()))
    return {name: (statistics.median(decode_ms(x) for x in rs),
                   statistics.median(x["seconds"] for x in rs), rs[-1]["ids"])
            for name, rs in results.items()}


def same_tokens(table, reference="ours"):
    """name -> how many leading generated ids equal ours (random weights: near-ties may
    flip a late token between two exports; the first ones must agree)."""
    ref = table[reference][2]
    out = {}
    for name, (_, _, ids) in table.items():
        n = 0
        while n < min(len(ids), len(ref)) and ids[n] == ref[n]:
            n += 1
        out[name] = f"{n}/{len(ref)}"
    return out


# -- flatness, memory floor, profile ---------------------------------------------------
def flatness(ours, ids, tokens=256):
    """Mean ms of tokens 1-50 and 200-256 (1-based, generated) of one decode; token 1's
    stamp follows the prompt's pass, so the first interval is token 1 -> 2."""
    ours.generate(ids, 16)
    stamps = np.asarray(ours.generate(ids, tokens)["stamps"])
    steps = np.diff(stamps) * 1000  # steps[i]: token i+1 -> i+2
    return float(np.mean(steps[0:49])), float(np.mean(steps[198:255]))


def matmul_model(folder, k=2048, n=262144, transposed=False):
    """A one-MatMul ONNX model (1 x k) x (k x n) whose 2 GiB weight is an initializer in
    external data, as a model's weights are. `transposed`: the weight is stored (n x k)
    and fed through a Transpose, which ONNX Runtime fuses into FusedMatMul(transB), the
    way a tied lm head over the embedding table comes out of the export."""
    import onnx
    from onnx import TensorProto, helper

    os.makedirs(folder, exist_ok=True)
    data = os.path.join(folder, "matmul.onnx_data")
    if not os.path.isfile(data):  # written straight out: 2 GiB does not fit a protobuf
        np.random.default_rng(0).standard_normal((k, n), dtype=np.float32).tofile(data)
    path = os.path.join(folder, "matmul_t.onnx" if transposed else "matmul.onnx")
    if not os.path.isfile(path):
        tensor = TensorProto(name="w", data_type=TensorProto.FLOAT,
                             dims=[n, k] if transposed else [k, n])
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "matmul.onnx_data"), ("length", str(k * n * 4))):
            tensor.external_data.add(key=key, value=value)
        nodes = [helper.make_node("MatMul", ["x", "wt" if transposed else "w"], ["y"])]
        if transposed:
            nodes.insert(0, helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]))
        graph = helper.make_graph(
            nodes, "floor", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, k])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, n])], [tensor])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                  ir_version=8)  # what every ONNX Runtime reads
        onnx.save_model(model, path)
    return path, k * n * 4


def matmul_bandwidth(folder, runs=15, layouts=(False,)):
    """GB/s of batch-1 fp32 MatMuls over 2 GiB of weights (`matmul_model`), one per
    layout (False: plain (k x n) weight; True: transposed), timed alternately; ONNX
    Runtime's default threads; medians of `runs`."""
    import onnxruntime as ort

    sessions, times = {}, {}
    for layout in layouts:
        path, size = matmul_model(folder, transposed=layout)
        sessions[layout] = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        times[layout] = []
    x = np.random.default_rng(1).standard_normal((1, 2048), dtype=np.float32)
    for session in sessions.values():
        session.run(None, {"x": x})
    for _ in range(runs):
        for layout, session in sessions.items():
            t = time.perf_counter()
            session.run(None, {"x": x})
            times[layout].append(time.perf_counter() - t)
    rates = [size / statistics.median(times[layout]) / 1e9 for layout in layouts]
    return rates if len(layouts) > 1 else rates[0]


def gemma_step_bytes(config):
    """fp32 weight bytes one decode step reads: every layer's projections and norms, the
    final norm and the (tied) lm head over the whole vocabulary; the embedding lookup
    reads one row and the KV cache (1 head x 256 wide) is left out, both < 0.1%."""
    h, heads, kv = config["hidden_size"], config["num_attention_heads"], config[
        "num_key_value_heads"]
    d, ffn = config["head_dim"], config["intermediate_size"]
    layer = h * heads * d * 2 + h * kv * d * 2 + 3 * h * ffn + 2 * h
    return 4 * (config["num_hidden_layers"] * layer + h + config["vocab_size"] * h)


def step_profile(artifact, past=64, runs=10, top=8):
    """ONNX Runtime's profile of one decode step of our artifact's cached graph (one token,
    `past` cached positions): ms by op type, and the slowest nodes with the GB/s their
    weights (the profiler's parameter_size) are read at."""
    import tempfile

    import onnxruntime as ort

    with open(os.path.join(artifact, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    graphs = manifest["graphs"]
    graph = graphs.get("decoder_with_past") or graphs["decoder"]
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(), "ort_profile")
    session = ort.InferenceSession(os.path.join(artifact, graph["file"]), options,
                                   providers=["CPUExecutionProvider"])
    kv = manifest["kv_cache"]
    rng = np.random.default_rng(0)
    feeds = {}
    for arg in session.get_inputs():
        if arg.name == "token_ids":
            feeds[arg.name] = np.full((1, 1), 5, np.int32)
        elif arg.name == "padding_mask":
            feeds[arg.name] = np.ones((1, past + 1), np.int32)
        else:
            feeds[arg.name] = rng.standard_normal(
                (1, kv["num_heads"], past, kv["head_dim"])).astype(np.float32)
    for _ in range(runs + 2):
        session.run(None, feeds)
    with open(session.end_profiling(), encoding="utf-8") as f:
        events = [e for e in json.load(f) if e.get("cat") == "Node"
                  and e["name"].endswith("_kernel_time")]
    steps = runs + 2
    by_op, nodes = {}, {}
    for e in events:
        op, name = e["args"]["op_name"], e["name"][:-len("_kernel_time")]
        by_op[op] = by_op.get(op, 0) + e["dur"] / steps / 1000
        entry = nodes.setdefault(name, [op, 0.0, int(e["args"].get("parameter_size", 0))])
        entry[1] += e["dur"] / steps / 1000
    total = sum(by_op.values())
    weights = node_weight_bytes(os.path.join(artifact, graph["file"]))
    for name, entry in nodes.items():  # prepacked weights show no parameter_size
        entry[2] = max(entry[2], weights.get(name, 0))
    slowest = sorted(nodes.items(), key=lambda kv_: -kv_[1][1])[:top]
    return total, dict(sorted(by_op.items(), key=lambda kv_: -kv_[1])), slowest


def node_weight_bytes(path):
    """node name -> bytes of the weights it reads, from the graph file (its weights stay
    on disk): its initializer inputs, also through a Transpose (ONNX Runtime folds it).
    Fused nodes are also listed under ONNX Runtime's names (<node>/MatMulAddFusion)."""
    import onnx

    model = onnx.load(path, load_external_data=False)
    sizes = {t.name: int(np.prod(t.dims)) * onnx.helper.tensor_dtype_to_np_dtype(
        t.data_type).itemsize for t in model.graph.initializer}
    for node in model.graph.node:  # a transposed weight counts as the weight
        if node.op_type == "Transpose" and node.input[0] in sizes:
            sizes[node.output[0]] = sizes[node.input[0]]
    out = {}
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm"):
            weight = sum(sizes.get(i, 0) for i in node.input)
            for suffix in ("", "/MatMulAddFusion", "/MatmulTransposeFusion"):
                out[node.name + suffix] = weight
    return out


def print_profile(label, profile):
    total, by_op, slowest = profile
    print(f"\n{label}: {total:.1f} ms of kernels per step (ONNX Runtime profiler)")
    for op, ms in list(by_op.items())[:8]:
        print(f"  {op:<28} {ms:8.2f} ms  {100 * ms / total:5.1f}%")
    print("  slowest nodes (weight bytes / node time):")
    for name, (op, ms, params) in slowest:
        rate = f"{params / ms / 1e6:6.1f} GB/s" if params else ""
        print(f"  {name[:48]:<48} {op:<16} {ms:7.2f} ms  {params / 1e6:8.1f} MB  {rate}")


# -- the two benchmarks ------------------------------------------------------------------
def print_table(title, table, reference, same):
    print(f"\n{title}")
    print(f"  {'':<10} {'ms/token':>9} {'total s':>8} {'vs ' + reference:>12} "
          f"{'ids equal ours':>15}")
    for name, (ms, total, _) in table.items():
        ratio = f"{ms / table[reference][0]:.2f}x" if reference in table else "-"
        print(f"  {name:<10} {ms:9.2f} {total:8.2f} {ratio:>12} {same[name]:>15}")


def bench_gpt2(args):
    work = args.workdir
    hf = build_gpt2(os.path.join(work, "gpt2_hf"))
    ours = Ours(export_ours(hf, os.path.join(work, "gpt2_ours")))
    ids = ours.prompt_ids(PROMPT)
    contenders = [ours]
    if os.path.isfile(args.optimum_python):
        contenders.append(Peer("optimum", args.optimum_python, OPTIMUM_SCRIPT, hf,
                               os.path.join(work, "gpt2_optimum")))
    else:
        log(f"no {args.optimum_python}: the Optimum column is left out")
    log(f"GPT-2: {len(ids)} prompt tokens, {args.new_tokens} new, {args.rounds} rounds")
    table = interleaved(contenders, ids, args.new_tokens, args.rounds)
    for c in contenders[1:]:
        c.close()
    print_table(f"GPT-2 base (124M, fp32), batch 1, greedy, {args.new_tokens} new tokens "
                f"after {len(ids)}; decode ms/token (median of {args.rounds} rounds)",
                table, "optimum", same_tokens(table))
    for c in contenders:
        print(f"  {c.name} graphs: {', '.join(c.info['files'])}")
    if "flat" not in args.skip:
        early, late = flatness(ours, ids, args.flat_tokens)
        print(f"\nGPT-2 position flatness ({args.flat_tokens}-token decode): tokens 1-50 "
              f"{early:.2f} ms, tokens 200-256 {late:.2f} ms: {late / early:.2f}x "
              f"(target <= 1.3x)")
    if args.profile:
        print_profile("GPT-2 decode step (past 64)", step_profile(ours.gen.artifact.folder))


def genai_export(python, hf, folder, precision):
    if not os.path.isfile(os.path.join(folder, "genai_config.json")):
        run_command([python, "-m", "onnxruntime_genai.models.builder", "-i", hf, "-o", folder,
                     "-p", precision, "-e", "cpu", "-c", os.path.join(folder, "cache")],
                    env=peer_env())
    return folder


def bench_gemma(args):
    work = args.workdir
    layers = args.gemma_layers
    config = dict(GEMMA_2B, num_hidden_layers=layers)
    hf = build_gemma(os.path.join(work, f"gemma{layers}l_hf"), layers)
    floor_dir = os.path.join(work, "matmul_floor")
    plain, transposed = matmul_bandwidth(floor_dir, layouts=(False, True))
    print(f"\nbatch-1 fp32 MatMul over 2 GiB of weights: plain (1x2048)x(2048x262144) "
          f"{plain:.1f} GB/s; the weight stored (262144x2048) behind a Transpose (a tied lm "
          f"head's layout, FusedMatMul transB): {transposed:.1f} GB/s")
    bandwidth = [plain]
    variants = [] if "gemma_fp32" in args.skip else [("fp32", ())]
    if args.int4:
        variants.append(("int4", ("--quantize", "int4")))
    step_bytes = gemma_step_bytes(config)
    for label, extra in variants:
        ours = Ours(export_ours(hf, os.path.join(work, f"gemma{layers}l_ours_{label}"), *extra))
        ids = ours.prompt_ids(PROMPT)
        contenders = [ours]
        if os.path.isfile(args.genai_python):
            folder = genai_export(args.genai_python, hf,
                                  os.path.join(work, f"gemma{layers}l_genai_{label}"),
                                  label)
            contenders.append(Peer("genai", args.genai_python, GENAI_SCRIPT, folder))
        else:
            log(f"no {args.genai_python}: the onnxruntime-genai column is left out")
        log(f"Gemma {label}: {len(ids)} prompt tokens, {args.gemma_new_tokens} new, "
            f"{args.rounds} rounds")
        table = interleaved(contenders, ids, args.gemma_new_tokens, args.rounds)
        for c in contenders[1:]:
            c.close()
        bandwidth.append(matmul_bandwidth(floor_dir))
        print_table(f"Gemma at gemma_2b_en widths, {layers} layers, {label}, batch 1, greedy, "
                    f"{args.gemma_new_tokens} new tokens after {len(ids)}; decode ms/token "
                    f"(median of {args.rounds} rounds)", table, "genai", same_tokens(table))
        for c in contenders:
            print(f"  {c.name} graphs: {', '.join(c.info['files'])}")
        print(f"  artifact bytes: ours {folder_bytes(ours.gen.artifact.folder) / 1e9:.2f} GB"
              + (f", genai {folder_bytes(folder) / 1e9:.2f} GB" if len(contenders) > 1
                 else ""))
        if label == "fp32":
            best = max(bandwidth)
            floor = step_bytes / best / 1e6
            print(f"  memory floor: {step_bytes / 1e9:.2f} GB of fp32 weights per step / "
                  f"{best:.1f} GB/s (batch-1 MatMul (1x2048)x(2048x262144), 2 GiB, "
                  f"runs before/after: {', '.join(f'{b:.1f}' for b in bandwidth)} GB/s) = "
                  f"{floor:.1f} ms")
            for name, (ms, _, _) in table.items():
                print(f"  {name}: {ms / floor:.2f}x the floor")
        if args.profile:
            print_profile(f"Gemma {label} decode step (past 64)",
                          step_profile(ours.gen.artifact.folder))
        del ours, contenders


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", default=os.path.join(REPO, "artifacts", "bench_causal_lm"))
    p.add_argument("--new-tokens", type=int, default=128, help="GPT-2 tokens to generate")
    p.add_argument("--flat-tokens", type=int, default=256)
    p.add_argument("--gemma-layers", type=int, default=2)
    p.add_argument("--gemma-new-tokens", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--int4", action="store_true",
                   help="also int4 ours vs genai -p int4")
    p.add_argument("--profile", action="store_true", help="ONNX Runtime per-op profile of "
                                                          "our decode step")
    p.add_argument("--optimum-python", default=OPTIMUM_PYTHON)
    p.add_argument("--genai-python", default=GENAI_PYTHON)
    p.add_argument("--skip", default="", help="comma list: gpt2,gemma,gemma_fp32,flat")
    args = p.parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    os.makedirs(args.workdir, exist_ok=True)
    print("$ python " + " ".join(sys.argv))
    if "gpt2" not in args.skip:
        bench_gpt2(args)
    if "gemma" not in args.skip:
        bench_gemma(args)


if __name__ == "__main__":
    main()
