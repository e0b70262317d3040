"""BERT text classifier."""

import keras

from model_defs import encoder_tables as T
from model_defs.bert.bert_backbone import BertBackbone
from model_defs.bert.bert_text_classifier_preprocessor import BertTextClassifierPreprocessor
from model_defs.preset import register
from model_defs.text_classifier import TextClassifier


@register
class BertTextClassifier(TextClassifier):
    """BERT with a classification head: dropout, then a dense layer on the pooled output.

    Args:
        backbone: a `BertBackbone`.
        num_classes: int, number of classes.
        preprocessor: a `BertTextClassifierPreprocessor`, or None for integer inputs.
        activation: None (logits) or an activation of the output, e.g. "softmax".
        dropout: float, dropout before the output layer.

    Inputs: `token_ids`, `segment_ids`, `padding_mask` (batch, seq) int32.
    Output: `logits` (batch, num_classes).

    Example:
    ```python
    classifier = BertTextClassifier.from_preset("bert_tiny_en_uncased", num_classes=2)
    classifier.fit(x=["great movie", "awful plot"], y=[1, 0], batch_size=2)
    ```
    """

    backbone_cls = BertBackbone
    preprocessor_cls = BertTextClassifierPreprocessor
    hf_architectures = ("BertForSequenceClassification",)

    def __init__(self, backbone, num_classes, preprocessor=None, activation=None, dropout=0.1,
                 **kwargs):
        compile = kwargs.pop("compile", True)
        output_dropout = keras.layers.Dropout(dropout, dtype=backbone.dtype_policy,
                                              name="classifier_dropout")
        output_dense = keras.layers.Dense(
            num_classes, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            activation=activation, dtype=backbone.dtype_policy, name="logits")
        inputs = dict(backbone.input)
        pooled = backbone(inputs)["pooled_output"]  # (batch, hidden)
        outputs = output_dense(output_dropout(pooled))  # (batch, num_classes)
        super().__init__(inputs=inputs, outputs=outputs, backbone=backbone,
                         preprocessor=preprocessor, compile=False, **kwargs)
        self.num_classes = num_classes
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.output_dropout = output_dropout
        self.output_dense = output_dense
        if compile:
            self.compile()  # after `activation` is known: it decides from_logits

    def get_config(self):
        config = super().get_config()
        config.update(num_classes=self.num_classes,
                      activation=keras.activations.serialize(self.activation),
                      dropout=self.dropout)
        return config

    def keras_hub_head_table(self):
        return T.dense("layers/dense", "logits")

    def hf_head_table(self, names):
        return T.hf_linear("classifier", "logits")
