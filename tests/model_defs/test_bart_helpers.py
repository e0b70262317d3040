"""Tiny BART presets written by the oracles (keras-hub, transformers) for the BART and
seq2seq export tests. Imported by test_bart.py and tests/exporter/test_seq2seq.py."""

import collections
import json
import os

import numpy as np

CORPUS = ("The quick brown fox jumped over the lazy dog. The whale sang in the sea. "
          "A fox and a dog are friends; the sun rose over the hills and the rain fell.")
TINY = dict(num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
            max_sequence_length=40)


def make_bpe(num_merges=80):
    """A byte-level BPE vocabulary (specials, the 256 byte symbols, merges learned on a
    small corpus, `<mask>`) and its merge rules, in BART's id layout."""
    from runtime.tokenizers.byte_pair_tokenizer import BYTE_TO_UNICODE, pretokenize

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for c in BYTE_TO_UNICODE:
        vocab[c] = len(vocab)
    words = collections.Counter(
        tuple(BYTE_TO_UNICODE[b] for b in w.encode()) for w in pretokenize(CORPUS))
    merges = []
    for _ in range(num_merges):
        pairs = collections.Counter()
        for w, n in words.items():
            for p in zip(w, w[1:]):
                pairs[p] += n
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(f"{best[0]} {best[1]}")
        vocab.setdefault(best[0] + best[1], len(vocab))
        merged = collections.Counter()
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    vocab["<mask>"] = len(vocab)
    return vocab, merges


def perturb_all(model, seed=0, scale=0.3):
    """Random weights with real spread (LN gammas around 1), so generation is not flat and
    zero biases / unit norms cannot hide mapping bugs."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        noise = rng.normal(0, scale, v.shape).astype("float32")
        base = 1.0 if v.path.endswith("gamma") else 0.0
        v.assign(base + noise)


def keras_hub_bart(directory, seed=0, encoder_length=16, decoder_length=12):
    """A perturbed keras-hub BartSeq2SeqLM saved with save_to_preset(directory)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)  # the initializers too: the same model every run
    vocab, merges = make_bpe()
    tokenizer = keras_hub.models.BartTokenizer(vocabulary=vocab, merges=merges)
    preprocessor = keras_hub.models.BartSeq2SeqLMPreprocessor(
        tokenizer=tokenizer, encoder_sequence_length=encoder_length,
        decoder_sequence_length=decoder_length)
    backbone = keras_hub.models.BartBackbone(vocabulary_size=len(vocab), **TINY)
    lm = keras_hub.models.BartSeq2SeqLM(backbone=backbone, preprocessor=preprocessor)
    perturb_all(lm, seed)
    lm.save_to_preset(str(directory))
    return lm


def transformers_bart(directory, seed=0, **overrides):
    """A random BartForConditionalGeneration (nonzero final_logits_bias) in Transformers
    format: config.json, model.safetensors, vocab.json, merges.txt."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    vocab, merges = make_bpe()
    torch.manual_seed(seed)
    config = BartConfig(
        vocab_size=len(vocab), d_model=TINY["hidden_dim"],
        encoder_layers=TINY["num_layers"], decoder_layers=TINY["num_layers"],
        encoder_attention_heads=TINY["num_heads"], decoder_attention_heads=TINY["num_heads"],
        encoder_ffn_dim=TINY["intermediate_dim"], decoder_ffn_dim=TINY["intermediate_dim"],
        max_position_embeddings=TINY["max_sequence_length"], init_std=0.3, **overrides)
    model = BartForConditionalGeneration(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name or "layernorm" in name:
                p.add_(torch.randn_like(p) * 0.2)
        model.final_logits_bias.normal_(0, 0.5)
    model.save_pretrained(str(directory))
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return model
