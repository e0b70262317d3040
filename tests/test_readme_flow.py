"""The README's main command and the command after it, run as written, in order, in a fresh
working directory, with the preset served from a kagglehub cache laid out as kagglehub 0.4.3
writes it (models/<owner>/<model>/<framework>/<variation>/<version>/ and the
<version>.complete marker beside it) and holding the files keras-hub's save_to_preset writes
(config.json, model.weights.h5, task.json naming DistilBertMaskedLM, task.weights.h5,
preprocessor.json, tokenizer.json, assets/)."""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESET = "distil_bert_base_en_uncased"


def readme_main_commands():
    """The shell lines of the bash block under "## The main command", comments dropped."""
    text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    section = text.split("## The main command", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def kagglehub_cache(root, preset_dir):
    """`root` laid out as kagglehub caches the built-in preset's Kaggle handle."""
    from model_defs.preset import builtin_presets

    handle = builtin_presets()[PRESET]["kaggle_handle"][len("kaggle://"):]
    owner, model, framework, variation, version = handle.split("/")
    parent = os.path.join(root, "models", owner, model, framework, variation)
    shutil.copytree(preset_dir, os.path.join(parent, version))
    open(os.path.join(parent, f"{version}.complete"), "w").close()
    return root


def run(line, cwd, env):
    argv = shlex.split(line)
    assert argv[0] == "python", line
    return subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_readme_main_command_then_fill_mask(keras_hub_presets, tmp_path):
    commands = readme_main_commands()
    assert commands == [
        f"python -m exporter --preset {PRESET}",
        f'python -m runtime fill-mask artifacts/{PRESET} "Paris is the [MASK] of France."']
    held = set(os.listdir(keras_hub_presets["distil_bert"]))
    assert {"config.json", "model.weights.h5", "task.json", "task.weights.h5",
            "preprocessor.json", "tokenizer.json", "assets"} <= held
    cache = kagglehub_cache(str(tmp_path / "kaggle"), keras_hub_presets["distil_bert"])
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "KAGGLEHUB_CACHE": cache,
           "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]),
           # Any network attempt fails at once instead of hanging: the cache must serve.
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
           "NO_PROXY": "", "HF_HUB_OFFLINE": "1"}

    export = run(commands[0], work, env)
    assert export.returncode == 0, export.stderr
    # The last line says the task and gives the README's next command.
    last = export.stdout.strip().splitlines()[-1]
    assert "masked_lm" in last and last.endswith(commands[1]), export.stdout

    fill = run(commands[1], work, env)
    assert fill.returncode == 0, fill.stderr
    candidates = fill.stdout.strip().split(" | ")
    assert len(fill.stdout.strip().splitlines()) == 1 and len(candidates) == 5
    for candidate in candidates:  # "token 0.123"
        token, score = candidate.rsplit(" ", 1)
        assert token and 0.0 <= float(score) <= 1.0


@pytest.fixture
def bare_backbone_cache(keras_hub_presets, tmp_path):
    """The same preset without its task files: a backbone-only keras-hub preset."""
    bare = shutil.copytree(keras_hub_presets["distil_bert"], tmp_path / "bare")
    os.remove(bare / "task.json")
    os.remove(bare / "task.weights.h5")
    return kagglehub_cache(str(tmp_path / "kaggle"), str(bare))


def test_backbone_only_preset_says_what_it_wrote_and_how_to_serve_it(bare_backbone_cache,
                                                                      tmp_path):
    env = {**os.environ, "KAGGLEHUB_CACHE": bare_backbone_cache,
           "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")]),
           "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    export = run(f"python -m exporter --preset {PRESET}", tmp_path, env)
    assert export.returncode == 0, export.stderr
    assert "holds a bare backbone" in export.stderr
    last = export.stdout.strip().splitlines()[-1]
    assert last.startswith("task backbone; serve it: python -m runtime encode "
                           f"artifacts/{PRESET} "), last
    served = run(last.split("serve it: ", 1)[1], tmp_path, env)
    assert served.returncode == 0, served.stderr
    assert served.stdout.strip().endswith("(32 dims)")
