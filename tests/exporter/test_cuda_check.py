"""benchmarks/cuda_check.py, the GPU check of float16 `--optimize fused` artifacts: without
CUDA it stops with one line, and its dry run (CPU standing in for CUDA) goes through every
step: exports, IO-bound runs, the float16-vs-float32 comparison and the timings."""

import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "benchmarks", "cuda_check.py")


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(),
                    reason="this machine has CUDA")
def test_without_cuda_it_exits_with_one_line():
    done = subprocess.run([sys.executable, SCRIPT, "--models", "tiny_encoder"], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: CUDAExecutionProvider is not available"), done.stderr
    assert "--dry-run" in lines[0] and done.stdout == ""


def test_dry_run_checks_float16_fused_against_float32(tmp_path, capsys):
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    try:
        import cuda_check
    finally:
        sys.path.pop(0)
    code = cuda_check.main(["--dry-run", "--models", "tiny_encoder,tiny_causal_lm",
                            "--no-basic", "--repeats", "1", "--shapes", "1x16,3x32",
                            "--keep", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "dry run: CPUExecutionProvider stands in for CUDAExecutionProvider" in out
    assert out.count(" ok") == 2 * 2 and "FAILED" not in out
    assert '"model": 2' in out  # the encoder's two attention blocks were fused
    assert sorted(os.listdir(tmp_path)) == [
        "tiny_causal_lm_fp16_fused", "tiny_causal_lm_fp32_basic",
        "tiny_encoder_fp16_fused", "tiny_encoder_fp32_basic"]


def test_the_comparison_reads_real_tokens_only_and_fails_past_the_limits():
    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    try:
        import cuda_check
    finally:
        sys.path.pop(0)
    rng = np.random.default_rng(0)
    want = {"sequence_output": rng.normal(size=(2, 4, 8)).astype("float32")}
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], "int32")
    got = {"sequence_output": want["sequence_output"].astype("float16")}
    got["sequence_output"][1, 2:] = 100  # padding rows: not compared
    diff, cosine, passed = cuda_check.compare(want, got, mask, atol=5e-2, min_cosine=0.999)
    assert passed and diff < 5e-3 and cosine > 0.9999
    got["sequence_output"][1, 1, 0] += 0.5  # a real token off by 0.5
    diff, _, passed = cuda_check.compare(want, got, mask, atol=5e-2, min_cosine=0.999)
    assert not passed and diff == pytest.approx(0.5, abs=5e-3)
