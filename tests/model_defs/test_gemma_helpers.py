"""Tiny Gemma presets written by the oracles (keras-hub, transformers) and a SentencePiece
model in Gemma's layout, for the Gemma tests (test_gemma.py, the seed examples, and the
export and runtime tests to come)."""

import functools
import io
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from multilingual_spm import corpus  # noqa: E402

# Grouped-query (keras-hub preset) and multi-query (Transformers checkpoint) attention.
TINY_GQA = dict(num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=16,
                intermediate_dim=64, head_dim=8)
TINY_MQA = dict(TINY_GQA, num_key_value_heads=1)


@functools.lru_cache(maxsize=2)
def train_gemma_spm(vocab_size=700) -> bytes:
    """A serialized SentencePiece model made as Gemma's is: BPE with byte fallback and
    split digits, no dummy prefix, whitespace kept, and Gemma's ids <pad>=0, <eos>=1,
    <bos>=2, <unk>=3 (deterministic)."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(1500)), model_writer=buffer, vocab_size=vocab_size,
        model_type="bpe", pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>",
        eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>", byte_fallback=True,
        split_digits=True, add_dummy_prefix=False, remove_extra_whitespaces=False,
        normalization_rule_name="identity", character_coverage=0.9995, num_threads=1,
        hard_vocab_limit=False, minloglevel=2)
    return buffer.getvalue()


def vocabulary_size():
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=train_gemma_spm()).vocab_size()


def perturb(weights, seed, scale=0.2):
    """Add noise to every weight (norm scales start at zero, so a mapping bug shows)."""
    rng = np.random.default_rng(seed)
    for v in weights:
        value = np.asarray(v.numpy(), "float32")
        v.assign((value + rng.normal(0, scale, value.shape)).astype(v.dtype))


def keras_hub_causal_lm(dtype=None, sequence_length=16, seed=1, config=TINY_GQA):
    """keras-hub's own tiny GemmaCausalLM with perturbed weights."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)  # the initializers too: the same model every run
    tokenizer = keras_hub.models.GemmaTokenizer(proto=train_gemma_spm())
    preprocessor = keras_hub.models.GemmaCausalLMPreprocessor(
        tokenizer, sequence_length=sequence_length)
    backbone = keras_hub.models.GemmaBackbone(vocabulary_size=tokenizer.vocabulary_size(),
                                              dtype=dtype, **config)
    model = keras_hub.models.GemmaCausalLM(backbone, preprocessor=preprocessor)
    perturb(model.weights, seed)
    return model


def hf_checkpoint(directory, seed=2, config=TINY_MQA):
    """transformers' tiny GemmaForCausalLM with perturbed weights saved to `directory`
    with the SentencePiece model as `tokenizer.model`; returns the torch model."""
    import torch
    from transformers import GemmaConfig, GemmaForCausalLM

    hf_config = GemmaConfig(
        vocab_size=vocabulary_size(), hidden_size=config["hidden_dim"],
        intermediate_size=config["intermediate_dim"] // 2,
        num_hidden_layers=config["num_layers"], num_attention_heads=config["num_query_heads"],
        num_key_value_heads=config["num_key_value_heads"], head_dim=config["head_dim"],
        max_position_embeddings=64)
    torch.manual_seed(seed)
    model = GemmaForCausalLM(hf_config).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.2)
    model.save_pretrained(directory)
    with open(os.path.join(directory, "tokenizer.model"), "wb") as f:
        f.write(train_gemma_spm())
    return model
