"""BART sequence-to-sequence language model with a KV-cached generate loop."""

import logging

import keras
import numpy as np
from keras import ops

from model_defs.bart.bart_backbone import BartBackbone
from model_defs.bart.bart_seq_2_seq_lm_preprocessor import BartSeq2SeqLMPreprocessor
from model_defs.layers.tied_lm_head import TiedLMHead
from model_defs.layers.transformer_decoder import causal_bias, padding_bias
from model_defs.preset import register
from model_defs.seq2seq_lm import Seq2SeqLM
from model_defs.weights import Entry
from runtime.generation.search import output_mask  # numpy only; shared with serving

log = logging.getLogger(__name__)


@register
class BartSeq2SeqLM(Seq2SeqLM):
    """BART with a language-model head tied to the token embedding, and `generate()`.

    Args:
        backbone: a `BartBackbone`.
        preprocessor: a `BartSeq2SeqLMPreprocessor`, or None to work on token ids.
        use_logits_bias: add a learned (vocab,) bias to the logits (Transformers'
            `final_logits_bias`; set when loading a `BartForConditionalGeneration`
            checkpoint). keras-hub's BART has none.

    Inputs: the backbone's four inputs. Output: `logits` (batch, dec_seq, vocab).

    Generation (`generate`) encodes once, then decodes one token per step with the
    decoder's self-attention keys/values cached and the cross-attention keys/values
    computed once, choosing tokens with the sampler given to `compile(sampler=...)`
    ("top_k" by default, as keras-hub). The decoder starts from `</s> <s>` plus the
    optional decoder prompt, as keras-hub's BART does.

    Example:
    ```python
    bart_lm = BartSeq2SeqLM.from_preset("bart_base_en")
    bart_lm.compile(sampler="greedy")
    bart_lm.generate("The quick brown fox", max_length=30)
    bart_lm.generate(["The quick brown fox", "The whale"], max_length=30)
    bart_lm.generate({"encoder_text": "The quick brown fox", "decoder_text": "The"})
    ```
    """

    backbone_cls = BartBackbone
    preprocessor_cls = BartSeq2SeqLMPreprocessor
    task_name = "seq2seq_lm"
    export_spec = "seq2seq_lm"  # exporter/specs/seq2seq_lm.py: Seq2SeqLMSpec
    hf_architectures = ("BartForConditionalGeneration",)
    hf_head_ignored = ("lm_head.",)

    def __init__(self, backbone, preprocessor=None, use_logits_bias=False, **kwargs):
        inputs = dict(backbone.input)
        hidden = backbone(inputs)["decoder_sequence_output"]
        head = TiedLMHead(backbone.get_layer("token_embedding"), use_bias=use_logits_bias,
                          dtype=backbone.dtype_policy, name="lm_head")
        logits = head(hidden)
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone,
                         preprocessor=preprocessor, **kwargs)
        self.use_logits_bias = use_logits_bias
        self.lm_head = head
        if preprocessor is not None:  # never pack past the learned positions
            limit = backbone.max_sequence_length
            for key in ("encoder_sequence_length", "decoder_sequence_length"):
                if (getattr(preprocessor, key) or 0) > limit:
                    setattr(preprocessor, key, limit)
        self._generate_functions = None

    def get_config(self):
        config = super().get_config()
        if self.use_logits_bias:  # only then, so keras-hub reads our presets
            config["use_logits_bias"] = True
        return config

    # -- training on raw text ------------------------------------------------------------
    def _pack_text(self, x, y, sample_weight):
        # {"encoder_text", "decoder_text"} -> integer inputs, labels and weights. Packing is
        # deterministic for seq2seq, so it is done once, up front.
        if self.preprocessor is not None and isinstance(x, dict) and "encoder_text" in x:
            return self.preprocessor(x)
        return x, y, sample_weight

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        x, y, sw = self._pack_text(x, y, kwargs.pop("sample_weight", None))
        return super().fit(x=x, y=y, batch_size=batch_size, sample_weight=sw, **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        x, y, sw = self._pack_text(x, y, kwargs.pop("sample_weight", None))
        return super().evaluate(x=x, y=y, batch_size=batch_size, sample_weight=sw, **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        x, _, _ = self._pack_text(x, None, None)
        return super().predict(x, batch_size=batch_size, **kwargs)

    # -- the public calls the generate loop and the exporter use -----------------------
    def call_encoder(self, token_ids, padding_mask):
        """encoder_hidden_states (batch, enc_seq, hidden)."""
        return self.backbone.call_encoder(token_ids, padding_mask)

    def call_encoder_with_cross_kv(self, token_ids, padding_mask):
        """The encoder and, from its output, every decoder layer's cross-attention
        keys/values: what a generation computes once before decoding.

        Returns (encoder_hidden_states (batch, enc_seq, hidden), cross_kv): `cross_kv` a
        list over decoder layers of (key, value), each (batch, num_heads, enc_seq,
        head_dim). The exported encoder graph is this call, so the cross-attention
        projections live in the encoder graph and the one decoder graph needs no encoder
        states.
        """
        hidden = self.call_encoder(token_ids, padding_mask)
        return hidden, self.compute_cross_kv(hidden)

    def compute_cross_kv(self, encoder_hidden_states):
        """Every decoder layer's cross-attention (key, value) of the encoder states."""
        return [layer.compute_cross_cache(encoder_hidden_states)
                for layer in self.backbone.decoder_transformer_layers]

    def empty_self_kv(self, batch):
        """A self-attention past of 0 positions: the first decoder step is
        `call_decoder_with_past` on it (as the exported decoder graph runs)."""
        heads = self.backbone.num_heads
        shape = (batch, heads, 0, self.backbone.hidden_dim // heads)
        empty = np.zeros(shape, keras.backend.standardize_dtype(self.backbone.compute_dtype))
        return [(empty, empty) for _ in self.backbone.decoder_transformer_layers]

    def call_decoder(self, decoder_token_ids, encoder_hidden_states, encoder_padding_mask):
        """First decoder step (no past): tokens at positions 0 .. n-1.

        Returns (logits (batch, n, vocab), self_kv, cross_kv): `self_kv` and `cross_kv`
        are lists over layers of (key, value), each (batch, num_heads, seq, head_dim).
        The same as `compute_cross_kv` + `call_decoder_with_past` on `empty_self_kv`.
        """
        cross_kv = self.compute_cross_kv(encoder_hidden_states)
        logits, self_kv = self._decode(decoder_token_ids, None, cross_kv, encoder_padding_mask)
        return logits, self_kv, cross_kv

    def call_decoder_with_past(self, decoder_token_ids, encoder_padding_mask, self_past,
                               cross_kv):
        """Decoder tokens at positions past .. past + n - 1 (past may be 0).

        Args: `self_past` as `call_decoder`'s `self_kv` (past = its sequence length; 0
        positions from `empty_self_kv` for the first step), `cross_kv` as returned by
        `call_encoder_with_cross_kv` (reused, not recomputed).
        Returns (logits (batch, n, vocab), self_kv with past + n positions).
        """
        return self._decode(decoder_token_ids, self_past, cross_kv, encoder_padding_mask)

    def _decode(self, token_ids, self_past, cross_kv, encoder_padding_mask):
        batch, n = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        past = 0 if self_past is None else ops.shape(self_past[0][0])[2]
        x = self.backbone.embed_decoder_tokens(token_ids, start_index=past)
        # Rows of (batch * n) tokens: every dense layer is one 2-D matmul.
        x = ops.reshape(x, (-1, self.backbone.hidden_dim))
        # Additive masks built once and shared by all layers.
        self_bias = causal_bias(n, past + n, x.dtype)
        cross_bias = padding_bias(encoder_padding_mask, x.dtype)
        present = []
        for i, layer in enumerate(self.backbone.decoder_transformer_layers):
            x, kv = layer.call_cached_flat(x, batch, n,
                                           None if self_past is None else self_past[i],
                                           cross_kv[i], self_bias, cross_bias)
            present.append(kv)
        logits = self.lm_head(x)  # (batch * n, vocab)
        return ops.reshape(logits, (batch, n, self.backbone.vocabulary_size)), present

    # -- generation (the driver, `generate`, is Seq2SeqLM's) ----------------------------
    def generate_step(self, inputs, stop_token_ids=None):
        """One batch of packed ids -> generated ids (see `generate_ids`)."""
        return self.generate_ids(inputs, stop_token_ids)

    def generate_ids(self, x, stop_token_ids=None):
        """The token-level loop on packed int inputs: `encoder_token_ids`,
        `encoder_padding_mask`, `decoder_token_ids` (padded to the length to generate) and
        `decoder_padding_mask` (1 on the prompt, which starts with `</s>`). Returns
        `decoder_token_ids` and `decoder_padding_mask` (False after the stop token)."""
        enc_ids = np.asarray(x["encoder_token_ids"], "int32")
        enc_mask = np.asarray(x["encoder_padding_mask"], "int32")
        prompt = np.asarray(x["decoder_token_ids"], "int32")
        dec_mask = np.asarray(x["decoder_padding_mask"]).astype(bool)
        if enc_ids.ndim == 1:  # one unbatched example
            out = self.generate_ids({k: np.asarray(v)[None] for k, v in x.items()},
                                    stop_token_ids)
            return {k: v[0] for k, v in out.items()}
        max_length = prompt.shape[1]
        limit = self.backbone.max_sequence_length
        if max_length > limit or enc_ids.shape[1] > limit:
            raise ValueError(f"sequence length {max(max_length, enc_ids.shape[1])} exceeds the "
                             f"model's {limit} positions; pass max_length <= {limit}")
        index = int(dec_mask.sum(axis=-1).min())
        if index < 1:
            raise ValueError("every decoder prompt needs at least one token (BART's decoder "
                             "starts from </s>); check decoder_padding_mask")
        fns = self._functions()
        # The exported graphs' split: the encoder gives the cross-attention K/V once, the
        # one decoder call runs every step, the first on an empty self-attention past.
        _, cross_kv = fns["encoder"](enc_ids, enc_mask)

        def next(prompt, cache, index):
            start = cache["self"][0][0].shape[2]  # positions cached: 0 at the first call
            logits, self_kv = fns["decoder"](prompt[:, start:index],
                                             cache["encoder_padding_mask"], cache["self"],
                                             cache["cross"])
            cache = dict(cache, self=_numpy(self_kv))
            return np.asarray(logits)[:, -1, :], cache

        cache = {"encoder_padding_mask": enc_mask, "self": self.empty_self_kv(len(enc_ids)),
                 "cross": _numpy(cross_kv)}
        tokens = self.sampler(next, prompt, cache=cache, index=index, mask=dec_mask,
                              stop_token_ids=stop_token_ids, model=self)
        if isinstance(tokens, tuple):  # BeamSampler(return_all_beams=True)
            return {"decoder_token_ids": tokens[0], "log_probs": tokens[1]}
        return {"decoder_token_ids": tokens,
                "decoder_padding_mask": output_mask(tokens, dec_mask, stop_token_ids)}

    def _functions(self):
        """The encoder (with the cross K/V) and the decoder step, as tf.functions on the
        TF backend."""
        if self._generate_functions is None:
            fns = {
                "encoder": lambda ids, mask: self.call_encoder_with_cross_kv(ids, mask),
                "decoder": lambda ids, mask, self_kv, cross_kv: self.call_decoder_with_past(
                    ids, mask, self_kv, cross_kv),
            }
            if keras.backend.backend() == "tensorflow":
                import tensorflow as tf

                fns = {k: tf.function(f, reduce_retracing=True) for k, f in fns.items()}
            self._generate_functions = fns
        return self._generate_functions

    # -- weights -----------------------------------------------------------------------
    @classmethod
    def hf_task_kwargs(cls, hf_config):
        archs = set(hf_config.get("architectures") or ())
        return {"use_logits_bias": bool(archs & set(cls.hf_architectures))}

    def keras_hub_head_table(self):
        # keras-hub's BartSeq2SeqLM has no weights of its own (the head is the embedding).
        return [Entry("layers/tied_lm_head/vars/0", "lm_head/bias")] if self.use_logits_bias \
            else []

    def hf_head_table(self, names):
        if not self.use_logits_bias:
            return []
        vocab = self.backbone.vocabulary_size
        return [Entry("final_logits_bias", "lm_head/bias", (1, vocab))]


def _numpy(kv_list):
    return [(np.asarray(k), np.asarray(v)) for k, v in kv_list]
