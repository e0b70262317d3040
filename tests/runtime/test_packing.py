"""runtime.packing against keras-hub's MultiSegmentPacker and StartEndPacker (eager and
tf-text paths), on random batches and the documented cases."""

import random

import numpy as np
import pytest

from runtime.packing import pack_segments, pack_start_end, pad_batch

keras_hub = pytest.importorskip("keras_hub")
tf = pytest.importorskip("tensorflow")


def _random_batch(rng, batch_size, max_len):
    lengths = [rng.randint(0, max_len) for _ in range(batch_size)]
    return [[rng.randrange(3, 50) for _ in range(n)] for n in lengths]


def _ragged(batch):
    if any(batch):
        return tf.ragged.constant(batch, dtype="int32", ragged_rank=1)
    return tf.zeros((len(batch), 0), "int32")


def _graph_call(layer, inputs):
    """keras-hub's tf-text path (what runs inside tf.data); kept as `_call_tf` in 0.32."""
    run = getattr(layer, "_call_tf", None) or tf.function(lambda x: layer(x))
    return run(inputs)


def _assert_equal(ours, theirs, what):
    theirs = np.asarray(theirs)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    np.testing.assert_array_equal(ours, theirs, err_msg=what)


def _multi_segment_cases(n, seed):
    rng = random.Random(seed)
    cases = []
    while len(cases) < n:
        num_segments = rng.randint(1, 4)
        batch_size = rng.randint(1, 4)
        segments = [
            _random_batch(rng, batch_size, rng.choice([0, 3, 10, 25])) for _ in range(num_segments)
        ]
        start = rng.choice([101, [101], [0, 5]])
        end = rng.choice([102, [102], [2, 2]])
        sep = rng.choice([None, 7, [2, 2]])
        sep_len = len(np.atleast_1d(end if sep is None else sep))
        special = len(np.atleast_1d(start)) + (num_segments - 1) * sep_len + len(np.atleast_1d(end))
        length = rng.randint(special, 24)
        kwargs = dict(
            sequence_length=length,
            start_value=start,
            end_value=end,
            sep_value=sep,
            pad_value=rng.choice([0, 1]),
            truncate=rng.choice(["round_robin", "waterfall"]),
            padding_side=rng.choice(["right", "left"]),
        )
        cases.append((segments, kwargs))
    return cases


@pytest.mark.parametrize("seed", range(3))
def test_pack_segments_matches_keras_hub(seed):
    for i, (segments, kwargs) in enumerate(_multi_segment_cases(40, seed=seed)):
        layer = keras_hub.layers.MultiSegmentPacker(**kwargs)
        kwargs = dict(kwargs)
        length = kwargs.pop("sequence_length")
        ids, segment_ids = pack_segments(segments, length, **kwargs)
        assert ids.dtype == np.int32 and segment_ids.dtype == np.int32
        eager_ids, eager_segments = layer(tuple(segments))
        _assert_equal(ids, eager_ids, f"token ids {segments} {kwargs}")
        _assert_equal(segment_ids, eager_segments, f"segment ids {segments} {kwargs}")
        if i % 4:
            continue  # the tf-text path costs ~50 ms a call: check every 4th case
        graph_ids, graph_segments = _graph_call(layer, tuple(_ragged(s) for s in segments))
        _assert_equal(ids, graph_ids, f"tf token ids {segments} {kwargs}")
        _assert_equal(segment_ids, graph_segments, f"tf segment ids {segments} {kwargs}")


def test_pack_segments_documented_cases():
    ids, seg = pack_segments([[1, 2, 3, 4]], 8, start_value=101, end_value=102)
    assert ids.tolist() == [101, 1, 2, 3, 4, 102, 0, 0]
    assert seg.tolist() == [0] * 8
    ids, seg = pack_segments([[1, 2, 3, 4], [11, 12, 13, 14]], 8, 101, 102)
    assert ids.tolist() == [101, 1, 2, 3, 102, 11, 12, 102]
    assert seg.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    # XLM-R: "<s> a </s></s> b </s>".
    ids, seg = pack_segments(
        [[[1, 2, 3, 4]], [[11, 12, 13, 14]]], 8, 0, 2, pad_value=1, sep_value=[2, 2]
    )
    assert ids.tolist() == [[0, 1, 2, 2, 2, 11, 12, 2]]
    assert seg.tolist() == [[0, 0, 0, 0, 0, 1, 1, 1]]
    # Waterfall fills the first segment first.
    ids, _ = pack_segments([[[1, 2, 3, 4]], [[11, 12, 13, 14]]], 8, 101, 102, truncate="waterfall")
    assert ids.tolist() == [[101, 1, 2, 3, 4, 102, 11, 102]]
    # numpy inputs, and a batch with an empty row.
    ids, seg = pack_segments([np.array([[5, 6], [7, 8]]), [[9], []]], 7, 101, 102, pad_value=0)
    assert ids.tolist() == [[101, 5, 6, 102, 9, 102, 0], [101, 7, 8, 102, 102, 0, 0]]
    assert seg.tolist() == [[0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 0, 0]]


def test_pack_segments_unbatched_matches_keras_hub():
    layer = keras_hub.layers.MultiSegmentPacker(
        sequence_length=9, start_value=0, end_value=2, sep_value=[2, 2], pad_value=1
    )
    segments = ([5, 6, 7, 8, 9], [10, 11, 12])
    ids, seg = pack_segments(list(segments), 9, 0, 2, pad_value=1, sep_value=[2, 2])
    eager_ids, eager_seg = layer(segments)
    _assert_equal(ids, eager_ids, "unbatched ids")
    _assert_equal(seg, eager_seg, "unbatched segments")


def test_start_end_matches_keras_hub():
    rng = random.Random(7)
    for i in range(80):
        batch = _random_batch(rng, rng.randint(1, 4), rng.choice([0, 3, 10, 25]))
        kwargs = dict(
            start_value=rng.choice([None, 1, [1, 9]]),
            end_value=rng.choice([None, 2, [2, 2]]),
            pad_value=rng.choice([0, 1]),
            padding_side=rng.choice(["right", "left"]),
        )
        length = rng.randint(4, 20)
        layer = keras_hub.layers.StartEndPacker(
            sequence_length=length, return_padding_mask=True, **kwargs
        )
        ids, mask = pack_start_end(batch, length, **kwargs)
        assert ids.dtype == np.int32 and mask.dtype == bool
        eager_ids, eager_mask = layer(batch)
        _assert_equal(ids, eager_ids, f"ids {batch} {kwargs}")
        _assert_equal(mask, eager_mask, f"mask {batch} {kwargs}")
        if i % 4:
            continue
        graph_ids, graph_mask = _graph_call(layer, _ragged(batch))
        _assert_equal(ids, graph_ids, f"tf ids {batch} {kwargs}")
        _assert_equal(mask, graph_mask, f"tf mask {batch} {kwargs}")


def test_start_end_cases():
    ids, mask = pack_start_end([[5, 6, 7, 8]], 4, start_value=1, end_value=2)
    assert ids.tolist() == [[1, 5, 6, 2]] and mask.all()
    # One sequence in, one row out; no mask asked.
    ids = pack_start_end([5, 6], 5, 1, 2, pad_value=0, return_padding_mask=False)
    assert ids.tolist() == [1, 5, 6, 2, 0]
    # A pad id inside the text stays unmasked: the mask comes from lengths.
    ids, mask = pack_start_end([[0, 7]], 5, start_value=[1, 1], end_value=None, pad_value=0)
    assert ids.tolist() == [[1, 1, 0, 7, 0]]
    assert mask.tolist() == [[True, True, True, True, False]]
    # sequence_length=None: as long as the longest packed row.
    ids, mask = pack_start_end([[5], [5, 6, 7]], None, 1, 2)
    assert ids.tolist() == [[1, 5, 2, 0, 0], [1, 5, 6, 7, 2]]
    assert mask.sum(1).tolist() == [3, 5]
    layer = keras_hub.layers.StartEndPacker(sequence_length=6, start_value=1, end_value=2)
    _assert_equal(pack_start_end([5, 6], 6, 1, 2, return_padding_mask=False), layer([5, 6]), "1-D")


def test_pad_batch():
    ids, mask = pad_batch([[1, 2, 3], [4], []], pad_value=9)
    assert ids.dtype == np.int32 and mask.dtype == bool
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9], [9, 9, 9]]
    assert mask.tolist() == [[True] * 3, [True, False, False], [False] * 3]
    ids, mask = pad_batch([[1, 2]], pad_value=0, length=4, padding_side="left")
    assert ids.tolist() == [[0, 0, 1, 2]] and mask.tolist() == [[False, False, True, True]]
    ids, mask = pad_batch(np.array([[1, 2], [3, 4]]), pad_value=0)
    assert ids.tolist() == [[1, 2], [3, 4]] and mask.all()
    ids, mask = pad_batch([], pad_value=0)
    assert ids.shape == (0, 0) and mask.shape == (0, 0)


def test_bad_inputs():
    with pytest.raises(ValueError, match="truncate"):
        pack_segments([[[1]]], 8, 101, 102, truncate="longest_first")
    with pytest.raises(ValueError, match="sequence_length"):
        pack_segments([[[1]], [[2]]], 2, 101, 102)
    with pytest.raises(ValueError, match="batch size"):
        pack_segments([[[1], [2]], [[3]]], 8, 101, 102)
    with pytest.raises(ValueError, match="same rank"):
        pack_segments([[1, 2], [[3]]], 8, 101, 102)
    with pytest.raises(ValueError, match="at least one"):
        pack_segments([], 8, 101, 102)
    with pytest.raises(ValueError, match="padding_side"):
        pack_segments([[[1]]], 8, 101, 102, padding_side="top")
    with pytest.raises(ValueError, match="start_value"):
        pack_segments([[[1]]], 8, "[CLS]", 102)
    with pytest.raises(ValueError, match="sequence_length"):
        pack_start_end([[1, 2]], 1, start_value=1, end_value=2)
    with pytest.raises(ValueError, match="does not fit"):
        pad_batch([[1, 2, 3]], pad_value=0, length=2)
    with pytest.raises(ValueError, match="batch"):
        pad_batch([1, 2, 3], pad_value=0)
