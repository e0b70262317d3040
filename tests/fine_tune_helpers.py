"""Tiny vocabularies, models and presets for the fine-tuning, LoRA and classifier tests."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

WORDS = ("the quick brown fox jumped over lazy dog a cat sat on mat i forgot my homework "
         "great movie awful plot what film good bad very is was it and to of").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, "##s", "##ed", "##ing"]
TINY = dict(num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
            max_sequence_length=32)
SENTENCES = ["The quick brown fox jumped.", "I forgot my homework.", "A cat sat on the mat.",
             "What a great movie!", "The plot was awful.", "A very good film."]
LABELS = [0, 1, 0, 1, 0, 1]


def write_vocab(directory):
    path = os.path.join(directory, "vocab.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(VOCAB) + "\n")
    return path


def perturb(model, seed=0, scale=0.05):
    """Add noise to every weight so zero biases and unit norms cannot hide mapping bugs."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(np.asarray(v) + rng.normal(0, scale, v.shape).astype(v.dtype))


def ours(family):
    """(backbone_cls, masked_lm_cls, classifier_cls, tokenizer_cls, mlm_pre_cls, cls_pre_cls)"""
    import model_defs as M

    p = "DistilBert" if family == "distil_bert" else "Bert"
    return tuple(getattr(M, f"{p}{s}") for s in (
        "Backbone", "MaskedLM", "TextClassifier", "Tokenizer", "MaskedLMPreprocessor",
        "TextClassifierPreprocessor"))


def tiny_masked_lm(family="distil_bert", sequence_length=16, seed=0):
    """Our masked LM with a tiny vocabulary and preprocessor (random masks seeded)."""
    import keras

    keras.utils.set_random_seed(seed)
    backbone_cls, mlm_cls, _, tok_cls, pre_cls, _ = ours(family)
    tokenizer = tok_cls(vocabulary=VOCAB, lowercase=True)
    preprocessor = pre_cls(tokenizer, sequence_length=sequence_length, seed=seed)
    backbone = backbone_cls(vocabulary_size=len(VOCAB), **TINY)
    return mlm_cls(backbone, preprocessor=preprocessor)


def tiny_classifier(family="bert", num_classes=2, sequence_length=16, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    backbone_cls, _, cls_cls, tok_cls, _, pre_cls = ours(family)
    tokenizer = tok_cls(vocabulary=VOCAB, lowercase=True)
    preprocessor = pre_cls(tokenizer, sequence_length=sequence_length)
    backbone = backbone_cls(vocabulary_size=len(VOCAB), **TINY)
    return cls_cls(backbone, num_classes=num_classes, preprocessor=preprocessor)


def keras_hub_classifier_preset(family, directory, num_classes=3, seed=0):
    """A keras-hub text classifier preset with perturbed weights, written by keras-hub."""
    import keras_hub

    m = keras_hub.models
    p = "DistilBert" if family == "distil_bert" else "Bert"
    tokenizer = getattr(m, f"{p}Tokenizer")(vocabulary=VOCAB, lowercase=True)
    backbone = getattr(m, f"{p}Backbone")(vocabulary_size=len(VOCAB), **TINY)
    preprocessor = getattr(m, f"{p}TextClassifierPreprocessor")(tokenizer, sequence_length=16)
    task = getattr(m, f"{p}TextClassifier")(backbone, num_classes=num_classes,
                                            preprocessor=preprocessor)
    perturb(task, seed=seed)
    task.save_to_preset(directory)
    return task
