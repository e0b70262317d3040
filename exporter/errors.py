"""The exporter's errors, in one place (the CLI prints each as one `error:` line)."""


class ExportError(ValueError):
    """A user mistake in the export request; the message says what to do."""


class ValidationError(RuntimeError):
    """ONNX Runtime disagrees with Keras beyond the tolerance."""
