"""`python -m runtime serve ARTIFACT [ARTIFACT ...]` (registered by runtime.__main__): the
HTTP server on uvicorn. Needs the `[serve]` extra; imported lazily so the other commands
work without it."""

from __future__ import annotations

import sys

from runtime.server.config import ServerConfig


def add_serve(sub):
    p = sub.add_parser("serve", help="serve artifacts over HTTP (OpenAI, TEI and TGI APIs)")
    p.add_argument("artifacts", nargs="+", metavar="ARTIFACT",
                   help="artifact folders; each is a model named after its folder")
    p.add_argument("--name", action="append", default=None,
                   help="model id of each artifact, in order (repeat once per artifact)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--verify", default="auto", choices=["auto", "none", "size", "sha256"])
    d = ServerConfig()
    p.add_argument("--max-request-bytes", type=int, default=d.max_request_bytes,
                   help="larger bodies get 413")
    p.add_argument("--max-texts-per-request", type=int, default=d.max_texts_per_request,
                   help="more texts or prompts in one request get 422")
    p.add_argument("--max-tokens-per-text", type=int, default=None,
                   help="a longer text gets 422 (default: the model's positions)")
    p.add_argument("--batch-tokens", type=int, default=d.batch_tokens,
                   help="token budget of one embedding/classification batch")
    p.add_argument("--batch-wait-ms", type=float, default=d.batch_wait_ms,
                   help="how long a batch waits for more requests (default 0: it takes "
                        "what queued while the previous batch ran)")
    p.add_argument("--max-queue", type=int, default=d.max_queue,
                   help="texts or generations waiting per model before 503 + Retry-After")
    p.add_argument("--generation-workers", type=int, default=d.generation_workers,
                   help="generations decoded at once per model (threads)")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds SIGTERM waits for in-flight requests before closing")
    ray = p.add_argument_group("scale-out on Ray Serve (the [ray] extra)")
    ray.add_argument("--ray", action="store_true",
                     help="serve the same app as a Ray Serve deployment")
    ray.add_argument("--replicas", type=int, default=1, help="Ray Serve replicas (--ray)")
    ray.add_argument("--ray-address", default=None,
                     help="join this Ray cluster ('auto': the running one); default: "
                          "start a local Ray instance")
    ray.add_argument("--ray-cpus-per-replica", type=float, default=1.0,
                     help="Ray logical CPUs each replica reserves")
    p.set_defaults(run=serve)
    return p


def config_from(args):
    for flag in ("max_request_bytes", "max_texts_per_request", "batch_tokens", "max_queue",
                 "generation_workers"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1")
    if args.max_tokens_per_text is not None and args.max_tokens_per_text < 1:
        raise ValueError("--max-tokens-per-text must be at least 1")
    if args.batch_wait_ms < 0:
        raise ValueError("--batch-wait-ms must be >= 0")
    return ServerConfig(
        max_request_bytes=args.max_request_bytes,
        max_texts_per_request=args.max_texts_per_request,
        max_tokens_per_text=args.max_tokens_per_text, batch_tokens=args.batch_tokens,
        batch_wait_ms=args.batch_wait_ms, max_queue=args.max_queue,
        generation_workers=args.generation_workers)


def serve(args):
    config = config_from(args)
    if args.ray:
        return serve_on_ray(args, config)
    if args.replicas != 1 or args.ray_address:
        raise ValueError("--replicas and --ray-address need --ray")
    try:
        import uvicorn

        from runtime.server.app import create_app
    except ModuleNotFoundError as e:
        if e.name not in ("uvicorn", "starlette"):
            raise
        raise ValueError(f"serve needs {e.name}: pip install 'hubonnx[serve]'") from None
    app = create_app(args.artifacts, args.name, config, args.device, args.verify)
    names = ", ".join(app.state.server.models)
    print(f"serving {names} on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    # uvicorn handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish
    # (up to --graceful-timeout) and exits.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=args.graceful_timeout)


def serve_on_ray(args, config):
    try:
        from runtime.server import ray_serve
    except ModuleNotFoundError as e:
        if e.name.split(".")[0] not in ("ray", "starlette", "uvicorn"):
            raise
        raise ValueError(f"serve --ray needs {e.name.split('.')[0]}: pip install "
                         f"'hubonnx[ray]'") from None
    ray_serve.run(args, config)
