"""`MaskedLM`: a backbone plus a tied-embedding masked-LM head."""

import keras

from model_defs.layers.masked_lm_head import MaskedLMHead
from model_defs.task import Task

DEFAULT_HEAD_ACTIVATION = "gelu"
DEFAULT_HEAD_EPSILON = 1e-5  # keras-hub's MaskedLMHead default


class MaskedLM(Task):
    """Predicts the tokens at `mask_positions`.

    Args:
        backbone: the model's backbone.
        preprocessor: its `MaskedLMPreprocessor`, or None for integer inputs.
        head_activation, head_layer_norm_epsilon: the head's transform; keras-hub uses
            exact GELU and 1e-5, Transformers checkpoints their own (set when loading one).

    Inputs: the backbone's inputs plus `mask_positions` (batch, num_masks) int32.
    Output: `logits` (batch, num_masks, vocabulary_size).
    """

    task_name = "masked_lm"
    export_spec = "masked_lm"  # exporter/specs/encoder.py: MaskedLMSpec

    def __init__(self, backbone, preprocessor=None, head_activation=DEFAULT_HEAD_ACTIVATION,
                 head_layer_norm_epsilon=DEFAULT_HEAD_EPSILON, **kwargs):
        inputs = dict(backbone.input)
        inputs["mask_positions"] = keras.Input(shape=(None,), dtype="int32",
                                               name="mask_positions")
        sequence = backbone({k: v for k, v in inputs.items() if k != "mask_positions"})
        head = MaskedLMHead(
            backbone.token_embedding, intermediate_activation=head_activation,
            layer_norm_epsilon=head_layer_norm_epsilon,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            dtype=backbone.dtype_policy, name="mlm_head")
        if isinstance(sequence, dict):  # BERT returns a dict, DistilBERT a tensor
            sequence = sequence["sequence_output"]
        logits = head(sequence, inputs["mask_positions"])
        super().__init__(inputs=inputs, outputs=logits, backbone=backbone,
                         preprocessor=preprocessor, **kwargs)
        self.head_activation = head_activation
        self.head_layer_norm_epsilon = head_layer_norm_epsilon
        self.masked_lm_head = head

    def get_config(self):
        config = super().get_config()
        # Only when they differ from keras-hub's, so keras-hub reads our presets.
        if self.head_activation != DEFAULT_HEAD_ACTIVATION:
            config["head_activation"] = self.head_activation
        if self.head_layer_norm_epsilon != DEFAULT_HEAD_EPSILON:
            config["head_layer_norm_epsilon"] = self.head_layer_norm_epsilon
        return config

    def compile(self, optimizer="auto", loss="auto", *, weighted_metrics="auto", **kwargs):
        """keras-hub's defaults: Adam(5e-5), sparse cross-entropy on logits, and
        sparse categorical accuracy weighted by the mask weights."""
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(5e-5)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if weighted_metrics == "auto":
            weighted_metrics = [keras.metrics.SparseCategoricalAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, weighted_metrics=weighted_metrics,
                        **kwargs)

    def keras_hub_head_table(self):
        from model_defs import encoder_tables as T
        from model_defs.weights import Entry

        src = "layers/masked_lm_head"
        return [*T.dense(f"{src}/_intermediate_dense", "mlm_head/intermediate_dense"),
                *T.layer_norm(f"{src}/_intermediate_layer_norm",
                              "mlm_head/intermediate_layer_norm"),
                Entry(f"{src}/vars/0", "mlm_head/bias")]
