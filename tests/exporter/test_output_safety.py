"""Nothing the project writes loses a user's file (issue 8, items 1-4, 9 and 11).

Presets are written as keras-hub writes them (files added, nothing deleted, files replaced
only inside a keras-hub preset); artifacts replace only an artifact of ours holding nothing
else, checked again at the swap; crashes (kill -9 at every stage, real processes) and
signals leave a whole artifact, old or new, and the next run removes the leftovers.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from exporter import export as export_module
from exporter.export import ExportError, export_preset
from model_defs import BertBackbone, BertTokenizer
from runtime.artifact import Artifact
from tests.conftest import TINY

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGED_FOLDER = os.path.join(REPO, "model_defs", "staged_folder.py")


def tree(folder):
    """{relative path: sha256} of every file under `folder`."""
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(".tmp-") or ".old-" in n]


def small_backbone():
    return BertBackbone(vocabulary_size=40, **TINY)


# -- 1. save_to_preset deletes nothing and replaces only a preset's own files ---------------
def test_save_to_preset_keeps_the_files_of_a_project_folder(tmp_path):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "README.md").write_text("my notes")
    (project / "data" / "train.csv").write_text("text,label\n")
    before = tree(project)
    small_backbone().save_to_preset(project)
    after = tree(project)
    assert {k: after[k] for k in before} == before
    assert {"config.json", "model.weights.h5", "metadata.json"} <= set(after)
    assert BertBackbone.from_preset(str(project)).count_params() > 0
    assert leftovers(tmp_path) == []


def test_save_to_preset_never_replaces_a_transformers_checkpoint(hf_checkpoints, tmp_path):
    copy = shutil.copytree(hf_checkpoints["bert"], tmp_path / "checkpoint")
    (copy / "tokenizer.json").write_text('{"version": "1.0", "model": {}}')  # HF's own
    before = tree(copy)
    with pytest.raises(FileExistsError, match="not a keras-hub preset"):
        small_backbone().save_to_preset(copy)
    vocab = [line.strip() for line in open(copy / "vocab.txt", encoding="utf-8")][:200]
    with pytest.raises(FileExistsError, match="not a keras-hub preset"):
        BertTokenizer(vocabulary=vocab).save_to_preset(copy)
    assert tree(copy) == before
    assert leftovers(tmp_path) == []


def test_save_to_preset_updates_its_own_preset_and_keeps_other_files(tmp_path):
    preset = tmp_path / "preset"
    first = small_backbone()
    first.save_to_preset(preset)
    (preset / "notes.txt").write_text("keep me")
    second = small_backbone()
    second.save_to_preset(preset)  # a keras-hub preset: its own files may be replaced
    assert (preset / "notes.txt").read_text() == "keep me"
    loaded = BertBackbone.from_preset(str(preset))
    assert all((a.numpy() == b.numpy()).all() for a, b in zip(loaded.weights, second.weights))
    assert leftovers(tmp_path) == []


def test_save_to_preset_never_writes_through_a_linked_subfolder(tmp_path):
    preset = tmp_path / "preset"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
    BertTokenizer(vocabulary=vocab).save_to_preset(preset)
    outside = tmp_path / "outside"
    shutil.move(preset / "assets", outside)
    os.symlink(outside, preset / "assets")  # assets -> a folder outside the preset
    before = tree(outside)
    with pytest.raises(FileExistsError, match="outside the preset"):
        BertTokenizer(vocabulary=vocab + ["c"]).save_to_preset(preset)
    assert tree(outside) == before


# -- 2. --overwrite replaces only an artifact of ours, holding only what it wrote -----------
def test_overwrite_refuses_a_folder_whose_manifest_is_not_ours(keras_hub_presets, tmp_path):
    webapp = tmp_path / "webapp"
    (webapp / "src").mkdir(parents=True)
    (webapp / "manifest.json").write_text('{"name": "app"}')
    (webapp / "index.html").write_text("<html></html>")
    (webapp / "src" / "app.js").write_text("console.log(1)")
    before = tree(webapp)
    with pytest.raises(FileExistsError, match="not an artifact this exporter wrote"):
        export_preset(keras_hub_presets["bert"], output=str(webapp), overwrite=True)
    assert tree(webapp) == before


def test_overwrite_refuses_an_artifact_that_holds_a_users_file(keras_hub_presets, tmp_path):
    out = tmp_path / "out"
    export_preset(keras_hub_presets["bert"], output=str(out))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        export_preset(keras_hub_presets["bert"], output=str(out), overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    os.remove(out / "notes.txt")
    manifest = export_preset(keras_hub_presets["bert"], output=str(out), overwrite=True)
    assert manifest["format"] == "hubonnx-artifact"
    Artifact(out, verify="sha256")
    assert leftovers(tmp_path) == []


# -- 3. checked again at the swap ------------------------------------------------------------
def test_a_folder_created_during_the_export_is_kept(keras_hub_presets, tmp_path, monkeypatch):
    out = tmp_path / "out"
    convert = export_module.write_graph

    def racing_writer(*args, **kwargs):
        out.mkdir()  # another program writes there while we convert
        (out / "theirs.txt").write_text("theirs")
        return convert(*args, **kwargs)

    monkeypatch.setattr(export_module, "write_graph", racing_writer)
    with pytest.raises(ExportError, match="exists; pass --overwrite"):
        export_preset(keras_hub_presets["bert"], output=str(out))
    assert tree(out) == {"theirs.txt": hashlib.sha256(b"theirs").hexdigest()}
    assert leftovers(tmp_path) == []


def test_two_concurrent_exports_to_one_new_output(keras_hub_presets, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "exporter", "--preset", keras_hub_presets["bert"],
               "--output", str(out)]
    procs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert [line for line in loser.splitlines() if line.startswith("error:")] == [
        loser.strip().splitlines()[-1]]
    Artifact(out, verify="sha256")
    assert leftovers(tmp_path) == []


# -- 4. kill -9 at every stage, then the next run --------------------------------------------
# A light writer process (the StagedFolder module alone, no TensorFlow) replaces `old` by
# `new` and kills itself with SIGKILL at one stage of the write.
KILLED_WRITER = textwrap.dedent("""
    import importlib.util, os, shutil, signal, sys
    spec = importlib.util.spec_from_file_location("staged_folder", sys.argv[1])
    sf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sf)
    target, new, stage = sys.argv[2:5]
    die = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
    if stage == "before_swap":
        sf._exchange = die
    elif stage == "between_renames":
        sf._exchange = lambda a, b: False  # the fallback: two renames
        rename = os.rename
        def first_then_die(a, b):
            rename(a, b)
            die()
        os.rename = first_then_die
    elif stage == "after_swap":
        sf.StagedFolder._discard = die
    with sf.StagedFolder(target, may_replace=lambda path: None) as tmp:
        shutil.copytree(new, tmp, dirs_exist_ok=True)
        if stage == "writing":
            die()
""")


@pytest.fixture(scope="module")
def two_artifacts(keras_hub_presets, tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    export_preset(keras_hub_presets["bert"], output=str(root / "old"))
    export_preset(keras_hub_presets["distil_bert"], output=str(root / "new"))
    return root / "old", root / "new"


@pytest.mark.parametrize("stage", ["writing", "before_swap", "between_renames", "after_swap"])
def test_kill_9_at_each_stage_leaves_a_whole_artifact(stage, two_artifacts, tmp_path,
                                                       keras_hub_presets):
    old, new = two_artifacts
    out = tmp_path / "out"
    shutil.copytree(old, out)
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, STAGED_FOLDER, str(out),
                           str(new), stage], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert leftovers(tmp_path), "the killed writer should have left its staging folder"
    if stage != "between_renames":  # the only window where the target is briefly away
        assert tree(out) in (tree(old), tree(new))
    # The next run recovers first (the old artifact comes back if the crash took it away),
    # refuses (no --overwrite) without touching it, and removes the dead writer's folder.
    with pytest.raises(ExportError, match="--overwrite"):
        export_preset(keras_hub_presets["bert"], output=str(out))
    assert tree(out) in (tree(old), tree(new))
    Artifact(out, verify="sha256")
    assert leftovers(tmp_path) == []


def test_a_live_writers_staging_folder_is_not_touched(tmp_path):
    """Leftover cleaning takes only folders whose writer is gone (its lock is free)."""
    out = tmp_path / "out"
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import importlib.util, sys, time
        spec = importlib.util.spec_from_file_location("staged_folder", sys.argv[1])
        sf = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sf)
        with sf.StagedFolder(sys.argv[2]) as tmp:
            print("writing", flush=True)
            time.sleep(30)
        """), STAGED_FOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        from model_defs.staged_folder import StagedFolder

        with pytest.raises(RuntimeError), StagedFolder(out):
            raise RuntimeError  # a second writer starts (recovering leftovers) and fails
        assert len(leftovers(tmp_path)) == 1  # the live writer's folder is still there
    finally:
        writer.kill()
        writer.wait()
    (tmp_path / ".tmp-out-unrelated").mkdir()  # not ours: no marker, never touched
    with StagedFolder(out) as tmp:
        (open(os.path.join(tmp, "x"), "w")).close()
    assert leftovers(tmp_path) == [".tmp-out-unrelated"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_export_cleans_up_in_one_line(signum, keras_hub_presets,
                                                          tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--preset",
                             keras_hub_presets["bert"], "--output", str(out)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not leftovers(tmp_path) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)  # wait for the staging folder: the conversion has begun
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"error: interrupted by {signal.Signals(signum).name}")
    assert sum(line.startswith("error:") for line in lines) == 1
    assert not out.exists() and leftovers(tmp_path) == []


# -- 9, 11: bad options refused before any work; no empty folders; the user's umask ---------
@pytest.mark.parametrize("atol", [float("inf"), float("nan"), -1.0])
def test_atol_must_be_finite(atol, keras_hub_presets, tmp_path):
    with pytest.raises(ExportError, match="--atol must be a finite number"):
        export_preset(keras_hub_presets["bert"], output=str(tmp_path / "o"), atol=atol)
    assert not (tmp_path / "o").exists()


def test_bad_output_is_refused_before_the_model_loads(keras_hub_presets, tmp_path,
                                                      monkeypatch):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(export_module, "load_model", no_loading)
    with pytest.raises(FileExistsError, match="not an artifact"):
        export_preset(keras_hub_presets["bert"], output=str(tmp_path / "mine"),
                      overwrite=True)


def test_failed_export_leaves_no_empty_parent_folders(keras_hub_presets, tmp_path):
    from exporter.validate import ValidationError

    with pytest.raises(ValidationError):
        export_preset(keras_hub_presets["bert"], output=str(tmp_path / "a" / "b" / "o"),
                      atol=1e-12)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_artifact_folders_get_the_users_umask(umask, keras_hub_presets, tmp_path):
    previous = os.umask(umask)
    try:
        export_preset(keras_hub_presets["bert"], output=str(tmp_path / "o"))
    finally:
        os.umask(previous)
    for folder in (tmp_path / "o", tmp_path / "o" / "tokenizer"):
        assert os.stat(folder).st_mode & 0o777 == 0o777 & ~umask
    assert os.stat(tmp_path / "o" / "manifest.json").st_mode & 0o777 == 0o666 & ~umask


def test_manifest_is_strict_json(keras_hub_presets, tmp_path):
    export_preset(keras_hub_presets["bert"], output=str(tmp_path / "o"))
    text = (tmp_path / "o" / "manifest.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
