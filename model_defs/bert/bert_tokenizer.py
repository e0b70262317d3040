"""BERT's WordPiece tokenizer."""

from model_defs.preset import register
from model_defs.word_piece_model_tokenizer import WordPieceModelTokenizer


@register
class BertTokenizer(WordPieceModelTokenizer):
    """BERT tokenizer: WordPiece with [CLS], [SEP], [PAD], [MASK], [UNK].

    Args: see `WordPieceModelTokenizer` (keras-hub's arguments).

    Example:
    ```python
    tokenizer = BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                          "the", "fox"], lowercase=True)
    tokenizer("The fox")  # array([5, 6], dtype=int32)
    ```
    """
