"""Sequence packing in numpy: the same arrays as keras-hub's `MultiSegmentPacker` and
`StartEndPacker`, plus plain right padding for dynamic-length batches.

Inputs are token id sequences (lists, tuples or 1-D arrays); a batch is a list of them or a
2-D array. Outputs are int32 id arrays (and bool masks), as Keras and the ONNX graphs take.
"""

from __future__ import annotations

import numpy as np

TRUNCATE_MODES = ("round_robin", "waterfall")


def _as_values(value, name) -> list[int]:
    """`None` -> [], an int -> [int], a list/tuple/array of ints -> list."""
    if value is None:
        return []
    if isinstance(value, (int, np.integer)):
        return [int(value)]
    if isinstance(value, (list, tuple, np.ndarray)):
        return [int(v) for v in np.asarray(value).reshape(-1).tolist()]
    raise ValueError(f"{name} must be an int, a list of ints or None, got {type(value).__name__}")


def _is_sequence(x) -> bool:
    """True for one id sequence (1-D), False for a batch of them (2-D)."""
    if isinstance(x, np.ndarray):
        if x.ndim not in (1, 2):
            raise ValueError(f"token ids must be 1-D or 2-D, got an array of shape {x.shape}")
        return x.ndim == 1
    if isinstance(x, (list, tuple)):
        return len(x) == 0 or isinstance(x[0], (int, np.integer))
    raise ValueError(f"token ids must be a list or an array, got {type(x).__name__}")


def _rows(x) -> list[list[int]]:
    """A batch as a list of int lists."""
    if isinstance(x, np.ndarray):
        return x.tolist()
    return [r.tolist() if isinstance(r, np.ndarray) else list(r) for r in x]


def _check_padding_side(padding_side):
    if padding_side not in ("right", "left"):
        raise ValueError(f"padding_side must be 'right' or 'left', got {padding_side!r}")


def _fill(rows, width, pad_value, padding_side, dtype="int32"):
    """Rows (each at most `width` long) placed into a (len(rows), width) array."""
    out = np.full((len(rows), width), pad_value, dtype=dtype)
    for b, row in enumerate(rows):
        n = len(row)
        if n:
            if padding_side == "right":
                out[b, :n] = row
            else:
                out[b, width - n :] = row
    return out


def _mask(lengths, width, padding_side):
    positions = np.arange(width)[None, :]
    lengths = np.asarray(lengths, dtype=np.int64)[:, None]
    if padding_side == "right":
        return positions < lengths
    return positions >= width - lengths


# Truncation -----------------------------------------------------------------------------
def _round_robin(lengths: list[int], budget: int) -> list[int]:
    """Tokens kept per segment when the budget is handed out one token at a time, segment
    after segment, to the segments that still have tokens (tf-text's RoundRobinTrimmer)."""
    if sum(lengths) <= budget:
        return list(lengths)
    kept = [0] * len(lengths)
    remaining = max(budget, 0)
    active = [s for s, n in enumerate(lengths) if n > 0]
    while remaining > 0 and active:
        # Whole rounds: every active segment gets `step` tokens.
        step = min(min(lengths[s] - kept[s] for s in active), remaining // len(active))
        if step == 0:
            # A last partial round: one more token to each of the first `remaining` segments.
            for s in active[:remaining]:
                kept[s] += 1
            break
        for s in active:
            kept[s] += step
        remaining -= step * len(active)
        active = [s for s in active if kept[s] < lengths[s]]
    return kept


def _waterfall(lengths: list[int], budget: int) -> list[int]:
    """Segments filled left to right until the budget runs out (tf-text's WaterfallTrimmer)."""
    kept = []
    remaining = max(budget, 0)
    for n in lengths:
        take = min(n, remaining)
        kept.append(take)
        remaining -= take
    return kept


# Packers --------------------------------------------------------------------------------
def pack_segments(
    segments,
    sequence_length,
    start_value,
    end_value,
    pad_value=0,
    truncate="round_robin",
    sep_value=None,
    padding_side="right",
):
    """Pack one or more segments per example into `[start] seg0 [sep] seg1 [sep] ... [end]`,
    like keras-hub's `MultiSegmentPacker`.

    Args:
        segments: list with one entry per segment; each entry is a batch (list of id lists,
            or a 2-D array) or, for one example, a single id list.
        sequence_length: output length; segments are truncated to fit.
        start_value: id or list of ids at the start ("[CLS]", "<s>").
        end_value: id or list of ids after the last segment ("[SEP]", "</s>").
        pad_value: id of the padding.
        truncate: "round_robin" (one token at a time across segments) or "waterfall"
            (earlier segments first).
        sep_value: id or list of ids after every segment but the last; `None` means
            `end_value` (XLM-R uses `[2, 2]`: "</s></s>" between segments).
        padding_side: "right" or "left".

    Returns:
        `(token_ids, segment_ids)`, int32 arrays of shape (batch, sequence_length) (or
        (sequence_length,) for one example). The start ids have segment 0; each separator
        and the end ids have the segment before them; padding has segment 0.

    Example:
        >>> ids, seg = pack_segments([[[1, 2, 3, 4]], [[11, 12, 13, 14]]], 8, 101, 102)
        >>> ids.tolist(), seg.tolist()
        ([[101, 1, 2, 3, 102, 11, 12, 102]], [[0, 0, 0, 0, 0, 1, 1, 1]])
    """
    if truncate not in TRUNCATE_MODES:
        raise ValueError(f"truncate must be one of {TRUNCATE_MODES}, got {truncate!r}")
    _check_padding_side(padding_side)
    if isinstance(segments, np.ndarray) or not isinstance(segments, (list, tuple)):
        raise ValueError("segments must be a list with one batch of token ids per segment")
    if len(segments) == 0:
        raise ValueError("pack_segments needs at least one segment")
    flags = {_is_sequence(s) for s in segments}
    if len(flags) != 1:
        raise ValueError("all segments must have the same rank (all batched or all single)")
    unbatched = flags.pop()
    batches = [[_row(s)] if unbatched else _rows(s) for s in segments]
    batch_size = len(batches[0])
    if any(len(b) != batch_size for b in batches):
        sizes = [len(b) for b in batches]
        raise ValueError(f"all segments must have the same batch size, got {sizes}")

    start = _as_values(start_value, "start_value")
    end = _as_values(end_value, "end_value")
    sep = end if sep_value is None else _as_values(sep_value, "sep_value")
    num_segments = len(batches)
    num_special = len(start) + (num_segments - 1) * len(sep) + len(end)
    sequence_length = int(sequence_length)
    if sequence_length < num_special:
        raise ValueError(
            f"sequence_length={sequence_length} leaves no room for the {num_special} start, "
            "separator and end tokens; use a longer sequence_length"
        )
    trim = _round_robin if truncate == "round_robin" else _waterfall
    budget = sequence_length - num_special

    token_rows, segment_rows = [], []
    for b in range(batch_size):
        example = [batches[s][b] for s in range(num_segments)]
        kept = trim([len(x) for x in example], budget)
        tokens = list(start)
        segment_ids = [0] * len(start)
        for s, (ids, n) in enumerate(zip(example, kept)):
            tail = end if s == num_segments - 1 else sep
            tokens += ids[:n]
            tokens += tail
            segment_ids += [s] * (n + len(tail))
        token_rows.append(tokens)
        segment_rows.append(segment_ids)
    token_ids = _fill(token_rows, sequence_length, pad_value, padding_side)
    segment_ids = _fill(segment_rows, sequence_length, 0, padding_side)
    if unbatched:
        return token_ids[0], segment_ids[0]
    return token_ids, segment_ids


def _row(x) -> list[int]:
    return x.tolist() if isinstance(x, np.ndarray) else list(x)


def pack_start_end(
    batch_ids,
    sequence_length,
    start_value=None,
    end_value=None,
    pad_value=0,
    return_padding_mask=True,
    padding_side="right",
):
    """Add start/end ids and pad or truncate to `sequence_length`, like keras-hub's
    `StartEndPacker`. Truncation drops ids from the end of the sequence, keeping the start
    and end ids.

    Args:
        batch_ids: a batch (list of id lists, or a 2-D array) or one id list.
        sequence_length: output length; `None` pads to the longest packed row.
        start_value: id or list of ids to prepend, or `None`.
        end_value: id or list of ids to append, or `None`.
        pad_value: id of the padding.
        return_padding_mask: also return the mask (True on every id that is not padding,
            start and end ids included).
        padding_side: "right" or "left".

    Returns:
        int32 `token_ids` of shape (batch, sequence_length) (or (sequence_length,) for one
        list), and with `return_padding_mask` a bool mask of the same shape.

    Example:
        >>> ids, mask = pack_start_end([[5, 6, 7, 8]], 4, start_value=1, end_value=2)
        >>> ids.tolist(), mask.tolist()
        ([[1, 5, 6, 2]], [[True, True, True, True]])
    """
    _check_padding_side(padding_side)
    unbatched = _is_sequence(batch_ids)
    rows = [_row(batch_ids)] if unbatched else _rows(batch_ids)
    start = _as_values(start_value, "start_value")
    end = _as_values(end_value, "end_value")
    if sequence_length is None:
        keep = None
        width = max((len(r) for r in rows), default=0) + len(start) + len(end)
    else:
        width = int(sequence_length)
        keep = width - len(start) - len(end)
        if keep < 0:
            raise ValueError(
                f"sequence_length={width} is shorter than the {len(start) + len(end)} start "
                "and end tokens; use a longer sequence_length"
            )
    packed = [start + (r if keep is None else r[:keep]) + end for r in rows]
    token_ids = _fill(packed, width, pad_value, padding_side)
    mask = _mask([len(p) for p in packed], width, padding_side) if return_padding_mask else None
    if unbatched:
        token_ids = token_ids[0]
        mask = None if mask is None else mask[0]
    return (token_ids, mask) if return_padding_mask else token_ids


def pad_batch(batch_ids, pad_value=0, length=None, padding_side="right"):
    """Pad a batch of id lists into one array, for dynamic-length batching.

    Args:
        batch_ids: list of id lists (or a 2-D array).
        pad_value: id of the padding.
        length: output width; `None` means the longest row. A row longer than `length` is
            an error (truncate first, e.g. with `pack_start_end`).
        padding_side: "right" or "left".

    Returns:
        `(token_ids, padding_mask)`: int32 (batch, length) and bool (batch, length), the mask
        True on real ids.

    Example:
        >>> ids, mask = pad_batch([[1, 2, 3], [4]], pad_value=0)
        >>> ids.tolist(), mask.tolist()
        ([[1, 2, 3], [4, 0, 0]], [[True, True, True], [True, False, False]])
    """
    _check_padding_side(padding_side)
    if len(batch_ids) and _is_sequence(batch_ids):
        raise ValueError("pad_batch expects a batch (a list of id lists), got one id list")
    rows = _rows(batch_ids)
    lengths = [len(r) for r in rows]
    longest = max(lengths, default=0)
    width = longest if length is None else int(length)
    if longest > width:
        raise ValueError(
            f"a row of {longest} ids does not fit length={width}; truncate it first "
            "(pack_start_end) or pass a larger length"
        )
    return _fill(rows, width, pad_value, padding_side), _mask(lengths, width, padding_side)
