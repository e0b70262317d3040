"""`--quantize int8`: ONNX Runtime's quantizer types our graphs, every task quantizes
(per-channel int8 MatMul weights, kept as initializers), the quality gate passes a healthy
model and fails, writing nothing, past a limit; the runtime serves the artifacts as is."""

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from exporter.errors import ExportError, ValidationError
from exporter.export import export_model, export_preset
from exporter.quality_gate import GateLimits
from tests.fine_tune_helpers import (
    SENTENCES,
    keras_hub_classifier_preset,
    tiny_classifier,
    tiny_masked_lm,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Out of reach for any int8 graph: its outputs are never exactly the float ones.
UNREACHABLE = GateLimits(cosine_min=1.0)


def tiny(task):
    if task == "text_classifier":
        return tiny_classifier("distil_bert", num_classes=3)
    model = tiny_masked_lm("distil_bert")
    return model.backbone if task == "backbone" else model


def graph_facts(path):
    """(proto, op counts, initializers by name) of an ONNX file."""
    return graph_facts_of(onnx.load(path))


def graph_facts_of(proto):
    ops = {}
    for node in proto.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return proto, ops, {t.name: t for t in proto.graph.initializer}


def assert_int8_matmuls(path, hidden):
    """Every MatMulInteger reads an int8 initializer weight with one scale per column."""
    proto, ops, init = graph_facts(path)
    quantized = [n for n in proto.graph.node if n.op_type == "MatMulInteger"]
    assert quantized and ops.get("DynamicQuantizeLinear")
    for node in quantized:
        weight = init[node.input[1]]  # still an initializer, not a computed tensor
        assert weight.data_type == onnx.TensorProto.INT8
        zero_point = numpy_helper.to_array(init[node.input[3]])
        assert zero_point.shape == (weight.dims[1],) and not zero_point.any()  # symmetric
    return len(quantized)


def test_ort_quantizer_types_our_gelu(tmp_path):
    """Plain quantize_dynamic on our float graph: it failed ("Unable to find data type for
    weight_name=...feedforward_output_dense...") since shape inference cannot type the
    com.microsoft Gelu output; the exporter now writes that type into the graph."""
    from onnxruntime.quantization import quantize_dynamic

    export_model(tiny("backbone"), str(tmp_path / "f"))
    path = str(tmp_path / "f" / "model.onnx")
    proto = onnx.load(path)
    gelu = [n for n in proto.graph.node if n.op_type == "Gelu"]
    assert gelu and gelu[0].domain == "com.microsoft"
    typed = {v.name: v.type.tensor_type.elem_type for v in proto.graph.value_info}
    assert typed.get(gelu[0].output[0]) == onnx.TensorProto.FLOAT
    quantize_dynamic(path, str(tmp_path / "q.onnx"), per_channel=True)
    _, ops, _ = graph_facts(str(tmp_path / "q.onnx"))
    assert ops["MatMulInteger"] == 2 * 6  # q, k, v, attention output, FFN in and out


@pytest.mark.parametrize("task", ["backbone", "masked_lm", "text_classifier"])
def test_encoder_tasks_quantize_and_pass_the_gate(task, tmp_path):
    out = tmp_path / "int8"
    manifest = export_model(tiny(task), str(out), quantize="int8")
    validation = manifest["validation"]
    assert validation["method"] == "quality_gate" and validation["passed"]
    assert validation["limits"] == GateLimits().values()
    measured = validation["measured"]
    assert measured["cosine_mean"] >= 0.99 and measured["cosine_min"] >= 0.98
    if task != "backbone":
        assert measured["top1"] >= 0.9 and measured["top5"] == 1.0
    else:
        assert "top1" not in measured  # no logits
    block = manifest["quantization"]
    assert block["mode"] == "int8" and block["method"] == "dynamic"
    count = assert_int8_matmuls(str(out / "model.onnx"), 16)
    # 2 layers x 6 MatMuls (+ a head), all int8: a tiny random model has no outlier
    # channel to keep float (tests/exporter/test_outliers.py plants one).
    assert block["graphs"]["model"]["quantized_matmuls"] == count >= 12
    assert block["graphs"]["model"]["outlier_channels"] == 0
    sizes = block["graphs"]["model"]["initializer_bytes"]
    # Tiny: embeddings are much of it (and masked_lm's tied head gets an int8 copy).
    assert sizes["int8"] < 0.8 * sizes["float32"]
    assert manifest["graphs"]["model"]["inputs"][0]["dtype"] == "int32"  # same interface


def test_int8_file_is_much_smaller_where_matmuls_dominate(tmp_path):
    from model_defs import DistilBertBackbone

    model = DistilBertBackbone(vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=64,
                               intermediate_dim=256, max_sequence_length=32)
    sizes = {mode: export_model(model, str(tmp_path / str(mode)), quantize=mode)[
        "files"]["model.onnx"]["bytes"] for mode in (None, "int8")}
    # int8 kernels, float embeddings and graph, layer 0's FFN output projection float
    assert sizes["int8"] < 0.55 * sizes[None]


@pytest.mark.parametrize("task", ["backbone", "masked_lm", "text_classifier"])
def test_gate_out_of_reach_fails_and_writes_nothing(task, tmp_path):
    out = tmp_path / "int8"
    with pytest.raises(ValidationError, match=r"int8 quality gate: cosine min 0\.9\d+ < "
                                              r"--min-cosine 1"):
        export_model(tiny(task), str(out), quantize="int8", gate=UNREACHABLE)
    assert not out.exists() and os.listdir(tmp_path) == []


def test_top1_and_greedy_limits_are_enforced():
    """A healthy tiny model agrees on every pick, so no limit <= 1 fails it: feed the gate
    logits that disagree. A near-tie in Keras' logits counts as agreement."""
    gate = GateLimits(top1=0.99, cosine_mean=0, cosine_min=0).comparison()
    want = np.array([[3.0, 1.0, 0.0]] * 4)
    gate.add({"logits": want}, {"logits": want[:, ::-1].copy()})
    assert not gate.passed and "top-1 0 < --min-top1 0.99" in gate.failure()
    gate = GateLimits(greedy=0.5).comparison()
    tie = np.array([[3.0, 2.999, 0.0], [3.0, 1.0, 0.0]])
    assert not gate.greedy(tie, tie[:, [1, 0, 2]])  # neither row picks Keras' token...
    assert gate.greedy_tokens.mean == 0.5 and gate.passed  # ...but row 0 is a near-tie
    gate.greedy(want[:2], want[:2, ::-1])
    assert "greedy 0.25 < --min-greedy 0.5" in gate.failure()


def test_runtime_serves_int8_artifacts(tmp_path):
    from runtime.classifier import Classifier
    from runtime.encoder import Encoder
    from runtime.fill_mask import FillMask

    float_dir, int8_dir = tmp_path / "f", tmp_path / "q"
    model = tiny("backbone")
    export_model(model, str(float_dir))
    export_model(model, str(int8_dir), quantize="int8")
    ids = np.array([[2, 8, 9, 10, 3, 0]], "int32")
    mask = (ids > 0).astype("int32")
    a = Encoder(str(float_dir)).encode(token_ids=ids, padding_mask=mask)["sequence_output"]
    b = Encoder(str(int8_dir)).encode(token_ids=ids, padding_mask=mask)["sequence_output"]
    cos = np.sum(a * b) / (np.linalg.norm(a) * np.linalg.norm(b))
    assert cos > 0.99 and not np.allclose(a, b, atol=1e-5)  # int8, yet close

    export_model(tiny("masked_lm"), str(tmp_path / "mlm"), quantize="int8")
    filled = FillMask(str(tmp_path / "mlm"))(["the quick [MASK] fox."], top_k=2)
    assert len(filled[0][0]) == 2  # texts, masks, top_k
    export_model(tiny("text_classifier"), str(tmp_path / "cls"), quantize="int8")
    scores = Classifier(str(tmp_path / "cls")).scores(SENTENCES[:2])
    assert np.asarray(scores).shape == (2, 3)


def test_refusals_before_any_work(tmp_path):
    model = tiny("backbone")
    with pytest.raises(ExportError, match="--atol does not apply to --quantize int8"):
        export_model(model, str(tmp_path / "a"), quantize="int8", atol=1e-3)
    with pytest.raises(ExportError, match="--quantize int2 is not supported"):
        export_model(model, str(tmp_path / "a"), quantize="int2")
    with pytest.raises(ExportError, match="apply to --quantize exports only"):
        export_model(model, str(tmp_path / "a"), gate=GateLimits())
    with pytest.raises(ExportError, match=r"--min-top5 must be within \[0, 1\]"):
        GateLimits(top5=1.5)
    assert os.listdir(tmp_path) == []


def run_cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                          capture_output=True, text=True)


def test_cli_quantize_and_gate(tmp_path):
    preset = str(tmp_path / "preset")
    keras_hub_classifier_preset("bert", preset)
    out = str(tmp_path / "int8")
    failed = run_cli("exporter", "--preset", preset, "--output", out, "--quantize", "int8",
                     "--min-cosine-mean", "1")
    assert failed.returncode == 2, failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("error: int8 quality gate: cosine mean 0.9")
    refused = run_cli("exporter", "--preset", preset, "--output", out, "--quantize", "int4")
    assert refused.returncode == 2 and not os.path.exists(out), refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: --quantize int4 is for causal LMs (task causal_lm), not text_classifier; "
        "use --quantize int8")
    assert "--min-cosine-mean 1" in last and not os.path.exists(out)

    done = run_cli("exporter", "--preset", preset, "--output", out, "--quantize", "int8")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    assert manifest["quantization"]["mode"] == "int8" and manifest["validation"]["passed"]
    served = run_cli("runtime", "classify", out, "What a great film!")
    assert served.returncode == 0, served.stderr
    label, score, scores = served.stdout.split(maxsplit=2)  # "2 0.3530  [0.3209 ...]"
    assert int(label) in range(3) and scores.count(" ") == 2, served.stdout


@pytest.fixture(scope="module")
def bart_preset(tmp_path_factory):
    from tests.model_defs.test_bart_helpers import keras_hub_bart

    directory = tmp_path_factory.mktemp("bart") / "preset"
    keras_hub_bart(directory)
    return str(directory)


def test_seq2seq_quantizes_every_graph_and_generates(bart_preset, tmp_path):
    from runtime.generator import Generator

    out = tmp_path / "int8"
    manifest = export_preset(bart_preset, output=str(out), quantize="int8")
    validation = manifest["validation"]
    assert validation["method"] == "quality_gate" and validation["passed"]
    measured = validation["measured"]
    assert measured["greedy"] >= 0.9 and measured["top1"] >= 0.9
    assert set(validation["cosine_per_output"]) == {"encoder_hidden_states", "logits",
                                                    "present"}
    assert [c["steps"] for c in validation["cases"]] == [8, 8]
    for name, entry in manifest["graphs"].items():
        assert assert_int8_matmuls(str(out / entry["file"]), 16) >= 8, name
        assert manifest["quantization"]["graphs"][name]["quantized_matmuls"] >= 8
        # calibrated (the decoder on the float encoder's cross K/V): every MatMul input
        assert manifest["quantization"]["graphs"][name]["calibrated_inputs"] >= 2 * 3, name
    ids = Generator(str(out)).generate("The quick brown fox.", sampler="greedy",
                                       max_length=8)
    assert isinstance(ids, str)


def test_seq2seq_gate_out_of_reach_writes_nothing(bart_preset, tmp_path):
    out = tmp_path / "int8"
    with pytest.raises(ValidationError, match="int8 quality gate: cosine min"):
        export_preset(bart_preset, output=str(out), quantize="int8", gate=UNREACHABLE)
    assert os.listdir(tmp_path) == []


def test_causal_lm_quantizes_and_generates(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "tests", "model_defs"))  # as its own tests do
    from runtime.generator import Generator
    from tests.model_defs.test_gpt2_helpers import gpt2_bpe, keras_hub_gpt2

    vocab, merges, _, _ = gpt2_bpe(str(tmp_path / "bpe"))
    keras_hub_gpt2(str(tmp_path / "preset"), vocab, merges)
    out = tmp_path / "int8"
    manifest = export_preset(str(tmp_path / "preset"), output=str(out), quantize="int8")
    assert manifest["task"] == "causal_lm" and manifest["validation"]["passed"]
    assert manifest["validation"]["measured"]["greedy"] >= 0.9
    for name, entry in manifest["graphs"].items():
        # Per layer the folded q/k/v, attention output, FFN in and out; and the lm head,
        # Transpose(token_embedding) folded into an initializer (before: 6, no head).
        assert assert_int8_matmuls(str(out / entry["file"]), 16) == 2 * 4 + 1
        assert manifest["quantization"]["graphs"][name]["folded_weights"] == 3
        # calibrated on prompts: per layer q/k/v (one input), attention output, FFN in,
        # FFN out; and the lm head
        assert manifest["quantization"]["graphs"][name]["calibrated_inputs"] == 2 * 4 + 1
    assert isinstance(Generator(str(out)).generate("The quick", sampler="greedy",
                                                   max_length=6), str)
    with pytest.raises(ValidationError, match="int8 quality gate: cosine min"):
        export_preset(str(tmp_path / "preset"), output=str(tmp_path / "no"),
                      quantize="int8", gate=UNREACHABLE)
    assert not (tmp_path / "no").exists()


def test_int8_quantizes_the_embedding_tables(tmp_path):
    out = tmp_path / "q"
    export_model(tiny("backbone"), str(out), quantize="int8")
    # The embedding tables are 8-bit too (uint8, one scale), dequantized after the lookup
    # (as Optimum's).
    proto, _, init = graph_facts(str(out / "model.onnx"))
    tables = [init[n.input[0]] for n in proto.graph.node
              if n.op_type == "Gather" and n.input[0] in init and len(init[n.input[0]].dims) == 2]
    assert tables and all(t.data_type == onnx.TensorProto.UINT8 for t in tables)


def test_cli_offers_every_quantize_mode():
    from exporter.__main__ import QUANTIZE_MODES
    from exporter.quantize import MODES

    assert QUANTIZE_MODES == MODES


# --quantize int4 (causal LMs): MatMulNBits blocks, the lm head and GPT-2's fused q/k/v
# projection evaluated from the weights they are computed from, so they are quantized too.

WIDE = dict(num_layers=2, hidden_dim=64, intermediate_dim=128)  # blocks of 32 fit


def int4_gpt2(directory):
    """A GPT-2 64 wide, so the int4 blocks of 32 are real blocks (16 wide is one padded
    block per column); weights perturbed with a moderate spread."""
    import keras_hub

    from tests.model_defs.test_bart_helpers import perturb_all
    from tests.model_defs.test_gpt2_helpers import gpt2_bpe

    vocab, merges, _, _ = gpt2_bpe(str(directory / "bpe"))
    tokenizer = keras_hub.models.GPT2Tokenizer(vocabulary=vocab, merges=merges)
    preprocessor = keras_hub.models.GPT2CausalLMPreprocessor(tokenizer=tokenizer,
                                                             sequence_length=12)
    backbone = keras_hub.models.GPT2Backbone(vocabulary_size=len(vocab), num_heads=2,
                                             max_sequence_length=40, **WIDE)
    lm = keras_hub.models.GPT2CausalLM(backbone=backbone, preprocessor=preprocessor)
    perturb_all(lm, 0, scale=0.1)
    lm.save_to_preset(str(directory / "preset"))
    return str(directory / "preset")


def int4_gemma(directory):
    """A grouped-query Gemma 64 wide, seeded (Keras' initializers are random), with
    moderate noise added (the shared tiny one's is harsher than int4's limits at 64)."""
    import keras
    import keras_hub

    from tests.model_defs.test_gemma_helpers import TINY_GQA, perturb, train_gemma_spm

    keras.utils.set_random_seed(0)
    tokenizer = keras_hub.models.GemmaTokenizer(proto=train_gemma_spm())
    preprocessor = keras_hub.models.GemmaCausalLMPreprocessor(tokenizer, sequence_length=12)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        **dict(TINY_GQA, hidden_dim=64, intermediate_dim=256))
    lm = keras_hub.models.GemmaCausalLM(backbone, preprocessor=preprocessor)
    perturb(lm.weights, 1, scale=0.05)
    lm.save_to_preset(str(directory / "preset"))
    return str(directory / "preset")


@pytest.fixture(scope="module", params=["gpt2", "gemma"])
def int4_export(request, tmp_path_factory):
    sys.path.insert(0, os.path.join(ROOT, "tests", "model_defs"))  # as its own tests do
    root = tmp_path_factory.mktemp(f"int4_{request.param}")
    preset = (int4_gpt2 if request.param == "gpt2" else int4_gemma)(root)
    float_dir, int4_dir = root / "float", root / "int4"
    export_preset(preset, output=str(float_dir))
    manifest = export_preset(preset, output=str(int4_dir), quantize="int4")
    return request.param, preset, float_dir, int4_dir, manifest


def test_int4_every_weight_matmul_is_matmulnbits(int4_export):
    name, _, float_dir, int4_dir, manifest = int4_export
    assert manifest["quantization"]["mode"] == "int4"
    assert manifest["quantization"]["method"] == "weight-only"
    for graph, entry in manifest["graphs"].items():
        proto, ops, init = graph_facts(str(int4_dir / entry["file"]))
        nbits = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nbits[0].attribute}
        assert attrs["bits"] == 4 and attrs["block_size"] == 32
        assert attrs["accuracy_level"] == 4
        assert all(n.domain == "com.microsoft" and init[n.input[1]].data_type ==
                   onnx.TensorProto.UINT8 for n in nbits)  # packed 4-bit weights
        # What stays float is attention's activation x activation products only.
        float_mm = [n for n in proto.graph.node if n.op_type in ("MatMul", "Gemm")]
        assert all(n.input[1] not in init for n in float_mm)
        assert len(float_mm) == 2 * 2  # 2 layers
        # The lm head, Transpose(token_embedding) in the float graph, is a MatMulNBits
        # reading the folded copy; the token lookup reads the head's 4-bit blocks and
        # scales (GatherBlockQuantized), and the float table is gone.
        vocab = manifest["model"]["vocabulary_size"]
        head = [n for n in nbits if "lm_head" in n.name]
        assert len(head) == 1 and init[head[0].input[1]].dims[0] == vocab
        (lookup,) = [n for n in proto.graph.node if n.op_type == "GatherBlockQuantized"]
        producer = {o: n for n in proto.graph.node for o in n.output}
        assert producer[lookup.input[0]].input[0] == head[0].input[1]  # Reshape of blocks
        assert lookup.input[2] == head[0].input[2]  # the same scales
        hidden = manifest["model"]["hidden_dim"]
        assert [t.name for t in init.values() if list(t.dims) == [vocab, hidden]] == []
        counts = manifest["quantization"]["graphs"][graph]
        assert counts["shared_embeddings"] == 1
        per_layer = 4 if name == "gpt2" else 7  # GPT-2's q/k/v is one (folded) MatMul
        assert counts["quantized_matmuls"] == len(nbits) == per_layer * 2 + 1
        assert counts["folded_weights"] == (1 + 2 if name == "gpt2" else 1)
        float_bytes = sum(t.ByteSize() for t in onnx.load(
            str(float_dir / entry["file"])).graph.initializer)
        assert counts["initializer_bytes"]["int4"] < 0.3 * float_bytes


def test_int4_bytes_equal_onnx_runtime_quantizer(int4_export):
    """Our int4 (one weight at a time) against ONNX Runtime's MatMulNBitsQuantizer run on
    the whole float graph (its weights folded as ours are): the same MatMulNBits nodes,
    attributes and 4-bit blocks and scales, byte for byte."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    from exporter.quantize import INT4, fold_constant_weights

    _, _, float_dir, int4_dir, manifest = int4_export
    for entry in manifest["graphs"].values():
        reference = onnx.load(str(float_dir / entry["file"]))
        fold_constant_weights(reference)
        quantizer = MatMulNBitsQuantizer(reference, bits=4, op_types_to_quantize=("MatMul",),
                                         **INT4)
        quantizer.process()
        want, _, want_init = graph_facts_of(quantizer.model.model)
        got, _, got_init = graph_facts(str(int4_dir / entry["file"]))

        def nbits(proto):
            return {n.name: n for n in proto.graph.node if n.op_type == "MatMulNBits"}

        assert sorted(nbits(got)) == sorted(nbits(want)) and nbits(got)
        for name, node in nbits(want).items():
            mine = nbits(got)[name]
            assert list(mine.input) == list(node.input)
            assert list(mine.output) == list(node.output)
            assert ({a.name: onnx.helper.get_attribute_value(a) for a in mine.attribute} ==
                    {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute})
            for tensor in node.input[1:]:
                np.testing.assert_array_equal(numpy_helper.to_array(got_init[tensor]),
                                              numpy_helper.to_array(want_init[tensor]))


def test_int4_passes_its_gate_and_the_runtime_serves_it(int4_export):
    from model_defs import CausalLM
    from runtime.generator import Generator

    _, preset, _, int4_dir, manifest = int4_export
    validation = manifest["validation"]
    assert validation["method"] == "quality_gate" and validation["passed"]
    assert validation["limits"] == GateLimits(mode="int4").values()
    assert validation["limits"]["top1"] < GateLimits().values()["top1"]  # int4's own
    # Free-running greedy from the int4 artifact, against the float32 Keras model's.
    model = CausalLM.from_preset(preset)
    model.compile(sampler="greedy")
    rng = np.random.default_rng(0)
    ids = rng.integers(3, model.backbone.vocabulary_size - 1, (16, 10)).astype("int32")
    mask = np.zeros_like(ids)
    mask[:, :4] = 1
    ids *= mask
    x = {"token_ids": ids, "padding_mask": mask}
    want = np.asarray(model.generate_step(x, stop_token_ids=None)["token_ids"])[:, 4:]
    got = Generator(str(int4_dir)).generate(x, sampler="greedy", stop_token_ids=None)
    got = np.asarray(got["token_ids"])[:, 4:]
    # Free-running on random prompts (flatter logits than the validation text), one miss
    # changes the rest of a row; measured first-token agreement 0.63-0.88 over 3 seeds of
    # this Gemma. The gate's greedy measure (both fed Keras' tokens) is the bound above.
    first = np.mean(got[:, 0] == want[:, 0])
    assert first >= 0.5 and np.mean(got == want) > 0.25, (got, want)


def test_int4_gate_out_of_reach_writes_nothing(int4_export, tmp_path):
    _, preset, _, _, _ = int4_export
    out = tmp_path / "int4"
    with pytest.raises(ValidationError, match=r"int4 quality gate: cosine min 0\.9\d* < "
                                              r"--min-cosine 1 \(lowest at"):
        export_preset(preset, output=str(out), quantize="int4",
                      gate=GateLimits(cosine_min=1.0))
    assert os.listdir(tmp_path) == []


def tied_graph(path, hidden, vocab=40):
    """Two token lookups of one table and a tied head reading Transpose(table)."""
    from onnx import TensorProto, helper

    table = np.random.default_rng(0).normal(size=(vocab, hidden)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["E", "ids"], ["h"], axis=0, name="lookup"),
         helper.make_node("Gather", ["E", "ids2"], ["h2"], axis=0, name="lookup2"),
         helper.make_node("Transpose", ["E"], ["Et"], perm=[1, 0], name="tie"),
         helper.make_node("MatMul", ["h", "Et"], ["logits"], name="head")],
        "tied", [helper.make_tensor_value_info("ids", TensorProto.INT32, [None, None]),
                 helper.make_tensor_value_info("ids2", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
         for n in ("h", "h2", "logits")],
        initializer=[numpy_helper.from_array(table, "E")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=8), path)
    return table


def test_int4_lookups_read_the_head_s_blocks(tmp_path):
    import onnxruntime as ort

    from exporter.quantize import quantize_file

    path = str(tmp_path / "tied.onnx")
    tied_graph(path, hidden=64)
    proto, counts = quantize_file(path, "int4")
    assert counts["shared_embeddings"] == 2
    assert "E" not in {t.name for t in proto.graph.initializer}  # the float table is gone
    init = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    (head,) = [n for n in proto.graph.node if n.op_type == "MatMulNBits"]
    blocks, scales = init[head.input[1]], init[head.input[2]]  # [40, 2, 16], [40, 2]
    nibbles = np.stack([blocks & 15, blocks >> 4], -1).reshape(40, 64).astype(np.float32)
    dequantized = (nibbles - 8) * np.repeat(scales, 32, axis=1)  # symmetric: zero point 8
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ids = np.array([[0, 7, 39]], np.int32)
    h, h2, _ = session.run(None, {"ids": ids, "ids2": np.array([5, 5, 1], np.int64)})
    np.testing.assert_array_equal(h[0], dequantized[ids[0]])
    np.testing.assert_array_equal(h2, dequantized[[5, 5, 1]])


def test_int4_keeps_a_table_float_when_blocks_do_not_divide_it(tmp_path):
    from exporter.quantize import quantize_file

    path = str(tmp_path / "tied.onnx")
    table = tied_graph(path, hidden=48)  # a padded last block: the rows are not the table's
    proto, counts = quantize_file(path, "int4")
    assert counts["shared_embeddings"] == 0
    init = {t.name: t for t in proto.graph.initializer}
    np.testing.assert_array_equal(numpy_helper.to_array(init["E"]), table)
    assert [n.op_type for n in proto.graph.node].count("Gather") == 2


def test_int4_is_refused_for_other_tasks_before_any_work(tmp_path):
    for task in ("backbone", "masked_lm"):
        with pytest.raises(ExportError, match=r"--quantize int4 is for causal LMs \(task "
                                              r"causal_lm\), not .*; use --quantize int8"):
            export_model(tiny(task), str(tmp_path / "a"), quantize="int4")
    assert os.listdir(tmp_path) == []


def test_gate_limits_default_per_mode():
    assert GateLimits().values()["top1"] == 0.9
    int4 = GateLimits(top1=0.5, mode="int4").values()
    assert int4["top1"] == 0.5 and int4["greedy"] == 0.65  # given, and int4's default
    import dataclasses

    assert dataclasses.replace(GateLimits(greedy=0.7), mode="int4").values()["top5"] == 0.85


def test_fold_constant_weights_makes_computed_weights_initializers():
    """A MatMul weight computed from initializers (Transpose of a tied embedding, a Concat
    of a scaled kernel) becomes one initializer of the same value; the rest is kept."""
    from onnx import TensorProto, helper

    from exporter.quantize import fold_constant_weights

    rng = np.random.default_rng(0)
    emb, q, k = (rng.normal(size=s).astype("float32") for s in ((10, 4), (4, 4), (4, 4)))
    nodes = [helper.make_node("Gather", ["emb", "ids"], ["h"]),
             helper.make_node("Transpose", ["emb"], ["embT"], perm=[1, 0]),
             helper.make_node("MatMul", ["h", "embT"], ["logits"]),
             helper.make_node("Mul", ["q", "half"], ["qs"]),
             helper.make_node("Concat", ["qs", "k"], ["qk"], axis=1),
             helper.make_node("MatMul", ["h", "qk"], ["proj"]),
             helper.make_node("MatMul", ["h", "x"], ["free"])]  # a graph input: not folded
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [3]),
                     helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 2])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, d])
         for n, d in (("logits", 10), ("proj", 8), ("free", 2))],
        initializer=[numpy_helper.from_array(a, n) for a, n in
                     ((emb, "emb"), (q, "q"), (k, "k"), (np.float32(0.5), "half"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert fold_constant_weights(model) == 2
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    np.testing.assert_array_equal(init["embT"], emb.T)
    np.testing.assert_array_equal(init["qk"], np.concatenate([q * 0.5, k], axis=1))
    assert sorted(init) == ["emb", "embT", "qk"]  # q, k, half no longer read
    assert [n.op_type for n in model.graph.node] == ["Gather", "MatMul", "MatMul", "MatMul"]
    onnx.checker.check_model(model)


def test_cli_int4_gate_flag_keeps_the_other_int4_defaults(int4_export, tmp_path):
    """--min-cosine given, the other limits are int4's defaults, not int8's."""
    name, preset, _, _, manifest = int4_export
    if name != "gpt2":
        pytest.skip("one model is enough for the CLI")
    out = str(tmp_path / "int4")
    done = run_cli("exporter", "--preset", preset, "--output", out, "--quantize", "int4",
                   "--min-cosine", "0.5")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "manifest.json"), encoding="utf-8") as f:
        limits = json.load(f)["validation"]["limits"]
    assert limits == dict(GateLimits(mode="int4").values(), cosine_min=0.5)


# Models over 2 GB (Gemma at gemma_2b_en widths): the float graph's weights are in external
# data. The thresholds are lowered so a tiny GPT-2 takes that path.
@pytest.fixture(scope="module")
def external_preset(tmp_path_factory):
    sys.path.insert(0, os.path.join(ROOT, "tests", "model_defs"))  # as its own tests do
    return int4_gpt2(tmp_path_factory.mktemp("external"))


def external_float(monkeypatch, limit):
    """Stream every float weight to external data and keep it there past `limit` bytes;
    returns the data files each quantized graph was read from."""
    from exporter import external_data as ext
    from exporter import quantize as Q

    monkeypatch.setattr(ext, "STREAM_ABOVE", 0)
    monkeypatch.setattr(ext, "LIMIT_BYTES", limit)
    read, data_files = [], Q._data_files

    def recording(path):
        files = data_files(path)
        read.append(files)
        return files

    monkeypatch.setattr(Q, "_data_files", recording)
    return read


@pytest.mark.parametrize("mode", ["int8", "int4"])
def test_quantize_a_graph_with_external_data(mode, external_preset, tmp_path, monkeypatch):
    """Before: refused ("--quantize supports models under 2 GB of float32 weights")."""
    from runtime.generator import Generator

    read = external_float(monkeypatch, limit=1000)  # the quantized graph too is "over 2 GB"
    out = tmp_path / "ext"
    manifest = export_preset(external_preset, output=str(out), quantize=mode)
    assert [os.path.basename(f) for f in read[0]] == ["model.onnx_data"]  # float: external
    assert manifest["validation"]["passed"]
    assert sorted(os.listdir(out)) == ["manifest.json", "model.onnx", "model.onnx_data",
                                       "tokenizer"]  # no float data, no quantizer leftovers
    header = onnx.load(str(out / "model.onnx"), load_external_data=False)
    external = [t for t in header.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external and all(int({e.key: e.value for e in t.external_data}["offset"])
                            % 65536 == 0 for t in external)  # aligned, mappable
    op = "MatMulNBits" if mode == "int4" else "MatMulInteger"
    assert any(n.op_type == op for n in header.graph.node)
    (counts,) = manifest["quantization"]["graphs"].values()
    quantized = counts["initializer_bytes"][mode]
    assert 0 < quantized < counts["initializer_bytes"]["float32"]
    assert isinstance(Generator(str(out)).generate("The quick", sampler="greedy",
                                                   max_length=6), str)

    # Quantized under the limit, float over it: the quantized weights stay external (ONNX
    # Runtime maps them; inline they would stay in memory beside the prepacked copies),
    # in a data file of their own, the float one removed.
    read.clear()
    monkeypatch.setattr("exporter.external_data.LIMIT_BYTES", quantized + 100_000)
    under = tmp_path / "under"
    export_preset(external_preset, output=str(under), quantize=mode)
    assert [os.path.basename(f) for f in read[0]] == ["model.onnx_data"]
    assert sorted(os.listdir(under)) == ["manifest.json", "model.onnx", "model.onnx_data",
                                         "tokenizer"]
    assert os.path.getsize(under / "model.onnx_data") < quantized + 65536 * len(external)
    assert isinstance(Generator(str(under)).generate("The quick", sampler="greedy",
                                                     max_length=6), str)
    # The same tensors either way (a scalar once came back 1-d from the external writer).
    assert sorted(list(t.dims) for t in header.graph.initializer) == sorted(
        list(t.dims) for t in onnx.load(str(under / "model.onnx")).graph.initializer)

    with pytest.raises(ValidationError, match=f"{mode} quality gate: cosine min"):
        export_preset(external_preset, output=str(tmp_path / "no"), quantize=mode,
                      gate=UNREACHABLE)
    assert not (tmp_path / "no").exists()
    assert sorted(os.listdir(tmp_path)) == ["ext", "under"]  # no staging left behind
