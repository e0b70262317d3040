"""Samplers for `generate()`, with keras-hub's names and arguments, in numpy only.

They live here, in `runtime`, once: the Keras `BartSeq2SeqLM.generate` (through
`model_defs.samplers`, which re-exports this package) and the ONNX Runtime `Generator` run
the very same code, so seeded sampling gives the same ids in both (see sampler.py for the
exact loop and random-draw contract).

>>> get("greedy")
<...GreedySampler ...>
>>> get({"class_name": "top_k", "config": {"k": 10, "seed": 1}}).k
10
"""

from runtime.samplers.beam_sampler import BeamSampler
from runtime.samplers.greedy_sampler import GreedySampler
from runtime.samplers.random_sampler import RandomSampler
from runtime.samplers.sampler import Sampler
from runtime.samplers.top_k_sampler import TopKSampler
from runtime.samplers.top_p_sampler import TopPSampler

SAMPLERS = {
    "beam": BeamSampler,
    "greedy": GreedySampler,
    "random": RandomSampler,
    "top_k": TopKSampler,
    "top_p": TopPSampler,
}
_BY_CLASS = {cls.__name__: name for name, cls in SAMPLERS.items()}


def sampler_class(name):
    """The class of a short name ("top_k"), a class name ("TopKSampler") or a registered
    name ("keras_hub>TopKSampler")."""
    key = str(name).split(">")[-1]
    key = _BY_CLASS.get(key, key)
    if key not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; known: {sorted(SAMPLERS)}")
    return SAMPLERS[key]


def get(identifier):
    """A sampler from a name ("top_k"), a class, a config dict
    (`{"class_name": "TopKSampler" | "keras_hub>TopKSampler" | "top_k", "config": {...}}`)
    or an instance (returned as is)."""
    if isinstance(identifier, Sampler):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Sampler):
        return identifier()
    if isinstance(identifier, dict):
        cls = sampler_class(identifier.get("class_name", ""))
        return cls.from_config(identifier.get("config") or {})
    if isinstance(identifier, str):
        return sampler_class(identifier)()
    raise ValueError(f"unknown sampler {identifier!r}; known: {sorted(SAMPLERS)}")


def serialize(sampler):
    """{"class_name": short name, "config": {...}} (what the manifest stores)."""
    return {"class_name": _BY_CLASS[type(sampler).__name__], "config": sampler.get_config()}


__all__ = ["Sampler", "BeamSampler", "GreedySampler", "RandomSampler", "TopKSampler",
           "TopPSampler", "get", "sampler_class", "serialize", "SAMPLERS"]
