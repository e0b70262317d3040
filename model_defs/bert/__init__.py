from model_defs.bert import bert_presets  # noqa: F401  (registers the presets)
from model_defs.bert.bert_backbone import BertBackbone
from model_defs.bert.bert_masked_lm import BertMaskedLM
from model_defs.bert.bert_masked_lm_preprocessor import BertMaskedLMPreprocessor
from model_defs.bert.bert_text_classifier import BertTextClassifier
from model_defs.bert.bert_text_classifier_preprocessor import BertTextClassifierPreprocessor
from model_defs.bert.bert_tokenizer import BertTokenizer

__all__ = ["BertBackbone", "BertMaskedLM", "BertMaskedLMPreprocessor", "BertTextClassifier",
           "BertTextClassifierPreprocessor", "BertTokenizer"]
