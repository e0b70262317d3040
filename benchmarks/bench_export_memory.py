"""Peak memory of exporting a Gemma causal LM at gemma_2b_en widths (issue 10, item 4: the
full gemma_2b_en fp32 export must stay under 16 GiB peak RSS on a 24 GiB machine).

A preset with gemma_2b_en's widths (vocabulary 256000, hidden 2048, 8 query heads, 1 KV
head, head_dim 256, intermediate 32768) but `--layers` layers (default 2) and random
weights is built with our `GemmaCausalLM` and written with our `save_to_preset` in
bfloat16, as keras-hub stores Gemma; then each `--layers` count is exported in a child
process with

    /usr/bin/time -v python -m exporter --preset DIR --dtype float32 --output OUT

and its "Maximum resident set size" read. Two layer counts give the per-layer cost, and
the line through them the full 18-layer figure (the embedding, 256000 x 2048 = 2.1 GB in
fp32, is in every run, so external data is exercised).

    python benchmarks/bench_export_memory.py --layers 2 4 --workdir /tmp/bench_export_memory
    python benchmarks/bench_export_memory.py --layers 18 --serve  # full size (needs ~16 GiB)
    python benchmarks/bench_export_memory.py --layers 18 --serve --quantize int4

`--serve` then measures serving each artifact: a fresh process opens a
`runtime.generator.Generator`, generates 19 tokens greedily after a 5-token prompt (token
ids) and reports its peak RSS (/usr/bin/time -v) and its resident set split into
anonymous and file-backed pages (/proc/self/smaps_rollup), against the artifact's weight
bytes.

The tokenizer is a small SentencePiece model in Gemma's id layout (the export does not
depend on the vocabulary's size; the model's embedding has 256000 rows).
"""

import argparse
import os
import re
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GEMMA_2B_WIDTHS = dict(vocabulary_size=256000, num_query_heads=8, num_key_value_heads=1,
                       hidden_dim=2048, intermediate_dim=32768, head_dim=256)


def build_preset(folder, layers):
    """Write a bfloat16 gemma_2b_en-width preset with `layers` layers to `folder` (in a
    child process, so the parent's memory stays small)."""
    if os.path.exists(os.path.join(folder, "model.weights.h5")):
        return
    code = f"""
import sys
sys.path.insert(0, {os.path.join(REPO, "tests", "model_defs")!r})
from test_gemma_helpers import train_gemma_spm
from model_defs import GemmaBackbone, GemmaCausalLM, GemmaCausalLMPreprocessor, GemmaTokenizer
tokenizer = GemmaTokenizer(proto=train_gemma_spm())
backbone = GemmaBackbone(num_layers={layers}, dtype="bfloat16", **{GEMMA_2B_WIDTHS!r})
model = GemmaCausalLM(backbone, GemmaCausalLMPreprocessor(tokenizer, sequence_length=64))
model.save_to_preset({folder!r})
"""
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def export_peak_rss(preset, output, extra=()):
    """(peak RSS in GiB, seconds) of one `python -m exporter` run, from /usr/bin/time -v."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "exporter", "--preset", preset,
               "--dtype", "float32", "--output", output, "--overwrite", *extra]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"export of {preset} failed:\n{result.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    wall = re.search(r"Elapsed \(wall clock\) time.*: ([\d:.]+)", result.stderr)[1]
    seconds = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
    return rss / 2**20, seconds


# Token ids in, token ids out: the random model's ids reach past the small tokenizer's.
SERVE = """
import sys, time
import numpy as np
from runtime.generator import Generator
generator = Generator(sys.argv[1])
ids = np.zeros((1, 24), "int32")
ids[0, :5] = [2, 651, 4320, 8426, 25341]
start = time.perf_counter()
generator.generate({"token_ids": ids, "padding_mask": ids > 0}, sampler="greedy",
                   stop_token_ids=None)
print(f"generate {time.perf_counter() - start:.1f} s")
for line in open("/proc/self/smaps_rollup"):
    if line.split(":")[0] in ("Rss", "Anonymous", "Pss_File"):
        print(line.strip())
"""


def serve_rss(artifact):
    """Peak RSS (GiB) of a fresh process that serves `artifact`, and its smaps summary."""
    command = ["/usr/bin/time", "-v", sys.executable, "-c", SERVE, artifact]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"serving {artifact} failed:\n{result.stderr[-3000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    return rss / 2**20, " ".join(result.stdout.split())


def weight_bytes(artifact):
    return sum(os.path.getsize(os.path.join(artifact, name)) for name in os.listdir(artifact)
               if name.endswith((".onnx", ".onnx_data")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--workdir", default="/tmp/bench_export_memory")
    parser.add_argument("--serve", action="store_true",
                        help="also measure serving each artifact (peak RSS of a generate)")
    parser.add_argument("--quantize", choices=["int8", "int4"], default=None,
                        help="export with --quantize (its quality gate included)")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    figures = {}
    for layers in args.layers:
        preset = os.path.join(args.workdir, f"gemma_2b_widths_{layers}_layers")
        build_preset(preset, layers)
        extra = ("--quantize", args.quantize) if args.quantize else ()
        artifact = os.path.join(args.workdir, f"art_{layers}" + (
            f"_{args.quantize}" if args.quantize else ""))
        rss, seconds = export_peak_rss(preset, artifact, extra)
        figures[layers] = rss
        print(f"{layers} layers: export peak RSS {rss:.2f} GiB in {seconds:.0f} s "
              f"(/usr/bin/time -v python -m exporter --preset {preset} --dtype float32"
              f"{' ' + ' '.join(extra) if extra else ''}); artifact "
              f"{weight_bytes(artifact) / 1e9:.2f} GB", flush=True)
        if args.serve:
            peak, summary = serve_rss(artifact)
            print(f"{layers} layers: serving peak RSS {peak:.2f} GiB for "
                  f"{weight_bytes(artifact) / 2**30:.2f} GiB of graphs ({summary})", flush=True)
    if len(figures) >= 2:
        (a, ra), (b, rb) = sorted(figures.items())[0], sorted(figures.items())[-1]
        per_layer = (rb - ra) / (b - a)
        full = ra + per_layer * (18 - a)
        print(f"per layer {per_layer:.3f} GiB; extrapolated 18 layers (gemma_2b_en): "
              f"{full:.2f} GiB (target < 16 GiB)")


if __name__ == "__main__":
    main()
