"""`CausalLM`: base of the generative language models, with keras-hub's `compile(sampler=)`
and `generate()`.

The generate driver lives here once: inputs are normalised into batches (a
`tf.data.Dataset` is generated batch by batch), each batch is preprocessed, handed to the
model's `generate_step`, postprocessed, and the outputs are concatenated. A model only
provides `generate_step` (its decode loop on one batch of packed ids); the decoder-only one
is here (`CausalLM.generate_step`, over the model's `call_decoder` and
`call_decoder_with_past`), BART's seq2seq loop overrides it. `CausalLM.from_preset`
returns the task class the preset's backbone has (a `GPT2CausalLM`; a `Seq2SeqLM` for a
BART preset, since keras-hub's `Seq2SeqLM` is a `CausalLM`) and refuses any other preset
in one line.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from model_defs import samplers, task_data
from model_defs.task import Task
from runtime.generation.search import output_mask  # numpy only; shared with serving


class CausalLM(Task):
    """Base class of the generative tasks.

    Subclasses implement `generate_step(inputs, stop_token_ids)`: one batch of the
    preprocessor's `generate_preprocess` output (or, without a preprocessor, of the
    model's integer inputs) -> a dict of generated ids for `generate_postprocess`. A
    decoder-only model gets it by implementing `call_decoder` and
    `call_decoder_with_past` (see `generate_step`).

    Example:
    ```python
    lm = CausalLM.from_preset("gpt2_base_en")  # a GPT2CausalLM
    lm.compile(sampler="greedy")
    lm.generate(["The quick brown fox"], max_length=30)
    ```
    """

    task_name = "causal_lm"
    export_spec = "causal_lm"  # exporter/specs/causal_lm.py (Seq2SeqLM models name theirs)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if getattr(self, "sampler", None) is None:  # built with compile=False
            self.sampler = samplers.get("top_k")

    def compile(self, optimizer="auto", loss="auto", *, weighted_metrics="auto",
                sampler="top_k", **kwargs):
        """keras-hub's defaults: Adam(2e-5), sparse cross-entropy on logits, sparse
        categorical accuracy weighted by the padding mask; `sampler` (what `generate`
        uses) is a name ("greedy", "top_k", "top_p", "random", "beam"), a config dict or a
        `model_defs.samplers.Sampler` instance."""
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(2e-5)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if weighted_metrics == "auto":
            weighted_metrics = [keras.metrics.SparseCategoricalAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics,
                        **kwargs)
        self.sampler = samplers.get(sampler)

    def generate(self, inputs, max_length=None, stop_token_ids="auto"):
        """Generate for `inputs`.

        Args:
            inputs: with a preprocessor, what its `generate_preprocess` takes (a string, a
                list of strings, ...); without one, the model's integer inputs. A
                `tf.data.Dataset` is generated batch by batch and the outputs concatenated;
                anything else is one batch.
            max_length: the longest sequence to generate (default: the preprocessor's
                `sequence_length`); without a preprocessor the inputs' padded length rules.
            stop_token_ids: "auto" (the tokenizer's end token; needs a preprocessor), None
                (run to `max_length`) or a list of ids, each of which ends a row.

        Returns a string for a string input, a list of strings for a batch, or without a
        preprocessor a dict of numpy arrays.
        """
        stop_token_ids = self._stop_token_ids(stop_token_ids)
        batches, scalar = _batches(inputs, self.preprocessor is not None)
        outputs = []
        for batch in batches:
            if self.preprocessor is not None:
                batch = self.preprocessor.generate_preprocess(batch, sequence_length=max_length)
            out = self.generate_step(batch, stop_token_ids)
            if self.preprocessor is not None:
                out = self.preprocessor.generate_postprocess(out)
            outputs.append(out)
        if not outputs:
            raise ValueError("generate got an empty dataset: nothing to generate")
        return _concatenate(outputs, scalar)

    def _stop_token_ids(self, stop_token_ids):
        if isinstance(stop_token_ids, str) and stop_token_ids == "auto":
            if self.preprocessor is None:
                raise ValueError('stop_token_ids="auto" needs a preprocessor; pass '
                                 "stop_token_ids=None to generate up to max_length, or a "
                                 "list of stop ids")
            return [self.preprocessor.tokenizer.end_token_id]
        if stop_token_ids is None:
            return None
        return [int(t) for t in stop_token_ids]

    # -- the public calls the generate loop and the exporter use (decoder-only models) --
    # They need a backbone with `call_cached(token_ids, padding_mask, past)` and an
    # `lm_head`; a Seq2SeqLM overrides them with its encoder-decoder calls.
    def call_decoder(self, token_ids, padding_mask):
        """The prompt, no past: int (batch, n) ids and their padding mask (batch, n).

        Returns (logits (batch, n, vocab), present): `present` a list over layers of
        (key, value), each (batch, num_key_value_heads, n, head_dim). Positions count the
        real tokens before each one, so a left-padded row starts at 0.
        """
        return self._decode(token_ids, padding_mask, None)

    def call_decoder_with_past(self, token_ids, padding_mask, past_key_values):
        """New tokens (batch, n) after `past` cached positions.

        Args: `padding_mask` (batch, past + n) covers the cached positions too;
        `past_key_values` as `call_decoder`'s `present`.
        Returns (logits (batch, n, vocab), present with past + n positions).
        """
        return self._decode(token_ids, padding_mask, past_key_values)

    def _decode(self, token_ids, padding_mask, past_key_values):
        hidden, present = self.backbone.call_cached(token_ids, padding_mask, past_key_values)
        return self.lm_head(hidden), present

    def generate_step(self, inputs, stop_token_ids=None):
        """Generate on one batch of packed `token_ids` and `padding_mask` (right-padded,
        as the preprocessor packs them; padding marks the positions to generate).

        The decoder-only loop (Seq2SeqLM models override it): the model's
        `call_decoder(token_ids, padding_mask)` runs the prompt's first `index` positions
        (the shortest prompt) and `call_decoder_with_past(token_ids, padding_mask,
        past_key_values)` one token at a time, each returning `(logits, present)` with
        `present` a list over layers of (key, value); the sampler chooses the tokens.
        `index` is the first position after some row's prompt; padding before it is
        padding (a left-padded prompt: the model is fed the mask, its positions and
        attention skip the padding), every position from `index` on is a token. For a
        right-padded batch that is keras-hub's loop. Returns `token_ids` and
        `padding_mask` (False on padding before `index` and after a row's first stop
        token).
        """
        token_ids = np.asarray(inputs["token_ids"], "int32")
        prompt_mask = np.asarray(inputs["padding_mask"]).astype(bool)
        if token_ids.ndim == 1:  # one unbatched example
            out = self.generate_step({"token_ids": token_ids[None],
                                      "padding_mask": prompt_mask[None]}, stop_token_ids)
            return {k: v[0] for k, v in out.items()}
        limit = getattr(self.backbone, "max_sequence_length", None)
        if limit is not None and token_ids.shape[1] > limit:
            raise ValueError(f"sequence length {token_ids.shape[1]} exceeds the model's "
                             f"{limit} positions; pass max_length <= {limit}")
        # Each row's prompt ends after its last masked-in token; generation starts at the
        # first such end (min row length for right padding, as keras-hub).
        ends = np.where(prompt_mask.any(axis=-1),
                        prompt_mask.shape[1] - np.argmax(prompt_mask[:, ::-1], axis=-1), 0)
        index = int(ends.min())
        if index < 1:
            raise ValueError("every prompt needs at least one token (the start token); "
                             "check padding_mask")
        # What the keys are: the prompt's mask before `index`, tokens from there on. It
        # rides in the cache, so a beam search reorders it with the keys and values.
        key_mask = prompt_mask.copy()
        key_mask[:, index:] = True
        fns = self._decoder_functions()

        def next(prompt, cache, index):
            mask = cache["mask"][:, :index].astype("int32")
            if cache["past"] is None:
                logits, present = fns["first"](prompt[:, :index], mask)
            else:
                logits, present = fns["past"](prompt[:, index - 1:index], mask,
                                              cache["past"])
            logits = np.asarray(ops.convert_to_numpy(ops.cast(logits[:, -1, :], "float32")))
            return logits, {"mask": cache["mask"],
                            "past": [(np.asarray(k), np.asarray(v)) for k, v in present]}

        tokens = self.sampler(next, token_ids, cache={"mask": key_mask, "past": None},
                              index=index, mask=prompt_mask, stop_token_ids=stop_token_ids,
                              model=self)
        if isinstance(tokens, tuple):  # BeamSampler(return_all_beams=True)
            return {"token_ids": tokens[0], "log_probs": tokens[1]}
        return {"token_ids": tokens,
                "padding_mask": output_mask(tokens, prompt_mask, stop_token_ids) & key_mask}

    def _decoder_functions(self):
        """The model's two decoder calls, as tf.functions on the TF backend (traced once
        per shape family, not once per token)."""
        if getattr(self, "_generate_functions", None) is None:
            fns = {"first": lambda ids, mask: self.call_decoder(ids, mask),
                   "past": lambda ids, mask, past: self.call_decoder_with_past(ids, mask,
                                                                                past)}
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                fns = {k: tf.function(f, reduce_retracing=True) for k, f in fns.items()}
            self._generate_functions = fns
        return self._generate_functions


def _batches(inputs, preprocessed):
    """(list or iterator of batches, whether the input was one unbatched example)."""
    if task_data.is_tf_dataset(inputs):
        return (_as_batch(b) for b in inputs.as_numpy_iterator()), False
    if not preprocessed:
        return [inputs], False
    if isinstance(inputs, (str, bytes)):
        return [[inputs]], True
    if isinstance(inputs, dict) and any(isinstance(v, (str, bytes)) for v in inputs.values()):
        return [{k: [v] if isinstance(v, (str, bytes)) else v for k, v in inputs.items()}], True
    return [inputs], False


def _as_batch(element):
    """A dataset element as a batch: an unbatched string becomes a batch of one."""
    if isinstance(element, (str, bytes)) or (isinstance(element, np.ndarray)
                                             and element.ndim == 0):
        return [element.item() if isinstance(element, np.ndarray) else element]
    if isinstance(element, dict):
        return {k: _as_batch(v) if isinstance(v, (bytes, str)) else v
                for k, v in element.items()}
    return element


def _concatenate(outputs, scalar):
    """One output from the per-batch outputs: lists of strings are joined, dicts of arrays
    concatenated on the batch axis."""
    first = outputs[0]
    if isinstance(first, dict):
        joined = {k: np.concatenate([np.asarray(o[k]) for o in outputs], axis=0)
                  for k in first}
        return {k: v[0] for k, v in joined.items()} if scalar else joined
    if isinstance(first, (list, tuple)):
        joined = [x for o in outputs for x in o]
        return joined[0] if scalar else joined
    joined = np.concatenate([np.asarray(o) for o in outputs], axis=0)
    return joined[0] if scalar else joined
