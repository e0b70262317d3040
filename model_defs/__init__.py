"""Keras 3 models with the keras-hub API: backbones, tasks, preprocessors, tokenizers.

The package stands in for `keras_hub.models` (and `model_defs.samplers` for
`keras_hub.samplers`): the base classes (`Backbone`, `Task`, `MaskedLM`, `TextClassifier`,
`Seq2SeqLM`, `CausalLM`, `Preprocessor`, `Tokenizer`) load any preset of their kind with
`from_preset` and return the class it holds. Importing the package registers every class
and built-in preset.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # the exporter traces TF graphs

from model_defs import samplers  # noqa: E402
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
from model_defs.causal_lm import CausalLM  # noqa: E402
from model_defs.causal_lm_preprocessor import CausalLMPreprocessor  # noqa: E402
from model_defs.distil_bert import (  # noqa: E402
    DistilBertBackbone,
    DistilBertMaskedLM,
    DistilBertMaskedLMPreprocessor,
    DistilBertTextClassifier,
    DistilBertTextClassifierPreprocessor,
    DistilBertTokenizer,
)
from model_defs.gemma import (  # noqa: E402
    GemmaBackbone,
    GemmaCausalLM,
    GemmaCausalLMPreprocessor,
    GemmaTokenizer,
)
from model_defs.gpt2 import (  # noqa: E402
    GPT2Backbone,
    GPT2CausalLM,
    GPT2CausalLMPreprocessor,
    GPT2Tokenizer,
)
from model_defs.masked_lm import MaskedLM  # noqa: E402
from model_defs.masked_lm_preprocessor import MaskedLMPreprocessor  # noqa: E402
from model_defs.preprocessor import Preprocessor  # noqa: E402
from model_defs.preset import PresetError  # noqa: E402
from model_defs.seq2seq_lm import Seq2SeqLM  # noqa: E402
from model_defs.task import Task  # noqa: E402
from model_defs.text_classifier import TextClassifier  # noqa: E402
from model_defs.text_classifier_preprocessor import TextClassifierPreprocessor  # noqa: E402
from model_defs.tokenizer import Tokenizer  # noqa: E402
from model_defs.xlm_roberta import (  # noqa: E402
    XLMRobertaBackbone,
    XLMRobertaMaskedLM,
    XLMRobertaMaskedLMPreprocessor,
    XLMRobertaTokenizer,
)

__all__ = [
    "BartBackbone", "BartSeq2SeqLM", "BartSeq2SeqLMPreprocessor", "BartTokenizer",
    "Backbone", "Task", "MaskedLM", "TextClassifier", "Seq2SeqLM", "CausalLM",
    "Preprocessor", "MaskedLMPreprocessor", "TextClassifierPreprocessor", "Tokenizer",
    "PresetError", "samplers",
    "BertTextClassifier", "BertTextClassifierPreprocessor", "DistilBertTextClassifier",
    "DistilBertTextClassifierPreprocessor",
    "BertBackbone", "BertMaskedLM", "BertMaskedLMPreprocessor", "BertTokenizer",
    "DistilBertBackbone", "DistilBertMaskedLM", "DistilBertMaskedLMPreprocessor",
    "DistilBertTokenizer",
    "XLMRobertaBackbone", "XLMRobertaMaskedLM", "XLMRobertaMaskedLMPreprocessor",
    "XLMRobertaTokenizer",
    "GemmaBackbone", "GemmaCausalLM", "GemmaCausalLMPreprocessor", "GemmaTokenizer",
    "CausalLMPreprocessor", "GPT2Backbone", "GPT2CausalLM", "GPT2CausalLMPreprocessor",
    "GPT2Tokenizer",
]
