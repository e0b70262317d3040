"""The HTTP server (`python -m runtime serve`) on tiny exported artifacts, driven by the real
clients (openai, huggingface_hub's InferenceClient) and plain HTTP on 127.0.0.1: answers
equal the Python API's, bad requests get one clear JSON error and never take it down,
batching under a bounded load, a client that leaves mid-stream frees its generation, and
SIGTERM drains in-flight requests with TensorFlow and Keras blocked."""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx2")  # the HTTP client openai and huggingface_hub use

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model_defs"))
from blocked_imports import RUNTIME_CLI  # noqa: E402
from fine_tune_helpers import keras_hub_classifier_preset  # noqa: E402
from test_bart_helpers import keras_hub_bart  # noqa: E402
from test_gemma_helpers import keras_hub_causal_lm  # noqa: E402
from test_gpt2_helpers import gpt2_bpe, keras_hub_gpt2  # noqa: E402

from runtime.classifier import Classifier  # noqa: E402
from runtime.encoder import Encoder  # noqa: E402
from runtime.fill_mask import FillMask  # noqa: E402
from runtime.generator import Generator  # noqa: E402
from runtime.server import ServerConfig, create_app  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTS = ["The quick brown fox jumped.", "A whale", "the sun rose over the hills and the dog"]


@pytest.fixture(scope="module")
def artifacts(keras_hub_presets, tmp_path_factory):
    """Four tiny artifacts, one per kind the server serves: {name: folder}."""
    from exporter.export import export_preset

    root = tmp_path_factory.mktemp("served")
    keras_hub_bart(root / "bart_preset")
    keras_hub_classifier_preset("bert", str(root / "classifier_preset"), num_classes=3)
    jobs = {"minilm": (keras_hub_presets["distil_bert"], "backbone"),
            "bert_mlm": (keras_hub_presets["bert"], "masked_lm"),
            "sentiment": (str(root / "classifier_preset"), "text_classifier"),
            "bart": (str(root / "bart_preset"), None)}
    out = {}
    for name, (preset, task) in jobs.items():
        out[name] = str(root / name)
        export_preset(preset, task=task, output=out[name])
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn serving `app` in a thread on a free 127.0.0.1 port."""

    def __init__(self, app):
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(artifacts):
    app = create_app(list(artifacts.values()), config=ServerConfig(max_request_bytes=200_000))
    running = ServerThread(app)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def python_api(artifacts):
    return {"minilm": Encoder(artifacts["minilm"]), "bert_mlm": FillMask(artifacts["bert_mlm"]),
            "sentiment": Classifier(artifacts["sentiment"]),
            "bart": Generator(artifacts["bart"])}


def post(server, path, body, **kwargs):
    return httpx.post(server.url + path, json=body, timeout=30, **kwargs)


def start_length(generator, new_tokens):
    return len(generator.inputs.decoder_start) + new_tokens


# -- the server's own routes ---------------------------------------------------------------
def test_models_health_info_and_metrics(server):
    models = httpx.get(server.url + "/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["minilm", "bert_mlm", "sentiment", "bart"]
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    info = httpx.get(server.url + "/info").json()
    assert info["model_id"] == "minilm" and len(info["models"]) == 4
    post(server, "/embed", {"inputs": "count me"})
    text = httpx.get(server.url + "/metrics").text
    assert "# TYPE hubonnx_requests_total counter" in text
    assert 'hubonnx_requests_total{route="/embed",status="200"}' in text
    assert "hubonnx_request_duration_seconds_bucket" in text
    assert 'hubonnx_batch_size_count{model="minilm"}' in text
    assert 'hubonnx_queue_depth{model="bart"} 0' in text


# -- OpenAI --------------------------------------------------------------------------------
def test_openai_embeddings_equal_the_python_api(server, python_api):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    want = python_api["minilm"].embed(TEXTS)
    got = client.embeddings.create(model="minilm", input=TEXTS)  # the client asks base64
    np.testing.assert_allclose([d.embedding for d in got.data], want, atol=1e-5)
    assert got.usage.prompt_tokens > len(TEXTS) and got.model == "minilm"
    one = client.embeddings.create(model="minilm", input=TEXTS[0], encoding_format="float")
    np.testing.assert_allclose(one.data[0].embedding, want[0], atol=1e-5)
    raw = post(server, "/v1/embeddings", {"model": "minilm", "input": TEXTS[1],
                                          "encoding_format": "base64"}).json()
    vector = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), "<f4")
    np.testing.assert_allclose(vector, want[1], atol=1e-5)


def test_openai_completions_equal_generate(server, python_api):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    generator = python_api["bart"]
    want = generator.generate(TEXTS[0], sampler="greedy",
                              max_length=start_length(generator, 10))
    got = client.completions.create(model="bart", prompt=TEXTS[0], max_tokens=10,
                                    temperature=0)
    assert got.choices[0].text == want and want
    assert got.choices[0].finish_reason in ("stop", "length")
    assert got.usage.completion_tokens >= 1
    stream = client.completions.create(model="bart", prompt=TEXTS[0], max_tokens=10,
                                       temperature=0, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == want
    assert chunks[-1].choices[0].finish_reason == got.choices[0].finish_reason
    # seeded sampling: the same random stream as the Python API
    seeded = generator.generate(TEXTS[1], sampler="random", temperature=0.8, seed=3,
                                max_length=start_length(generator, 8))
    got = client.completions.create(model="bart", prompt=TEXTS[1], max_tokens=8,
                                    temperature=0.8, seed=3)
    assert got.choices[0].text == seeded
    # a list of prompts, and a stop string cuts the text before it
    both = client.completions.create(model="bart", prompt=TEXTS[:2], max_tokens=10,
                                     temperature=0)
    assert [c.index for c in both.choices] == [0, 1] and both.choices[0].text == want
    stop = want[len(want) // 2:][:2]
    cut = client.completions.create(model="bart", prompt=TEXTS[0], max_tokens=10,
                                    temperature=0, stop=[stop])
    assert cut.choices[0].text == want[:want.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_sse_ends_with_done(server):
    with httpx.stream("POST", server.url + "/v1/completions", json={
            "model": "bart", "prompt": "A whale", "max_tokens": 4, "temperature": 0,
            "stream": True}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(x.startswith("data: ") for x in lines)


# -- causal LMs (GPT-2, Gemma): completions are the continuation ---------------------------
CAUSAL = ["gpt2", "gemma"]


@pytest.fixture(scope="module")
def causal_server(tmp_path_factory):
    """Tiny GPT-2 and Gemma (grouped-query) causal LM artifacts, served together:
    (server, {name: Generator})."""
    from exporter.export import export_preset

    root = tmp_path_factory.mktemp("served_causal")
    vocab, merges, _, _ = gpt2_bpe(root / "bpe")
    keras_hub_gpt2(root / "gpt2_preset", vocab, merges, sequence_length=14)
    keras_hub_causal_lm(sequence_length=14).save_to_preset(str(root / "gemma_preset"))
    folders = []
    for name in CAUSAL:
        folders.append(str(root / name))
        export_preset(str(root / f"{name}_preset"), output=folders[-1])
    running = ServerThread(create_app(folders))
    yield running, {name: Generator(folder) for name, folder in zip(CAUSAL, folders)}
    running.stop()


def continuation(generator, prompt, new_tokens, **sampler):
    """The Python API's answer: `generate` (prompt + continuation, as keras-hub) and the
    continuation its token stream gives, for `new_tokens` tokens after the prompt."""
    length = len(generator.pack(prompt, 40)[0]["padding_mask"][0].nonzero()[0]) + new_tokens
    full = generator.generate(prompt, max_length=length, **sampler)
    text = "".join(t.text for t in generator.stream(prompt, max_length=length, **sampler))
    assert full == prompt + text  # generate keeps the prompt, the stream does not
    return full, text


@pytest.mark.parametrize("name", CAUSAL)
def test_openai_completions_of_a_causal_lm_are_the_continuation(causal_server, name):
    openai = pytest.importorskip("openai")
    server, generators = causal_server
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x")
    full, want = continuation(generators[name], TEXTS[0], 8, sampler="greedy")
    got = client.completions.create(model=name, prompt=TEXTS[0], max_tokens=8,
                                    temperature=0)
    assert got.choices[0].text == want and want and not want.startswith(TEXTS[0])
    assert got.usage.completion_tokens == 8 or got.choices[0].finish_reason == "stop"
    stream = client.completions.create(model=name, prompt=TEXTS[0], max_tokens=8,
                                       temperature=0, stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].text for c in chunks) == want
    assert chunks[-1].choices[0].finish_reason == got.choices[0].finish_reason
    _, seeded = continuation(generators[name], TEXTS[1], 6, sampler="random",
                             temperature=0.8, seed=3)
    got = client.completions.create(model=name, prompt=TEXTS[1], max_tokens=6,
                                    temperature=0.8, seed=3)
    assert got.choices[0].text == seeded
    both = client.completions.create(model=name, prompt=TEXTS[:2], max_tokens=8,
                                     temperature=0)
    assert [c.index for c in both.choices] == [0, 1] and both.choices[0].text == want


@pytest.mark.parametrize("name", CAUSAL)
def test_tgi_generate_of_a_causal_lm(causal_server, name):
    hub = pytest.importorskip("huggingface_hub")
    server, generators = causal_server
    full, want = continuation(generators[name], TEXTS[2], 7, sampler="greedy")
    client = hub.InferenceClient(model=f"{server.url}/models/{name}")
    assert client.text_generation(TEXTS[2], max_new_tokens=7) == want
    assert "".join(client.text_generation(TEXTS[2], max_new_tokens=7, stream=True)) == want
    got = post(server, "/generate", {"model": name, "inputs": TEXTS[2], "parameters": {
        "max_new_tokens": 7, "return_full_text": True}}).json()
    assert got["generated_text"] == full  # what Generator.generate returns
    with httpx.stream("POST", server.url + "/generate_stream", json={
            "model": name, "inputs": TEXTS[2], "parameters": {"max_new_tokens": 7}}) as r:
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    assert "".join(e["token"]["text"] for e in events) == want
    assert events[-1]["generated_text"] == want


def test_a_causal_lm_prompt_over_its_positions_is_one_clear_error(causal_server):
    server, _ = causal_server
    r = post(server, "/v1/completions", {"model": "gpt2", "prompt": "the sun rose " * 20,
                                         "max_tokens": 4})
    assert r.status_code == 422 and "40 positions" in r.json()["error"]["message"]
    r = post(server, "/v1/completions", {"model": "gpt2", "prompt": "A", "max_tokens": 3})
    assert r.status_code == 200 and r.json()["choices"][0]["text"]


# -- TEI / TGI / fill-mask -----------------------------------------------------------------
def test_inference_client_feature_extraction_and_text_generation(server, python_api):
    hub = pytest.importorskip("huggingface_hub")
    want = python_api["minilm"].embed(TEXTS)
    got = hub.InferenceClient(model=server.url).feature_extraction(TEXTS[0])
    np.testing.assert_allclose(np.asarray(got).reshape(-1), want[0], atol=1e-5)
    got = hub.InferenceClient(model=server.url + "/models/minilm").feature_extraction(TEXTS)
    np.testing.assert_allclose(got, want, atol=1e-5)
    generator = python_api["bart"]
    text = generator.generate(TEXTS[2], sampler="greedy",
                              max_length=start_length(generator, 12))
    client = hub.InferenceClient(model=server.url + "/models/bart")
    assert client.text_generation(TEXTS[2], max_new_tokens=12) == text
    assert "".join(client.text_generation(TEXTS[2], max_new_tokens=12, stream=True)) == text
    details = client.text_generation(TEXTS[2], max_new_tokens=12, details=True)
    assert details.generated_text == text and details.details.generated_tokens >= 1


def test_tei_and_tgi_routes(server, python_api):
    got = post(server, "/embed", {"inputs": TEXTS, "normalize": True}).json()
    want = python_api["minilm"].embed(TEXTS, normalize=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    scores = python_api["sentiment"].scores(TEXTS)
    got = post(server, "/predict", {"inputs": TEXTS}).json()
    for row, probs in zip(got, scores):
        assert row[0]["label"] == str(int(np.argmax(probs)))
        assert {d["label"]: d["score"] for d in row} == pytest.approx(
            {str(i): float(p) for i, p in enumerate(probs)}, abs=1e-5)
    single = post(server, "/predict", {"inputs": TEXTS[0]}).json()
    assert single[0]["label"] == got[0][0]["label"]
    tokens = post(server, "/tokenize", {"inputs": "a whale", "model": "minilm"}).json()
    packed = python_api["minilm"].packer.pack(["a whale"])["token_ids"][0].tolist()
    assert [t["id"] for t in tokens[0]] == packed and tokens[0][0]["special"]
    generator = python_api["bart"]
    text = generator.generate(TEXTS[1], sampler="greedy", max_length=start_length(generator, 6))
    got = post(server, "/generate", {"inputs": TEXTS[1],
                                     "parameters": {"max_new_tokens": 6}}).json()
    assert got["generated_text"] == text
    with httpx.stream("POST", server.url + "/generate_stream", json={
            "inputs": TEXTS[1], "parameters": {"max_new_tokens": 6}}) as r:
        events = [json.loads(line[5:]) for line in r.iter_lines() if line.startswith("data:")]
    assert "".join(e["token"]["text"] for e in events) == text
    assert events[-1]["generated_text"] == text


def test_fill_mask_route(server, python_api):
    texts = ["Paris is the [MASK] of France.", "The [MASK] sat on the [MASK]."]
    want = python_api["bert_mlm"](texts, top_k=3)
    got = post(server, "/fill_mask", {"inputs": texts, "parameters": {"top_k": 3}}).json()
    assert [c["token"] for c in got[0]] == [c["token_id"] for c in want[0][0]]
    assert got[0][0]["sequence"] == texts[0].replace("[MASK]", want[0][0][0]["token"])
    assert [[c["token"] for c in m] for m in got[1]] == [[c["token_id"] for c in m]
                                                         for m in want[1]]
    hub = pytest.importorskip("huggingface_hub")
    top = hub.InferenceClient(model=server.url + "/models/bert_mlm").fill_mask(texts[0])
    assert top[0].token == want[0][0][0]["token_id"]


# -- limits and faults ---------------------------------------------------------------------
def test_bad_requests_get_one_clear_error_and_the_server_stays_up(server):
    r = post(server, "/embed", {"inputs": "x" * 300_000})
    assert r.status_code == 413 and r.json()["limit"] == "max_request_bytes"
    r = post(server, "/v1/embeddings", {"model": "minilm", "input": ["a"] * 65})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "max_texts_per_request"
    r = post(server, "/embed", {"inputs": "word " * 200})
    assert r.status_code == 422 and r.json()["limit"] == "max_tokens_per_text"
    assert "positions" in r.json()["error"]
    assert post(server, "/embed", {"inputs": "word " * 200, "truncate": True}).status_code == 200
    r = httpx.post(server.url + "/embed", content=b"{not json", timeout=10)
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = post(server, "/v1/embeddings", {"model": "nope", "input": "a"})
    assert r.status_code == 404 and "minilm" in r.json()["error"]["message"]
    r = post(server, "/v1/embeddings", {"model": "bart", "input": "a"})
    assert r.status_code == 422 and "embedding" in r.json()["error"]["message"]
    for body in ({"model": "bart", "prompt": "a", "max_tokens": "ten"},
                 {"model": "bart", "prompt": "a", "max_tokens": 0},
                 {"model": "bart", "prompt": 3}, {"model": "bart", "prompt": "a", "top_p": 7}):
        r = post(server, "/v1/completions", body)
        assert r.status_code == 422, body
        assert r.json()["error"]["message"]
    assert post(server, "/embed", {"inputs": [1, 2]}).status_code == 422
    assert post(server, "/fill_mask", {"inputs": "no mask here"}).status_code == 422
    assert httpx.get(server.url + "/nowhere").status_code == 404
    assert post(server, "/embed", {"inputs": "still up"}).status_code == 200


def test_full_queue_answers_503_with_retry_after(artifacts):
    app = create_app([artifacts["minilm"]], config=ServerConfig(max_queue=2))
    running = ServerThread(app)
    try:
        r = httpx.post(running.url + "/embed", json={"inputs": ["a", "b", "c"]}, timeout=10)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["limit"] == "max_queue"
        assert httpx.post(running.url + "/embed", json={"inputs": ["a"]}).status_code == 200
    finally:
        running.stop()


def test_bounded_load_every_answer_checked(server, python_api):
    """32 clients x 10 requests at once: embeddings and classifications, each answer equal
    to the Python API's; concurrent requests were batched; a generation runs meanwhile and
    the event loop keeps answering."""
    words = "alpha beta gamma delta the whale sun fox rose hills".split()
    texts = [" ".join(words[i % 7:i % 7 + 1 + i % 4]) for i in range(40)]
    vectors = dict(zip(texts, python_api["minilm"].embed(texts)))
    probs = dict(zip(texts, python_api["sentiment"].scores(texts)))
    before = {k: list(v) for k, v in server.app.state.server.metrics.batch_size.counts.items()}

    def client(i):
        with httpx.Client(base_url=server.url, timeout=60) as http:
            for j in range(10):
                text = texts[(i * 10 + j) % len(texts)]
                if j % 2:
                    got = http.post("/predict", json={"inputs": [text]}).json()[0]
                    best = int(np.argmax(probs[text]))
                    assert got[0]["label"] == str(best)
                    assert got[0]["score"] == pytest.approx(float(probs[text][best]), abs=1e-5)
                else:
                    got = http.post("/v1/embeddings", json={"model": "minilm",
                                                            "input": text}).json()
                    np.testing.assert_allclose(got["data"][0]["embedding"], vectors[text],
                                               atol=1e-5)
        return i

    generation = threading.Thread(target=post, args=(server, "/generate", {
        "inputs": TEXTS[0], "parameters": {"max_new_tokens": 100}}))
    generation.start()
    with ThreadPoolExecutor(32) as pool:
        assert sorted(pool.map(client, range(32))) == list(range(32))
    generation.join()
    counts = server.app.state.server.metrics.batch_size.counts
    labels = (("model", "minilm"),)
    batches = sum(counts[labels]) - sum(before.get(labels, [0]))
    assert 0 < batches < 160, "concurrent requests should have shared batches"


def test_client_that_leaves_mid_stream_frees_its_generation(server):
    model = server.app.state.server.models["bart"]
    real = model.pipeline.stream
    produced = []

    def slow_stream(*args, **kwargs):
        stream = real(*args, **kwargs)

        def tokens():
            for token in stream:
                produced.append(token)
                time.sleep(0.02)
                yield token
        return tokens()

    model.pipeline.stream = slow_stream
    try:
        with httpx.stream("POST", server.url + "/v1/completions", json={
                "model": "bart", "prompt": "A whale", "max_tokens": 100, "temperature": 0,
                "stream": True}, timeout=30) as r:
            next(r.iter_lines())  # the first event, then hang up
        deadline = time.time() + 5
        while model.generations and time.time() < deadline:
            time.sleep(0.02)
        assert model.generations == 0
        time.sleep(0.1)  # a token being decoded when the client left may still land
        count = len(produced)
        time.sleep(0.3)
        assert len(produced) == count < 50, (count, "the decode should stop with its client")
    finally:
        model.pipeline.stream = real


def test_serve_cli_drains_on_sigterm_with_tensorflow_blocked(artifacts):
    """`python -m runtime serve` in an interpreter where TensorFlow, Keras and the export
    side cannot load; SIGTERM while a generation streams lets it finish, then exits."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", RUNTIME_CLI, "serve", artifacts["minilm"],
                             artifacts["bart"], "--name", "emb", "--name", "gen",
                             "--port", str(port)], cwd=REPO, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.time() < deadline, "the server did not come up"
                time.sleep(0.1)
        assert [m["id"] for m in httpx.get(url + "/v1/models").json()["data"]] == ["emb", "gen"]
        assert len(httpx.post(url + "/embed", json={"inputs": "hi"}).json()[0]) == 32
        with httpx.stream("POST", url + "/v1/completions", json={
                "model": "gen", "prompt": TEXTS[2], "max_tokens": 120, "temperature": 0,
                "stream": True}, timeout=30) as r:
            lines = r.iter_lines()
            first = next(lines)
            proc.send_signal(signal.SIGTERM)
            rest = [line for line in lines if line]
        assert first.startswith("data: ") and rest[-1] == "data: [DONE]"
        # uvicorn re-raises the signal once drained, so the exit status says SIGTERM
        assert proc.wait(20) == -signal.SIGTERM
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_cli_errors_are_one_line(artifacts, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "runtime", "serve", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=60)

    result = run(str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "no manifest.json" in result.stderr
    result = run(artifacts["minilm"], artifacts["bart"], "--name", "one")
    assert result.returncode == 2 and "one name per artifact" in result.stderr
    result = run(artifacts["minilm"], "--max-queue", "0")
    assert result.returncode == 2 and "--max-queue" in result.stderr
