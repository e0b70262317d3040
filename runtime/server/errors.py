"""`RequestError`: a request the server refuses, with its status and the limit it broke;
rendered in the error shape of the API the route follows."""

from __future__ import annotations

from starlette.responses import JSONResponse


class RequestError(Exception):
    """A bad or refused request.

    Args:
        status: HTTP status (400, 404, 413, 422, 503).
        message: one line: what is wrong and what to do.
        limit: the name of the limit broken (`max_request_bytes`...), if any.
        headers: extra response headers (Retry-After on 503).
    """

    def __init__(self, status, message, limit=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.limit = limit
        self.headers = headers or {}


ERROR_TYPES = {400: "invalid_request_error", 404: "not_found_error", 413: "payload_too_large",
               422: "validation", 503: "overloaded", 500: "server_error"}


def error_response(path, status, message, limit=None, headers=None):
    """OpenAI's `{"error": {"message", "type", "param", "code"}}` on /v1 routes; TEI/TGI's
    `{"error": "...", "error_type": "..."}` elsewhere. Both name the limit broken."""
    kind = ERROR_TYPES.get(status, "error")
    if path.startswith("/v1/"):
        body = {"error": {"message": message, "type": kind, "param": None, "code": limit}}
    else:
        body = {"error": message, "error_type": kind}
        if limit:
            body["limit"] = limit
    return JSONResponse(body, status_code=status, headers=headers)
