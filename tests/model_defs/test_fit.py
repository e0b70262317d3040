"""Training tasks: fit/evaluate/predict on raw strings through the preprocessor (dynamic
masks every epoch) and on integer dicts, keras-hub's compile defaults and masking, frozen
weights staying put."""

import inspect

import keras
import numpy as np
import pytest

from model_defs.task_data import PreprocessedBatches
from tests.fine_tune_helpers import LABELS, SENTENCES, VOCAB, tiny_classifier, tiny_masked_lm


@pytest.fixture(scope="module")
def masked_lm():
    model = tiny_masked_lm("distil_bert")
    # Eager: tracing costs more than this tiny model. The traced and XLA paths run in
    # test_seed_examples_run_as_written_on_a_local_preset.
    model.compile(run_eagerly=True)
    return model


def test_fit_evaluate_predict_on_raw_strings(masked_lm):
    """`fit(x=features, batch_size=2)` on strings, then evaluate and predict."""
    history = masked_lm.fit(x=SENTENCES, batch_size=2, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert np.isfinite(history.history["loss"]).all()
    assert "sparse_categorical_accuracy" in history.history
    loss, accuracy = masked_lm.evaluate(x=SENTENCES, batch_size=3, verbose=0)
    assert np.isfinite(loss) and 0 <= accuracy <= 1
    logits = masked_lm.predict(SENTENCES[:3], batch_size=2, verbose=0)
    n = masked_lm.preprocessor.mask_selection_length
    assert logits.shape == (3, n, len(VOCAB))


def test_masks_are_drawn_again_every_epoch(masked_lm):
    data = PreprocessedBatches(masked_lm.preprocessor, SENTENCES * 4, batch_size=24)
    first, second = data[0], data[0]
    assert not np.array_equal(first[0]["mask_positions"], second[0]["mask_positions"])
    # same text, so the unmasked packing is the same
    np.testing.assert_array_equal(first[0]["padding_mask"], second[0]["padding_mask"])


def test_shuffled_batches_cover_every_example_once():
    seen = []
    data = PreprocessedBatches(lambda x, y, sw: (x, y), [str(i) for i in range(7)],
                               y=np.arange(7), batch_size=3, shuffle=True, seed=0)
    for _epoch in range(2):
        batches = [data[i] for i in range(len(data))]
        seen.append(np.concatenate([b[1] for b in batches]))
        assert sorted(seen[-1].tolist()) == list(range(7))
        for x, y in batches:
            assert [int(t) for t in x] == y.tolist()  # labels stay with their text
        data.on_epoch_end()
    assert not np.array_equal(seen[0], seen[1])


def test_masking_follows_keras_hub_defaults_and_rates():
    import keras_hub

    from model_defs.masked_lm_preprocessor import MaskedLMPreprocessor

    theirs = inspect.signature(keras_hub.models.MaskedLMPreprocessor.__init__).parameters
    for key, value in MaskedLMPreprocessor.defaults().items():
        assert theirs[key].default == value, key
    pre = tiny_masked_lm("bert", sequence_length=32).preprocessor
    tok = pre.tokenizer
    rng = np.random.default_rng(0)
    special = [tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id]
    ids = rng.integers(5, len(VOCAB), (4000, 32)).astype("int32")
    ids[:, 0], ids[:, 15], ids[:, 20:] = tok.cls_token_id, tok.mask_token_id, tok.pad_token_id
    ids[:, 19] = tok.sep_token_id
    masked, positions, mask_ids, weights = pre.mask(ids)
    real = weights > 0
    rows = np.nonzero(real)[0]
    picked = positions[real]
    assert not np.isin(ids[rows, picked], special).any()  # never a special token
    eligible = 32 - 1 - 1 - 1 - 12
    assert abs(real.sum() / (eligible * len(ids)) - 0.15) < 0.01
    np.testing.assert_array_equal(mask_ids[real], ids[rows, picked])
    new = masked[rows, picked]
    to_mask = (new == tok.mask_token_id).mean()
    kept = (new == mask_ids[real]).mean()
    assert abs(to_mask - 0.8) < 0.02
    # unchanged: 10% kept plus the random draws that hit the same id
    assert abs(kept - (0.1 + 0.1 / len(VOCAB))) < 0.02
    untouched = np.ones_like(ids, bool)
    untouched[rows, picked] = False
    np.testing.assert_array_equal(masked[untouched], ids[untouched])
    assert positions.shape == (len(ids), pre.mask_selection_length)


def test_mask_selection_length_caps_the_masks():
    pre = tiny_masked_lm("bert", sequence_length=32).preprocessor
    pre.mask_selection_length, pre.mask_selection_rate = 3, 1.0
    x, y, weights = pre(SENTENCES)
    assert x["mask_positions"].shape == (len(SENTENCES), 3) and weights.min() == 1.0


def test_compile_defaults_are_keras_hub_and_recompile(masked_lm):
    model = tiny_masked_lm("bert", seed=1)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(5e-5)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert model.loss.get_config()["from_logits"] is True
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                  weighted_metrics=[], run_eagerly=True)  # jit: the seed example below
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    history = model.fit(x=SENTENCES[:3], batch_size=3, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_fit_without_preprocessor_on_integer_dicts(masked_lm):
    x, y, sample_weight = masked_lm.preprocessor(SENTENCES)
    model = tiny_masked_lm("distil_bert", seed=2)
    model.preprocessor = None
    model.compile(run_eagerly=True)  # eager: tracing costs more than this tiny model
    history = model.fit(x=x, y=y, sample_weight=sample_weight, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(x, verbose=0).shape == y.shape + (len(VOCAB),)
    # With a preprocessor, integer dicts still go straight to the model.
    assert masked_lm.evaluate(x, y, sample_weight=sample_weight, batch_size=3,
                              verbose=0)[0] > 0


def test_frozen_backbone_does_not_change_during_fit():
    classifier = tiny_classifier("bert")
    classifier.backbone.trainable = False
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    before = [np.asarray(v).copy() for v in classifier.backbone.weights]
    head = np.asarray(classifier.output_dense.kernel).copy()
    classifier.fit(SENTENCES, LABELS, batch_size=2, epochs=2, verbose=0)
    for old, v in zip(before, classifier.backbone.weights):
        np.testing.assert_array_equal(old, np.asarray(v), err_msg=v.path)
    assert not np.allclose(head, np.asarray(classifier.output_dense.kernel))


def test_classifier_fit_with_validation_and_segment_pairs():
    classifier = tiny_classifier("distil_bert", num_classes=3)
    classifier.compile(run_eagerly=True)
    history = classifier.fit(SENTENCES, LABELS, batch_size=2, epochs=1, verbose=0,
                             validation_data=(SENTENCES[:2], LABELS[:2]))
    assert "val_sparse_categorical_accuracy" in history.history
    history = classifier.fit(SENTENCES, LABELS, batch_size=2, validation_split=0.34,
                             verbose=0)  # the last 2 examples validate
    assert "val_loss" in history.history
    pairs = (SENTENCES[:3], SENTENCES[3:])
    assert classifier.predict(pairs, verbose=0).shape == (3, 3)


def test_fit_on_a_tf_dataset_of_strings():
    import tensorflow as tf

    classifier = tiny_classifier("bert")
    classifier.compile(run_eagerly=True)
    ds = tf.data.Dataset.from_tensor_slices((SENTENCES, LABELS)).batch(2)
    history = classifier.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert classifier.predict(tf.data.Dataset.from_tensor_slices(SENTENCES).batch(4),
                              verbose=0).shape == (len(SENTENCES), 2)


def test_seed_examples_run_as_written_on_a_local_preset(masked_lm, tmp_path):
    """keras-hub's DistilBertMaskedLM docstring examples, on a local preset."""
    from model_defs import DistilBertMaskedLM

    masked_lm.save_to_preset(str(tmp_path / "preset"))
    preset = str(tmp_path / "preset")
    features = ["The quick brown fox jumped.", "I forgot my homework."]
    masked_lm = DistilBertMaskedLM.from_preset(preset)
    masked_lm.fit(x=features, batch_size=2, verbose=0)
    masked_lm.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer=keras.optimizers.Adam(5e-5), jit_compile=True)
    masked_lm.backbone.trainable = False
    frozen = [np.asarray(v).copy() for v in masked_lm.backbone.weights]
    masked_lm.fit(x=features, batch_size=2, verbose=0)
    for old, v in zip(frozen, masked_lm.backbone.weights):
        np.testing.assert_array_equal(old, np.asarray(v))

    # Preprocessed integer data (np.array gives int64, as in the example).
    features = {"token_ids": np.array([[2, 5, 6, 3]] * 2),
                "padding_mask": np.array([[1, 1, 1, 1]] * 2),
                "mask_positions": np.array([[2, 0]] * 2)}
    labels = np.array([[6, 0]] * 2)
    masked_lm = DistilBertMaskedLM.from_preset(preset, preprocessor=None)
    masked_lm.fit(x=features, y=labels, batch_size=2, verbose=0)
