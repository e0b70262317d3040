"""An HTTP server over the runtime's pipelines, in the APIs real clients already speak:
OpenAI (`/v1/embeddings`, `/v1/completions`), Text Embeddings Inference (`/embed`,
`/predict`, `/tokenize`) and Text Generation Inference (`/generate`, `/generate_stream`).

Needs the `[serve]` extra (Starlette on uvicorn); like the rest of `runtime` it imports no
TensorFlow or Keras. `python -m runtime serve ARTIFACT ...` starts it; `create_app` builds
the ASGI app for another ASGI server. Importing this package loads nothing of Starlette
until `create_app` is asked for, so the CLI's other commands work without the extra.
"""

__all__ = ["ServerConfig", "create_app"]


def __getattr__(name):
    if name == "create_app":
        from runtime.server.app import create_app

        return create_app
    if name == "ServerConfig":
        from runtime.server.config import ServerConfig

        return ServerConfig
    raise AttributeError(name)
