"""Hostile-but-realistic artifacts and inputs (issue 8, runtime part): manifest paths stay
inside the artifact (5), files are hashed at load (7), token ids are checked before any
cast (8), sampler and stop-id arguments are checked (9), a malformed manifest.json is one
ArtifactError line, also under fuzzing (10), and the small CLI messages (11).

Each case runs through the Python API and the CLI (`runtime.__main__.main`, in process):
one `error:` line on stderr, exit 2."""

import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "model_defs"))
from test_bart_helpers import keras_hub_bart  # noqa: E402

from runtime import samplers  # noqa: E402
from runtime.__main__ import main  # noqa: E402
from runtime.artifact import Artifact, ArtifactError  # noqa: E402
from runtime.encoder import Encoder  # noqa: E402
from runtime.fill_mask import FillMask  # noqa: E402
from runtime.generator import Generator  # noqa: E402
from runtime.hashing import sha256  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MASKED = "Paris is the [MASK] of France."


@pytest.fixture(scope="module")
def artifacts(keras_hub_presets, tmp_path_factory):
    """{"masked_lm": tiny BERT fill-mask artifact, "backbone": tiny DistilBERT backbone,
    "seq2seq_lm": tiny BART}."""
    from exporter.export import export_preset

    root = tmp_path_factory.mktemp("hardening")
    out = {"masked_lm": str(root / "masked_lm"), "backbone": str(root / "backbone"),
           "seq2seq_lm": str(root / "seq2seq_lm")}
    export_preset(keras_hub_presets["bert"], task="masked_lm", output=out["masked_lm"])
    export_preset(keras_hub_presets["distil_bert"], task="backbone", output=out["backbone"])
    keras_hub_bart(root / "bart_preset")
    export_preset(str(root / "bart_preset"), output=out["seq2seq_lm"])
    return out


@pytest.fixture(scope="module")
def generator(artifacts):
    return Generator(artifacts["seq2seq_lm"])


def copy(folder, dest, edit=None):
    """A copy of an artifact folder, its manifest passed through `edit` (which may return
    a replacement)."""
    out = shutil.copytree(folder, dest)
    if edit is not None:
        path = out / "manifest.json"
        manifest = json.loads(path.read_text())
        replaced = edit(manifest)
        path.write_text(json.dumps(manifest if replaced is None else replaced))
    return str(out)


def cli(capsys, *argv):
    """(exit code, stdout, stderr) of the runtime CLI run in process."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code, err, *words):
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err


def assert_one_line(excinfo, *words):
    message = str(excinfo.value)
    assert "\n" not in message and message
    for word in words:
        assert word in message, message


# -- 5: every path a manifest names stays inside the artifact ---------------------------
def _tokenizer_in_etc(m):
    m["tokenizer"]["directory"] = "/etc"
    m["tokenizer"]["files"] = {"vocabulary": "passwd"}


def _outside_file_listed(m, outside):
    m["files"]["../outside.onnx"] = {"bytes": os.path.getsize(outside),
                                     "sha256": sha256(outside)}


TAMPERS = {
    "tokenizer directory /etc": lambda m, outside: _tokenizer_in_etc(m),
    "tokenizer directory ..": lambda m, outside: m["tokenizer"].update(directory=".."),
    "tokenizer file ../x": lambda m, outside: m["tokenizer"].update(
        files={"vocabulary": "../../outside.onnx"}),
    "graph file ../../x.onnx": lambda m, outside: m["graphs"]["model"].update(
        file="../../outside.onnx"),
    "absolute graph file": lambda m, outside: m["graphs"]["model"].update(file=outside),
    "files entry outside": _outside_file_listed,
    "absolute files entry": lambda m, outside: m["files"].update(
        {"/etc/hostname": {"bytes": 1, "sha256": "0" * 64}}),
}


@pytest.mark.parametrize("tamper", sorted(TAMPERS))
def test_manifest_paths_must_stay_inside_the_artifact(artifacts, tmp_path, capsys, tamper):
    # A real graph two levels up, so a path that escapes would load and serve.
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    outside = str(tmp_path / "a" / "outside.onnx")
    shutil.copy(os.path.join(artifacts["masked_lm"], "model.onnx"), outside)
    folder = copy(artifacts["masked_lm"], nested / "art",
                  edit=lambda m: TAMPERS[tamper](m, outside))
    with pytest.raises(ArtifactError) as info:
        FillMask(folder)("Paris is the [MASK] of France.")
    assert_one_line(info, "manifest.json", "refusing the artifact")
    code, out, err = cli(capsys, "fill-mask", folder, MASKED)
    assert_one_error_line(code, err, "refusing the artifact")
    assert out == ""


def test_symlinks_leading_out_are_refused(artifacts, tmp_path, capsys):
    """Same bytes, same manifest: only the link target is outside. A link that stays
    inside is fine."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for name, target in (("model.onnx", "model.onnx"),
                         ("vocabulary", "tokenizer/vocabulary.txt")):
        folder = copy(artifacts["masked_lm"], tmp_path / f"art_{name}")
        real = os.path.join(folder, target)
        moved = shutil.move(real, outside / os.path.basename(target))
        os.symlink(moved, real)
        with pytest.raises(ArtifactError) as info:
            Artifact(folder)
        assert_one_line(info, "outside the artifact", "symlink")
        code, _, err = cli(capsys, "fill-mask", folder, MASKED)
        assert_one_error_line(code, err, "outside the artifact")
    # the tokenizer folder as a link to another folder inside the artifact
    folder = copy(artifacts["masked_lm"], tmp_path / "inside")
    os.rename(os.path.join(folder, "tokenizer"), os.path.join(folder, "assets"))
    os.symlink("assets", os.path.join(folder, "tokenizer"))
    assert FillMask(folder)(MASKED, top_k=1)


def test_files_outside_are_never_served(artifacts, tmp_path):
    """The reported attack through the real `python -m runtime` process: a tokenizer
    directory outside the artifact (/etc, or a folder of secrets that reads as a valid
    vocabulary, which today's code served token by token)."""
    secret = tmp_path / "secret"
    secret.mkdir()
    vocab = open(os.path.join(artifacts["masked_lm"], "tokenizer", "vocabulary.txt"),
                 encoding="utf-8").read().splitlines()
    lines = [t if t.startswith("[") else f"secret{i}" for i, t in enumerate(vocab)]
    (secret / "vocabulary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, edit in (("secret", lambda m: m["tokenizer"].update(directory=str(secret))),
                       ("etc", _tokenizer_in_etc)):
        folder = copy(artifacts["masked_lm"], tmp_path / f"art_{name}", edit=edit)
        result = subprocess.run([sys.executable, "-m", "runtime", "fill-mask", folder,
                                 MASKED], cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 2, result.stdout
        assert result.stdout == ""
        assert "secret" not in result.stderr.replace(str(secret), "")
        assert "root:" not in result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


# -- 7: --verify, sha256 by default for small artifacts ---------------------------------
def _flip_a_weight_byte(folder):
    path = os.path.join(folder, "model.onnx")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0x01  # inside the embedding table: still a valid graph
    open(path, "wb").write(bytes(data))


def test_flipped_byte_is_refused_by_default_and_by_sha256(artifacts, tmp_path, capsys,
                                                         monkeypatch):
    folder = copy(artifacts["masked_lm"], tmp_path / "art")
    _flip_a_weight_byte(folder)
    with pytest.raises(ArtifactError) as info:
        Artifact(folder)
    assert_one_line(info, "model.onnx", "sha256")
    with pytest.raises(ArtifactError, match="sha256"):
        FillMask(folder)
    assert Artifact(folder, verify="size").verified == "size"
    assert Artifact(folder, verify="none").verified == "none"
    for extra in ([], ["--verify", "sha256"]):
        code, out, err = cli(capsys, "fill-mask", folder, MASKED, *extra)
        assert_one_error_line(code, err, "sha256")
        assert out == ""
    code, out, _ = cli(capsys, "fill-mask", folder, MASKED, "--verify", "size")
    assert code == 0 and out
    # above the threshold, "auto" checks sizes only (hashing every load would cost)
    monkeypatch.setattr("runtime.artifact.AUTO_SHA256_BYTES", 1000)
    assert Artifact(folder).verified == "size"


def test_unknown_verify_mode_is_refused(artifacts, capsys):
    for make in (lambda: Artifact(artifacts["backbone"], verify="md5"),
                 lambda: Encoder(artifacts["backbone"], verify="md5")):
        with pytest.raises(ValueError) as info:
            make()
        assert_one_line(info, "md5", "sha256")
    for command, folder in (("encode", "backbone"), ("fill-mask", "masked_lm"),
                            ("generate", "seq2seq_lm")):
        with pytest.raises(SystemExit) as exit_info:
            main([command, artifacts[folder], "x", "--verify", "md5"])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: argument --verify") and err.count("\n") == 1
    code, out, _ = cli(capsys, "encode", artifacts["backbone"], "a", "--verify", "sha256")
    assert code == 0 and "dims" in out


# -- 8: token ids: dtype and range before any cast ---------------------------------------
BAD_IDS = [
    ([[101, 2**32 + 2023, 102]], "4294969319"),
    ([[101, 2**64, 102]], "too large"),
    ([[101, 3.5, 102]], "floats"),
    (np.array([[101.0, 2023.0, 102.0]]), "floats"),
    ([[True, False]], "booleans"),
    ([[101, -1, 102]], "-1"),
]


@pytest.mark.parametrize("ids, words", BAD_IDS)
def test_encoder_token_ids_are_checked_before_the_cast(artifacts, ids, words):
    encoder = Encoder(artifacts["backbone"])
    with pytest.raises(ArtifactError) as info:
        encoder.embed(token_ids=ids)
    assert_one_line(info, "token_ids", words)
    # the same through Artifact.run, which every pipeline uses
    feeds = {"token_ids": ids, "padding_mask": np.ones((1, len(ids[0])), "int32")}
    with pytest.raises(ArtifactError) as info:
        encoder.artifact.run("model", feeds)
    assert_one_line(info, "token_ids")


def test_other_integer_feeds_are_checked_before_the_cast(artifacts):
    """mask_positions 2**32 + 1 must not wrap to 1; a float mask must not truncate."""
    artifact = Artifact(artifacts["masked_lm"])
    feeds = {"token_ids": np.array([[101, 103, 102]]), "segment_ids": np.zeros((1, 3), int),
             "padding_mask": np.ones((1, 3), int), "mask_positions": np.array([[2**32 + 1]])}
    with pytest.raises(ArtifactError) as info:
        artifact.run("model", feeds)
    assert_one_line(info, "mask_positions", str(2**32 + 1))
    feeds["mask_positions"] = np.array([[1.5]])
    with pytest.raises(ArtifactError, match="mask_positions must be integers"):
        artifact.run("model", feeds)
    feeds["mask_positions"] = np.array([[1]])
    assert artifact.run("model", feeds)["logits"].shape == (1, 1, 30522)


@pytest.mark.parametrize("bad, words", [(2**32 + 5, "4294967301"), (5.5, "floats")])
def test_generator_token_ids_are_checked_before_the_cast(generator, bad, words):
    x = {"encoder_token_ids": [[0, bad, 2]], "encoder_padding_mask": [[1, 1, 1]],
         "decoder_token_ids": [[2, 0, 1, 1]], "decoder_padding_mask": [[1, 1, 0, 0]]}
    with pytest.raises(ArtifactError) as info:
        generator.generate(x, sampler="greedy")
    assert_one_line(info, "encoder_token_ids", words)


# -- 9: sampler arguments and stop ids ---------------------------------------------------
@pytest.mark.parametrize("make, words", [
    (lambda: samplers.BeamSampler(num_beams=2.5), "num_beams must be an integer"),
    (lambda: samplers.BeamSampler(num_beams=True), "num_beams must be an integer"),
    (lambda: samplers.BeamSampler(num_beams=0), "num_beams must be >= 1"),
    (lambda: samplers.BeamSampler(return_all_beams="yes"), "return_all_beams"),
    (lambda: samplers.TopKSampler(k=1.5), "k must be an integer"),
    (lambda: samplers.TopKSampler(k=0), "k must be >= 1"),
    (lambda: samplers.TopKSampler(k="5"), "k must be an integer"),
    (lambda: samplers.TopPSampler(p=0), "p must be in (0, 1]"),
    (lambda: samplers.TopPSampler(p=1.5), "p must be in (0, 1]"),
    (lambda: samplers.TopPSampler(p=float("nan")), "p must be a finite number"),
    (lambda: samplers.TopPSampler(p="0.5"), "p must be a finite number"),
    (lambda: samplers.TopPSampler(k=2.5), "k must be an integer"),
    (lambda: samplers.GreedySampler(temperature=0), "temperature must be > 0"),
    (lambda: samplers.GreedySampler(temperature=-1.0), "temperature must be > 0"),
    (lambda: samplers.TopKSampler(temperature=float("inf")), "temperature must be a finite"),
    (lambda: samplers.TopKSampler(temperature=float("nan")), "temperature must be a finite"),
    (lambda: samplers.RandomSampler(temperature=True), "temperature must be a finite"),
    (lambda: samplers.RandomSampler(seed=-1), "seed must be a non-negative integer"),
    (lambda: samplers.TopKSampler(seed=1.5), "seed must be a non-negative integer"),
    (lambda: samplers.TopPSampler(seed=True), "seed must be a non-negative integer"),
    (lambda: samplers.get({"class_name": "top_k", "config": {"k": 1.5}}), "k must be"),
])
def test_sampler_arguments_are_checked(make, words):
    with pytest.raises(ValueError) as info:
        make()
    assert_one_line(info, words)


def test_valid_sampler_arguments_still_work():
    assert samplers.TopKSampler(k=np.int64(3), seed=np.int32(1)).k == 3
    assert samplers.TopPSampler(p=1, k=None, temperature=np.float32(0.5)).p == 1
    assert samplers.BeamSampler(num_beams=1, return_all_beams=True).num_beams == 1
    assert samplers.RandomSampler(seed=0, temperature=2).seed == 0


@pytest.mark.parametrize("kwargs, words", [
    (dict(num_beams=2.5), "num_beams must be an integer"),
    (dict(sampler="top_k", k=1.5), "k must be an integer"),
    (dict(sampler="top_p", p=0.0), "p must be in (0, 1]"),
    (dict(sampler="top_k", temperature=0), "temperature must be > 0"),
    (dict(sampler="top_k", temperature=float("inf")), "temperature must be a finite"),
    (dict(sampler="greedy", stop_token_ids=[-1]), "-1 is not a token id"),
    (dict(sampler="greedy", stop_token_ids=[10**12]), "is not a token id"),
    (dict(sampler="greedy", stop_token_ids=[True]), "True is not a token id"),
    (dict(sampler="greedy", stop_token_ids=[2.0]), "2.0 is not a token id"),
    (dict(sampler="greedy", stop_token_ids=2.5), "must be 'auto', None or a list"),
    (dict(sampler="greedy", max_length=12.5), "max_length must be an int"),
    (dict(sampler="greedy", max_length="12"), "max_length must be an int"),
    (dict(sampler="top_k", seed=-1), "seed must be a non-negative integer"),
])
def test_generator_refuses_bad_arguments(generator, kwargs, words):
    with pytest.raises((ValueError, TypeError)) as info:
        generator.generate("The quick brown fox.", **kwargs)
    assert_one_line(info, words)


@pytest.mark.parametrize("argv, words", [
    (["--num-beams", "2.5"], "--num-beams"),
    (["--k", "1.5"], "--k"),
    (["--sampler", "top_p", "--p", "0"], "p must be in (0, 1]"),
    (["--temperature", "inf"], "temperature must be a finite"),
    (["--max-length", "12.5"], "--max-length"),
    (["--seed", "-1"], "--seed"),
])
def test_generate_cli_refuses_bad_arguments(artifacts, capsys, argv, words):
    try:
        code = main(["generate", artifacts["seq2seq_lm"], "The quick brown fox.", *argv])
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    assert_one_error_line(code, capsys.readouterr().err, words)


# -- 10: malformed manifest.json ---------------------------------------------------------
def _graph_inputs(value):
    return lambda m: m["graphs"]["model"].update(inputs=value)


MALFORMED = {
    "a number": lambda m: 7,
    "a list": lambda m: [m],
    "a string": lambda m: "manifest",
    "files a list": lambda m: m.update(files=list(m["files"])),
    "graphs a list": lambda m: m.update(graphs=[m["graphs"]["model"]]),
    "graphs empty": lambda m: m.update(graphs={}),
    "graph a string": lambda m: m["graphs"].update(model="model.onnx"),
    "graph without file": lambda m: m["graphs"]["model"].pop("file"),
    "graph file a number": lambda m: m["graphs"]["model"].update(file=3),
    "inputs a string": _graph_inputs("token_ids"),
    "input a string": _graph_inputs(["token_ids"]),
    "input name a number": _graph_inputs([{"name": 3, "dtype": "int32"}]),
    "input dtype bogus": _graph_inputs([{"name": "token_ids", "dtype": "int33"}]),
    "format_version true": lambda m: m.update(format_version=True),
    "format_version 2": lambda m: m.update(format_version=2),
    "task a list": lambda m: m.update(task=["masked_lm"]),
    "file bytes a string": lambda m: m["files"]["model.onnx"].update(bytes="12"),
    "file sha256 short": lambda m: m["files"]["model.onnx"].update(sha256="abc"),
    "file entry a number": lambda m: m["files"].update({"model.onnx": 5}),
    "config a list": lambda m: m.update(config=[1]),
    "vocabulary_size a string": lambda m: m["model"].update(vocabulary_size="30522"),
    "tokenizer a list": lambda m: m.update(tokenizer=["word_piece"]),
    "tokenizer files a list": lambda m: m["tokenizer"].update(files=["vocabulary.txt"]),
    "special token a string": lambda m: m["tokenizer"]["special_tokens"].update(
        mask_token_id="103"),
    "packing a list": lambda m: m["tokenizer"].update(packing=[]),
    "packing id a string": lambda m: m["tokenizer"]["packing"].update(start_token_id="101"),
    "packing id out of range": lambda m: m["tokenizer"]["packing"].update(
        mask_token_id=10**9),
    "packing without mask": lambda m: m["tokenizer"]["packing"].pop("mask_token_id"),
    "packing truncate bogus": lambda m: m["tokenizer"]["packing"].update(truncate="middle"),
    "packing length a float": lambda m: m["tokenizer"]["packing"].update(
        sequence_length=64.5),
    "tokenizer type unknown": lambda m: m["tokenizer"].update(type="magic"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_manifest_is_one_line(artifacts, tmp_path, capsys, case):
    folder = copy(artifacts["masked_lm"], tmp_path / "art", edit=MALFORMED[case])
    with pytest.raises(ArtifactError) as info:
        FillMask(folder)(MASKED)
    assert_one_line(info, "manifest.json" if case != "tokenizer type unknown" else "magic")
    code, out, err = cli(capsys, "fill-mask", folder, MASKED)
    assert_one_error_line(code, err)
    assert out == ""


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage", b"[" * 100_000, b"{", b"",
                                     b"null", b"NaN"])
def test_manifest_that_is_not_json_or_not_an_object(artifacts, tmp_path, capsys, content):
    folder = copy(artifacts["masked_lm"], tmp_path / "art")
    with open(os.path.join(folder, "manifest.json"), "wb") as f:
        f.write(content)
    with pytest.raises(ArtifactError) as info:
        Artifact(folder)
    assert_one_line(info, "manifest.json")
    code, _, err = cli(capsys, "fill-mask", folder, MASKED)
    assert_one_error_line(code, err, "manifest.json")


def test_malformed_generation_entries(artifacts, tmp_path):
    def heads(m):
        m["kv_cache"]["num_heads"] = "2"

    def max_length(m):
        m["generation"]["max_length"] = 12.5

    for i, edit in enumerate((heads, max_length)):
        folder = copy(artifacts["seq2seq_lm"], tmp_path / f"art{i}", edit=edit)
        with pytest.raises(ArtifactError) as info:
            Generator(folder)
        assert_one_line(info, "manifest.json")


# -- 10: fuzzing manifest.json -----------------------------------------------------------
def _paths(value, prefix=()):
    """Every path (tuple of keys/indices) to a subtree of a JSON value."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _replace(value, path, new):
    if not path:
        return new
    value[path[0]] = _replace(value[path[0]], path[1:], new)
    return value


def test_fuzzed_manifests_load_or_fail_in_one_line(artifacts, tmp_path_factory):
    """Random subtrees of a valid manifest replaced by random JSON: the artifact either
    serves fill-mask or refuses in one ArtifactError line, never another exception."""
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    folder = copy(artifacts["masked_lm"], tmp_path_factory.mktemp("fuzz") / "art")
    original = json.loads(open(os.path.join(folder, "manifest.json")).read())
    paths = list(_paths(original))
    scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
               | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
               | st.sampled_from(["..", "/etc", "/etc/passwd", "model.onnx", "int64",
                                  "tokenizer", "word_piece", "[MASK]"]))
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                          max_leaves=8)
    outcomes = {"served": 0, "refused": 0}

    @hypothesis.settings(max_examples=100, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(st.lists(st.tuples(st.sampled_from(paths), values), min_size=1,
                               max_size=3))
    def check(edits):
        manifest = json.loads(json.dumps(original))
        for path, new in edits:
            try:
                manifest = _replace(manifest, path, new)
            except (KeyError, IndexError, TypeError):  # an earlier edit removed the path
                pass
        with open(os.path.join(folder, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        try:
            fill = FillMask(folder)
        except ArtifactError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
            return
        try:
            fill(MASKED, top_k=2)
        except ValueError as e:  # e.g. a mask_token that no longer appears in the text
            assert "\n" not in str(e)
        outcomes["served"] += 1

    check()
    assert outcomes["refused"] > 0


@pytest.mark.parametrize("manifest", [7, [], {"format_version": 1, "task": "masked_lm",
                                              "graphs": {"model": {"file": "/etc/passwd",
                                                                   "inputs": []}},
                                              "files": {}},
                                      {"format_version": 1, "task": 3, "graphs": 4,
                                       "files": []}])
def test_cli_on_generated_manifests(artifacts, tmp_path, capsys, manifest):
    folder = copy(artifacts["masked_lm"], tmp_path / "art", edit=lambda m: manifest)
    for command in ("fill-mask", "encode", "classify", "generate"):
        code, out, err = cli(capsys, command, folder, MASKED)
        assert_one_error_line(code, err)
        assert out == ""


# -- 11: small messages ------------------------------------------------------------------
def test_cuda_without_a_gpu_warns_once(artifacts, caplog, monkeypatch):
    import onnxruntime as ort

    from runtime import session

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here")
    monkeypatch.setattr(session, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="runtime.session"):
        Generator(artifacts["seq2seq_lm"], device="cuda").generate("hi", max_length=6)
    warnings = [r for r in caplog.records if r.name == "runtime.session"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "no CUDAExecutionProvider" in warnings[0].getMessage()


def test_cuda_without_a_gpu_cli_prints_one_warning(artifacts):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here")
    result = subprocess.run([sys.executable, "-m", "runtime", "encode", artifacts["backbone"],
                             "hello", "--device", "cuda"], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("WARNING") == 1, result.stderr


def test_seed_error_names_the_option(artifacts, capsys):
    code, _, err = cli(capsys, "generate", artifacts["seq2seq_lm"], "hi", "--sampler",
                       "top_k", "--seed", "-1")
    assert_one_error_line(code, err, "--seed", "-1")


def test_decoder_prompt_error_names_the_real_limit(generator):
    limit = generator.max_position
    long_prompt = " ".join(["the quick brown fox"] * 20)
    for max_length in (None, limit):
        with pytest.raises(ValueError) as info:
            generator.generate({"encoder_text": "hi", "decoder_text": long_prompt},
                               max_length=max_length)
        assert_one_line(info, "leaves no room", f"{limit} decoder positions",
                        f"at most {limit - 1} tokens")
        assert "pass max_length >" not in str(info.value)
    # a prompt that fits the model still gets the max_length advice
    with pytest.raises(ValueError, match="pass max_length > "):
        generator.generate({"encoder_text": "hi", "decoder_text": "the quick brown fox"},
                           max_length=4)
