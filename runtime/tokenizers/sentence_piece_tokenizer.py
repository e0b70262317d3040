"""SentencePiece tokenization over the `sentencepiece` package (no TensorFlow, no Keras).

Two id layouts:

- ``"spm"``: the model's own ids, as keras-hub's ``SentencePieceTokenizer``.
- ``"fairseq"``: XLM-RoBERTa's layout, exactly as keras-hub's ``XLMRobertaTokenizer`` maps it
  (Transformers' ``XLMRobertaTokenizer`` gives the same ids):

  ====================  =========================================================
  ``<s>`` ``<pad>``      0, 1
  ``</s>`` ``<unk>``     2, 3
  spm id 0 (its unk)     3 (every unknown piece, whatever the text)
  spm id k >= 1          k + 1 (the pieces, shifted by one)
  ``<mask>``             spm vocabulary size + 1 (the last id)
  ====================  =========================================================

  The mapping is positional, as in keras-hub: it assumes the fairseq-trained model's own
  layout ``<unk>``=0, ``<s>``=1, ``</s>``=2 (control symbols, which ``Encode`` never emits for
  text), so spm ids 1 and 2 would land on ``</s>`` and ``<unk>`` (2, 3) if a model used them
  for ordinary pieces; such a model is rejected with a clear error. The vocabulary is
  ``["<s>", "<pad>", "</s>", "<unk>"] + pieces[3:] + ["<mask>"]``, spm size + 2 long.
  Detokenizing drops ``<mask>``, and ``<pad>`` decodes as spm's unknown surface (" ⁇ "), as
  keras-hub does.

Text the model never saw (unseen scripts, lone surrogates) becomes the unknown id, never an
error.
"""

from __future__ import annotations

import os

from runtime.tokenizers.tokenizer import Tokenizer

VOCAB_FILENAME = "vocabulary.spm"  # keras-hub's asset name
LAYOUTS = ("spm", "fairseq")
FAIRSEQ_PREFIX = ("<s>", "<pad>", "</s>", "<unk>")
FAIRSEQ_MASK = "<mask>"


def _load_processor(proto_bytes: bytes, where: str):
    import sentencepiece as spm

    try:
        processor = spm.SentencePieceProcessor(model_proto=proto_bytes)
        size = processor.vocab_size()
    except Exception as e:  # sentencepiece raises RuntimeError("INTERNAL: ... ParseFromArray")
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{where} is not a SentencePiece model ({reason[:120]}); pass the "
                         "model file (e.g. vocabulary.spm or sentencepiece.bpe.model)") from None
    if size <= 0:
        raise ValueError(f"{where} is not a SentencePiece model (it holds no pieces); pass the "
                         "model file (e.g. vocabulary.spm or sentencepiece.bpe.model)")
    return processor


class SentencePieceTokenizer(Tokenizer):
    """Text <-> ids with a SentencePiece model.

    Args:
        proto: path to a SentencePiece model file, or its serialized bytes.
        id_layout: "spm" (the model's own ids) or "fairseq" (XLM-RoBERTa's layout, see the
            module docstring).
        add_bos, add_eos: add the model's own bos/eos ids ("spm" layout only), as keras-hub's
            `SentencePieceTokenizer` arguments.

    Example:
        >>> tokenizer = SentencePieceTokenizer("vocabulary.spm", id_layout="fairseq")
        >>> ids = tokenizer.tokenize("Grüße aus Köln")
        >>> tokenizer.detokenize(ids)
        'Grüße aus Köln'
    """

    kind = "sentence_piece"

    def __init__(self, proto, id_layout="spm", add_bos=False, add_eos=False):
        if id_layout not in LAYOUTS:
            raise ValueError(f"unknown id_layout {id_layout!r}; use one of {list(LAYOUTS)}")
        if isinstance(proto, (str, os.PathLike)):
            path = os.fspath(proto)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"SentencePiece model not found: {path}")
            with open(path, "rb") as f:
                proto_bytes = f.read()
            where = path
        elif isinstance(proto, (bytes, bytearray)):
            proto_bytes, where = bytes(proto), "the given bytes"
        else:
            raise ValueError("proto must be a SentencePiece model path or its bytes, "
                             f"got {type(proto).__name__}")
        if id_layout == "fairseq" and (add_bos or add_eos):
            raise ValueError("add_bos/add_eos are for the 'spm' layout; the fairseq layout's "
                             "<s> and </s> are added by the packer")
        self._proto = proto_bytes
        self._spm = _load_processor(proto_bytes, where)
        self.id_layout = id_layout
        self.add_bos = bool(add_bos)
        self.add_eos = bool(add_eos)
        self._spm_size = int(self._spm.vocab_size())
        self._pieces = [self._spm.id_to_piece(i) for i in range(self._spm_size)]
        self._spm_unk = int(self._spm.unk_id())
        self._index_cache = None
        if id_layout == "fairseq":
            self._check_fairseq_model(where)
            self._mask_id = self._spm_size + 1
            self._vocab = list(FAIRSEQ_PREFIX) + self._pieces[3:] + [FAIRSEQ_MASK]
        else:
            self._vocab = self._pieces

    def _check_fairseq_model(self, where):
        # The fairseq layout is positional: spm ids 0..2 must be unk/bos/eos-like symbols that
        # text never produces, or their pieces would collide with </s> and <unk>.
        if self._spm_size < 3 or self._spm_unk != 0:
            raise ValueError(f"{where} does not have the fairseq layout XLM-RoBERTa needs "
                             f"(<unk> at id 0, then <s>, </s>); its unk id is {self._spm_unk}")
        for i in (1, 2):
            if not (self._spm.is_control(i) or self._spm.is_unknown(i)):
                raise ValueError(f"{where}: piece {i} ({self._pieces[i]!r}) is an ordinary "
                                 "piece, but the fairseq layout reserves ids 1 and 2 for <s> "
                                 "and </s>; train it with bos_id=1 eos_id=2")

    # Tokenize / detokenize ---------------------------------------------------------------
    @staticmethod
    def _clean(text) -> str:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        elif not isinstance(text, str):
            raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: unencodable, become U+FFFD (-> <unk>)
            text = text.encode("utf-8", errors="replace").decode("utf-8")
        return text

    def _map(self, ids: list[int]) -> list[int]:
        if self.id_layout == "spm":
            return ids
        # keras-hub: spm 0 (unk) -> 3; every other spm id k -> k + 1.
        return [i + 1 if i else 3 for i in ids]

    def tokenize(self, text) -> list[int]:
        ids = self._spm.encode(self._clean(text), add_bos=self.add_bos, add_eos=self.add_eos)
        return self._map(ids)

    def batch_tokenize(self, texts) -> list[list[int]]:
        batch = self._spm.encode([self._clean(t) for t in texts], add_bos=self.add_bos,
                                 add_eos=self.add_eos)
        return [self._map(ids) for ids in batch]

    def __call__(self, texts):
        if isinstance(texts, (str, bytes)):
            return self.tokenize(texts)
        return self.batch_tokenize(list(texts))

    def tokenize_to_strings(self, text) -> list[str]:
        return [self._vocab[i] for i in self.tokenize(text)]

    def _unmap(self, ids: list[int]) -> list[int]:
        size = len(self._vocab)
        for i in ids:
            if not 0 <= i < size:
                raise ValueError(f"token id {i} is out of range [0, {size})")
        if self.id_layout == "spm":
            return ids
        # keras-hub: drop <mask>; k -> k - 1, then unk (3) -> 0, </s> (2) -> 2, <s> (0) -> 1;
        # <pad> (1) becomes spm id 0, which decodes as the unknown surface.
        back = {2: 0, 1: 2, -1: 1}
        return [back.get(i - 1, i - 1) for i in ids if i != self._mask_id]

    def detokenize(self, ids):
        """ids -> text; a batch (2-D array or list of lists) gives a list of strings."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        ids = list(ids)
        if ids and isinstance(ids[0], (list, tuple)):
            return [self.detokenize(row) for row in ids]
        return self._spm.decode(self._unmap([int(i) for i in ids]))

    # Vocabulary --------------------------------------------------------------------------
    def vocabulary(self) -> list[str]:
        return list(self._vocab)

    def vocabulary_size(self) -> int:
        return len(self._vocab)

    def id_to_token(self, token_id: int) -> str:
        token_id = int(token_id)
        if not 0 <= token_id < len(self._vocab):
            raise ValueError(f"token id {token_id} is out of range [0, {len(self._vocab)})")
        return self._vocab[token_id]

    def token_to_id(self, token: str) -> int:
        """As keras-hub: unknown tokens give the unknown id (they do not raise)."""
        if self.id_layout == "spm":
            return int(self._spm.piece_to_id(token))
        if token == FAIRSEQ_MASK:
            return self._mask_id
        if token in FAIRSEQ_PREFIX:
            return FAIRSEQ_PREFIX.index(token)
        spm_id = int(self._spm.piece_to_id(token))
        return 3 if spm_id == self._spm_unk else spm_id + 1

    @property
    def special_token_ids(self) -> dict:
        if self.id_layout == "fairseq":
            return {"start_token_id": 0, "pad_token_id": 1, "end_token_id": 2,
                    "unk_token_id": 3, "mask_token_id": self._mask_id}
        s = self._spm
        found = {"unk_token_id": s.unk_id(), "start_token_id": s.bos_id(),
                 "end_token_id": s.eos_id(), "pad_token_id": s.pad_id()}
        return {k: int(v) for k, v in found.items() if v >= 0}

    # Assets --------------------------------------------------------------------------------
    @property
    def proto(self) -> bytes:
        """The serialized SentencePiece model."""
        return self._proto

    def get_config(self) -> dict:
        return {"id_layout": self.id_layout, "add_bos": self.add_bos, "add_eos": self.add_eos}

    def save_assets(self, folder: str) -> dict:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, VOCAB_FILENAME), "wb") as f:
            f.write(self._proto)
        return {
            "type": self.kind,
            "files": {"model": VOCAB_FILENAME},
            "config": self.get_config(),
            "special_tokens": dict(self.special_token_ids),
        }

    @classmethod
    def from_assets(cls, folder: str, spec: dict) -> SentencePieceTokenizer:
        files = spec.get("files") or {}
        name = files.get("model", VOCAB_FILENAME)
        return cls(os.path.join(folder, name), **(spec.get("config") or {}))

    def __repr__(self):
        return (f"{type(self).__name__}(vocabulary_size={len(self._vocab)}, "
                f"id_layout={self.id_layout!r})")
