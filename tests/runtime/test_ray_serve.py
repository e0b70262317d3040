"""`python -m runtime serve ARTIFACT --ray --replicas 2`: the server's app as a Ray Serve
deployment on a local Ray instance, both replicas answering, every answer equal to the
Python API's; SIGTERM shuts Serve and Ray down. Needs the [ray] extra (skipped without)."""

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("ray.serve")
httpx = pytest.importorskip("httpx2")

from runtime.encoder import Encoder  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTS = ["The quick brown fox jumped.", "A whale", "the sun rose over the hills",
         "alpha beta gamma", "delta"]


@pytest.fixture(scope="module")
def backbone(keras_hub_presets, tmp_path_factory):
    from exporter.export import export_preset

    folder = str(tmp_path_factory.mktemp("ray") / "minilm")
    export_preset(keras_hub_presets["distil_bert"], task="backbone", output=folder)
    return folder


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(proc, url, timeout=180):
    """Until the CLI says it serves (serve.run returned: every replica started) and the
    proxy answers."""
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.time() + timeout
    while True:
        assert proc.poll() is None, f"serve --ray exited: {''.join(lines)[-2000:]}"
        if any(line.startswith("serving on") for line in lines):
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
        assert time.time() < deadline, f"Ray Serve did not come up: {''.join(lines)[-2000:]}"
        time.sleep(0.5)


def test_two_ray_serve_replicas_answer_as_the_python_api(backbone, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Light on a 2-core machine: half a logical CPU per replica, one ONNX Runtime thread.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": REPO}
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "serve", backbone, "--ray",
                             "--replicas", "2", "--ray-cpus-per-replica", "0.5",
                             "--port", str(port)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(proc, url)
        want = Encoder(backbone).embed(TEXTS)

        def ask(i):
            with httpx.Client(base_url=url, timeout=60) as http:
                pid = http.get("/health").json()["pid"]
                text = TEXTS[i % len(TEXTS)]
                got = http.post("/v1/embeddings", json={"model": "minilm", "input": text})
                assert got.status_code == 200, got.text
                np.testing.assert_allclose(got.json()["data"][0]["embedding"],
                                           want[i % len(TEXTS)], atol=1e-5)
                return pid

        # Rounds of concurrent requests until both replicas have answered (the proxy learns
        # of a replica a moment after it starts); every answer is checked.
        pids, deadline = set(), time.time() + 60
        with ThreadPoolExecutor(8) as pool:
            while len(pids) < 2 and time.time() < deadline:
                pids |= set(pool.map(ask, range(16)))
        assert len(pids) == 2, f"both replicas should answer; answered by {pids}"
        assert proc.pid not in pids  # the replicas are Ray actors, not the CLI process
        openai = pytest.importorskip("openai")
        got = openai.OpenAI(base_url=url + "/v1", api_key="x").embeddings.create(
            model="minilm", input=TEXTS)
        np.testing.assert_allclose([d.embedding for d in got.data], want, atol=1e-5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ray_flags_need_ray_and_bad_artifacts_fail_before_ray_starts(backbone, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "runtime", "serve", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)

    result = run(backbone, "--replicas", "2")
    assert result.returncode == 2 and "need --ray" in result.stderr
    result = run(str(tmp_path), "--ray", "--replicas", "2")
    assert result.returncode == 2 and result.stderr.startswith("error: ")
    assert "no manifest.json" in result.stderr
    result = run(backbone, "--ray", "--replicas", "0")
    assert result.returncode == 2 and "--replicas must be at least 1" in result.stderr


def test_app_builder_for_serve_run(backbone, tmp_path):
    """`serve run runtime.server.ray_serve:app_builder artifacts=... replicas=2` builds the
    application from string arguments, with the same checks as the CLI."""
    from ray import serve

    from runtime.artifact import ArtifactError
    from runtime.server.ray_serve import app_builder

    app = app_builder({"artifacts": backbone, "replicas": "2", "cpus_per_replica": "0.5"})
    assert isinstance(app, serve.Application)
    with pytest.raises(ArtifactError, match="no manifest.json"):
        app_builder({"artifacts": str(tmp_path)})
    with pytest.raises(ValueError, match="at least 1"):
        app_builder({"artifacts": backbone, "replicas": "0"})
