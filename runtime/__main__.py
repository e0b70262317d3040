"""`python -m runtime <command> ARTIFACT ...` (also `hubonnx <command> ...`).

Results go to stdout, diagnostics to stderr; a bad request prints one `error:` line and
exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _fill_mask(args):
    from runtime.fill_mask import FillMask

    fill = FillMask(args.artifact, device=args.device, verify=args.verify)
    results = fill(args.texts, top_k=args.top_k)
    for text, masks in zip(args.texts, results):
        if args.json:
            print(json.dumps({"text": text, "masks": masks}, ensure_ascii=False))
            continue
        for candidates in masks:
            print(" | ".join(f"{c['token']} {c['score']:.3f}" for c in candidates))


def _encode(args):
    from runtime.encoder import Encoder

    encoder = Encoder(args.artifact, device=args.device, verify=args.verify)
    vectors = encoder.embed(args.texts, normalize=args.normalize)
    for text, vector in zip(args.texts, vectors):
        if args.json:
            print(json.dumps({"text": text, "embedding": vector.round(6).tolist()},
                             ensure_ascii=False))
        else:
            head = " ".join(f"{v:.4f}" for v in vector[:8])
            print(f"[{head} ...] ({len(vector)} dims)")


def _add_fill_mask(sub):
    p = sub.add_parser("fill-mask", help="top tokens at each [MASK] of each text")
    p.add_argument("--top-k", type=int, default=5)
    return p


def _add_encode(sub):
    p = sub.add_parser("encode", help="sentence embeddings from a backbone, pooled as the "
                       "artifact's manifest says")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="L2-normalise the embeddings, or not (default: as the model "
                   "expects, from the manifest's pooling)")
    return p


# command -> (add its parser, run it). Each parser gets ARTIFACT, texts, --device, --json,
# --verify.
COMMANDS = {
    "fill-mask": (_add_fill_mask, _fill_mask),
    "encode": (_add_encode, _encode),
}


def _register_optional_commands():
    """Commands of other pipelines (classify, generate) register here when present."""
    import importlib

    for module in ("runtime.classifier_cli", "runtime.generate_cli"):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        COMMANDS.update(mod.COMMANDS)


class _Parser(argparse.ArgumentParser):
    """argparse with a bad option reported as one `error:` line (exit 2), like every other
    bad input, instead of a usage block."""

    def error(self, message):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def parse_args(argv):
    _register_optional_commands()
    parser = _Parser(prog="python -m runtime",
                     description="Serve exported artifacts with ONNX Runtime.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        p = add(sub)
        p.add_argument("artifact", help="artifact folder (with manifest.json)")
        p.add_argument("texts", nargs="+", help="input texts")
        p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        p.add_argument("--json", action="store_true", help="one JSON object per line")
        p.add_argument("--verify", default="auto", choices=["auto", "none", "size", "sha256"],
                       help="check the artifact's files at load: their sha256 (default when "
                            "they total under 256 MB), their size (default above), or not")
    from runtime.server.cli import add_serve  # its own arguments; uvicorn loads on run
    from runtime.triton_repo import add_triton_repo

    add_serve(sub)
    add_triton_repo(sub)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s",
                        stream=sys.stderr)
    from runtime.artifact import ArtifactError

    try:
        run = getattr(args, "run", None) or COMMANDS[args.command][1]
        run(args)
    except (ArtifactError, ValueError, TypeError, OSError) as e:
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        print(f"error: {' '.join(lines) or type(e).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
