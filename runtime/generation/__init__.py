"""Generation, built from parts with one job each (runtime.generator assembles them):

- `search.py`: the one loop over the samplers (prefill, then sample, append, stop check,
  stream, per position), shared by every architecture and by the Keras `generate`;
- `step.py`: the `Step` interface the loop drives (prefill, step, reorder, close);
- `seq2seq_step.py`: a seq2seq (BART) artifact's graphs as a `Step`;
  `seq2seq_inputs.py`: its prompts packed and checked;
- `decoder_only_step.py`, `decoder_only_inputs.py`: the same for a causal LM (GPT-2,
  Gemma);
- `kv_cache.py`: the K/V buffers, their IO binding, ping-pong swap and beam reorder;
- `stream.py`: positions as `Token`s, their text from the tokenizer's own
  `detokenize_stream()`;
- `threaded.py`: an iterator run in a background thread.

Each task has its own step and inputs modules (runtime.generator.TASKS picks them by the
manifest's task); the loop, the cache, the stream and the samplers are shared.
"""
