"""Saving and loading networks: one ``.npz`` of arrays plus a JSON config.

This module only maps the model's public state to a file and back: the
architecture (``Sequential.get_config()``), the loss and optimizer
(``get_compile_config()``) and everything training changes
(``state_dict()``), rebuilt with ``Sequential.from_config``,
``compile_from_config`` and ``load_state_dict``. It reads no private
attribute of the model.

File layout (format version 2), written with :func:`numpy.savez`:

=============================== ===========================================
key                             content
=============================== ===========================================
``config``                      0-d unicode array: the JSON document below
``parameters/<name>``           each parameter by name, e.g.
                                ``parameters/layers.0.kernel``
``optimizer/state/<name>``      each optimizer state array by name, e.g.
                                ``optimizer/state/layers.0.kernel.velocity``
``classes``                     ``classes_`` of a classifier (numbers, or
                                strings as a numpy unicode array: never an
                                object array)
=============================== ===========================================

The JSON config holds ``format``, ``format_version``, ``descend_version``,
``model`` (the architecture), ``compile`` (loss name and optimizer config,
or null) and ``state``: the ``state_dict()`` with each array replaced by
``{"npz": "<entry name>"}`` (the optimizer's learning rate, iterations and
schedule state, the random generator's ``bit_generator.state``,
``epochs_trained``, the history). With all of it, training resumed after
:func:`load` is bitwise identical to training that never stopped.

Format version 1 files (``weight_<i>`` and ``optimizer_<i>_<j>`` entries by
position, written by descend before the state protocol) still load.

Loading never executes code from the file: arrays are read with
``allow_pickle=False``, the config is plain JSON, and classes are looked up
in descend's registries by name. Every problem with a file (not an npz
archive, truncated, pickled objects, a missing or unexpected entry, an
unknown format version, inconsistent shapes) is a ValueError naming the
problem and the path.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from descend import losses, optimizers
from descend._validation import check
from descend.model import Sequential

FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_FORMAT_NAME = "descend.Sequential"
_CLASSES_KINDS = "biufUS"


def _check_path(path, name="path"):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    return check(path, name, ["path"])


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray) and obj.dtype.kind in "biu":
        return obj.tolist()     # bit-generator states (MT19937 key, Philox counter)
    raise TypeError(f"{type(obj).__name__} {obj!r}")


# ---------------------------------------------------------------------- save
def save(model, path):
    """Save a built Sequential network to `path` (one ``.npz`` file).

    The file is written to a temporary name in the same directory and then
    renamed, so an interrupted save never leaves a truncated model behind.

    Parameters
    ----------
    model : descend.Sequential
        A built network (compiled or not).
    path : str or os.PathLike
        Written exactly as given (no ``.npz`` suffix is appended).

    Returns
    -------
    str
        The path written.

    Raises
    ------
    TypeError
        `model` is not a Sequential or `path` not a path.
    ValueError
        The network is not built, or part of it cannot be stored without
        code: a custom (unregistered) loss, optimizer or layer, a
        ``LambdaSchedule`` or other callable, or ``classes_`` of mixed
        Python objects. Nothing is written then.
    """
    from descend import __version__

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a descend Sequential, got {type(model).__name__}")
    path = _check_path(path)
    if os.path.isdir(path):
        raise ValueError(f"path {path!r} is a directory; give a file name such as "
                         f"{os.path.join(path, 'model.npz')!r}")
    if not model.built:
        raise ValueError("cannot save a network that is not built: give input_dim or fit "
                         "it first")
    _check_registered(model)
    state = model.state_dict()
    if state["classes"] is not None:
        state["classes"] = _classes_array(state["classes"])
    arrays = {}
    config = {"format": _FORMAT_NAME, "format_version": FORMAT_VERSION,
              "descend_version": __version__, "model": model.get_config(),
              "compile": model.get_compile_config(),
              "state": _arrays_to_entries(state, arrays, ())}
    try:
        text = json.dumps(config, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save this network: part of its configuration is not "
                         f"plain data ({exc}); a LambdaSchedule, a custom initializer or "
                         "another Python callable cannot be stored in a model file") from None
    arrays["config"] = np.array(text)

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".descend-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _check_registered(model):
    """ValueError for a loss or optimizer a file cannot name (a custom class)."""
    if model.loss_ is None:
        return
    loss = model.loss_
    if losses._LOSSES.get(loss.name) is not type(loss):
        raise ValueError(f"cannot save the custom loss {type(loss).__name__}: only "
                         f"descend's losses {sorted(losses._LOSSES)} can be stored")
    opt = model.optimizer
    registered = {cls.__name__: cls for cls in optimizers._OPTIMIZERS.values()}
    if registered.get(type(opt).__name__) is not type(opt):
        raise ValueError(f"cannot save the custom optimizer {type(opt).__name__}: only "
                         f"descend's optimizers {sorted(registered)} can be stored")


def _arrays_to_entries(tree, arrays, path):
    """`tree` with each ndarray moved into `arrays` under its path ("a/b"), leaving
    ``{"npz": "<entry name>"}`` in its place."""
    if isinstance(tree, np.ndarray):
        key = "/".join(path)
        arrays[key] = tree
        return {"npz": key}
    if isinstance(tree, dict):
        return {key: _arrays_to_entries(value, arrays, path + (str(key),))
                for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_arrays_to_entries(value, arrays, path + (str(i),))
                for i, value in enumerate(tree)]
    return tree


def _classes_array(classes):
    """classes_ as an array numpy can load without pickle (strings -> unicode)."""
    array = np.asarray(classes)
    if array.dtype.kind == "O":
        values = array.tolist()
        if all(isinstance(v, str) for v in values):
            array = np.array(values, dtype=str)
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            array = np.array(values, dtype=np.int64)
        else:
            raise ValueError(f"cannot save classes_ of mixed Python objects "
                             f"{values[:10]}: use numbers or strings as labels")
    if array.dtype.kind not in _CLASSES_KINDS or array.ndim != 1:
        raise ValueError(f"cannot save classes_ of dtype {array.dtype} and shape "
                         f"{array.shape}")
    return array


# ---------------------------------------------------------------------- load
def load(path):
    """Rebuild a network saved by ``Sequential.save``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    descend.Sequential
        Built, compiled (if it was), with the saved weights, optimizer
        state, ``classes_``, random-generator state and history: its
        predictions are bit-identical to the saved network's and further
        training continues exactly as the saved network's would.

    Raises
    ------
    FileNotFoundError
        No file at `path`.
    TypeError
        `path` is not a path.
    ValueError
        The file is not a descend model: not an ``.npz`` archive, truncated
        or corrupt, holding pickled objects, lacking an entry, of an
        unknown format version, or with inconsistent contents. The message
        names the problem and the path.
    """
    path = _check_path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not a descend model file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
        raise ValueError(f"{path!r} is not a descend model file: not an .npz (zip) archive")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, RuntimeError) as exc:
        raise ValueError(f"{path!r} is not a readable .npz archive (truncated or corrupt?): "
                         f"{exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # pragma: no cover - magic checked
        raise ValueError(f"{path!r} is not an .npz archive")
    with archive:
        reader = _Reader(archive, path)
        return reader.build()


class _Reader:
    """Reads and checks the entries of one archive; every error names the path."""

    def __init__(self, archive, path):
        self.archive = archive
        self.path = path
        self.keys = set(archive.files)
        self.loaded = {}

    def error(self, message):
        return ValueError(f"{self.path!r}: {message}")

    def array(self, key):
        if key not in self.keys:
            raise self.error(f"missing entry {key!r}; the file is incomplete or not a "
                             "descend model")
        if key in self.loaded:
            return self.loaded[key]
        try:
            self.loaded[key] = self.archive[key]
            return self.loaded[key]
        except ValueError as exc:
            if "pickle" in str(exc) or "Object arrays" in str(exc):
                raise self.error(f"entry {key!r} holds pickled Python objects; descend "
                                 "never unpickles (allow_pickle=False)") from None
            raise self.error(f"entry {key!r} cannot be read: {exc}") from None
        except (OSError, EOFError, zipfile.BadZipFile, RuntimeError) as exc:
            raise self.error(f"entry {key!r} cannot be read (truncated or corrupt file?): "
                             f"{exc}") from None

    def config(self):
        raw = self.array("config")
        if raw.ndim != 0 or raw.dtype.kind != "U":
            raise self.error(f"entry 'config' must be a 0-d unicode array, got dtype "
                             f"{raw.dtype} and shape {raw.shape}")
        try:
            config = json.loads(str(raw[()]))
        except ValueError as exc:
            raise self.error(f"entry 'config' is not valid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise self.error("entry 'config' must be a JSON object")
        version = config.get("format_version")
        if "format_version" not in config:
            raise self.error("the config has no 'format_version'; not a descend model file")
        if version not in _READABLE_VERSIONS or isinstance(version, bool):
            raise self.error(f"unknown format version {version!r}: this descend reads format "
                             f"versions {list(_READABLE_VERSIONS)} (the file was written by "
                             f"descend {config.get('descend_version', '?')})")
        if config.get("format") != _FORMAT_NAME:
            raise self.error(f"the config's format is {config.get('format')!r}, expected "
                             f"{_FORMAT_NAME!r}")
        needed = (("model", "compile", "state") if version == 2 else
                  ("model", "loss", "optimizer", "optimizer_state", "schedule_state",
                   "rng_state", "epochs_trained", "has_classes"))
        for key in needed:
            if key not in config:
                raise self.error(f"the config has no {key!r} entry")
        return config

    def build(self):
        """The network the file describes; every problem is a ValueError naming the path."""
        config = self.config()
        version = config["format_version"]
        model_config = config["model"]
        if not isinstance(model_config, dict) or not isinstance(model_config.get("layers"),
                                                                list):
            raise self.error("the config's 'model' must be an object with a 'layers' list")
        try:
            declared = Sequential.parameter_shapes(model_config)
            self.check_declared_shapes(declared, version)
            net = Sequential.from_config(model_config)
        except (TypeError, ValueError, KeyError) as exc:
            raise self.error(f"invalid architecture in the config: {exc}") from None
        if not net.built:
            raise self.error("the config's architecture has no input_dim or no Dense layer")
        compile_config = (config["compile"] if version == 2 else None if config["loss"] is None
                          else {"loss": config["loss"], "optimizer": config["optimizer"]})
        if compile_config is not None:
            try:
                net.compile_from_config(compile_config)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                raise self.error(f"invalid loss or optimizer in the config: {exc}") from None
        if version == 2:
            state = self.entries_to_arrays(config["state"])
            unread = sorted(self.keys - set(self.loaded))
            if unread:
                raise self.error(f"the file holds entries its config does not name: "
                                 f"{unread[:10]}")
        else:
            state = self.version_1_state(config, net, list(declared))
        try:
            net.load_state_dict(state)
        except (TypeError, ValueError) as exc:
            raise self.error(str(exc)) from None
        return net

    def check_declared_shapes(self, declared, version):
        """Compare the architecture's parameter shapes with the stored arrays
        before anything is allocated: a config may declare sizes far beyond
        its arrays (the network would draw them all first)."""
        for i, (name, shape) in enumerate(declared.items()):
            key = f"parameters/{name}" if version == 2 else f"weight_{i}"
            stored = self.array(key).shape
            if stored != shape:
                raise self.error(f"entry {key!r} has shape {stored}, but the "
                                 f"architecture needs {shape}")
        if version == 1 and f"weight_{len(declared)}" in self.keys:
            raise self.error(f"the file holds more weight arrays than the architecture's "
                             f"{len(declared)}")

    def entries_to_arrays(self, tree):
        """The state of the config with each ``{"npz": key}`` replaced by its entry."""
        if isinstance(tree, dict):
            if set(tree) == {"npz"} and isinstance(tree["npz"], str):
                return self.array(tree["npz"])
            return {key: self.entries_to_arrays(value) for key, value in tree.items()}
        if isinstance(tree, list):
            return [self.entries_to_arrays(value) for value in tree]
        return tree

    def version_1_state(self, config, net, names):
        """A format-1 file's contents as a ``state_dict`` (arrays named by position)."""
        optimizer = None
        if config["loss"] is not None:
            saved = config["optimizer_state"]
            if not isinstance(saved, dict):
                raise self.error("the config's 'optimizer_state' must be an object")
            optimizer = {"iterations": saved.get("iterations"),
                         "learning_rate": saved.get("learning_rate"),
                         # absent from files written before ReduceLROnPlateau composed
                         # with schedules
                         "learning_rate_scale": saved.get("learning_rate_scale", 1.0),
                         "schedule": config["schedule_state"],
                         "state": self.version_1_optimizer_arrays(saved.get("n_arrays"),
                                                                  net, names)}
        return {"parameters": {name: self.array(f"weight_{i}")
                               for i, name in enumerate(names)},
                "optimizer": optimizer,
                "classes": self.array("classes") if config["has_classes"] else None,
                "rng_state": config["rng_state"], "epochs_trained": config["epochs_trained"],
                "history": config.get("history") or {}}

    def version_1_optimizer_arrays(self, counts, net, names):
        if counts is None:
            return None
        slots = net.optimizer.active_state_names()
        if (not isinstance(counts, list) or len(counts) != len(names)
                or any(c != len(slots) for c in counts)):
            raise self.error(f"the optimizer state must have {len(slots)} array(s) for each "
                             f"of the {len(names)} parameters, the config says {counts!r}")
        return {f"{name}.{slot}": self.array(f"optimizer_{i}_{j}")
                for i, name in enumerate(names) for j, slot in enumerate(slots)}
