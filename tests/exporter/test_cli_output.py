"""The exporter's output is for people: no TensorFlow start-up lines (absl, oneDNN, cudart,
cpu_feature_guard) unless --verbose, `--help` without importing TensorFlow, progress as
`[export] ...` lines on stderr, and the result with its serve command last on stdout."""

import os
import re
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# TensorFlow's CUDA lines ("Could not find cuda drivers", cudart stubs), not the word CUDA
# itself: --help names the CUDA provider.
NOISE = re.compile(r"oneDNN|cuda driver|cudart|cuInit|absl|^[IWEF]\d{4} |tensorflow/core"
                   r"|cpu_feature_guard|rebuild TensorFlow", re.I)


def exporter(*args):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def noise(text):
    return [line for line in text.splitlines() if NOISE.search(line)]


def test_help_imports_no_tensorflow():
    code = textwrap.dedent("""
        import runpy, sys
        sys.argv = ["exporter", "--help"]
        try:
            runpy.run_module("exporter", run_name="__main__")
        except SystemExit:
            pass
        print("tensorflow" in sys.modules, "keras" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True)
    assert result.stdout.strip().splitlines()[-1] == "False False", result.stderr
    shown = exporter("--help")
    assert shown.returncode == 0 and "--verbose" in shown.stdout
    assert noise(shown.stdout + shown.stderr) == []


def test_list_presets_is_quiet_unless_verbose():
    listed = exporter("--list-presets")
    assert listed.returncode == 0, listed.stderr
    assert noise(listed.stdout) == [] and noise(listed.stderr) == [], listed.stderr
    assert listed.stderr == ""
    assert "all_minilm_l6_v2_en" in listed.stdout
    verbose = exporter("--list-presets", "--verbose")
    assert verbose.returncode == 0 and verbose.stdout == listed.stdout
    assert noise(verbose.stderr), "--verbose shows TensorFlow's own lines"


def test_export_shows_progress_and_ends_with_the_serve_command(keras_hub_presets, tmp_path):
    out = str(tmp_path / "artifact")
    result = exporter("--preset", keras_hub_presets["distil_bert"], "--output", out)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert [line for line in lines if not line.startswith("[export] ")] == [], result.stderr
    steps = " ".join(lines)
    for step in ("loading", "converting to ONNX", "validated against Keras", "writing",
                 f"wrote {out}"):
        assert step in steps, result.stderr
    shown = result.stdout.strip().splitlines()
    assert len(shown) == 2 and shown[0].startswith("exported ") and out in shown[0]
    assert shown[1] == (f'task masked_lm; serve it: python -m runtime fill-mask {out} '
                        '"Paris is the [MASK] of France."')


def test_errors_stay_one_line(tmp_path):
    result = exporter("--preset", str(tmp_path / "missing"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert noise(result.stderr) == []
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
