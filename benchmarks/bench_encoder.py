"""Export time and Keras vs ONNX Runtime latency for an encoder preset, measured in one run
(this machine is shared and noisy: compare the ratios, not the absolute times). The ONNX
Runtime columns are the default export (`--optimize basic`) and `--optimize fused`
(MultiHeadAttention), timed in alternating rounds; "fused/basic" is the median ratio.

    python benchmarks/bench_encoder.py                       # full-size DistilBERT MLM,
                                                             # random weights, offline
    python benchmarks/bench_encoder.py --preset DIR --task backbone
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def timed(fn, repeats):
    fn()  # warm-up (graph building, allocator)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def alternating(fns, repeats):
    """Median ms of each of `fns`, run one after the other in each round (so drift and
    neighbours' load hit both alike), and the median per-round ratio last/first."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    ratio = statistics.median(b / a for a, b in zip(times[0], times[-1]))
    return [statistics.median(t) * 1000 for t in times], ratio


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="distil_bert_base_en_uncased")
    p.add_argument("--task", default="masked_lm")
    p.add_argument("--random-weights", action="store_true", default=None)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--shapes", default="1x128,8x128")
    args = p.parse_args()
    random_weights = args.random_weights
    if random_weights is None:  # built-in names cannot be downloaded here
        random_weights = not os.path.isdir(args.preset)

    import tensorflow as tf

    from exporter.export import export_preset, load_model
    from exporter.specs.encoder import encoder_inputs
    from runtime.artifact import Artifact

    out = os.path.join(tempfile.mkdtemp(), "artifact")
    start = time.perf_counter()
    export_preset(args.preset, task=args.task, output=out, random_weights=random_weights)
    export_s = time.perf_counter() - start
    model, _ = load_model(args.preset, args.task, random_weights)
    artifact = Artifact(out)
    # Random weights are drawn anew per load: the fused export is validated against its own
    # model, and latency does not depend on the values.
    fused_out = out + "_fused"
    export_preset(args.preset, task=args.task, output=fused_out, random_weights=random_weights,
                  optimize="fused")
    fused = Artifact(fused_out)
    names = [i["name"] for i in artifact.graph("model")["inputs"]]
    compiled = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    backbone = getattr(model, "backbone", model)
    print(f"preset {args.preset} task {args.task}: export + validation {export_s:.1f} s")
    print(f"{'shape':>8} {'keras eager ms':>15} {'keras tf.function ms':>21} "
          f"{'onnxruntime ms':>15} {'speed-up':>9} {'fused ms':>9} {'fused/basic':>12}")
    rng = np.random.default_rng(0)
    for shape in args.shapes.split(","):
        batch, length = map(int, shape.split("x"))
        x = encoder_inputs(names, batch, length, backbone.vocabulary_size, rng)
        x["padding_mask"][:] = 1
        eager = timed(lambda x=x: model(x, training=False), args.repeats)
        graph = timed(lambda x=x: compiled(x), args.repeats)
        (ort_ms, fused_ms), ratio = alternating(
            [lambda x=x: artifact.run("model", x), lambda x=x: fused.run("model", x)],
            args.repeats)
        print(f"{shape:>8} {eager:15.1f} {graph:21.1f} {ort_ms:15.1f} "
              f"{min(eager, graph) / ort_ms:8.2f}x {fused_ms:9.1f} {ratio:11.2f}x")


if __name__ == "__main__":
    main()
