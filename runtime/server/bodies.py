"""Request bodies: JSON read within the size limit, text inputs checked against the
limits."""

from __future__ import annotations

import json

from runtime.server.errors import RequestError


async def read_json(request, config):
    """The request's JSON body, at most `max_request_bytes` (413 beyond, even chunked)."""
    limit = config.max_request_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"request body of {declared} bytes is over max_request_bytes "
                           f"{limit}", "max_request_bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"request body is over max_request_bytes {limit}",
                               "max_request_bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks) or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RequestError(400, f"the body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise RequestError(422, "the body must be a JSON object")
    return body


def texts_of(value, config, field="inputs"):
    """A string or a list of strings -> (list, was it one string); 422 otherwise or over
    max_texts_per_request."""
    single = isinstance(value, str)
    texts = [value] if single else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise RequestError(422, f"{field!r} must be a string or a non-empty list of strings")
    if len(texts) > config.max_texts_per_request:
        raise RequestError(422, f"{len(texts)} texts in one request, more than "
                           f"max_texts_per_request {config.max_texts_per_request}",
                           "max_texts_per_request")
    return texts, single
