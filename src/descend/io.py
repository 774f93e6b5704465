"""Saving and loading networks: one ``.npz`` of arrays plus a JSON config.

File layout (format version 1), written with :func:`numpy.savez`:

================== ========================================================
key                content
================== ========================================================
``config``         0-d unicode array: the JSON document described below
``weight_<i>``     i-th array of ``Sequential.get_weights()`` (W1, b1, ...)
``optimizer_<i>_<j>`` j-th optimizer state array of parameter i (momentum
                   velocity, Adam moments, ...), when the optimizer is built
``classes``        ``classes_`` of a classifier (numbers, or strings as a
                   numpy unicode array: never an object array)
================== ========================================================

The JSON config holds ``format_version``, ``descend_version``, the
architecture (``Sequential.get_config()`` with every layer's config), the
loss name, the optimizer's ``get_config()`` with its current learning rate
and ``iterations``, the learning-rate schedule's ``state_dict()``, the
network's numpy ``Generator`` state (``bit_generator.state``, JSON-able),
``epochs_trained`` and the training history. With all of it, training
resumed after :func:`load` is bitwise identical to training that never
stopped.

Loading never executes code from the file: arrays are read with
``allow_pickle=False``, the config is plain JSON, and classes are looked up
in descend's registries by name. Every problem with a file (not an npz
archive, truncated, pickled objects, a missing entry, an unknown format
version, inconsistent shapes) is a ValueError naming the problem and the
path.
"""
import json
import math
import os
import tempfile
import zipfile

import numpy as np

FORMAT_VERSION = 1
_FORMAT_NAME = "descend.Sequential"
# Bit generators a file may name (looked up in this table, never by getattr).
_BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM,
                                                 np.random.MT19937, np.random.Philox,
                                                 np.random.SFC64)}
_CLASSES_KINDS = "biufUS"


def _check_path(path, name="path"):
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not path:
        raise ValueError(f"{name} must not be empty")
    return path


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
    from descend import __version__, losses, optimizers
    from descend.model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a descend Sequential, got {type(model).__name__}")
    path = _check_path(path)
    if os.path.isdir(path):
        raise ValueError(f"path {path!r} is a directory; give a file name such as "
                         f"{os.path.join(path, 'model.npz')!r}")
    if not model.built:
        raise ValueError("cannot save a network that is not built: give input_dim or fit "
                         "it first")
    config = {"format": _FORMAT_NAME, "format_version": FORMAT_VERSION,
              "descend_version": __version__, "model": model.get_config(),
              "loss": None, "optimizer": None, "optimizer_state": None,
              "schedule_state": None, "epochs_trained": int(model.epochs_trained),
              "rng_state": model._rng.bit_generator.state,
              "has_classes": model.classes_ is not None,
              "history": {"epoch": list(model.history.epoch),
                          "logs": {k: list(v) for k, v in model.history.items()}}}
    arrays = {}
    for i, w in enumerate(model.get_weights()):
        arrays[f"weight_{i}"] = w
    if model.loss_ is not None:
        loss = model.loss_
        if losses._LOSSES.get(loss.name) is not type(loss):
            raise ValueError(f"cannot save the custom loss {type(loss).__name__}: only "
                             f"descend's losses {sorted(losses._LOSSES)} can be stored")
        config["loss"] = loss.name
        opt = model.optimizer
        registered = {cls.__name__: cls for cls in optimizers._OPTIMIZERS.values()}
        if registered.get(type(opt).__name__) is not type(opt):
            raise ValueError(f"cannot save the custom optimizer {type(opt).__name__}: only "
                             f"descend's optimizers {sorted(registered)} can be stored")
        config["optimizer"] = opt.get_config()
        state = opt.get_state()
        config["optimizer_state"] = {
            "iterations": int(state["iterations"]),
            "learning_rate": float(opt.learning_rate),
            "n_arrays": None if state["arrays"] is None else [len(s) for s in state["arrays"]]}
        if state["arrays"] is not None:
            for i, per_param in enumerate(state["arrays"]):
                for j, a in enumerate(per_param):
                    arrays[f"optimizer_{i}_{j}"] = a
        if opt.schedule is not None:
            config["schedule_state"] = opt.schedule.state_dict()
    if model.classes_ is not None:
        arrays["classes"] = _classes_array(model.classes_)
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
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise self.error(f"unknown format version {version!r}: this descend reads format "
                             f"version {FORMAT_VERSION} (the file was written by descend "
                             f"{config.get('descend_version', '?')})")
        if config.get("format") != _FORMAT_NAME:
            raise self.error(f"the config's format is {config.get('format')!r}, expected "
                             f"{_FORMAT_NAME!r}")
        for key in ("model", "loss", "optimizer", "optimizer_state", "schedule_state",
                    "rng_state", "epochs_trained", "has_classes"):
            if key not in config:
                raise self.error(f"the config has no {key!r} entry")
        return config

    def build(self):
        from descend import layers as layers_module
        from descend import optimizers
        from descend.model import History, Sequential

        config = self.config()
        model_config = config["model"]
        if not isinstance(model_config, dict) or not isinstance(model_config.get("layers"),
                                                                list):
            raise self.error("the config's 'model' must be an object with a 'layers' list")
        try:
            layers = [layers_module.from_config(dict(c)) if isinstance(c, dict) else
                      layers_module.from_config(c) for c in model_config["layers"]]
            self.check_declared_shapes(layers, model_config.get("input_dim"))
            net = Sequential(layers, input_dim=model_config.get("input_dim"),
                             dtype=model_config.get("dtype"),
                             seed=model_config.get("seed"),
                             n_threads=model_config.get("n_threads"),
                             name=model_config.get("name"))
        except (TypeError, ValueError, KeyError) as exc:
            raise self.error(f"invalid architecture in the config: {exc}") from None
        if not net.built:
            raise self.error("the config's architecture has no input_dim or no Dense layer")

        # weights
        params = net._params()
        weights = []
        for i, p in enumerate(params):
            w = self.array(f"weight_{i}")
            self.check_param_array(w, p, f"weight_{i}")
            weights.append(w)
        if f"weight_{len(params)}" in self.keys:
            raise self.error(f"the file holds more weight arrays than the architecture's "
                             f"{len(params)}")
        net.set_weights(weights)

        # loss and optimizer
        if config["loss"] is not None:
            try:
                optimizer = optimizers.from_config(config["optimizer"])
                net.compile(loss=config["loss"], optimizer=optimizer)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                raise self.error(f"invalid loss or optimizer in the config: {exc}") from None
            self.restore_optimizer(net, config)
        net.epochs_trained = self.nonnegative_int(config["epochs_trained"], "epochs_trained")

        # classes, random generator, history
        if config["has_classes"]:
            classes = self.array("classes")
            if classes.ndim != 1 or classes.dtype.kind not in _CLASSES_KINDS:
                raise self.error(f"entry 'classes' must be a 1-D array of numbers or "
                                 f"strings, got dtype {classes.dtype}, shape {classes.shape}")
            self.check_classes(net, classes)
            net.classes_ = classes
        net._rng = self.generator(config["rng_state"])
        history = History()
        saved = config.get("history") or {}
        try:
            for e in saved.get("epoch", []):
                history.epoch.append(int(e))
            for key, values in saved.get("logs", {}).items():
                history[str(key)] = [float(v) for v in values]
        except (TypeError, ValueError, AttributeError) as exc:
            raise self.error(f"invalid history in the config: {exc}") from None
        net.history = history
        return net

    def check_declared_shapes(self, layers, input_dim):
        """Compare the architecture's parameter shapes with the stored arrays
        before anything is allocated: a config may declare sizes far beyond
        its arrays (the network would draw them all first)."""
        from descend.layers import Dense
        if isinstance(input_dim, bool) or not isinstance(input_dim, int):
            return      # Sequential names the problem
        i, n_in = 0, input_dim
        for layer in layers:
            if not isinstance(layer, Dense):
                continue
            for shape in [(n_in, layer.units)] + ([(layer.units,)] if layer.use_bias else []):
                stored = self.array(f"weight_{i}").shape
                if stored != shape:
                    raise self.error(f"entry 'weight_{i}' has shape {stored}, but the "
                                     f"architecture needs {shape}")
                i += 1
            n_in = layer.units

    def check_classes(self, net, classes):
        """classes_ as fit makes it: finite, sorted unique, one per class of the loss."""
        if classes.dtype.kind == "f" and not np.isfinite(classes).all():
            raise self.error(f"entry 'classes' contains NaN or infinite labels: "
                             f"{classes.tolist()[:20]}")
        if len(classes) != len(np.unique(classes)) or not np.array_equal(
                np.unique(classes), classes):
            raise self.error(f"entry 'classes' must hold sorted distinct labels (as "
                             f"numpy.unique), got {classes.tolist()[:20]}")
        if net.loss_ is not None and net.loss_.is_classifier:
            n_out = net.dense_layers[-1].units
            expected = n_out if net.loss_.link == "softmax" else 2
            if len(classes) != expected:
                raise self.error(f"entry 'classes' has {len(classes)} labels, but the "
                                 f"network's {net.loss_.name} output needs {expected}")

    def check_param_array(self, array, like, key):
        if array.shape != like.shape:
            raise self.error(f"entry {key!r} has shape {array.shape}, but the architecture "
                             f"needs {like.shape}")
        if array.dtype != like.dtype:
            raise self.error(f"entry {key!r} has dtype {array.dtype}, but the network's "
                             f"dtype is {like.dtype}")
        if not np.isfinite(array).all():
            raise self.error(f"entry {key!r} contains NaN or infinite values")

    def nonnegative_int(self, value, name):
        if (isinstance(value, bool) or not isinstance(value, int) or value < 0
                or value >= 2**62):
            raise self.error(f"{name} must be an int >= 0 (and < 2**62), got {value!r}")
        return value

    def restore_optimizer(self, net, config):
        opt = net.optimizer
        state = config["optimizer_state"]
        if not isinstance(state, dict):
            raise self.error("the config's 'optimizer_state' must be an object")
        iterations = self.nonnegative_int(state.get("iterations"), "optimizer iterations")
        learning_rate = state.get("learning_rate")
        if (isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float))
                or not math.isfinite(learning_rate) or learning_rate < 0):
            raise self.error(f"the optimizer's learning_rate must be a finite float >= 0, "
                             f"got {learning_rate!r}")
        counts = state.get("n_arrays")
        params = net._params()
        arrays = None
        if counts is not None:
            expected = len(opt.active_state_names())
            if (not isinstance(counts, list) or len(counts) != len(params)
                    or any(c != expected for c in counts)):
                raise self.error(f"the optimizer state must have {expected} array(s) for each "
                                 f"of the {len(params)} parameters, the config says {counts!r}")
            arrays = []
            for i, p in enumerate(params):
                per_param = []
                for j in range(expected):
                    a = self.array(f"optimizer_{i}_{j}")
                    self.check_param_array(a, p, f"optimizer_{i}_{j}")
                    per_param.append(np.ascontiguousarray(a))
                arrays.append(per_param)
        opt.set_state({"iterations": iterations, "arrays": arrays})
        opt.learning_rate = float(learning_rate)
        if config["schedule_state"] is not None:
            if opt.schedule is None:
                raise self.error("the config has a schedule state but no schedule")
            try:
                opt.schedule.load_state_dict(config["schedule_state"])
            except (TypeError, ValueError) as exc:
                raise self.error(f"invalid learning-rate schedule state: {exc}") from None

    def generator(self, state):
        if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
            name = state.get("bit_generator") if isinstance(state, dict) else state
            raise self.error(f"unknown random bit generator {name!r} in 'rng_state' (known: "
                             f"{sorted(_BIT_GENERATORS)})")
        bit_generator = _BIT_GENERATORS[state["bit_generator"]]()
        try:
            bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise self.error(f"invalid random generator state: {exc}") from None
        return np.random.Generator(bit_generator)
