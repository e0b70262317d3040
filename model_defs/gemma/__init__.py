from model_defs.gemma import gemma_presets  # noqa: F401  (registers the presets)
from model_defs.gemma.gemma_backbone import GemmaBackbone
from model_defs.gemma.gemma_causal_lm import GemmaCausalLM
from model_defs.gemma.gemma_causal_lm_preprocessor import GemmaCausalLMPreprocessor
from model_defs.gemma.gemma_tokenizer import GemmaTokenizer

__all__ = ["GemmaBackbone", "GemmaCausalLM", "GemmaCausalLMPreprocessor", "GemmaTokenizer"]
