"""Manifest entry of a text_classifier artifact: what the runtime's `classify` needs to
turn the graph's output into class scores."""


def manifest_entry(model):
    """{"num_classes", "activation"} of a `TextClassifier` (activation "linear": logits)."""
    import keras

    activation = keras.activations.serialize(getattr(model, "activation", None) or "linear")
    if isinstance(activation, dict):  # a custom activation object
        activation = activation.get("config", {}).get("name", "custom")
    return {"num_classes": int(model.num_classes), "activation": activation}
