"""Keras 3 models with the keras-hub API: backbones, tasks, preprocessors, tokenizers.

Importing the package registers every class and built-in preset.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the exporter traces TF graphs

from model_defs.backbone import Backbone  # noqa: E402
from model_defs.bert import (  # noqa: E402
    BertBackbone,
    BertMaskedLM,
    BertMaskedLMPreprocessor,
    BertTokenizer,
)
from model_defs.distil_bert import (  # noqa: E402
    DistilBertBackbone,
    DistilBertMaskedLM,
    DistilBertMaskedLMPreprocessor,
    DistilBertTokenizer,
)
from model_defs.preset import PresetError  # noqa: E402
from model_defs.task import Task  # noqa: E402

__all__ = [
    "Backbone", "Task", "PresetError",
    "BertBackbone", "BertMaskedLM", "BertMaskedLMPreprocessor", "BertTokenizer",
    "DistilBertBackbone", "DistilBertMaskedLM", "DistilBertMaskedLMPreprocessor",
    "DistilBertTokenizer",
]
