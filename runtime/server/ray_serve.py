"""The server's ASGI app (`create_app`) as a Ray Serve deployment: N replicas, each loading
the artifacts and serving every route, behind Ray Serve's HTTP proxy.

Two entry points:
- `python -m runtime serve ARTIFACT ... --ray --replicas N [--ray-address auto]` starts
  (or joins) Ray, deploys and serves until SIGTERM / Ctrl-C, then shuts Serve down.
- `serve run runtime.server.ray_serve:app_builder artifacts=/abs/a,/abs/b replicas=2`
  (Ray Serve's own CLI or a Serve config file's `import_path`) builds the application
  from string arguments.

Needs the `[ray]` extra. Each replica is a Ray actor process: it imports `runtime` from
the folder this module came from (passed as PYTHONPATH), never TensorFlow or Keras.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading

from ray import serve

import runtime
from runtime.artifact import Artifact, ArtifactError
from runtime.server.config import ServerConfig
from runtime.server.models import KINDS, model_names

APP_NAME = "hubonnx"


@serve.deployment(name="hubonnx")
@serve.ingress()
class HubOnnxServer:
    """One replica: the artifacts served by the same app as `python -m runtime serve`."""

    def __init__(self, folders, names=None, config=None, device="cpu", verify="auto"):
        self.options = (list(folders), names, config or ServerConfig(), device, verify)

    def __serve_build_asgi_app__(self):
        # Called by Ray Serve once per replica, after __init__: the sessions load here.
        from runtime.server.app import create_app

        return create_app(*self.options)


def check_artifacts(folders, names=None, verify="auto"):
    """Absolute folders after the same checks a replica makes, so a mistake is one line
    here instead of N replicas failing to start."""
    model_names(folders, names)
    out = []
    for folder in folders:
        artifact = Artifact(folder, verify=verify)
        if artifact.task not in KINDS:
            raise ArtifactError(f"{folder}: cannot serve a {artifact.task!r} artifact (the "
                                f"server serves {', '.join(sorted(KINDS))})")
        out.append(os.path.abspath(folder))
    return out


def application(folders, names=None, config=None, device="cpu", verify="auto", replicas=1,
                cpus_per_replica=1.0):
    """The bound Serve application: `replicas` copies of the app."""
    if replicas < 1:
        raise ValueError(f"--replicas must be at least 1, got {replicas}")
    if cpus_per_replica <= 0:
        raise ValueError(f"--ray-cpus-per-replica must be > 0, got {cpus_per_replica}")
    folders = check_artifacts(folders, names, verify)
    root = os.path.dirname(os.path.dirname(os.path.abspath(runtime.__file__)))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    actor = {"num_cpus": cpus_per_replica, "runtime_env": {"env_vars": {"PYTHONPATH": path}}}
    deployment = HubOnnxServer.options(num_replicas=replicas, ray_actor_options=actor)
    return deployment.bind(folders, names, config, device, verify)


def app_builder(args):
    """For `serve run runtime.server.ray_serve:app_builder key=value ...`: artifacts
    (comma-separated absolute folders), names (comma-separated), replicas, device,
    verify, cpus_per_replica."""
    def listed(key):
        value = args.get(key)
        return [v for v in value.split(",") if v] if value else None

    return application(listed("artifacts") or [], listed("names"),
                       device=args.get("device", "cpu"), verify=args.get("verify", "auto"),
                       replicas=int(args.get("replicas", 1)),
                       cpus_per_replica=float(args.get("cpus_per_replica", 1.0)))


def run(args, config):
    """`serve --ray`: deploy on a local (or `--ray-address`) Ray, serve until a signal."""
    import ray

    app = application(args.artifacts, args.name, config, args.device, args.verify,
                      args.replicas, args.ray_cpus_per_replica)
    options = {"include_dashboard": False, "log_to_driver": False}
    if args.ray_address:
        options["address"] = args.ray_address
    else:  # a local instance with room for every replica (logical CPUs)
        options["num_cpus"] = max(1, math.ceil(args.replicas * args.ray_cpus_per_replica))
    ray.init(**options)
    try:
        serve.start(http_options={"host": args.host, "port": args.port})
        serve.run(app, name=APP_NAME, route_prefix="/")
        stop = threading.Event()  # set after ray.init, which installs handlers of its own
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        print(f"serving on http://{args.host}:{args.port} with {args.replicas} Ray Serve "
              f"replica(s)", file=sys.stderr, flush=True)
        stop.wait()
    finally:
        # Serve drains in-flight requests of each replica before it stops.
        serve.delete(APP_NAME)
        serve.shutdown()
        ray.shutdown()
