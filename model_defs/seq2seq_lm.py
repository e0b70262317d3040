"""`Seq2SeqLM`: base of the sequence-to-sequence language models (BART)."""

from model_defs.causal_lm import CausalLM


class Seq2SeqLM(CausalLM):
    """Base class of the encoder-decoder generative tasks.

    As in keras-hub, a `Seq2SeqLM` is a `CausalLM` whose generation is conditioned on an
    input sequence: `compile(sampler=...)` and `generate(inputs, max_length=None,
    stop_token_ids="auto")` come from `CausalLM` (a `tf.data.Dataset` is generated batch
    by batch, its outputs concatenated); the model gives `generate_step`.
    `Seq2SeqLM.from_preset(preset)` returns the class the preset names.

    Example:
    ```python
    seq_2_seq_lm = Seq2SeqLM.from_preset("bart_base_en")
    seq_2_seq_lm.compile(sampler="top_k")
    seq_2_seq_lm.generate("The quick brown fox.", max_length=30)
    ```
    """

    task_name = "seq2seq_lm"
    export_spec = "seq2seq_lm"  # not CausalLM's decoder-only spec
