"""`PackingPreprocessor`: the tokenize-and-pack step shared by the encoder task
preprocessors (masked LM, text classifier)."""

from model_defs.preprocessor import Preprocessor


class PackingPreprocessor(Preprocessor):
    """Tokenize, then pack `[start] a [sep] b [end]` to `sequence_length`, as keras-hub's
    `MultiSegmentPacker` does.

    Subclasses set `start_token`, `end_token`, `sep_tokens` (keras-hub attribute names of
    the tokenizer's special tokens) and `with_segment_ids`.
    """

    start_token = "cls_token"
    end_token = "sep_token"
    sep_tokens = ("sep_token",)
    with_segment_ids = True

    def pack(self, x):
        """Raw text (str, list of str, or tuple of segments) -> dict of int32 arrays."""
        from runtime.packing import pack_segments

        segments = x if isinstance(x, tuple) else (x,)
        segments = [[s] if isinstance(s, str) else list(s) for s in segments]
        tok = self.tokenizer
        ids = [[list(row) for row in tok.tokenize(seg)] for seg in segments]
        sep = [getattr(tok, f"{t}_id") for t in self.sep_tokens]
        token_ids, segment_ids = pack_segments(
            ids, self.sequence_length, start_value=getattr(tok, f"{self.start_token}_id"),
            end_value=getattr(tok, f"{self.end_token}_id"), pad_value=tok.pad_token_id,
            truncate=self.truncate, sep_value=sep if len(sep) > 1 else None)
        out = {"token_ids": token_ids,
               "padding_mask": (token_ids != tok.pad_token_id).astype("int32")}
        if self.with_segment_ids:
            out["segment_ids"] = segment_ids
        return out

    def packing_spec(self):
        """How the runtime packs text the same way (goes in the manifest)."""
        tok = self.tokenizer
        return {"start_token_id": getattr(tok, f"{self.start_token}_id"),
                "end_token_id": getattr(tok, f"{self.end_token}_id"),
                "sep_token_ids": [getattr(tok, f"{t}_id") for t in self.sep_tokens],
                "pad_token_id": tok.pad_token_id, "mask_token_id": tok.mask_token_id,
                "mask_token": tok.mask_token, "sequence_length": self.sequence_length,
                "segment_ids": self.with_segment_ids, "truncate": self.truncate}
