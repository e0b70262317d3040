"""`Classifier`: class scores for texts (or text pairs) from a text_classifier artifact."""

from __future__ import annotations

import numpy as np

from runtime.artifact import Artifact, ArtifactError
from runtime.checks import is_int
from runtime.numerics import softmax


class Classifier:
    """Text classification over an exported `BertTextClassifier`/`DistilBertTextClassifier`.

    Args:
        artifact: an `Artifact` or its folder.
        device: "cpu" or "cuda", when `artifact` is a folder.
        labels: optional class names, index -> name (one per class).
        verify: how the artifact's files are checked at load (see `Artifact`).

    Example:
    ```python
    classifier = Classifier("artifacts/bert_tiny_en_uncased_sst2")
    classifier.classify(["What an amazing movie!"])
    # [{"label": 1, "score": 0.98, "scores": [0.02, 0.98]}]
    classifier.logits(["What an amazing movie!"]).shape  # (1, 2)
    ```
    """

    def __init__(self, artifact, device="cpu", labels=None, verify="auto"):
        self.artifact = Artifact.open(artifact, "text_classifier", "classify", device,
                                      verify=verify)
        head = self.artifact.manifest.get("classifier") or {}
        self.activation = head.get("activation") or "linear"
        if not isinstance(self.activation, str):
            raise ArtifactError(f"manifest.json: classifier.activation must be a name, got "
                                f"{self.activation!r}; re-export")
        self.labels = list(labels) if labels is not None else None
        num_classes = head.get("num_classes")
        if num_classes is not None and (not is_int(num_classes) or num_classes < 1):
            raise ArtifactError(f"manifest.json: classifier.num_classes must be an integer "
                                f">= 1, got {num_classes!r}; re-export")
        if self.labels is not None and num_classes and len(self.labels) != num_classes:
            raise ValueError(f"{len(self.labels)} labels for {num_classes} classes")
        self.packer = self.artifact.text_packer()

    def logits(self, texts, pairs=None):
        """The graph's output (batch, num_classes): logits, or probabilities when the
        head ends in a softmax."""
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(pairs, str):
            pairs = [pairs]
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pairs")
        feeds = self.packer.pack(list(texts), None if pairs is None else list(pairs))
        return self.artifact.run("model", feeds)["logits"]

    def scores(self, texts, pairs=None):
        """Class probabilities (batch, num_classes)."""
        out = self.logits(texts, pairs)
        if self.activation == "softmax":
            return out
        if self.activation == "sigmoid":
            return 1.0 / (1.0 + np.exp(-out))
        return softmax(out)

    def classify(self, texts, pairs=None):
        """For each text: the best class (`label`, its name if known), its `score`, and every
        class's score."""
        single = isinstance(texts, str)
        probs = self.scores(texts, pairs)
        results = []
        for row in probs:
            best = int(np.argmax(row))
            result = {"label": best, "score": float(row[best]),
                      "scores": [float(p) for p in row]}
            if self.labels:
                result["name"] = self.labels[best]
            results.append(result)
        return results[0] if single else results

    __call__ = classify
