"""`python -m runtime triton-repo ARTIFACT DIR`: an encoder artifact (backbone, masked_lm,
text_classifier) as a model in a Triton Inference Server model repository:

    DIR/<name>/config.pbtxt     the onnxruntime backend, inputs/outputs with their data
                                types and dims from manifest.json, dynamic batching and an
                                instance group
    DIR/<name>/1/model.onnx     a copy of the graph (and the external data it reads)

Triton serves tensors: clients tokenize (e.g. with this runtime's tokenizer) and pool
themselves. The model folder is written beside its target and renamed into place, so a
failure leaves nothing half-written and an existing DIR/<name> is never touched.

TF-free, like all of runtime: the standard library and runtime.artifact.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile

from runtime.artifact import Artifact, ArtifactError
from runtime.checks import external_data_references

TASKS = ("backbone", "masked_lm", "text_classifier")
# manifest dtype -> Triton data type
DATA_TYPES = {"bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "int8": "TYPE_INT8",
              "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
              "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64"}
BATCH_AXIS = "batch_size"
MARKER = ".hubonnx-triton-staging"


def static_sizes(artifact):
    """Axis name -> size for the axes the manifest fixes (the rest are dynamic, -1)."""
    model = artifact.model
    classifier = artifact.manifest.get("classifier") or {}
    sizes = {"hidden": model.get("hidden_dim"), "vocabulary_size": model.get("vocabulary_size"),
             "num_classes": classifier.get("num_classes")}
    return {k: int(v) for k, v in sizes.items() if isinstance(v, int) and v > 0}


def tensor_entries(tensors, sizes, batched, what):
    """Manifest inputs/outputs -> (name, Triton data type, dims) rows; dims leave out
    the batch axis when Triton batches."""
    rows = []
    for t in tensors:
        dtype = DATA_TYPES.get(t["dtype"])
        if dtype is None:
            raise ArtifactError(f"{what} {t['name']!r} has dtype {t['dtype']!r}, which has "
                                f"no Triton data type")
        axes = list(t["axes"])[1:] if batched else list(t["axes"])
        rows.append((t["name"], dtype, [sizes.get(a, -1) if isinstance(a, str) else int(a)
                                        for a in axes]))
    return rows


def config_pbtxt(name, graph, sizes, max_batch_size=8, instances=1, device="cpu",
                 max_queue_delay_us=100):
    """The text of config.pbtxt for one graph entry of the manifest."""
    tensors = graph["inputs"] + graph["outputs"]
    batched = max_batch_size > 0
    if batched and any(not t["axes"] or t["axes"][0] != BATCH_AXIS for t in tensors):
        raise ArtifactError(f"{name}: not every input and output has {BATCH_AXIS!r} first, "
                            f"so Triton cannot batch it; pass --max-batch-size 0")
    lines = [f'name: "{name}"', 'platform: "onnxruntime_onnx"', 'backend: "onnxruntime"',
             f"max_batch_size: {max_batch_size}"]
    for field, entries in (("input", graph["inputs"]), ("output", graph["outputs"])):
        rows = tensor_entries(entries, sizes, batched, field)
        body = ",\n".join(f'  {{\n    name: "{n}"\n    data_type: {dt}\n    dims: '
                          f'[ {", ".join(str(d) for d in dims)} ]\n  }}' for n, dt, dims in rows)
        lines.append(f"{field} [\n{body}\n]")
    if batched:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: "
                     f"{max_queue_delay_us}\n}}")
    kind = "KIND_GPU" if device == "cuda" else "KIND_CPU"
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: {kind}\n  }}\n]")
    return "\n".join(lines) + "\n"


def write_repository(folder, repository, name=None, max_batch_size=8, instances=1,
                     device="cpu", max_queue_delay_us=100, verify="auto"):
    """Write `repository/<name>/` for the artifact in `folder`; returns that path."""
    for flag, value, low in (("--max-batch-size", max_batch_size, 0),
                             ("--instances", instances, 1),
                             ("--max-queue-delay-us", max_queue_delay_us, 0)):
        if value < low:
            raise ValueError(f"{flag} must be at least {low}, got {value}")
    artifact = Artifact(folder, verify=verify)
    if artifact.task not in TASKS:
        raise ArtifactError(f"{folder} is a {artifact.task!r} artifact; triton-repo writes "
                            f"encoder artifacts ({', '.join(TASKS)}), not generative ones "
                            f"(their KV-cache loop runs in this runtime)")
    name = name or os.path.basename(os.path.normpath(folder))
    if not name or name.startswith(".") or os.sep in name:
        raise ValueError(f"{name!r} is not a model name; pass --name")
    graph = artifact.graph("model")
    text = config_pbtxt(name, graph, static_sizes(artifact), max_batch_size, instances,
                        device, max_queue_delay_us)
    source = os.path.join(artifact.folder, graph["file"])
    # The external data files the graph reads (`model.onnx_data`, DESIGN.md), at the
    # relative locations it names; Artifact has checked they stay inside the artifact.
    data = sorted({info["location"] for _, info in external_data_references(source)})
    target = os.path.join(os.path.abspath(repository), name)
    if os.path.lexists(target):
        raise FileExistsError(f"{target} exists; remove it or choose another --name "
                              f"(triton-repo never replaces a model folder)")
    with staged(target) as content:
        version = os.path.join(content, "1")
        os.mkdir(version)
        shutil.copyfile(source, os.path.join(version, "model.onnx"))
        here = os.path.dirname(source)
        for location in data:  # beside the copy as beside the graph, so the graph finds it
            os.makedirs(os.path.dirname(os.path.join(version, location)), exist_ok=True)
            shutil.copyfile(os.path.join(here, location), os.path.join(version, location))
        with open(os.path.join(content, "config.pbtxt"), "w", encoding="utf-8") as f:
            f.write(text)
    return target


@contextlib.contextmanager
def staged(target):
    """A hidden folder beside `target`, renamed to it on success and removed otherwise
    (SIGTERM included). The rename never replaces a folder with content in it."""
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    _remove_stale(parent, os.path.basename(target))
    staging = tempfile.mkdtemp(prefix=f".tmp-{os.path.basename(target)}-", dir=parent)
    lock = os.open(os.path.join(staging, MARKER), os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)  # held while we live: a later run leaves it alone
    content = os.path.join(staging, "content")
    os.mkdir(content)
    previous = _raise_on_sigterm()
    try:
        yield content
        try:
            os.rename(content, target)  # fails on a target that filled up meanwhile
        except OSError as e:
            raise FileExistsError(f"{target} appeared while writing; remove it or choose "
                                  f"another --name") from e
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        os.close(lock)
        shutil.rmtree(staging, ignore_errors=True)


def _raise_on_sigterm():
    """SIGTERM -> KeyboardInterrupt while writing, so the staging folder is removed."""
    def stop(signum, frame):
        raise KeyboardInterrupt("terminated")
    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals alone
        return None


def _remove_stale(parent, name):
    """Staging folders a killed run left for `name` (marker present, lock free)."""
    for entry in os.listdir(parent):
        path = os.path.join(parent, entry)
        marker = os.path.join(path, MARKER)
        if not entry.startswith(f".tmp-{name}-") or not os.path.isfile(marker):
            continue
        fd = os.open(marker, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # another run is writing it
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)


# -- the CLI command (registered by runtime.__main__) ---------------------------------------
def add_triton_repo(sub):
    p = sub.add_parser("triton-repo", help="write a Triton Inference Server model repository "
                       "entry for an encoder artifact")
    p.add_argument("artifact", help="artifact folder (backbone, masked_lm, text_classifier)")
    p.add_argument("repository", metavar="DIR", help="the model repository (made if absent); "
                   "the model goes to DIR/<name>, which must not exist")
    p.add_argument("--name", default=None, help="model name (default: the artifact's folder)")
    p.add_argument("--max-batch-size", type=int, default=8,
                   help="Triton's max_batch_size (0: no batching, full dims)")
    p.add_argument("--instances", type=int, default=1, help="instance_group count")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="instance_group kind: KIND_CPU or KIND_GPU")
    p.add_argument("--max-queue-delay-us", type=int, default=100,
                   help="dynamic_batching max_queue_delay_microseconds")
    p.add_argument("--verify", default="auto", choices=["auto", "none", "size", "sha256"])
    p.set_defaults(run=_run)
    return p


def _run(args):
    try:
        path = write_repository(args.artifact, args.repository, args.name,
                                args.max_batch_size, args.instances, args.device,
                                args.max_queue_delay_us, args.verify)
    except KeyboardInterrupt:
        raise ValueError("interrupted; nothing was written") from None
    print(path)
