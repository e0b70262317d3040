"""DistilBERT's WordPiece tokenizer."""

from model_defs.preset import register
from model_defs.word_piece_model_tokenizer import WordPieceModelTokenizer


@register
class DistilBertTokenizer(WordPieceModelTokenizer):
    """DistilBERT tokenizer: WordPiece with [CLS], [SEP], [PAD], [MASK], [UNK].

    Example:
    ```python
    tokenizer = DistilBertTokenizer.from_preset("distil_bert_base_en_uncased")
    tokenizer("The quick brown fox.")
    ```
    """
