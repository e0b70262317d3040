"""The README's fine-tuning script runs as written (offline, with its locally built preset)."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_fine_tune_snippet_runs(tmp_path):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        section = f.read().split("## Fine-tune with LoRA", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    (tmp_path / "snippet.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "snippet.py"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max abs diff Keras vs ONNX Runtime" in result.stdout
    assert (tmp_path / "artifacts" / "my_classifier" / "model.onnx").is_file()
    assert (tmp_path / "my_adapter.lora.h5").is_file()
