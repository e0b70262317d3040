"""`python -m runtime generate ARTIFACT TEXT...` (registered by runtime.__main__).

Prints each prompt's generated text on one line of stdout (a newline inside the text is
written as `\\n`; `--json` gives the exact text and ids); diagnostics go to stderr.
"""

from __future__ import annotations

import json
import sys
import time

from runtime.samplers import SAMPLERS


def _add_generate(sub):
    p = sub.add_parser("generate", help="generate text from each prompt (seq2seq_lm or causal_lm "
                       "artifact; a causal LM prints prompt + continuation)")
    p.add_argument("--sampler", choices=sorted(SAMPLERS), default=None,
                   help="token choice (default: the artifact's default sampler)")
    p.add_argument("--max-length", type=int, default=None,
                   help="length to generate to in tokens, start tokens (and a causal "
                        "LM's prompt) included (default: the artifact's)")
    p.add_argument("--k", "--top-k", dest="k", type=int, default=None,
                   help="top_k: how many candidates")
    p.add_argument("--p", "--top-p", dest="p", type=float, default=None,
                   help="top_p: cumulative probability kept, in (0, 1]")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--num-beams", type=int, default=None, help="beam: number of beams")
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    p.add_argument("--no-stop", action="store_true",
                   help="ignore the end token: always generate up to --max-length")
    p.add_argument("--stream", action="store_true",
                   help="write tokens as they are decoded (one prompt at a time)")
    return p


def _one_line(text):
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


def _generate(args):
    from runtime.generator import Generator

    # Named after the option here: the sampler's own message would say "seed".
    if args.seed is not None and args.seed < 0:
        raise ValueError(f"--seed must be a non-negative integer, got {args.seed}")
    generator = Generator(args.artifact, device=args.device, verify=args.verify)
    options = dict(max_length=args.max_length, sampler=args.sampler,
                   stop_token_ids=None if args.no_stop else "auto", k=args.k, p=args.p,
                   temperature=args.temperature, num_beams=args.num_beams, seed=args.seed)
    start = time.perf_counter()
    tokens = 0
    if args.stream and not args.json:
        for text in args.texts:
            for token in generator.stream(text, **options):
                tokens += 1
                sys.stdout.write(_one_line(token.text))
                sys.stdout.flush()
            sys.stdout.write("\n")
            sys.stdout.flush()
    else:
        counted = []
        outputs = generator.generate(list(args.texts), callback=counted.append, **options)
        tokens = len(counted)
        for text, out in zip(args.texts, outputs):
            if args.json:
                print(json.dumps({"text": text, "generated": out}, ensure_ascii=False))
            else:
                print(_one_line(out))
    seconds = time.perf_counter() - start
    print(f"generated {tokens} tokens for {len(args.texts)} prompt(s) in {seconds:.2f} s "
          f"({1000 * seconds / max(tokens, 1):.1f} ms/token) on {generator.device}",
          file=sys.stderr)


COMMANDS = {"generate": (_add_generate, _generate)}
