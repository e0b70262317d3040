"""Runtime tokenizers, looked up by the manifest's tokenizer "type"."""

from runtime.tokenizers.tokenizer import Tokenizer


def tokenizer_classes() -> dict:
    # Imported here so a missing optional piece (e.g. sentencepiece) only fails when used.
    from runtime.tokenizers.byte_pair_tokenizer import BytePairTokenizer
    from runtime.tokenizers.sentence_piece_tokenizer import SentencePieceTokenizer
    from runtime.tokenizers.word_piece_tokenizer import WordPieceTokenizer

    return {
        c.kind: c for c in (WordPieceTokenizer, SentencePieceTokenizer, BytePairTokenizer)
    }


def load_tokenizer(folder: str, spec: dict) -> Tokenizer:
    """The tokenizer an artifact's manifest describes, read from `folder`."""
    classes = tokenizer_classes()
    kind = spec.get("type")
    if kind not in classes:
        raise ValueError(f"unknown tokenizer type {kind!r}; known: {sorted(classes)}")
    return classes[kind].from_assets(folder, spec)


__all__ = ["Tokenizer", "load_tokenizer", "tokenizer_classes"]
