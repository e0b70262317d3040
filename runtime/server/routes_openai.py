"""The OpenAI routes: `/v1/models`, `/v1/embeddings`, `/v1/completions` (with
`stream: true` as server-sent events ending in `data: [DONE]`), in the shapes the `openai`
client parses."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid

import numpy as np
from starlette.responses import JSONResponse, StreamingResponse

from runtime.server.bodies import read_json, texts_of
from runtime.server.errors import RequestError
from runtime.server.generation import Completion


async def list_models(request, server):
    return JSONResponse({"object": "list", "data": [
        {"id": m.name, "object": "model", "created": int(server.started), "owned_by": "hubonnx",
         "task": m.task} for m in server.models.values()]})


async def embeddings(request, server):
    body = await read_json(request, server.config)
    model = server.model(body.get("model"), ["embedding"], "/v1/embeddings")
    texts, _ = texts_of(body.get("input"), server.config, "input")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise RequestError(422, f"encoding_format must be 'float' or 'base64', got {fmt!r}")
    dims = body.get("dimensions")
    if dims is not None and dims != model.pipeline.dimension:
        raise RequestError(422, f"model {model.name!r} gives {model.pipeline.dimension} "
                           f"dimensions; dimensions={dims!r} is not supported")
    vectors, tokens = await model.embed(texts)
    data = []
    for i, vector in enumerate(np.asarray(vectors, "float32")):
        value = (base64.b64encode(vector.astype("<f4").tobytes()).decode() if fmt == "base64"
                 else vector.tolist())
        data.append({"object": "embedding", "index": i, "embedding": value})
    used = int(sum(tokens))
    return JSONResponse({"object": "list", "data": data, "model": model.name,
                         "usage": {"prompt_tokens": used, "total_tokens": used}})


def _completion_options(body, server):
    """The generation options of a completions body, checked."""
    for key in ("n", "best_of"):
        if body.get(key) not in (None, 1):
            raise RequestError(422, f"{key}={body[key]!r} is not supported (only 1)")
    if body.get("echo") or body.get("logprobs") is not None:
        raise RequestError(422, "echo and logprobs are not supported")
    max_tokens = body.get("max_tokens", 16)
    if max_tokens is not None and (isinstance(max_tokens, bool) or
                                   not isinstance(max_tokens, int)):
        raise RequestError(422, f"max_tokens must be an integer, got {max_tokens!r}")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, (str, list)):
        raise RequestError(422, "stop must be a string or a list of strings")
    return {"max_new_tokens": max_tokens, "stop": stop,
            "temperature": body.get("temperature"), "top_p": body.get("top_p"),
            "seed": body.get("seed")}


async def completions(request, server):
    body = await read_json(request, server.config)
    model = server.model(body.get("model"), ["text-generation"], "/v1/completions")
    prompts, _ = texts_of(body.get("prompt"), server.config, "prompt")
    options = _completion_options(body, server)
    calls = [Completion(model, p, **options) for p in prompts]  # all checked before any runs
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion",
            "created": int(time.time()), "model": model.name}
    if body.get("stream"):
        return StreamingResponse(_stream(head, calls), media_type="text/event-stream")
    texts = await asyncio.gather(*(c.run() for c in calls))
    prompt_tokens = sum(c.prompt_tokens for c in calls)
    completion_tokens = sum(c.tokens for c in calls)
    return JSONResponse({**head, "choices": [
        {"text": text, "index": i, "logprobs": None, "finish_reason": c.finish_reason}
        for i, (text, c) in enumerate(zip(texts, calls))],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}})


async def _stream(head, calls):
    """Server-sent events: a chunk per piece of text, a last chunk per prompt with its
    finish_reason, then `[DONE]`. Prompts stream one after the other."""
    def event(index, text, finish=None):
        chunk = {**head, "choices": [{"text": text, "index": index, "logprobs": None,
                                      "finish_reason": finish}]}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    for index, call in enumerate(calls):
        try:
            async for piece, _ in call.pieces():
                yield event(index, piece)
        except (ValueError, TypeError) as e:  # too late for a status: an error event
            yield f"data: {json.dumps({'error': {'message': str(e), 'type': 'error'}})}\n\n"
            return
        yield event(index, "", call.finish_reason)
    yield "data: [DONE]\n\n"


ROUTES = [("GET", "/v1/models", list_models), ("POST", "/v1/embeddings", embeddings),
          ("POST", "/v1/completions", completions)]
