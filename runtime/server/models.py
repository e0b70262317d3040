"""`ServedModel`: one artifact behind the server, its pipeline chosen by the manifest's task,
with its batcher (encoders, classifiers) or generation workers (seq2seq and causal LMs)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from runtime.artifact import Artifact, ArtifactError
from runtime.server.batching import Batcher
from runtime.server.errors import RequestError

# manifest task -> what the server calls it (the OpenAI / HF names of the capability)
KINDS = {"backbone": "embedding", "text_classifier": "classification",
         "masked_lm": "fill-mask", "seq2seq_lm": "text-generation",
         "causal_lm": "text-generation"}
# tasks served by the Generator: completions and TGI, decoded in worker threads
GENERATIVE = ("seq2seq_lm", "causal_lm")


def model_names(folders, names=None):
    """Model ids: each folder's name, or `names` (one per folder); duplicates refused."""
    if names and len(names) != len(folders):
        raise ValueError(f"{len(names)} --name values for {len(folders)} artifacts; give "
                         f"one name per artifact, in order")
    ids = list(names) if names else [os.path.basename(os.path.normpath(f)) for f in folders]
    for name in ids:
        if ids.count(name) > 1:
            raise ValueError(f"two artifacts are named {name!r}; rename one with --name")
    return ids


class ServedModel:
    """One artifact served by name.

    Args:
        name: the model id clients send.
        folder: the artifact folder.
        config: the `ServerConfig`.
        metrics: the server's `Metrics`.
        device, verify: as for `Artifact`.
    """

    def __init__(self, name, folder, config, metrics, device="cpu", verify="auto"):
        self.name, self.folder, self.config = name, folder, config
        artifact = Artifact(folder, device, verify=verify)
        if artifact.task not in KINDS:
            raise ArtifactError(f"{folder}: cannot serve a {artifact.task!r} artifact (the "
                                f"server serves {', '.join(sorted(KINDS))})")
        self.task = artifact.task
        self.kind = KINDS[self.task]
        self.artifact = artifact
        self.pipeline = self._pipeline(artifact)
        self.executor = ThreadPoolExecutor(
            max_workers=config.generation_workers if self.task in GENERATIVE else 1,
            thread_name_prefix=f"serve-{name}")
        self.batcher = None
        if self.task in ("backbone", "text_classifier"):
            self.batcher = Batcher(name, self._batch_fn(), config, metrics, self.executor)
        self.generations = 0  # running or waiting (generative models)
        if self.task in GENERATIVE:
            metrics.queue_depth[name] = lambda: self.generations

    def _pipeline(self, artifact):
        if self.task == "backbone":
            from runtime.encoder import Encoder
            return Encoder(artifact)
        if self.task == "text_classifier":
            from runtime.classifier import Classifier
            return Classifier(artifact)
        if self.task == "masked_lm":
            from runtime.fill_mask import FillMask
            return FillMask(artifact)
        from runtime.generator import Generator
        return Generator(artifact)

    def _batch_fn(self):
        if self.task == "backbone":
            # raw pooled vectors: each request normalises (or not) on its own
            return lambda texts: self.pipeline.embed(texts, normalize=False)
        return self.pipeline.scores

    def warm_up(self):
        """Run each graph once, so the first request does not pay session creation."""
        if self.task == "backbone":
            self.pipeline.embed(["warm up"])
        elif self.task == "text_classifier":
            self.pipeline.scores(["warm up"])
        elif self.task == "masked_lm":
            mask = self.pipeline.packer.packing["mask_token"]
            self.pipeline([f"warm {mask}"], top_k=1)
        else:
            from runtime.server.generation import max_length

            length = max_length(self.pipeline, "warm up", 1)
            self.pipeline.generate("warm up", sampler="greedy", max_length=length)

    def info(self):
        model = self.artifact.model
        return {"id": self.name, "task": self.task, "kind": self.kind,
                "family": model.get("family") or self.artifact.manifest.get("model_type"),
                "max_sequence_length": model.get("max_sequence_length"),
                "hidden_dim": model.get("hidden_dim"), "folder": self.folder}

    # -- texts in, checked against the limits ---------------------------------------------
    @property
    def packer(self):
        if self.task in GENERATIVE:
            return None
        return self.pipeline.packer

    def token_counts(self, texts, truncate=False):
        """Tokens of each text (special tokens included, as packed); over the limit: 422."""
        packer = self.packer
        if packer is None:
            tokenizer = self.artifact.tokenizer
            counts = [len(tokenizer.tokenize(t)) for t in texts]
            positions = self.artifact.model.get("max_sequence_length")
        else:
            counts = [len(ids) + 2 for ids in packer.token_segments(texts)]
            positions = packer.sequence_length
        limit = self.config.max_tokens_per_text
        for i, n in enumerate(counts):
            if limit and n > limit:
                raise RequestError(422, f"input {i} has {n} tokens, more than "
                                   f"max_tokens_per_text {limit}", "max_tokens_per_text")
            if positions and n > positions and not truncate:
                raise RequestError(422, f"input {i} has {n} tokens, more than the model's "
                                   f"{positions} positions (max_tokens_per_text); shorten "
                                   f"it or pass truncate: true", "max_tokens_per_text")
        if positions:
            counts = [min(n, positions) for n in counts]
        return counts

    async def embed(self, texts, normalize=None, truncate=False):
        """Sentence embeddings (len(texts), dim), pooled and normalised as `Encoder.embed`."""
        tokens = self.token_counts(texts, truncate)
        vectors = np.asarray(await self.batcher.submit(texts, tokens))
        if self.pipeline.pooling["normalize"] if normalize is None else normalize:
            norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
            vectors = vectors / np.maximum(norms, 1e-12)
        return vectors, tokens

    async def scores(self, texts, truncate=False):
        """Class probabilities (len(texts), classes), as `Classifier.scores`."""
        tokens = self.token_counts(texts, truncate)
        return np.asarray(await self.batcher.submit(texts, tokens)), tokens
