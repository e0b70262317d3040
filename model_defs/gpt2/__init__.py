from model_defs.gpt2 import gpt2_presets  # noqa: F401  (registers the presets)
from model_defs.gpt2.gpt2_backbone import GPT2Backbone
from model_defs.gpt2.gpt2_causal_lm import GPT2CausalLM
from model_defs.gpt2.gpt2_causal_lm_preprocessor import GPT2CausalLMPreprocessor
from model_defs.gpt2.gpt2_tokenizer import GPT2Tokenizer

__all__ = ["GPT2Backbone", "GPT2CausalLM", "GPT2CausalLMPreprocessor", "GPT2Tokenizer"]
