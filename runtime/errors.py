"""The runtime's error class, in a module of its own so every runtime module can raise it
without importing `runtime.artifact` (and its onnxruntime session code)."""


class ArtifactError(ValueError):
    """An artifact folder that cannot be served as asked; the message says why."""
