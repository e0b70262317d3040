"""`Task`: a backbone plus a head (masked LM, classifier, seq2seq LM), with keras-hub's
preset API and compile defaults."""

from __future__ import annotations

import os

import keras

from model_defs import preset_io, registry, task_data
from model_defs.backbone import Backbone, classproperty, hf_prefix
from model_defs.preset_files import require_file
from model_defs.preset_loader import get_preset_loader
from model_defs.weights import H5Reader, SafetensorsReader, apply_table, write_h5


@registry.base_class("task")
class Task(keras.Model):
    """Base class of the task models.

    Subclasses set `backbone_cls`, `preprocessor_cls`, `task_name` (the exporter's
    `--task`: "masked_lm", "text_classifier", "seq2seq_lm") and `hf_architectures`
    (Transformers `architectures` they read), build their functional graph in `__init__`
    and provide the head's weight tables (`keras_hub_head_table()`, `hf_head_table(names)`).
    """

    backbone_cls = Backbone
    preprocessor_cls = None
    # True when from_preset found no head weights for this task (they are random).
    random_head = False
    task_name = None
    hf_architectures = ()

    def __init__(self, *args, backbone=None, preprocessor=None, compile=True, **kwargs):
        super().__init__(*args, **kwargs)
        # Set after the functional init: the backbone is already tracked as a layer.
        self._backbone = backbone
        self._preprocessor = preprocessor
        if compile:
            # keras-hub compiles every task with its defaults, so `fit` works at once.
            self.compile()

    # -- training and inference on raw text ------------------------------------------
    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        self._compiled_lora = self._traced_lora = self._lora_state()

    def _lora_state(self):
        return getattr(self.backbone, "_lora_rank", None) if self.backbone else None

    def _check_lora_state(self, training=False):
        """After `enable_lora` the traced functions are stale (retrace them), and so is an
        optimizer built for the old trainable weights (ask for compile())."""
        state = self._lora_state()
        if (training and state != getattr(self, "_compiled_lora", None)
                and getattr(self.optimizer, "built", False)):
            raise ValueError("enable_lora changed the trainable weights after this model was "
                             "trained; call compile() again before fit()")
        if state != getattr(self, "_traced_lora", None):
            self.train_function = self.test_function = self.predict_function = None
            self._traced_lora = state

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        """keras `fit`; raw text goes through `preprocessor` batch by batch (fresh masks
        every epoch for masked LMs), integer dicts go straight to the model."""
        self._check_lora_state(training=True)
        sample_weight = kwargs.pop("sample_weight", None)
        if (kwargs.get("validation_split") and self.preprocessor is not None
                and task_data.is_raw_text(x)):
            x, y, sample_weight, kwargs["validation_data"] = task_data.split_validation(
                x, y, sample_weight, kwargs.pop("validation_split"))
        x, y, sample_weight, batch_size = task_data.prepare(
            self, x, y, sample_weight, batch_size, shuffle=kwargs.get("shuffle", True))
        if "validation_data" in kwargs:
            kwargs["validation_data"] = task_data.prepare_validation(
                self, kwargs["validation_data"], batch_size)
        return super().fit(x=x, y=y, batch_size=batch_size, sample_weight=sample_weight,
                           **kwargs)

    def evaluate(self, x=None, y=None, batch_size=None, **kwargs):
        """keras `evaluate`, with raw text preprocessed as in `fit`."""
        self._check_lora_state()
        x, y, sample_weight, batch_size = task_data.prepare(
            self, x, y, kwargs.pop("sample_weight", None), batch_size)
        return super().evaluate(x=x, y=y, batch_size=batch_size, sample_weight=sample_weight,
                                **kwargs)

    def predict(self, x, batch_size=None, **kwargs):
        """keras `predict`, with raw text preprocessed as in `fit`."""
        self._check_lora_state()
        x, _, _, batch_size = task_data.prepare(self, x, None, None, batch_size)
        return super().predict(x, batch_size=batch_size, **kwargs)

    @property
    def backbone(self):
        return self._backbone

    @property
    def preprocessor(self):
        return self._preprocessor

    @preprocessor.setter
    def preprocessor(self, value):
        self._preprocessor = value

    # -- config ----------------------------------------------------------------------
    def get_config(self):
        pre = self.preprocessor
        return {
            "backbone": preset_io.serialize(self.backbone, self.backbone.get_config()),
            "preprocessor": preset_io.serialize(pre, pre.get_config()) if pre else None,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = _deserialize(config["backbone"])
        if config.get("preprocessor") is not None:
            config["preprocessor"] = _deserialize(config["preprocessor"])
        return cls(**config)

    # -- presets ---------------------------------------------------------------------
    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Build this task from a preset.

        A keras-hub preset whose `task.json` holds this class (or a subclass) gives its
        head weights; otherwise the head starts from random weights, as in keras-hub.
        Transformers checkpoints give the head when their `architectures` match.
        `kwargs` go to the task constructor (e.g. `num_classes=2`, `preprocessor=None`),
        except `dtype`, which goes to the backbone (every layer computes in it).
        """
        # The preset's loader (keras-hub or Transformers format) picks the class, builds
        # the backbone, head and preprocessor: model_defs/preset_loader.py.
        return get_preset_loader(preset, download=load_weights).load_task(
            cls, load_weights, **kwargs)

    @classproperty
    def presets(cls):
        """Built-in presets this task class can load, name -> metadata: those of its
        backbone (for a base class like `MaskedLM`, of every backbone it has a task for)."""
        backbones = {c.backbone_cls for c in _concrete_subclasses(cls)}
        return {name: entry["metadata"] for name, entry in registry.builtin_presets().items()
                if entry["cls"] in backbones}

    @classmethod
    def _task_class(cls, preset, load_weights=True):
        """The concrete class `from_preset` builds for `preset` (see
        `PresetLoader.task_class`)."""
        return get_preset_loader(preset, download=load_weights).task_class(cls)

    @classmethod
    def hf_task_kwargs(cls, hf_config):
        """Constructor arguments a Transformers config implies for the head."""
        return {}

    def load_head_weights(self, directory):
        """Assign the head's weights from a keras-hub preset's task.weights.h5 (the loader
        calls this)."""
        if not self.keras_hub_head_table():
            return  # nothing of its own to load (e.g. BART's head is the tied embedding)
        reader = H5Reader(require_file(directory, "task.weights.h5"))
        try:
            apply_table(self.head_model(), self.keras_hub_head_table(), reader,
                        ignore_unused=("optimizer/",),
                        where=os.path.join(directory, "task.weights.h5"))
        finally:
            reader.close()

    def load_transformers_head(self, directory):
        """Assign the head's weights from a Transformers model.safetensors (the loader calls
        this)."""
        reader = SafetensorsReader(require_file(directory, "model.safetensors"))
        names = reader.names()
        prefix = hf_prefix(names, self.backbone.hf_prefixes)
        head_view = _Without(reader, prefix) if prefix else reader
        apply_table(self.head_model(), self.hf_head_table(names), head_view,
                    ignore_unused=tuple(self.hf_head_ignored),
                    where=os.path.join(directory, "model.safetensors"))

    hf_head_ignored = ()

    def head_model(self):
        """A view of the task's own variables (the head), excluding the backbone's.

        Shares `variables_by_path`'s interface: `.name` and `.weights`.
        """
        backbone_ids = {id(v) for v in self.backbone.weights}
        return _Variables(self.name, [v for v in self.weights if id(v) not in backbone_ids])

    def save_to_preset(self, preset_dir):
        """Write the backbone, preprocessor, task.json and task.weights.h5 (keras-hub
        format) atomically."""
        with preset_io.preset_folder(preset_dir) as tmp:
            self.backbone.write_preset_files(tmp)
            if self.preprocessor is not None:
                self.preprocessor.write_preset_files(tmp)
            preset_io.write_json(tmp, "task.json", preset_io.serialize(self, self.get_config()))
            table = self.keras_hub_head_table()
            if table:  # as keras-hub: no task.weights.h5 for a task without weights
                write_h5(os.path.join(tmp, "task.weights.h5"), self.head_model(), table)
            preset_io.write_json(tmp, "metadata.json",
                                 preset_io.metadata(self.backbone, [type(self).__name__]))

    def keras_hub_head_table(self):
        raise NotImplementedError

    def hf_head_table(self, names):
        raise NotImplementedError


def _deserialize(envelope):
    if not isinstance(envelope, dict) or "class_name" not in envelope:
        return envelope  # already an object
    cls = registry.class_for(envelope.get("registered_name") or envelope["class_name"])
    config = dict(envelope["config"])
    if "tokenizer" in config:
        config["tokenizer"] = _deserialize(config["tokenizer"])
    return cls.from_config(config)


def _concrete_subclasses(cls):
    """`cls` and the registered task classes below it that are built on a real backbone."""
    if cls.backbone_cls is not Backbone:
        return [cls]
    return [c for c in registry.task_classes(None, cls) if c.backbone_cls is not Backbone]


class _Variables:
    def __init__(self, name, weights):
        self.name = name
        self.weights = weights


class _Without:
    """Tensors of `reader` outside the backbone's `prefix` (the head's)."""

    def __init__(self, reader, prefix):
        self._reader = reader
        self._prefix = prefix

    def names(self):
        return [n for n in self._reader.names() if not n.startswith(self._prefix)]

    def get(self, name):
        return self._reader.get(name)
