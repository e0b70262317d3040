"""`Task`: a backbone plus a head (masked LM, classifier, seq2seq LM), with keras-hub's
preset API and compile defaults."""

from __future__ import annotations

import logging
import os

import keras

from model_defs import preset as P
from model_defs import preset_io, task_data
from model_defs.backbone import Backbone, classproperty, hf_prefix
from model_defs.weights import H5Reader, SafetensorsReader, apply_table, write_h5

log = logging.getLogger(__name__)


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
        task_cls = cls._task_class(preset, load_weights)
        backbone_kwargs = {"dtype": kwargs.pop("dtype")} if "dtype" in kwargs else {}
        if not load_weights and P.is_builtin(preset):
            backbone = task_cls.backbone_cls.from_preset(preset, load_weights=False,
                                                         **backbone_kwargs)
            if "preprocessor" not in kwargs:  # (setdefault would try the download anyway)
                kwargs["preprocessor"] = task_cls._offline_preprocessor(preset)
            return task_cls(backbone=backbone, **kwargs)
        directory = P.resolve(preset)
        backbone = task_cls.backbone_cls.from_preset(directory, load_weights=load_weights,
                                                     **backbone_kwargs)
        if "preprocessor" not in kwargs and task_cls.preprocessor_cls is not None:
            kwargs["preprocessor"] = task_cls.preprocessor_cls.from_preset(directory)
        if P.preset_format(directory) == P.TRANSFORMERS:
            return task_cls._from_transformers(directory, backbone, load_weights, **kwargs)
        stored = P.read_json(directory, "task.json", required=False)
        stored_cls = _stored_class(stored)
        if stored_cls is not None and issubclass(stored_cls, task_cls):
            where = os.path.join(directory, "task.json")
            P.envelope_class(stored, where)  # checks that its "config" is an object
            head_config = {k: v for k, v in stored["config"].items()
                           if k not in ("backbone", "preprocessor")}
            with P.reading(where):  # e.g. a Lambda activation Keras' safe mode refuses
                task = stored_cls(backbone=backbone, **{**head_config, **kwargs})
            if load_weights:
                task.load_head_weights(directory)
            return task
        task = task_cls(backbone=backbone, **kwargs)
        if load_weights and task.head_model().weights:
            log.warning("%s holds no %s head; it starts from random weights.",
                        preset, task_cls.__name__)
            task.random_head = True  # the exporter records it in the manifest
        return task

    @classproperty
    def presets(cls):
        """Built-in presets this task class can load, name -> metadata: those of its
        backbone (for a base class like `MaskedLM`, of every backbone it has a task for)."""
        backbones = {c.backbone_cls for c in _concrete_subclasses(cls)}
        return {name: entry["metadata"] for name, entry in P.builtin_presets().items()
                if entry["cls"] in backbones}

    @classmethod
    def _task_class(cls, preset, load_weights=True):
        """For a base class (`Seq2SeqLM.from_preset`), the concrete class: the task the
        preset holds if it is one, else the one subclass for the preset's backbone (as
        keras-hub does); a concrete class is returned as is. Anything else is refused in
        one line naming what the preset holds."""
        if cls.backbone_cls is not Backbone:
            return cls
        held = None
        if load_weights or not P.is_builtin(preset):
            held = _held_task_class(P.resolve(preset))
            if held is not None and issubclass(held, cls):
                return held
        backbone_cls = P.backbone_class(preset)
        found = P.task_classes(backbone_cls, cls)
        if len(found) == 1:
            return found[0]
        names = ", ".join(c.__name__ for c in found)
        if found:
            raise P.PresetError(f"preset {preset} holds a bare {backbone_cls.__name__}, which "
                                f"{names} can all wrap; call from_preset on one of them")
        tasks = ", ".join(c.__name__ for c in P.task_classes(backbone_cls)) or "none"
        raise P.PresetError(f"preset {preset} holds a {(held or backbone_cls).__name__}, which "
                            f"is not a {cls.__name__} (tasks for {backbone_cls.__name__}: "
                            f"{tasks})")

    @classmethod
    def _offline_preprocessor(cls, preset):
        # Random weights need no download, but a tokenizer does: try, and go without.
        if cls.preprocessor_cls is None:
            return None
        try:
            return cls.preprocessor_cls.from_preset(preset)
        except P.PresetError as e:
            log.warning("no preprocessor for %s (%s); the task takes token ids only.", preset, e)
            return None

    @classmethod
    def hf_task_kwargs(cls, hf_config):
        """Constructor arguments a Transformers config implies for the head."""
        return {}

    @classmethod
    def _from_transformers(cls, directory, backbone, load_weights, **kwargs):
        hf_config = P.read_json(directory, "config.json")
        task = cls(backbone=backbone, **{**cls.hf_task_kwargs(hf_config), **kwargs})
        if load_weights:
            if set(hf_config.get("architectures") or ()) & set(cls.hf_architectures):
                task.load_transformers_head(directory)
            elif task.head_model().weights:
                log.warning("%s is not a %s checkpoint; the %s head starts from random "
                            "weights.", directory, "/".join(cls.hf_architectures), cls.__name__)
                task.random_head = True
        return task

    def load_head_weights(self, directory):
        if not self.keras_hub_head_table():
            return  # nothing of its own to load (e.g. BART's head is the tied embedding)
        reader = H5Reader(P.require_file(directory, "task.weights.h5"))
        try:
            apply_table(self.head_model(), self.keras_hub_head_table(), reader,
                        ignore_unused=("optimizer/",),
                        where=os.path.join(directory, "task.weights.h5"))
        finally:
            reader.close()

    def load_transformers_head(self, directory):
        reader = SafetensorsReader(P.require_file(directory, "model.safetensors"))
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
    cls = P.class_for(envelope.get("registered_name") or envelope["class_name"])
    config = dict(envelope["config"])
    if "tokenizer" in config:
        config["tokenizer"] = _deserialize(config["tokenizer"])
    return cls.from_config(config)


def _stored_class(stored):
    if stored is None:
        return None
    try:
        return P.class_for(stored.get("registered_name") or stored.get("class_name"))
    except P.PresetError:
        return None


def _held_task_class(directory):
    """The task class a resolved preset holds: keras-hub's task.json, or the task whose
    Transformers `architectures` the checkpoint names; None for a bare backbone."""
    if P.preset_format(directory) == P.KERAS_HUB:
        return _stored_class(P.read_json(directory, "task.json", required=False))
    archs = set(P.read_json(directory, "config.json").get("architectures") or ())
    for task_cls in P.task_classes(P.backbone_class(directory)):
        if archs & set(task_cls.hf_architectures):
            return task_cls
    return None


def _concrete_subclasses(cls):
    """`cls` and the registered task classes below it that are built on a real backbone."""
    if cls.backbone_cls is not Backbone:
        return [cls]
    return [c for c in P.task_classes(None, cls) if c.backbone_cls is not Backbone]


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
