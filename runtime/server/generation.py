"""Generation for the OpenAI and TGI routes: request options -> the `Generator`'s sampler
and length, decoding in a worker thread streamed back to the event loop, stop strings,
and a stop when the client goes away."""

from __future__ import annotations

import asyncio
import threading

from runtime import samplers
from runtime.server.errors import RequestError


def sampler_options(generator, temperature=None, top_p=None, top_k=None, seed=None,
                    greedy=False):
    """The `Generator.generate` sampler arguments for API-style options.

    temperature 0 (or `greedy`) -> greedy; top_p < 1 -> top_p; top_k -> top_k; a bare
    temperature -> random; nothing -> the artifact's default sampler (as the Python API).
    """
    _check_number("temperature", temperature, 0, None)
    _check_number("top_p", top_p, 0, 1, low_open=True)
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                              or top_k < 1):
        raise RequestError(422, f"top_k must be an integer >= 1, got {top_k!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise RequestError(422, f"seed must be a non-negative integer, got {seed!r}")
    if greedy or temperature == 0:
        return {"sampler": "greedy"}
    args = {"temperature": temperature, "seed": seed}
    if top_p is not None and top_p < 1:
        name, args["p"] = "top_p", top_p
    elif top_k:
        name, args["k"] = "top_k", top_k
    elif temperature is not None:
        name = "random"
    else:
        name = None
        if isinstance(generator.make_sampler(), samplers.GreedySampler):
            return {"sampler": "greedy"}  # a seed means nothing to it
    return {"sampler": name, **{k: v for k, v in args.items() if v is not None}}


def _check_number(name, value, low, high, low_open=False):
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (
            low_open and value == low) or (high is not None and value > high):
        where = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}"
        raise RequestError(422, f"{name} must be a number in {where}], got {value!r}")


def prompt_length(generator, prompt):
    """Positions the prompt takes before the first new token: a seq2seq decoder's start
    tokens, or a causal LM's start token and the prompt's own tokens."""
    if generator.artifact.task == "causal_lm":
        start = (generator.artifact.tokenizer_spec or {}).get("packing", {}).get("start", [])
        return len(start) + len(generator.artifact.tokenizer.tokenize(prompt))
    return len(generator.inputs.decoder_start)


def max_length(generator, prompt, max_new_tokens):
    """The `Generator`'s `max_length` (which counts the start tokens and a causal LM's
    prompt) for `max_new_tokens` new tokens, capped at the model's positions as an upper
    bound should be (a prompt that fills them is the Generator's one-line error)."""
    if max_new_tokens is None:
        return None
    if max_new_tokens < 1:
        raise RequestError(422, f"max_tokens must be at least 1, got {max_new_tokens}")
    length = prompt_length(generator, prompt) + max_new_tokens
    return min(length, generator.max_position) if generator.max_position else length


class StopText:
    """A row's text with stop strings cut: `add` returns what is safe to send (a tail that
    could begin a stop string is held back until it cannot)."""

    def __init__(self, stops):
        self.stops = [s for s in (stops or []) if s]
        self.text = ""
        self.sent = 0
        self.hit = False

    def add(self, piece):
        self.text += piece
        cut = min((i for i in (self.text.find(s) for s in self.stops) if i >= 0),
                  default=-1)
        if cut >= 0:
            self.hit = True
            self.text = self.text[:cut]
            return self._send(cut)
        hold = max((k for s in self.stops for k in range(1, len(s))
                    if self.text.endswith(s[:k])), default=0)
        return self._send(len(self.text) - hold)

    def finish(self):
        return self._send(len(self.text))

    def _send(self, end):
        out = self.text[self.sent:end] if end > self.sent else ""
        self.sent = max(self.sent, end)
        return out


class Completion:
    """One prompt's generation on a served seq2seq or causal LM; iterate `pieces()` (async)
    for the text as it comes, then read `finish_reason`, `tokens`, `text`.

    The text is the continuation only, as the OpenAI and TGI APIs return it: the
    `Generator`'s token stream yields the new tokens alone, while its `generate` returns a
    causal LM's prompt + continuation (keras-hub's behaviour)."""

    def __init__(self, model, prompt, max_new_tokens=None, stop=None, **options):
        if model.generations >= model.config.max_queue:
            raise RequestError(503, f"model {model.name!r} has {model.generations} "
                               f"generations running or queued (max_queue "
                               f"{model.config.max_queue}); retry shortly", "max_queue",
                               {"Retry-After": "1"})
        self.model = model
        generator = model.pipeline
        if not isinstance(prompt, str):
            raise RequestError(422, "each prompt must be a string")
        self.prompt_tokens = model.token_counts([prompt])[0]
        self.stop_ids = set(generator._stop_ids("auto") or ())
        self.stop_text = StopText([stop] if isinstance(stop, str) else stop)
        try:
            # checked here, at the call: a bad option answers 422 before anything streams
            self.stream = generator.stream(prompt, max_length=max_length(
                generator, prompt, max_new_tokens), **sampler_options(generator, **options))
        except (ValueError, TypeError) as e:
            raise RequestError(422, str(e)) from None
        self.tokens = 0
        self.finish_reason = "length"
        self.cancel = threading.Event()

    @property
    def text(self):
        return self.stop_text.text

    async def pieces(self):
        """The generated text piece by piece; stops the decode when closed early (the
        client went away) or a stop string appears."""
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()
        self.model.generations += 1
        future = loop.run_in_executor(self.model.executor, self._decode, loop, queue)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "error":
                    raise value
                if kind == "end":
                    break
                self.tokens += 1
                piece = self.stop_text.add(value.text)
                if value.token_id in self.stop_ids:
                    self.finish_reason = "stop"
                if piece:
                    yield piece, value
                if self.stop_text.hit:
                    self.finish_reason = "stop"
                    break
            rest = "" if self.stop_text.hit else self.stop_text.finish()
            if rest:
                yield rest, None
        finally:
            self.cancel.set()
            self.model.generations -= 1
            future.add_done_callback(lambda f: f.exception())  # no "never retrieved"

    def _decode(self, loop, queue):
        """In a worker thread: run the token stream, hand each token to the loop."""
        def put(item):
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is gone (shutdown): nobody is listening
                self.cancel.set()
        try:
            for token in self.stream:
                if self.cancel.is_set():
                    break
                put(("token", token))
            put(("end", None))
        except Exception as e:  # noqa: BLE001 - raised again in the request's handler
            put(("error", e))
        finally:
            self.stream.close()

    async def run(self):
        """The whole text (no streaming)."""
        async for _ in self.pieces():
            pass
        return self.text
