from model_defs.bart import bart_presets  # noqa: F401  (registers the presets)
from model_defs.bart.bart_backbone import BartBackbone
from model_defs.bart.bart_seq_2_seq_lm import BartSeq2SeqLM
from model_defs.bart.bart_seq_2_seq_lm_preprocessor import BartSeq2SeqLMPreprocessor
from model_defs.bart.bart_tokenizer import BartTokenizer

__all__ = ["BartBackbone", "BartSeq2SeqLM", "BartSeq2SeqLMPreprocessor", "BartTokenizer"]
