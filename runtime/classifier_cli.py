"""`python -m runtime classify ARTIFACT TEXT...` (registered by runtime.__main__)."""

from __future__ import annotations

import json


def _add_classify(sub):
    p = sub.add_parser("classify", help="class scores of each text (text_classifier artifact)")
    p.add_argument("--pair", action="append", default=None,
                   help="second segment, once per text, for sentence-pair classifiers")
    return p


def _classify(args):
    from runtime.classifier import Classifier

    classifier = Classifier(args.artifact, device=args.device, verify=args.verify)
    results = classifier.classify(args.texts, args.pair)
    for text, result in zip(args.texts, results):
        if args.json:
            print(json.dumps({"text": text, **result}, ensure_ascii=False))
        else:
            name = f" ({result['name']})" if "name" in result else ""
            scores = " ".join(f"{s:.4f}" for s in result["scores"])
            print(f"{result['label']}{name} {result['score']:.4f}  [{scores}]")


COMMANDS = {"classify": (_add_classify, _classify)}
