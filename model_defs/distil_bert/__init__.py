from model_defs.distil_bert import distil_bert_presets  # noqa: F401  (registers presets)
from model_defs.distil_bert.distil_bert_backbone import DistilBertBackbone
from model_defs.distil_bert.distil_bert_masked_lm import DistilBertMaskedLM
from model_defs.distil_bert.distil_bert_masked_lm_preprocessor import (
    DistilBertMaskedLMPreprocessor,
)
from model_defs.distil_bert.distil_bert_text_classifier import DistilBertTextClassifier
from model_defs.distil_bert.distil_bert_text_classifier_preprocessor import (
    DistilBertTextClassifierPreprocessor,
)
from model_defs.distil_bert.distil_bert_tokenizer import DistilBertTokenizer

__all__ = ["DistilBertBackbone", "DistilBertMaskedLM", "DistilBertMaskedLMPreprocessor",
           "DistilBertTextClassifier", "DistilBertTextClassifierPreprocessor",
           "DistilBertTokenizer"]
