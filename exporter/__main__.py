"""`python -m exporter --preset distil_bert_base_en_uncased` (also `hubonnx export ...`)."""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m exporter",
        description="Export a keras-hub style preset to a validated ONNX artifact folder.")
    p.add_argument("--preset", help="built-in name, kaggle://..., hf://... or a directory "
                   "in keras-hub or Transformers format")
    p.add_argument("--task", help="backbone, masked_lm, text_classifier, seq2seq_lm "
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
    p.add_argument("--list-presets", action="store_true", help="list built-in presets")
    args = p.parse_args(argv)
    if not args.list_presets and not args.preset:
        p.error("--preset is required")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    from exporter.export import ExportError, ValidationError, export_preset
    from model_defs.preset import PresetError, builtin_presets
    from model_defs.weights import WeightMapError

    if args.list_presets:
        for name, entry in sorted(builtin_presets().items()):
            params = entry["metadata"]["params"] / 1e6
            print(f"{name:32s} {entry['cls'].__name__:24s} {params:8.2f}M")
        return 0
    kwargs = {k: v for k, v in {"atol": args.atol, "opset": args.opset,
                                "dtype": args.dtype}.items() if v is not None}
    try:
        result = export_preset(args.preset, task=args.task, output=args.output,
                               overwrite=args.overwrite, random_weights=args.random_weights,
                               **kwargs)
    except (ExportError, PresetError, WeightMapError, ValidationError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    graphs = ", ".join(g["file"] for g in result["graphs"].values())
    print(f"exported {args.preset} ({result['task']}): {graphs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
