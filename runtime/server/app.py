"""`create_app`: the Starlette app over the served models: the OpenAI, TEI and TGI routes,
`/v1/models`, `/health`, `/info` and `/metrics`."""

from __future__ import annotations

import logging
import os
import time

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from runtime.errors import ArtifactError
from runtime.server import routes_hf, routes_openai
from runtime.server.config import VERSION, ServerConfig
from runtime.server.errors import RequestError, error_response
from runtime.server.metrics import Metrics
from runtime.server.models import ServedModel, model_names

log = logging.getLogger(__name__)


class Server:
    """The served models and the settings and metrics they share."""

    def __init__(self, models, config, metrics):
        self.models = models  # name -> ServedModel, in the order given
        self.config = config
        self.metrics = metrics
        self.started = time.time()

    def model(self, name=None, kinds=None, what="this route"):
        """The model named `name`, or the first one of `kinds`; 404 / 422 otherwise."""
        if name is not None:
            if not isinstance(name, str) or name not in self.models:
                raise RequestError(404, f"no model {name!r}; the server has "
                                   f"{', '.join(self.models)} (see /v1/models)")
            model = self.models[name]
            if kinds and model.kind not in kinds:
                raise RequestError(422, f"model {name!r} is a {model.kind} model; {what} "
                                   f"needs a {' or '.join(kinds)} model")
            return model
        for model in self.models.values():
            if not kinds or model.kind in kinds:
                return model
        raise RequestError(404, f"no {' or '.join(kinds)} model is served; {what} needs one")


def endpoint(server, handler, route):
    """`handler(request, server)` with errors answered in the route's API shape (a bad
    request never escapes as a crash) and the request counted in the metrics."""
    async def call(request):
        start = time.perf_counter()
        try:
            response = await handler(request, server)
        except RequestError as e:
            response = error_response(request.url.path, e.status, e.message, e.limit,
                                      e.headers)
        except (ArtifactError, ValueError, TypeError) as e:
            response = error_response(request.url.path, 422, _one_line(e))
        except Exception as e:  # noqa: BLE001 - logged, answered 500, server keeps going
            log.exception("%s failed", request.url.path)
            response = error_response(request.url.path, 500, f"internal error: "
                                      f"{type(e).__name__}: {_one_line(e)}")
        server.metrics.observe_request(route, response.status_code,
                                       time.perf_counter() - start)
        return response
    return call


def _one_line(e):
    return " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or \
        type(e).__name__


# -- the server's own routes ---------------------------------------------------------------
async def health(request, server):
    # pid: which process answered (a Ray Serve replica, a worker behind a balancer)
    return JSONResponse({"status": "ok", "models": list(server.models), "pid": os.getpid()})


async def info(request, server):
    first = next(iter(server.models.values()))
    config = server.config
    return JSONResponse({
        "model_id": first.name, "model_type": first.kind, "version": VERSION,
        "models": [m.info() for m in server.models.values()],
        "max_client_batch_size": config.max_texts_per_request,
        "max_input_length": config.max_tokens_per_text or first.info()["max_sequence_length"],
        "max_request_bytes": config.max_request_bytes,
        "max_batch_tokens": config.batch_tokens, "max_concurrent_requests": config.max_queue,
    })


async def metrics(request, server):
    return PlainTextResponse(server.metrics.render(),
                             media_type="text/plain; version=0.0.4; charset=utf-8")


async def not_found(request, exc):
    return error_response(request.url.path, getattr(exc, "status_code", 404),
                          f"no route {request.method} {request.url.path}")


def create_app(artifacts, names=None, config=None, device="cpu", verify="auto",
               warm_up=True):
    """The ASGI app serving `artifacts` (folders), each as its folder name or `names`."""
    config = config or ServerConfig()
    registry = Metrics()
    models = {}
    for name, folder in zip(model_names(artifacts, names), artifacts):
        models[name] = ServedModel(name, folder, config, registry, device, verify)
        if warm_up:
            models[name].warm_up()
    server = Server(models, config, registry)
    table = [("GET", "/health", health), ("GET", "/info", info),
             ("GET", "/metrics", metrics), *routes_openai.ROUTES, *routes_hf.ROUTES]
    routes = [Route(path, endpoint(server, fn, path), methods=[method])
              for method, path, fn in table]
    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.server = server
    return app

