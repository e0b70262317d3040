"""BART seq2seq LM preprocessor."""

import numpy as np

from model_defs.bart.bart_tokenizer import BartTokenizer
from model_defs.preprocessor import Preprocessor
from model_defs.preset import register


@register
class BartSeq2SeqLMPreprocessor(Preprocessor):
    """Raw strings -> BART's encoder and decoder inputs, as keras-hub packs them.

    The encoder gets `<s> tokens </s>` padded with `<pad>`; the decoder
    `</s> <s> tokens </s>` (BART's decoder starts from `</s>`). For training, `y` is the
    decoder sequence shifted left and `sample_weight` its padding mask.

    Args:
        tokenizer: a `BartTokenizer`.
        encoder_sequence_length: int, packed encoder length (longer text is truncated).
        decoder_sequence_length: int, packed decoder length.

    Call: `x` a dict with "encoder_text" and "decoder_text" (str or list of str). Returns
    `(x, y, sample_weight)` with `encoder_token_ids`, `encoder_padding_mask`,
    `decoder_token_ids`, `decoder_padding_mask`.

    Example:
    ```python
    preprocessor = BartSeq2SeqLMPreprocessor.from_preset("bart_base_en",
                                                         encoder_sequence_length=64,
                                                         decoder_sequence_length=64)
    x, y, sw = preprocessor({"encoder_text": "The fox was sleeping.",
                             "decoder_text": "The fox was awake."})
    ```
    """

    tokenizer_cls = BartTokenizer
    config_keys = ("encoder_sequence_length", "decoder_sequence_length")

    @classmethod
    def defaults(cls):
        return {"encoder_sequence_length": 1024, "decoder_sequence_length": 1024}

    @property
    def sequence_length(self):
        """Alias of `decoder_sequence_length`, as in keras-hub."""
        return self.decoder_sequence_length

    @sequence_length.setter
    def sequence_length(self, value):
        self.decoder_sequence_length = value

    @property
    def decoder_start_ids(self):
        tok = self.tokenizer
        return [tok.end_token_id, tok.start_token_id]

    def _pack(self, texts, length, start, end):
        from runtime.packing import pack_start_end

        ids = [list(row) for row in self.tokenizer.tokenize(texts)]
        token_ids, mask = pack_start_end(ids, length, start_value=start, end_value=end,
                                         pad_value=self.tokenizer.pad_token_id)
        return np.asarray(token_ids, "int32"), np.asarray(mask, "int32")

    def _encoder(self, texts, length=None):
        tok = self.tokenizer
        return self._pack(texts, length or self.encoder_sequence_length, tok.start_token_id,
                          tok.end_token_id)

    def __call__(self, x, y=None, sample_weight=None, sequence_length=None):
        encoder_text, scalar = _batch(x["encoder_text"])
        decoder_text, _ = _batch(x["decoder_text"])
        length = sequence_length or self.decoder_sequence_length
        enc_ids, enc_mask = self._encoder(encoder_text)
        dec_ids, dec_mask = self._pack(decoder_text, length + 1, self.decoder_start_ids,
                                       self.tokenizer.end_token_id)
        out = {"encoder_token_ids": enc_ids, "encoder_padding_mask": enc_mask,
               "decoder_token_ids": dec_ids[:, :-1], "decoder_padding_mask": dec_mask[:, :-1]}
        y, sample_weight = dec_ids[:, 1:], dec_mask[:, 1:]
        if scalar:
            out = {k: v[0] for k, v in out.items()}
            y, sample_weight = y[0], sample_weight[0]
        return out, y, sample_weight

    def generate_preprocess(self, x, sequence_length=None):
        """Strings (or {"encoder_text", "decoder_text"}) -> int32 generate inputs; the
        decoder prompt gets no end token (generation continues after it)."""
        if isinstance(x, dict):
            encoder_text, decoder_text = x["encoder_text"], x["decoder_text"]
        else:
            encoder_text, decoder_text = x, None
        encoder_text, _ = _batch(encoder_text)
        if decoder_text is None:
            decoder_text = [""] * len(encoder_text)
        decoder_text, _ = _batch(decoder_text)
        enc_ids, enc_mask = self._encoder(encoder_text)
        dec_ids, dec_mask = self._pack(decoder_text,
                                       sequence_length or self.decoder_sequence_length,
                                       self.decoder_start_ids, None)
        return {"encoder_token_ids": enc_ids, "encoder_padding_mask": enc_mask,
                "decoder_token_ids": dec_ids, "decoder_padding_mask": dec_mask}

    def generate_postprocess(self, x):
        """Generated ids -> text: drops padding and the special tokens, then detokenizes."""
        special = set(self.tokenizer.special_token_ids.values())
        out = []
        for ids, mask in zip(np.asarray(x["decoder_token_ids"]),
                             np.asarray(x["decoder_padding_mask"]), strict=True):
            keep = [int(t) for t, m in zip(ids, mask, strict=True) if m and int(t) not in special]
            out.append(self.tokenizer.detokenize(np.asarray(keep, "int32")))
        return out

    def packing_spec(self):
        """How the runtime packs inputs (goes in the manifest)."""
        tok = self.tokenizer
        return {"encoder": {"start": [tok.start_token_id], "end": [tok.end_token_id],
                            "pad": tok.pad_token_id,
                            "sequence_length": self.encoder_sequence_length},
                "decoder": {"start": self.decoder_start_ids, "end": [],
                            "pad": tok.pad_token_id,
                            "sequence_length": self.decoder_sequence_length}}


def _batch(texts):
    """(list of str, was_scalar)."""
    if isinstance(texts, (str, bytes)):
        return [texts], True
    return list(texts), False
