"""The Hugging Face routes: Text Embeddings Inference (`/embed`, `/predict`, `/tokenize`),
Text Generation Inference (`/generate`, `/generate_stream`), a fill-mask route, and
`POST /` and `POST /models/{name}`, which answer by the model's kind as `InferenceClient`
expects of an endpoint URL.

A body may name its model with `"model"`; without it the first served model of the kind
the route needs answers (a TEI or TGI server serves one model)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
from starlette.responses import JSONResponse, StreamingResponse

from runtime.server.bodies import read_json, texts_of
from runtime.server.errors import RequestError
from runtime.server.generation import Completion


def _flag(body, key, default=None):
    value = body.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise RequestError(422, f"{key!r} must be true or false, got {value!r}")
    return value


# -- TEI -----------------------------------------------------------------------------------
async def embed(request, server, name=None, body=None):
    body = body if body is not None else await read_json(request, server.config)
    model = server.model(name or body.get("model"), ["embedding"], "/embed")
    texts, _ = texts_of(body.get("inputs"), server.config)
    # normalize absent: as the model expects (the manifest's pooling), as Encoder.embed
    vectors, _ = await model.embed(texts, normalize=_flag(body, "normalize"),
                                   truncate=bool(_flag(body, "truncate", False)))
    return JSONResponse(np.asarray(vectors, "float32").tolist())


async def predict(request, server, name=None, body=None):
    body = body if body is not None else await read_json(request, server.config)
    model = server.model(name or body.get("model"), ["classification"], "/predict")
    texts, single = texts_of(body.get("inputs"), server.config)
    truncate = bool(_flag(body, "truncate", False))
    if _flag(body, "raw_scores", False):  # TEI's raw_scores: the graph's output as it is
        model.token_counts(texts, truncate)
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(model.executor, model.pipeline.logits, texts)
    else:
        rows, _ = await model.scores(texts, truncate)
    labels = model.pipeline.labels
    out = []
    for row in np.asarray(rows):
        order = np.argsort(-row, kind="stable")
        out.append([{"label": labels[i] if labels else str(int(i)), "score": float(row[i])}
                    for i in order])
    return JSONResponse(out[0] if single else out)


async def tokenize(request, server):
    body = await read_json(request, server.config)
    model = server.model(body.get("model"), None, "/tokenize")
    texts, _ = texts_of(body.get("inputs"), server.config)
    special = _flag(body, "add_special_tokens", True)
    model.token_counts(texts, truncate=True)
    tokenizer = model.artifact.tokenizer
    specials = set(model.artifact.special_token_ids.values())
    out = []
    for text in texts:
        if special and model.packer is not None:
            feeds = model.packer.pack([text])
            ids = feeds["token_ids"][0][feeds["padding_mask"][0].astype(bool)].tolist()
        else:
            ids = list(tokenizer.tokenize(text))
        out.append([{"id": int(i), "text": tokenizer.id_to_token(int(i)),
                     "special": int(i) in specials, "start": None, "stop": None}
                    for i in ids])
    return JSONResponse(out)


# -- fill-mask (the HF Inference API's fill-mask shape) -------------------------------------
async def fill_mask(request, server, name=None, body=None):
    body = body if body is not None else await read_json(request, server.config)
    model = server.model(name or body.get("model"), ["fill-mask"], "/fill_mask")
    texts, single = texts_of(body.get("inputs"), server.config)
    params = body.get("parameters") or {}
    top_k = params.get("top_k", body.get("top_k", 5))
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise RequestError(422, f"top_k must be an integer in [1, 100], got {top_k!r}")
    model.token_counts(texts)
    loop = asyncio.get_running_loop()
    results = await loop.run_in_executor(model.executor, model.pipeline, texts, top_k)
    mask = model.pipeline.packer.packing["mask_token"]
    out = []
    for text, masks in zip(texts, results):
        rows = [[{"score": c["score"], "token": c["token_id"], "token_str": c["token"],
                  "sequence": text.replace(mask, c["token"], 1)} for c in candidates]
                for candidates in masks]
        out.append(rows[0] if len(rows) == 1 else rows)
    return JSONResponse(out[0] if single else out)


# -- TGI -----------------------------------------------------------------------------------
FINISH = {"stop": "eos_token", "length": "length", "stop_sequence": "stop_sequence"}


def _tgi_call(model, body):
    prompt = body.get("inputs")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise RequestError(422, "'parameters' must be an object")
    texts_of(prompt, model.config)
    if not isinstance(prompt, str):
        raise RequestError(422, "'inputs' must be a string")
    stop = params.get("stop")
    sampling = any(params.get(k) is not None for k in ("temperature", "top_p", "top_k"))
    greedy = not params.get("do_sample") and not sampling
    call = Completion(model, prompt, max_new_tokens=params.get("max_new_tokens", 20),
                      stop=stop, temperature=params.get("temperature"),
                      top_p=params.get("top_p"), top_k=params.get("top_k"),
                      seed=params.get("seed"), greedy=greedy)
    return call, params


def _finish(call):
    if call.stop_text.hit:
        return "stop_sequence"
    return FINISH[call.finish_reason]


async def generate(request, server, name=None, body=None, listed=False):
    body = body if body is not None else await read_json(request, server.config)
    model = server.model(name or body.get("model"), ["text-generation"], "/generate")
    call, params = _tgi_call(model, body)
    text = await call.run()
    if params.get("return_full_text"):
        text = body["inputs"] + text
    out = {"generated_text": text}
    if params.get("details"):
        out["details"] = {"finish_reason": _finish(call), "generated_tokens": call.tokens,
                          "seed": params.get("seed"), "prefill": [], "tokens": []}
    return JSONResponse([out] if listed else out)


async def generate_stream(request, server, name=None, body=None):
    body = body if body is not None else await read_json(request, server.config)
    model = server.model(name or body.get("model"), ["text-generation"], "/generate_stream")
    call, params = _tgi_call(model, body)
    return StreamingResponse(_tgi_events(call, params), media_type="text/event-stream")


async def _tgi_events(call, params):
    """TGI's events: one per piece of text with its token; the last carries the whole
    `generated_text` and `details`."""
    pending = None
    try:
        async for piece, token in call.pieces():
            if pending is not None:
                yield _event(pending)
            pending = {"index": call.tokens, "token": {
                "id": int(token.token_id) if token else 0, "text": piece, "logprob": None,
                "special": False}, "generated_text": None, "details": None}
    except (ValueError, TypeError) as e:
        yield _event({"error": str(e), "error_type": "generation"})
        return
    if pending is None:
        pending = {"index": 0, "token": {"id": 0, "text": "", "logprob": None,
                                         "special": True}}
    pending["generated_text"] = call.text
    pending["details"] = {"finish_reason": _finish(call), "generated_tokens": call.tokens,
                          "seed": params.get("seed")}
    yield _event(pending)


def _event(payload):
    return f"data:{json.dumps(payload, ensure_ascii=False)}\n\n"


# -- an endpoint URL: POST / and POST /models/{name} ----------------------------------------
async def by_kind(request, server):
    """What a TEI/TGI server answers on its root: by the model's kind (and `stream`)."""
    body = await read_json(request, server.config)
    name = request.path_params.get("name") or body.get("model")
    model = server.model(name)
    name = model.name
    if model.kind == "embedding":
        return await embed(request, server, name, body)
    if model.kind == "classification":
        return await predict(request, server, name, body)
    if model.kind == "fill-mask":
        return await fill_mask(request, server, name, body)
    if body.get("stream"):
        return await generate_stream(request, server, name, body)
    return await generate(request, server, name, body, listed=True)


ROUTES = [("POST", "/embed", embed), ("POST", "/predict", predict),
          ("POST", "/tokenize", tokenize), ("POST", "/fill_mask", fill_mask),
          ("POST", "/generate", generate), ("POST", "/generate_stream", generate_stream),
          ("POST", "/", by_kind), ("POST", "/models/{name}", by_kind)]
