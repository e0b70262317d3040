"""Keras 3 models with the keras-hub API: backbones, tasks, preprocessors, tokenizers.

Importing the package registers every class and built-in preset.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the exporter traces TF graphs

from model_defs.backbone import Backbone  # noqa: E402
from model_defs.bart import (  # noqa: E402
    BartBackbone,
    BartSeq2SeqLM,
    BartSeq2SeqLMPreprocessor,
    BartTokenizer,
)
from model_defs.bert import (  # noqa: E402
    BertBackbone,
    BertMaskedLM,
    BertMaskedLMPreprocessor,
    BertTextClassifier,
    BertTextClassifierPreprocessor,
    BertTokenizer,
)
from model_defs.distil_bert import (  # noqa: E402
    DistilBertBackbone,
    DistilBertMaskedLM,
    DistilBertMaskedLMPreprocessor,
    DistilBertTextClassifier,
    DistilBertTextClassifierPreprocessor,
    DistilBertTokenizer,
)
from model_defs.preset import PresetError  # noqa: E402
from model_defs.task import Task  # noqa: E402
from model_defs.text_classifier import TextClassifier  # noqa: E402
from model_defs.xlm_roberta import (  # noqa: E402
    XLMRobertaBackbone,
    XLMRobertaMaskedLM,
    XLMRobertaMaskedLMPreprocessor,
    XLMRobertaTokenizer,
)

__all__ = [
    "BartBackbone", "BartSeq2SeqLM", "BartSeq2SeqLMPreprocessor", "BartTokenizer",
    "Backbone", "Task", "TextClassifier", "PresetError",
    "BertTextClassifier", "BertTextClassifierPreprocessor", "DistilBertTextClassifier",
    "DistilBertTextClassifierPreprocessor",
    "BertBackbone", "BertMaskedLM", "BertMaskedLMPreprocessor", "BertTokenizer",
    "DistilBertBackbone", "DistilBertMaskedLM", "DistilBertMaskedLMPreprocessor",
    "DistilBertTokenizer",
    "XLMRobertaBackbone", "XLMRobertaMaskedLM", "XLMRobertaMaskedLMPreprocessor",
    "XLMRobertaTokenizer",
]
