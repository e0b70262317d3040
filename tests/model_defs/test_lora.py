"""LoRA: enable_lora trains the query/value factors only, the factors round-trip through
*.lora.h5, a wrong rank is a clear error, and save_to_preset merges them into the kernels."""

import h5py
import keras
import numpy as np
import pytest

from model_defs import Task
from model_defs.lora import LoraError, lora_layers
from tests.fine_tune_helpers import LABELS, SENTENCES, TINY, tiny_classifier


def batch(model):
    return model.preprocessor(SENTENCES)


@pytest.fixture(scope="module")
def tuned():
    """A tiny BERT classifier, LoRA rank 2, fine-tuned a few steps (eagerly: fast)."""
    model = tiny_classifier("bert", num_classes=2)
    base = {v.path: np.asarray(v).copy() for v in model.backbone.weights}
    model.backbone.enable_lora(2)
    model.compile(optimizer=keras.optimizers.Adam(2e-2), run_eagerly=True)
    model.fit(SENTENCES, LABELS, batch_size=3, epochs=3, verbose=0)
    return model, base


def test_only_lora_factors_of_query_and_value_train():
    model = tiny_classifier("distil_bert")
    model.backbone.enable_lora(4)
    paths = sorted(v.path for v in model.backbone.trainable_weights)
    want = sorted(f"transformer_layer_{i}/self_attention/{d}/lora_kernel_{ab}"
                  for i in range(TINY["num_layers"]) for d in ("query", "value")
                  for ab in "ab")
    assert paths == want
    hidden = TINY["hidden_dim"]
    for _, layer in lora_layers(model.backbone):
        assert tuple(layer.lora_kernel_a.shape) == (hidden, 4)
        assert tuple(layer.lora_kernel_b.shape) == (4, hidden)
    with pytest.raises(LoraError, match="already enabled"):
        model.backbone.enable_lora(4)


def test_frozen_weights_do_not_change_during_fit(tuned):
    model, base = tuned
    for v in model.backbone.weights:
        if "lora_kernel" not in v.path:
            np.testing.assert_array_equal(base[v.path], np.asarray(v), err_msg=v.path)
    b = [np.asarray(layer.lora_kernel_b) for _, layer in lora_layers(model.backbone)]
    assert all(np.abs(x).max() > 0 for x in b)  # B starts at zero: it trained


def test_lora_weights_round_trip_exactly(tuned, tmp_path):
    model, base = tuned
    path = str(tmp_path / "adapter.lora.h5")
    model.backbone.save_lora_weights(path)
    with h5py.File(path) as f:  # keras-hub's layout
        assert int(f["lora/rank"][()]) == 2
        assert {"lora_kernel_a", "lora_kernel_b"} <= set(f["lora"][sorted(f["lora"])[0]])
    fresh = tiny_classifier("bert", num_classes=2, seed=7)
    for v in fresh.backbone.weights:  # the base model the adapter was trained on
        v.assign(base[v.path])
    fresh.output_dense.set_weights(model.output_dense.get_weights())
    x = batch(model)
    assert not np.allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    fresh.backbone.load_lora_weights(path)  # enables rank 2 itself
    for (_, a), (_, b) in zip(lora_layers(fresh.backbone), lora_layers(model.backbone)):
        np.testing.assert_array_equal(np.asarray(a.lora_kernel_a), np.asarray(b.lora_kernel_a))
        np.testing.assert_array_equal(np.asarray(a.lora_kernel_b), np.asarray(b.lora_kernel_b))
    fresh.compile(run_eagerly=True)  # as `model`, so that the same kernels run
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_enable_lora_after_running_retraces_and_asks_for_compile():
    from model_defs.lora import merged_copy

    model = tiny_classifier("bert")
    x = batch(model)
    model.fit(x, np.array(LABELS), verbose=0)
    before = model.predict(x, verbose=0)
    model.backbone.enable_lora(2)
    for _, layer in lora_layers(model.backbone):
        layer.lora_kernel_b.assign(np.full(layer.lora_kernel_b.shape, 0.5, "float32"))
    after = model.predict(x, verbose=0)  # retraced: the LoRA update counts
    np.testing.assert_allclose(after, merged_copy(model)(x), atol=1e-6, rtol=0)
    assert np.abs(after - before).max() > 1e-5
    with pytest.raises(ValueError, match=r"call compile\(\) again before fit"):
        model.fit(x, np.array(LABELS), verbose=0)
    model.compile()
    model.fit(x, np.array(LABELS), verbose=0)


def test_loading_another_rank_is_a_clear_error(tuned, tmp_path):
    model, _ = tuned
    path = str(tmp_path / "r2.lora.h5")
    model.backbone.save_lora_weights(path)
    other = tiny_classifier("bert")
    other.backbone.enable_lora(8)
    with pytest.raises(LoraError, match=r"rank-2 LoRA weights but the model has "
                                        r"enable_lora\(rank=8\)") as e:
        other.backbone.load_lora_weights(path)
    assert "\n" not in str(e.value)
    with pytest.raises(LoraError, match=r"must end in \.lora\.h5"):
        model.backbone.save_lora_weights(str(tmp_path / "x.h5"))
    with pytest.raises(LoraError, match="enable_lora"):
        tiny_classifier("bert").backbone.save_lora_weights(str(tmp_path / "y.lora.h5"))


def test_save_to_preset_merges_lora_and_reads_back(tuned, tmp_path):
    model, _ = tuned
    model.save_to_preset(str(tmp_path / "p"))
    with h5py.File(tmp_path / "p" / "model.weights.h5") as f:
        names = []
        f.visit(names.append)
    assert not [n for n in names if "lora" in n]
    again = Task.from_preset(str(tmp_path / "p"))
    assert type(again) is type(model)
    assert len(again.backbone.weights) == len(model.backbone.weights) - 8  # no factors
    x = batch(model)
    np.testing.assert_allclose(again(x), model(x), atol=1e-5, rtol=0)
    assert again.preprocessor.sequence_length == model.preprocessor.sequence_length
