"""Soak and concurrency (issue 8): 1000 generate calls on one tiny seq2seq artifact at
flat memory, and 8 threads sharing one Generator with the results of one thread.

Slow (about a minute): `python -m pytest -m slow tests/runtime/test_soak.py -s` prints the
figures."""

import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model_defs"))
from test_bart_helpers import keras_hub_bart  # noqa: E402

from runtime.generator import Generator  # noqa: E402

PROMPTS = ["The quick brown fox jumped.", "A whale", "the sun rose over the hills",
           "A fox and a dog are friends", "the rain fell"]
CALLS = 1000
RSS_SLACK_MB = 20


def rss_mb():
    """Resident memory of this process, from /proc/self/status (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    pytest.skip("no VmRSS in /proc/self/status")


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    from exporter.export import export_preset

    root = tmp_path_factory.mktemp("soak")
    keras_hub_bart(root / "preset")
    export_preset(str(root / "preset"), output=str(root / "artifact"))
    return Generator(str(root / "artifact"))


@pytest.mark.slow
def test_thousand_generate_calls_at_flat_memory(generator):
    def call(i):
        sampler = ("greedy", "top_k", "beam")[i % 3]
        extra = {"seed": i} if sampler == "top_k" else {}
        if sampler == "beam":
            extra["num_beams"] = 2
        prompts = PROMPTS[: 1 + i % len(PROMPTS)]
        return generator.generate(prompts, sampler=sampler, max_length=16, **extra)

    for i in range(50):  # warm up: sessions, arenas, tokenizer caches
        call(i)
    before = rss_mb()
    start = time.perf_counter()
    for i in range(CALLS):
        out = call(i)
        assert len(out) == 1 + i % len(PROMPTS)
    seconds = time.perf_counter() - start
    after = rss_mb()
    print(f"\nsoak: {CALLS} generate calls in {seconds:.1f} s "
          f"({1000 * seconds / CALLS:.1f} ms/call); RSS {before:.1f} MB -> {after:.1f} MB "
          f"({after - before:+.1f} MB)")
    assert after - before < RSS_SLACK_MB


@pytest.mark.slow
def test_threads_sharing_one_generator_agree(generator):
    want = [generator.generate(p, sampler="greedy", max_length=16) for p in PROMPTS]
    seeded = generator.generate(PROMPTS, sampler="top_k", k=5, seed=3, max_length=16)
    results, errors = {}, []
    barrier = threading.Barrier(8)

    def work(t):
        try:
            barrier.wait()
            mine = []
            for round_ in range(20):
                p = (t + round_) % len(PROMPTS)
                mine.append((p, generator.generate(PROMPTS[p], sampler="greedy",
                                                   max_length=16)))
            mine.append(("seeded", generator.generate(PROMPTS, sampler="top_k", k=5, seed=3,
                                                      max_length=16)))
            results[t] = mine
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    start = time.perf_counter()
    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"\nthreads: 8 x 21 generate calls on one Generator in "
          f"{time.perf_counter() - start:.1f} s")
    assert not errors, errors
    assert len(results) == 8
    for mine in results.values():
        for p, text in mine:
            assert text == (seeded if p == "seeded" else want[p])
