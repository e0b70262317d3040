"""DistilBERT text classifier."""

import keras

from model_defs import encoder_tables as T
from model_defs.distil_bert.distil_bert_backbone import DistilBertBackbone
from model_defs.distil_bert.distil_bert_text_classifier_preprocessor import (
    DistilBertTextClassifierPreprocessor,
)
from model_defs.preset import register
from model_defs.text_classifier import TextClassifier


@register
class DistilBertTextClassifier(TextClassifier):
    """DistilBERT with a classification head on the first ([CLS]) token: a ReLU dense layer,
    dropout, then the output dense layer (as keras-hub and Transformers'
    DistilBertForSequenceClassification).

    Args:
        backbone: a `DistilBertBackbone`.
        num_classes: int, number of classes.
        preprocessor: a `DistilBertTextClassifierPreprocessor`, or None for integer inputs.
        activation: None (logits) or an activation of the output, e.g. "softmax".
        hidden_dim: int, width of the ReLU layer (default: the backbone's).
        dropout: float, dropout before the output layer.

    Inputs: `token_ids`, `padding_mask` (batch, seq) int32.
    Output: `logits` (batch, num_classes).

    Example:
    ```python
    classifier = DistilBertTextClassifier.from_preset("distil_bert_base_en_uncased",
                                                      num_classes=2)
    classifier.predict(["What an amazing movie!"])
    ```
    """

    backbone_cls = DistilBertBackbone
    preprocessor_cls = DistilBertTextClassifierPreprocessor
    hf_architectures = ("DistilBertForSequenceClassification",)

    def __init__(self, backbone, num_classes, preprocessor=None, activation=None,
                 hidden_dim=None, dropout=0.2, **kwargs):
        compile = kwargs.pop("compile", True)
        hidden_dim = hidden_dim or backbone.hidden_dim
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        pooled_dense = keras.layers.Dense(hidden_dim, activation="relu", kernel_initializer=init,
                                          dtype=backbone.dtype_policy, name="pooled_dense")
        output_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy,
                                              name="output_dropout")
        output_dense = keras.layers.Dense(num_classes, kernel_initializer=init,
                                          activation=activation, dtype=backbone.dtype_policy,
                                          name="logits")
        inputs = dict(backbone.input)
        x = backbone(inputs)[:, 0, :]  # (batch, hidden): the [CLS] token
        outputs = output_dense(output_dropout(pooled_dense(x)))  # (batch, num_classes)
        super().__init__(inputs=inputs, outputs=outputs, backbone=backbone,
                         preprocessor=preprocessor, compile=False, **kwargs)
        self.num_classes = num_classes
        self.activation = keras.activations.get(activation)
        self.hidden_dim = hidden_dim
        self.dropout = dropout
        self.pooled_dense = pooled_dense
        self.output_dropout = output_dropout
        self.output_dense = output_dense
        if compile:
            self.compile()

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes,
                      activation=keras.activations.serialize(self.activation),
                      hidden_dim=self.hidden_dim, dropout=self.dropout)
        return config

    @classmethod
    def hf_task_kwargs(cls, hf_config):
        return {**super().hf_task_kwargs(hf_config),
                "dropout": hf_config.get("seq_classif_dropout", 0.2)}

    def keras_hub_head_table(self):
        return [*T.dense("layers/dense", "pooled_dense"), *T.dense("layers/dense_1", "logits")]

    def hf_head_table(self, names):
        return [*T.hf_linear("pre_classifier", "pooled_dense"),
                *T.hf_linear("classifier", "logits")]
