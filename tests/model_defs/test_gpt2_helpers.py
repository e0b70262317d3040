"""Tiny GPT-2 presets written by the oracles (keras-hub, transformers) and a small trained
byte-level BPE vocabulary in GPT-2's id layout, for test_gpt2.py and the seed examples."""

import json
import os

from test_bart_helpers import perturb_all  # (tests/model_defs is on sys.path)

END = "<|endoftext|>"
TINY = dict(num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
            max_sequence_length=40)
CORPUS = [
    "The quick brown fox jumped over the lazy dog. The whale sang in the sea.",
    "A fox and a dog are friends; the sun rose over the hills and the rain fell.",
    "It's 2024 and they'll say we've done it: 3 cats, 12 dogs, 100 birds!",
    "Where are you going?\nI'm going home.\n\nThe end.",
    "Café, naïve, résumé: words with accents are words too.",
]


def gpt2_bpe(folder, vocab_size=420):
    """vocab.json + merges.txt of a byte-level BPE trained here with Hugging Face
    `tokenizers`, laid out as GPT-2's: the 256 byte symbols first, the merges, and
    `<|endoftext|>` last (so id 0 is "!", keras-hub's GPT-2 pad id). Returns
    (vocab dict, merges list, vocab path, merges path)."""
    import tokenizers

    trainer = tokenizers.ByteLevelBPETokenizer()
    trainer.train_from_iterator(CORPUS * 4, vocab_size=vocab_size, min_frequency=2,
                                special_tokens=[], show_progress=False)
    os.makedirs(folder, exist_ok=True)
    trainer.save_model(str(folder))
    vocab_path = os.path.join(folder, "vocab.json")
    merges_path = os.path.join(folder, "merges.txt")
    with open(vocab_path, encoding="utf-8") as f:
        vocab = json.load(f)
    vocab[END] = len(vocab)
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(merges_path, encoding="utf-8") as f:
        merges = [line.rstrip("\n") for line in f if line.strip() and not line.startswith("#")]
    return vocab, merges, vocab_path, merges_path


def keras_hub_gpt2(directory, vocab, merges, seed=0, sequence_length=12):
    """A perturbed keras-hub GPT2CausalLM saved with its own save_to_preset(directory)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)  # the initializers too: the same model every run
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=merges)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(
        tokenizer=tokenizer, sequence_length=sequence_length)
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=len(vocab), **TINY)
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)
    perturb_all(lm, seed)
    lm.save_to_preset(str(directory))
    return lm


def transformers_gpt2(directory, bpe_folder, seed=0, **overrides):
    """A GPT2LMHeadModel with perturbed weights (LayerNorms too) in Transformers format:
    config.json, model.safetensors, vocab.json, merges.txt."""
    import shutil

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    with open(os.path.join(bpe_folder, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=TINY["max_sequence_length"],
        n_embd=TINY["hidden_dim"], n_layer=TINY["num_layers"], n_head=TINY["num_heads"],
        n_inner=TINY["intermediate_dim"], initializer_range=0.3,
        bos_token_id=vocab[END], eos_token_id=vocab[END], **overrides)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or "bias" in name:
                p.add_(torch.randn_like(p) * 0.2)
    model.save_pretrained(str(directory))
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(bpe_folder, name), os.path.join(directory, name))
    return model
