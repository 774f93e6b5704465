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
archive, truncated, pickled objects, a missing or unknown entry, an unknown
format version, inconsistent shapes) is a ValueError naming the problem and
the path once; problems of the file system (permissions, I/O) are OSErrors.

Loading reads each entry's ``.npy`` header (shape, dtype) from the zip
member before any data: every header must agree with the size the zip
directory declares for the member, and with the shapes the config's
architecture needs, before anything of that size is allocated or
decompressed. A member may not claim to expand more than 1100-fold (beyond
deflate's limit of about 1032), and the config entry is at most 64 MiB. So
a malformed file costs at most a few MB beyond the model it describes.
Only regular files are opened (never blocking on a named pipe or device).

Saving writes a temporary file beside the target, named
``.<name>.descend-save-<host>-<pid>-<random>.tmp``, flushes it to disk
(fsync), renames it over the target and flushes the directory, so that once
``save`` returns the model survives a crash or power loss, and an
interrupted save leaves the previous file intact. The new file gets the
permissions ``open(path, "w")`` would give (the umask applies; an
overwritten file keeps its mode). A process killed during a save (kill -9)
leaves its temporary file behind; the next save to the same directory
removes those of processes of this host that no longer run.
"""
import json
import math
import os
import secrets
import socket
import stat
import struct
import tokenize
import zipfile
import zlib

import numpy as np

from descend._validation import check

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
            "learning_rate_scale": float(state["learning_rate_scale"]),
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
    _write_durably(path, lambda f: np.savez(f, **arrays))
    return path


_TMP_TAG = ".descend-save-"


def _write_durably(path, write):
    """Write a file through `write(fileobject)` atomically and durably.

    A temporary file in the target's directory, fsync, rename over the
    target, fsync of the directory. Permissions as ``open(path, "wb")``
    would give: 0o666 minus the umask for a new file, the old mode when
    overwriting. A symbolic link is written through, as open() would.
    """
    target = os.path.realpath(path) if os.path.islink(path) else path
    directory, name = os.path.split(os.path.abspath(target))
    _remove_stale_temporaries(directory, name)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = os.path.join(directory, f".{name}{_TMP_TAG}{_host_tag()}-{os.getpid()}-"
                                  f"{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make a rename in `directory` durable (POSIX; Windows has no directory fsync)."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:     # some file systems (e.g. some network mounts) refuse it
        pass
    finally:
        os.close(fd)


def _host_tag():
    """This host's name, kept to characters that are safe in a file name."""
    return "".join(c for c in socket.gethostname() if c.isalnum())[:32] or "host"


def _remove_stale_temporaries(directory, name):
    """Delete temporaries of saves to `name` by processes of this host that died."""
    if os.name == "nt":
        return      # os.kill(pid, 0) cannot probe a process there
    prefix = f".{name}{_TMP_TAG}{_host_tag()}-"
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            try:
                os.remove(os.path.join(directory, entry))
            except OSError:
                pass


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:         # e.g. PermissionError: it exists
        return True
    return True


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
    OSError
        Other problems of the file system (PermissionError, I/O errors).
    TypeError
        `path` is not a path.
    ValueError
        The file is not a descend model: not a regular file (a directory,
        named pipe or device: refused without reading), not an ``.npz``
        archive, truncated or corrupt (a damaged ``.npy`` header, a failed
        checksum), holding pickled objects, lacking an entry or holding an
        unknown one, of an unknown format version, or with contents that do
        not match the config's architecture (checked from the headers,
        before any data is read). The message names the problem and the
        path once.
    """
    path = _check_path(path)
    with _open_regular_file(path) as f:
        archive = _NpzArchive(f, path)
        reader = _Reader(archive, path)
        net = reader.build()
        archive.check_all_used()
        return net


def _open_regular_file(path):
    """Open `path` for reading if it is a regular file; never blocks.

    O_NONBLOCK makes opening a named pipe return at once (it would wait for
    a writer); the type is then checked on the open descriptor itself.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FileNotFoundError(f"no model file at {path!r}") from None
    except IsADirectoryError:       # Windows
        raise ValueError(f"{path!r} is a directory, not a descend model file") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ValueError(f"{path!r} is a directory, not a descend model file")
        if not stat.S_ISREG(mode):
            raise ValueError(f"{path!r} is not a regular file (a named pipe, device or "
                             "socket); descend reads models from regular files only")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# Whatever a damaged archive, header or compressed stream can raise while it is
# parsed (numpy's header parser alone raises ValueError, SyntaxError or
# tokenize.TokenError): each means "this file is not a readable model".
_CORRUPT = (ValueError, SyntaxError, tokenize.TokenError, TypeError, EOFError, zlib.error,
            zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            struct.error, OverflowError, KeyError, IndexError, OSError)
try:
    import lzma
    _CORRUPT += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - Python built without lzma
    pass

_MAX_EXPANSION = 1100            # deflate cannot exceed ~1032:1
_MAX_CONFIG_BYTES = 64 * 2**20   # the JSON config as a numpy unicode array (UTF-32)


class _NpzArchive:
    """The entries of an ``.npz`` file: headers checked first, data on demand.

    Opening reads the zip directory and every member's ``.npy`` header; each
    header's shape and dtype must agree with the member size the directory
    declares, so that nothing later reads or allocates more than the file
    says. Arrays are then read one at a time, only after the caller has
    compared their header with what it expects.
    """

    def __init__(self, fileobj, path):
        self.path = path
        self.used = set()
        if fileobj.read(4) not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ValueError(f"{path!r} is not a descend model file: not an .npz (zip) "
                             "archive")
        fileobj.seek(0)
        try:
            self.zip = zipfile.ZipFile(fileobj)
            infos = self.zip.infolist()
        except _CORRUPT as exc:
            raise ValueError(f"{path!r} is not a readable .npz archive (truncated or "
                             f"corrupt?): {exc}") from None
        self.members = {}
        for info in infos:
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if key is None or key in self.members:
                raise ValueError(f"{path!r}: unexpected archive member {info.filename!r} "
                                 "(a descend model holds one .npy member per entry)")
            self.members[key] = (info,) + self._header(key, info)

    @property
    def keys(self):
        return set(self.members)

    def error(self, key, message):
        return ValueError(f"{self.path!r}: entry {key!r} {message}")

    def _header(self, key, info):
        """(shape, dtype, fortran_order, data offset) from the member's .npy header."""
        if info.flag_bits & 0x1:
            raise self.error(key, "is encrypted")
        if (info.compress_type != zipfile.ZIP_STORED
                and info.file_size > _MAX_EXPANSION * info.compress_size + 65536):
            raise self.error(key, f"claims to expand {info.compress_size} compressed bytes "
                                  f"to {info.file_size}, beyond any real compression")
        try:
            with self.zip.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(stream)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(stream)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                offset = stream.tell()
        except _CORRUPT as exc:
            raise self.error(key, f"cannot be read (truncated or corrupt file?): "
                                  f"{type(exc).__name__}: {exc}") from None
        shape, fortran_order, dtype = header
        if dtype.hasobject:
            raise self.error(key, "holds pickled Python objects; descend never unpickles "
                                  "(allow_pickle=False)")
        nbytes = math.prod(shape) * dtype.itemsize
        if info.file_size != offset + nbytes:
            raise self.error(key, f"declares shape {shape} of {dtype} ({nbytes} bytes) but "
                                  f"the archive stores {info.file_size - offset} bytes for it")
        if key == "config" and nbytes > _MAX_CONFIG_BYTES:
            raise self.error(key, f"is {nbytes} bytes, more than a model config can be "
                                  f"({_MAX_CONFIG_BYTES})")
        return shape, dtype, fortran_order, offset

    def header(self, key):
        """(shape, dtype) of an entry, read from its header (no data read)."""
        self.used.add(key)
        _, shape, dtype, _, _ = self.members[key]
        return shape, dtype

    def read(self, key):
        """The entry's array (its header was checked when the archive opened)."""
        self.used.add(key)
        info, shape, dtype, fortran_order, offset = self.members[key]
        array = np.empty(shape, dtype=dtype, order="F" if fortran_order else "C")
        buffer = memoryview(array.reshape(-1, order="A").view(np.uint8))
        try:
            with self.zip.open(info) as stream:
                stream.read(offset)
                filled = 0
                while filled < len(buffer):
                    n = stream.readinto(buffer[filled:])
                    if not n:
                        raise EOFError(f"{len(buffer) - filled} bytes missing")
                    filled += n
                if stream.read(1):      # also makes zipfile check the CRC
                    raise ValueError("data beyond the declared shape")
        except _CORRUPT as exc:
            raise self.error(key, f"cannot be read (truncated or corrupt file?): "
                                  f"{type(exc).__name__}: {exc}") from None
        return array

    def check_all_used(self):
        unknown = sorted(self.keys - self.used)
        if unknown:
            raise ValueError(f"{self.path!r}: unknown entries {unknown}; descend writes "
                             "only config, weight_<i>, optimizer_<i>_<j> and classes")


class _ModelFileError(ValueError):
    """A problem of the model file, already naming its path."""


class _Reader:
    """Reads and checks the entries of one archive; every error names the path."""

    def __init__(self, archive, path):
        self.archive = archive
        self.path = path
        self.keys = archive.keys
        self.loaded = {}

    def error(self, message):
        return _ModelFileError(f"{self.path!r}: {message}")

    def require(self, key):
        if key not in self.keys:
            raise self.error(f"missing entry {key!r}; the file is incomplete or not a "
                             "descend model")

    def shape(self, key):
        """An entry's shape from its header, without reading its data."""
        self.require(key)
        return self.archive.header(key)[0]

    def array(self, key, like=None):
        """An entry's array; with `like`, its header's shape and dtype are
        compared with like's before any data is read."""
        self.require(key)
        if like is not None:
            shape, dtype = self.archive.header(key)
            self.check_shape_and_dtype(key, shape, dtype, like)
        if key not in self.loaded:
            self.loaded[key] = self.archive.read(key)
        return self.loaded[key]

    def config(self):
        self.require("config")
        shape, dtype = self.archive.header("config")
        if shape != () or dtype.kind != "U":
            raise self.error(f"entry 'config' must be a 0-d unicode array, got dtype "
                             f"{dtype} and shape {shape}")
        raw = self.array("config")
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
        except _ModelFileError:
            raise
        except (TypeError, ValueError, KeyError) as exc:
            raise self.error(f"invalid architecture in the config: {exc}") from None
        if not net.built:
            raise self.error("the config's architecture has no input_dim or no Dense layer")

        # weights
        params = net._params()
        weights = []
        for i, p in enumerate(params):
            w = self.array(f"weight_{i}", like=p)
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
            self.require("classes")
            shape, dtype = self.archive.header("classes")
            if len(shape) != 1 or dtype.kind not in _CLASSES_KINDS:
                raise self.error(f"entry 'classes' must be a 1-D array of numbers or "
                                 f"strings, got dtype {dtype}, shape {shape}")
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
                stored = self.shape(f"weight_{i}")
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

    def check_shape_and_dtype(self, key, shape, dtype, like):
        if shape != like.shape:
            raise self.error(f"entry {key!r} has shape {shape}, but the architecture "
                             f"needs {like.shape}")
        if dtype != like.dtype:
            raise self.error(f"entry {key!r} has dtype {dtype}, but the network's "
                             f"dtype is {like.dtype}")

    def check_param_array(self, array, like, key):
        self.check_shape_and_dtype(key, array.shape, array.dtype, like)
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
        # absent from files written before ReduceLROnPlateau composed with schedules
        scale = state.get("learning_rate_scale", 1.0)
        if (isinstance(scale, bool) or not isinstance(scale, (int, float))
                or not math.isfinite(scale) or scale <= 0):
            raise self.error(f"the optimizer's learning_rate_scale must be a finite float > 0, "
                             f"got {scale!r}")
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
                    a = self.array(f"optimizer_{i}_{j}", like=p)
                    self.check_param_array(a, p, f"optimizer_{i}_{j}")
                    per_param.append(np.ascontiguousarray(a))
                arrays.append(per_param)
        opt.set_state({"iterations": iterations, "learning_rate_scale": float(scale),
                       "arrays": arrays})
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
