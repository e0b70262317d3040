"""The parts of runtime.generation on their own (fast, no export): the KV cache over real
IO bindings (ping-pong swap, growth, beam reorder, static entries), the streaming
detokenizers on characters split across tokens, the search loop over a fake step (the
parity tests in test_generator.py cover it over the real graphs), the helpers that exist
once, and the Keras model importing no onnxruntime."""

import os
import re
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from runtime import samplers
from runtime.generation import kv_cache
from runtime.generation.kv_cache import KVCache
from runtime.generation.search import SearchLoop
from runtime.generation.step import CallbackStep, Step
from runtime.generation.stream import Token, TokenStream
from runtime.tokenizers.byte_pair_tokenizer import BYTE_TO_UNICODE, BytePairTokenizer
from runtime.tokenizers.text_stream import TextStream
from runtime.tokenizers.word_piece_tokenizer import WordPieceTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADS, DIM = 2, 3
PAST, PRESENT = "past_key_values.0.self.key", "present.0.self.key"
CROSS, CROSS_OUT = "past_key_values.0.cross.key", "present.0.cross.key"


# -- KV cache ------------------------------------------------------------------------------
def _session(nodes, inputs, outputs):
    def tensor(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["b", HEADS, None, DIM])

    graph = helper.make_graph(nodes, "g", [tensor(n) for n in inputs],
                              [tensor(n) for n in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def graphs():
    """A first graph (present = the new positions; cross = its own input) and a step graph
    (present = Concat(past, new), cross read back): the cache traffic of a decoder."""
    first = _session([helper.make_node("Identity", ["new"], [PRESENT]),
                      helper.make_node("Identity", ["encoder"], [CROSS_OUT])],
                     ["new", "encoder"], [PRESENT, CROSS_OUT])
    step = _session([helper.make_node("Concat", [PAST, "new"], [PRESENT], axis=2),
                     helper.make_node("Add", [CROSS, "new"], ["checked"])],
                    [PAST, CROSS, "new"], [PRESENT, "checked"])
    return first, step


def _decode(graphs, cache, news, encoder):
    """Prefill with news[0] (rows, H, n, D), then one step per later (rows, H, 1, D)."""
    first, step = graphs
    binding = first.io_binding()
    binding.bind_cpu_input("new", news[0])
    binding.bind_cpu_input("encoder", encoder)
    cache.bind_present(binding, news[0].shape[2])
    cache.bind_static_outputs(binding, [CROSS], encoder.shape[2])
    first.run_with_iobinding(binding)
    cache.advance(news[0].shape[2])
    checked = []
    for new in news[1:]:
        binding = step.io_binding()
        binding.bind_cpu_input("new", new)
        cache.bind_past(binding)
        cache.bind_present(binding, cache.length + 1)
        cache.bind_static_inputs(binding)
        binding.bind_output("checked")
        step.run_with_iobinding(binding)
        cache.advance(cache.length + 1)
        checked.append(binding.copy_outputs_to_cpu()[-1])  # bound last
    return checked


def _current(cache, name=PAST):
    return cache._host(cache.buffers[name][cache.current], cache.shape())


def _positions(rows, n, start=0):
    """Distinct values per (row, position): row * 1000 + position."""
    x = np.zeros((rows, HEADS, n, DIM), np.float32)
    x += (np.arange(rows) * 1000)[:, None, None, None]
    x += (start + np.arange(n))[None, None, :, None]
    return x


def test_kv_cache_steps_swap_buffers_and_keep_every_position(graphs):
    rows, n, steps = 3, 2, 5
    cache = KVCache([PAST], rows, HEADS, DIM, max_length=40)
    news = [_positions(rows, n)] + [_positions(rows, 1, n + i) for i in range(steps)]
    encoder = _positions(rows, 4)
    pointers = []
    original = cache.bind_present

    def recording(binding, length):
        original(binding, length)
        pointers.append(cache.buffers[PAST][1 - cache.current].ctypes.data)

    cache.bind_present = recording
    checked = _decode(graphs, cache, news, encoder)
    np.testing.assert_array_equal(_current(cache), _positions(rows, n + steps))
    assert cache.length == n + steps
    # two buffers, written alternately: the graph never writes where it reads
    assert len(set(pointers)) == 2 and all(a != b for a, b in zip(pointers, pointers[1:]))
    # the static entry is fed back unchanged
    for new, out in zip(news[1:], checked):
        np.testing.assert_array_equal(out, encoder + new)


def test_kv_cache_grows_by_doubling_up_to_max_length(graphs, monkeypatch):
    monkeypatch.setattr(kv_cache, "INITIAL_POSITIONS", 4)
    sizes = []
    original = KVCache._alloc
    monkeypatch.setattr(KVCache, "_alloc", lambda self, size: sizes.append(size) or
                        original(self, size))
    rows, max_length = 2, 13
    cache = KVCache([PAST], rows, HEADS, DIM, max_length=max_length)
    news = [_positions(rows, 1)] + [_positions(rows, 1, 1 + i) for i in range(max_length - 1)]
    _decode(graphs, cache, news, np.zeros((rows, HEADS, 1, DIM), np.float32))
    np.testing.assert_array_equal(_current(cache), _positions(rows, max_length))
    per_position = rows * HEADS * DIM
    growing = sizes[:1] + sizes[2:]  # sizes[1] is the static entry
    # 4, 4 positions, then 8, 8, then capped at 13: O(log n) allocations, none past the cap
    assert [s // per_position for s in growing] == [4, 4, 8, 8, 13, 13]


def test_kv_cache_reorder_gathers_rows(graphs):
    rows = 4
    cache = KVCache([PAST], rows, HEADS, DIM, max_length=10)
    encoder = _positions(rows, 2)
    _decode(graphs, cache, [_positions(rows, 3)], encoder)
    order = np.array([2, 0, 0, 3])
    cache.reorder(order)
    np.testing.assert_array_equal(_current(cache), _positions(rows, 3)[order])
    buffer, shape = cache.static[CROSS]
    np.testing.assert_array_equal(cache._host(buffer, shape), encoder)  # not moved
    cache.reorder(order, static=True)
    np.testing.assert_array_equal(_current(cache), _positions(rows, 3)[order][order])
    buffer, shape = cache.static[CROSS]
    np.testing.assert_array_equal(cache._host(buffer, shape), encoder[order])
    # and the next step appends to the reordered rows
    first, step = graphs
    binding = step.io_binding()
    new = _positions(rows, 1, 3)
    binding.bind_cpu_input("new", new)
    cache.bind_past(binding)
    cache.bind_present(binding, 4)
    cache.bind_static_inputs(binding)
    binding.bind_output("checked")
    step.run_with_iobinding(binding)
    cache.advance(4)
    want = np.concatenate([_positions(rows, 3)[order][order], new], axis=2)
    np.testing.assert_array_equal(_current(cache), want)


# -- streaming detokenizers ----------------------------------------------------------------
def _byte_tokenizer():
    """One token per byte (and "Ġa"): every multi-byte character spans several tokens."""
    vocab = {c: i for i, c in enumerate(BYTE_TO_UNICODE)}
    vocab["Ġa"] = len(vocab)
    return BytePairTokenizer(vocab, [])


def _byte_ids(tok, text):
    return [tok.token_to_id(BYTE_TO_UNICODE[b]) for b in text.encode("utf-8")]


def test_byte_stream_holds_a_character_split_across_tokens():
    tok = _byte_tokenizer()
    text = "é€😀 a"
    ids = _byte_ids(tok, text) + [tok.token_to_id("Ġa")]
    stream = tok.detokenize_stream()
    pieces = [stream.add(i) for i in ids]
    # "é" is two bytes: nothing after its first, the whole character after its second
    assert pieces[:2] == ["", "é"]
    assert pieces[2:5] == ["", "", "€"] and pieces[5:9] == ["", "", "", "😀"]
    assert "\ufffd" not in "".join(pieces)
    assert "".join(pieces) + stream.finish() == tok.detokenize(ids) == text + " a"
    # a character cut off at the end comes out as U+FFFD, as detokenize gives it
    stream = tok.detokenize_stream()
    cut = _byte_ids(tok, "x€")[:-1]
    assert "".join(stream.add(i) for i in cut) == "x"
    assert stream.finish() == "\ufffd" and tok.detokenize(cut) == "x\ufffd"


def test_word_piece_stream_glues_suffixes():
    tok = WordPieceTokenizer(["[PAD]", "[UNK]", "the", "fox", "##es", "run", "##s", "."],
                             oov_token="[UNK]")
    ids = [2, 3, 4, 5, 6, 7, 4]
    stream = tok.detokenize_stream()
    pieces = [stream.add(i) for i in ids]
    assert pieces == ["the", " fox", "es", " run", "s", " .", "es"]
    assert "".join(pieces) + stream.finish() == tok.detokenize(ids)


def test_default_stream_redetokenizes_and_waits_on_a_partial_character():
    class Bytes:  # a tokenizer whose ids are bytes, without a stream of its own
        def detokenize(self, ids):
            return bytes(ids).decode("utf-8", errors="replace")

    data = "aé€".encode()
    stream = TextStream(Bytes())
    pieces = [stream.add(b) for b in data]
    assert pieces == ["a", "", "é", "", "", "€"]
    assert "".join(pieces) + stream.finish() == "aé€"


def test_sentence_piece_stream_joins_to_detokenize():
    sys.path.insert(0, os.path.join(REPO, "tests"))
    from multilingual_spm import TEST_TEXTS, train_spm

    from runtime.tokenizers.sentence_piece_tokenizer import SentencePieceTokenizer

    tok = SentencePieceTokenizer(train_spm(), id_layout="fairseq")
    for text in TEST_TEXTS[:5]:
        ids = tok.tokenize(text)
        stream = tok.detokenize_stream()
        pieces = [stream.add(i) for i in ids]
        assert "".join(pieces) + stream.finish() == tok.detokenize(ids)


def test_token_stream_skips_prompts_stopped_rows_and_special_ids():
    tok = _byte_tokenizer()
    e1, e2 = _byte_ids(tok, "é")
    stop, pad = tok.token_to_id("Ġa"), 0
    mask = np.array([[1, 0, 0, 0], [1, 1, 0, 0]], bool)
    stream = TokenStream(mask, [stop], special_ids={stop, pad}, tokenizer=tok)
    assert stream.add(1, np.array([e1, 99])) == [Token(0, 1, e1, "")]  # row 1: its prompt
    assert stream.add(2, np.array([e2, stop])) == [Token(0, 2, e2, "é"),
                                                   Token(1, 2, stop, "")]
    assert stream.add(3, np.array([e1, e1])) == [Token(0, 3, e1, "\ufffd")]  # last: flush


# -- the search loop -----------------------------------------------------------------------
class CountingStep(Step):
    """Logits that favour (last token + 1) % vocab, and a record of every call."""

    def __init__(self, vocab=7):
        self.vocab = vocab
        self.calls = []

    def _logits(self, last):
        logits = np.zeros((len(last), self.vocab), np.float32)
        logits[np.arange(len(last)), (last + 1) % self.vocab] = 5.0
        logits[:, 0] = 1.0  # a runner-up, so sampling is not degenerate
        return logits

    def prefill(self, token_ids):
        self.calls.append(("prefill", token_ids.copy()))
        return self._logits(token_ids[:, -1])

    def step(self, token_ids):
        self.calls.append(("step", token_ids.copy()))
        return self._logits(token_ids[:, 0])

    def reorder(self, rows):
        self.calls.append(("reorder", np.asarray(rows).copy()))

    def close(self):
        self.calls.append(("close",))


def test_loop_prefills_once_then_steps_one_token_keeping_longer_prompts():
    prompt = np.array([[1, 0, 0, 0, 0, 0], [3, 4, 5, 0, 0, 0]])
    mask = prompt > 0
    step = CountingStep()
    loop = SearchLoop(step, samplers.GreedySampler(), prompt, mask=mask, index=1,
                      stop_token_ids=[6])
    out = loop.run()
    # row 0 counts on from 1 and stops at 6; row 1 keeps its prompt, then counts on
    np.testing.assert_array_equal(out, [[1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 0, 1]])
    kinds = [c[0] for c in step.calls]
    assert kinds == ["prefill"] + ["step"] * 4 + ["close"]
    np.testing.assert_array_equal(step.calls[0][1], prompt[:, :1])
    np.testing.assert_array_equal(step.calls[1][1], [[2], [4]])  # row 1's prompt token
    np.testing.assert_array_equal(prompt[0], [1, 0, 0, 0, 0, 0])  # the input is not touched


def test_loop_stops_when_every_row_has_stopped_and_streams_tokens():
    prompt = np.array([[1, 0, 0, 0, 0, 0, 0], [4, 0, 0, 0, 0, 0, 0]])
    mask = prompt > 0
    stream = TokenStream(mask, [6], special_ids=set())
    loop = SearchLoop(CountingStep(), samplers.GreedySampler(), prompt, mask=mask,
                      index=1, stop_token_ids=[6], stream=stream)
    tokens = list(loop)
    assert [(t.row, t.position, t.token_id) for t in tokens] == [
        (0, 1, 2), (1, 1, 5), (0, 2, 3), (1, 2, 6), (0, 3, 4), (0, 4, 5), (0, 5, 6)]
    np.testing.assert_array_equal(loop.result[0], [1, 2, 3, 4, 5, 6, 0])


def test_loop_beam_search_repeats_rows_before_prefill_and_reorders_after_steps():
    prompt = np.array([[1, 0, 0, 0], [2, 0, 0, 0]])
    step = CountingStep()
    beams = samplers.BeamSampler(num_beams=2)
    loop = SearchLoop(step, beams, prompt, mask=prompt > 0, index=1)
    np.testing.assert_array_equal(loop.run(), [[1, 2, 3, 4], [2, 3, 4, 5]])
    kinds = [c[0] for c in step.calls]
    assert kinds == ["reorder", "prefill", "reorder", "step", "reorder", "step", "reorder",
                     "close"]
    np.testing.assert_array_equal(step.calls[0][1], [0, 0, 1, 1])
    assert step.calls[1][1].shape == (4, 1)


@pytest.mark.parametrize("sampler", [
    samplers.TopKSampler(k=3, seed=5), samplers.TopPSampler(p=0.9, seed=2),
    samplers.RandomSampler(seed=1), samplers.BeamSampler(num_beams=3)])
def test_keras_callback_protocol_runs_the_same_loop(sampler):
    """Sampler.__call__ (keras-hub's `next(prompt, cache, index)`) and a Step give the
    same ids: one loop, whatever drives the model."""
    prompt = np.array([[1, 2, 0, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0, 0]])
    mask = prompt > 0
    fake = CountingStep()
    seen = []

    def next(prompt_now, cache, index):
        seen.append((prompt_now.copy(), index, cache["rows"].copy()))
        return fake._logits(prompt_now[:, index - 1]), cache

    cache = {"rows": np.arange(2)}
    via_callback = sampler(next, prompt, cache=cache, index=1, mask=mask,
                           stop_token_ids=[6])
    via_step = SearchLoop(CountingStep(), sampler, prompt, mask=mask, index=1,
                          stop_token_ids=[6]).run()
    np.testing.assert_array_equal(via_callback, via_step)
    # the callback first sees the prompt (repeated for the beams) and a cache gathered
    # with it
    beams = getattr(sampler, "num_beams", 1)
    np.testing.assert_array_equal(seen[0][0], np.repeat(prompt, beams, axis=0))
    np.testing.assert_array_equal(seen[0][2], np.repeat(np.arange(2), beams))


def test_callback_step_fills_the_prompt_it_passes():
    got = []

    def next(prompt, cache, index):
        got.append((prompt.copy(), index))
        return np.eye(5, dtype=np.float32)[[index % 5]], cache

    prompt = np.array([[4, 0, 0, 0]])
    out = samplers.GreedySampler()(next, prompt, index=1)
    np.testing.assert_array_equal(out, [[4, 1, 2, 3]])
    assert [i for _, i in got] == [1, 2, 3]
    np.testing.assert_array_equal(got[2][0], [[4, 1, 2, 0]])
    assert isinstance(CallbackStep(next, prompt), Step)


# -- helpers that exist once; imports ----------------------------------------------------
def test_softmax_and_top_k_are_defined_once_in_the_runtime():
    found = {"softmax": [], "top-k": []}
    for root, _, files in os.walk(os.path.join(REPO, "runtime")):
        for name in files:
            if name.endswith(".py"):
                source = open(os.path.join(root, name), encoding="utf-8").read()
                where = os.path.relpath(os.path.join(root, name), REPO)
                found["softmax"] += [where] * len(re.findall(r"def _?softmax\(|np\.exp\(\w+ - ",
                                                             source))
                found["top-k"] += [where] * len(re.findall(
                    r"def (_top|top_indices|_top_k)\((?!self)|np\.partition\(", source))
    assert found == {"softmax": ["runtime/numerics.py"],
                     "top-k": ["runtime/numerics.py", "runtime/numerics.py"]}


def test_the_keras_model_imports_no_onnxruntime():
    code = ("import sys; import model_defs.bart.bart_seq_2_seq_lm; "
            "print(sorted(m for m in ('onnxruntime', 'runtime.artifact', 'runtime.generator')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
