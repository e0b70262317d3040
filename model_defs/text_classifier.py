"""`TextClassifier`: a backbone plus a classification head, with keras-hub's compile
defaults. `TextClassifier.from_preset(preset, num_classes=...)` picks the concrete class
(`BertTextClassifier`, `DistilBertTextClassifier`) from the preset's backbone."""

import keras

from model_defs.task import Task


class TextClassifier(Task):
    """Base of the text classifiers: logits (batch, num_classes) from token ids.

    Example:
    ```python
    classifier = TextClassifier.from_preset("bert_tiny_en_uncased", num_classes=2)
    classifier.fit(x=["great movie", "awful plot"], y=[1, 0], batch_size=2)
    classifier.predict(["what a film"])  # (1, 2) logits
    ```
    """

    task_name = "text_classifier"
    export_spec = "text_classifier"  # exporter/specs/encoder.py: TextClassifierSpec

    def compile(self, optimizer="auto", loss="auto", *, metrics="auto", **kwargs):
        """keras-hub's defaults: Adam(5e-5), sparse cross-entropy (on logits unless the head
        ends in a softmax) and sparse categorical accuracy."""
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(5e-5)
        if loss == "auto":
            activation = keras.activations.get(getattr(self, "activation", None))
            from_logits = activation != keras.activations.softmax
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        if metrics == "auto":
            metrics = [keras.metrics.SparseCategoricalAccuracy()]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    @classmethod
    def hf_task_kwargs(cls, hf_config):
        labels = hf_config.get("id2label")
        return {"num_classes": len(labels) if labels else hf_config.get("num_labels", 2)}
