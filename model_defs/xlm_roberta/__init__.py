from model_defs.xlm_roberta import xlm_roberta_presets  # noqa: F401  (registers the presets)
from model_defs.xlm_roberta.xlm_roberta_backbone import XLMRobertaBackbone
from model_defs.xlm_roberta.xlm_roberta_masked_lm import XLMRobertaMaskedLM
from model_defs.xlm_roberta.xlm_roberta_masked_lm_preprocessor import (
    XLMRobertaMaskedLMPreprocessor,
)
from model_defs.xlm_roberta.xlm_roberta_tokenizer import XLMRobertaTokenizer

__all__ = ["XLMRobertaBackbone", "XLMRobertaMaskedLM", "XLMRobertaMaskedLMPreprocessor",
           "XLMRobertaTokenizer"]
