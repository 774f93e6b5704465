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
problem and the path once; problems of the file system (permissions, I/O)
are OSErrors.

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
overwritten file keeps its mode), and a file ``open(path, "w")`` would
refuse (read-only for this user) is a PermissionError, not replaced. A
process killed during a save (kill -9) leaves its temporary file behind;
the next save to the same directory removes those of processes of this
host that no longer run.
"""
import errno
import json
import math
import os
import secrets
import socket
import stat
import struct
import tokenize
import warnings
import zipfile
import zlib

import numpy as np

from descend import _threads, losses, optimizers
from descend._validation import MAX_THREADS, check, directory_ending, outside_stacklevel
from descend.model import Sequential

FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_FORMAT_NAME = "descend.Sequential"
_CLASSES_KINDS = "biufUS"
# Entries other than parameters and optimizer state (classes_, arrays of the
# random generator's state): bounded, so a config cannot make load allocate more.
_MAX_OTHER_ENTRY_BYTES = 16 * 2**20


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

    The file is written to a temporary name in the same directory, flushed
    to disk and renamed (see the module docstring): an interrupted save
    never leaves a truncated model behind.

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
        `path` is a directory or ends with a path separator, '.' or '..', or an
        existing file that is not a regular file (a named pipe, device or
        socket: the save would replace it).
        The network is not built, or part of it cannot be stored without
        code: a custom (unregistered) loss, optimizer or layer, a
        ``LambdaSchedule`` or other callable, or ``classes_`` of mixed
        Python objects, of str labels ending in NUL characters (which
        numpy's fixed-width strings drop) or of ints beyond 64 bits.
        Nothing is written then.
    PermissionError
        `path` is a file this user may not write (read-only), as
        ``open(path, "w")`` raises; the file is left as it was.
    RuntimeError
        Another thread is training `model` (its weights move at every step,
        its counters between epochs): wait for that fit to return, or save
        from one of its callbacks (``callbacks.ModelCheckpoint``), which run
        between epochs in its thread. Nothing is written.
    """
    from descend import __version__

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a descend Sequential, got {type(model).__name__}")
    # before anything is checked or written: a fit in another thread is mid-epoch
    _threads.check_consistent_read(model, "save")
    path = _check_path(path)
    if os.path.isdir(path):
        raise ValueError(f"path {path!r} is a directory; give a file name such as "
                         f"{os.path.join(path, 'model.npz')!r}")
    if ending := directory_ending(path):
        # (was: an OSError naming the temporary file, from the rename)
        raise ValueError(f"path {path!r} ends with {ending}, which names a "
                         "directory; give a file name, without the directory's ending")
    if os.path.exists(path) and not os.path.isfile(path):
        # the rename would replace it (as root, /dev/null itself) with the model
        raise ValueError(f"path {path!r} is not a regular file (a named pipe, device or "
                         "socket); descend writes models to regular files only")
    if not model.built:
        raise ValueError("cannot save a network that is not built: give input_dim or fit "
                         "it first")
    _check_registered(model)
    if model.classes_ is not None:      # labels no file holds, named before their count
        _classes_array(model.classes_)
    state = model.state_dict()          # (checks classes_ fit the network and its loss)
    # the plan goes beside the state, not in it: descend versions whose
    # load_state_dict knows no "plan" key read these files as before
    plan = state.pop("plan")
    if state["classes"] is not None:
        state["classes"] = _classes_array(state["classes"])
    arrays = {}
    config = {"format": _FORMAT_NAME, "format_version": FORMAT_VERSION,
              "descend_version": __version__, "model": model.get_config(),
              "compile": model.get_compile_config(),
              "state": _arrays_to_entries(state, arrays, ()), "plan": plan}
    arrays["config"] = np.array(_config_json(config))

    _write_durably(path, lambda f: np.savez(f, **arrays))
    return path


def check_savable(model):
    """ValueError, as :func:`save` raises it, if `model` (a Sequential) holds a
    part no model file can store: a custom loss or optimizer, a
    ``LambdaSchedule``, a custom initializer or another Python callable.
    ``callbacks.ModelCheckpoint`` checks this when fit starts, before the
    first epoch trains."""
    _check_registered(model)
    _config_json({"model": model.get_config(), "compile": model.get_compile_config()})


def _config_json(config):
    """The JSON text of a model file's config; ValueError if part of it is no plain data."""
    try:
        return json.dumps(config, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot save this network: part of its configuration is not "
                         f"plain data ({exc}); a LambdaSchedule, a custom initializer or "
                         "another Python callable cannot be stored in a model file. For a "
                         "learning rate, use a built-in schedule (descend.schedules) or set "
                         "it from a LearningRateScheduler callback; or keep the arrays "
                         "with state_dict()") from None


_TMP_TAG = ".descend-save-"


def _write_durably(path, write):
    """Write a file through `write(fileobject)` atomically and durably.

    A temporary file in the target's directory, fsync, rename over the
    target, fsync of the directory. Permissions as ``open(path, "wb")``
    would give: 0o666 minus the umask for a new file, the old mode when
    overwriting; a file this user may not write is a PermissionError, as
    open() raises. A symbolic link is written through, as open() would.
    """
    target = os.path.realpath(path) if os.path.islink(path) else path
    directory, name = os.path.split(os.path.abspath(target))
    _remove_stale_temporaries(directory, name)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    if mode is not None and not os.access(target, os.W_OK):
        # as open(path, "w") refuses (was: the rename replaced a read-only file,
        # which needs only the directory's permission)
        raise PermissionError(errno.EACCES, "Permission denied (a file this user may not "
                                            "write)", path)
    tmp = os.path.join(directory, f".{name}{_TMP_TAG}{_host_tag()}-{os.getpid()}-"
                                  f"{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except OSError as exc:     # no such directory, no permission: name the user's path
        raise type(exc)(exc.errno, exc.strerror, path) from None
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
    if array.ndim != 1:         # before the object check: its message is for a list of labels
        raise ValueError(f"cannot save classes_ of dtype {array.dtype} and shape "
                         f"{array.shape}")
    if array.dtype.kind == "O":
        values = array.tolist()
        if all(isinstance(v, str) for v in values):
            array = np.array(values, dtype=str)
            if array.tolist() != values:
                # fixed-width strings drop trailing NULs: 'a' and 'a\x00' would be
                # saved as 'a' twice, a file load refuses
                raise ValueError(f"cannot save classes_ {values[:10]}: numpy's fixed-width "
                                 "strings drop trailing NUL characters, so they would be "
                                 f"saved as {array.tolist()[:10]}; use labels without them")
        elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            try:
                array = np.array(values, dtype=np.int64)
            except OverflowError:   # (a bare "Python int too large to convert to C long")
                bad = next(v for v in values if not -2**63 <= v < 2**63)
                raise ValueError(f"cannot save classes_ holding the label {bad}, an int "
                                 "beyond the 64-bit range a model file holds labels in; "
                                 "use smaller ints or strings as labels") from None
        else:
            raise ValueError(f"cannot save classes_ of mixed Python objects "
                             f"{values[:10]}: use numbers or strings as labels")
    if array.dtype.kind not in _CLASSES_KINDS:
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
        before any data is read): a :class:`ModelFileError`, whose message
        names the problem and the path once.

    Warns
    -----
    RuntimeWarning
        The network was saved with an n_threads this machine does not run
        (more than 8 per CPU, and more than 64): it is loaded with
        n_threads=None (all usable cores), which changes no result; or the
        file holds ``classes_`` for a regression loss (left by a classification
        fit, written before descend refused them): loaded without them.
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
        raise ModelFileError(f"{path!r} is a directory, not a descend model file") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ModelFileError(f"{path!r} is a directory, not a descend model file")
        if not stat.S_ISREG(mode):
            raise ModelFileError(f"{path!r} is not a regular file (a named pipe, device or "
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
            raise ModelFileError(f"{path!r} is not a descend model file: not an .npz (zip) "
                                 "archive")
        fileobj.seek(0)
        try:
            self.zip = zipfile.ZipFile(fileobj)
            infos = self.zip.infolist()
        except _CORRUPT as exc:
            raise ModelFileError(f"{path!r} is not a readable .npz archive (truncated or "
                                 f"corrupt?): {exc}") from None
        self.members = {}
        for info in infos:
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if key is None or key in self.members:
                raise ModelFileError(f"{path!r}: unexpected archive member {info.filename!r} "
                                     "(a descend model holds one .npy member per entry)")
            self.members[key] = (info,) + self._header(key, info)

    @property
    def keys(self):
        return set(self.members)

    def error(self, key, message):
        return ModelFileError(f"{self.path!r}: entry {key!r} {message}")

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
            raise ModelFileError(f"{self.path!r}: unknown entries {unknown}; descend writes "
                                 "only config and the entries the config names")


def _without_regression_classes(net, classes, path):
    """`classes`, or None with a RuntimeWarning for a regression network:
    descend before 2026-12 kept a classification fit's classes_ after a
    compile with a regression loss and saved them; load_state_dict now
    refuses them, and a file cannot follow its advice (net.classes_ = None)."""
    if classes is None or net.loss_ is None or net.loss_.is_classifier:
        return classes
    warnings.warn(f"{path!r}: the file holds {len(classes)} classes for the network's "
                  f"{net.loss_.name} loss, a regression, which has none (left by a "
                  "classification fit before a compile with that loss); loaded without "
                  "them", RuntimeWarning, stacklevel=outside_stacklevel())
    return None


def _runnable_threads(model_config, path):
    """The architecture with an n_threads this machine runs: a network saved
    where more threads were allowed (n_threads=128 on a 16-core server; at
    most 8 per CPU, 64 on small machines) loads with n_threads=None and a
    RuntimeWarning (was: refused as an invalid architecture). The count
    changes no result: descend's results are bit-identical for any n_threads."""
    n_threads = model_config.get("n_threads")
    if (isinstance(n_threads, int) and not isinstance(n_threads, bool)
            and n_threads > MAX_THREADS):
        warnings.warn(f"{path!r}: the network was saved with n_threads={n_threads}, more "
                      f"than this machine runs ({MAX_THREADS}, 8 per CPU); loaded with "
                      "n_threads=None (all usable cores)", RuntimeWarning,
                      stacklevel=outside_stacklevel())
        return dict(model_config, n_threads=None)
    return model_config


class _Like:
    """The shape and dtype an entry must have (what the checks read of an array)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)


class ModelFileError(ValueError):
    """A file that :func:`load` cannot read as a descend model (a ValueError),
    its message naming the problem and the path."""


class _Reader:
    """Reads and checks the entries of one archive; every error names the path."""

    def __init__(self, archive, path):
        self.archive = archive
        self.path = path
        self.keys = archive.keys
        self.loaded = {}

    def error(self, message):
        return ModelFileError(f"{self.path!r}: {message}")

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
        except (ValueError, RecursionError) as exc:    # RecursionError: [[[[...]]]]
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
            net = Sequential.from_config(_runnable_threads(model_config, self.path))
        except ModelFileError:
            raise
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
            state = self.entries_to_arrays(config["state"], declared, net.dtype)
        else:
            state = self.version_1_state(config, net, declared)
        # beside the state since the plans were recorded (absent before);
        # a few format-1 files hold the pinned plan and the used one apart
        state["plan"] = (config.get("plan") if version == 2 else
                         {"pinned": config.get("plan"), "used": config.get("plan_used")})
        state["classes"] = _without_regression_classes(net, state["classes"], self.path)
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
            stored = self.shape(key)        # from the header: no data read yet
            if stored != shape:
                raise self.error(f"entry {key!r} has shape {stored}, but the "
                                 f"architecture needs {shape}")
        if version == 1 and f"weight_{len(declared)}" in self.keys:
            raise self.error(f"the file holds more weight arrays than the architecture's "
                             f"{len(declared)}")

    def entries_to_arrays(self, tree, declared, dtype):
        """The state of the config with each ``{"npz": key}`` replaced by its entry."""
        if isinstance(tree, dict):
            if set(tree) == {"npz"} and isinstance(tree["npz"], str):
                return self.checked_entry(tree["npz"], declared, dtype)
            return {key: self.entries_to_arrays(value, declared, dtype)
                    for key, value in tree.items()}
        if isinstance(tree, list):
            return [self.entries_to_arrays(value, declared, dtype) for value in tree]
        return tree

    def checked_entry(self, key, declared, dtype):
        """An entry's array, its header compared first with what the architecture
        declares: a parameter ("parameters/<name>") or an optimizer state array
        ("optimizer/state/<name>.<slot>") has the parameter's shape and the
        network's dtype; any other entry is at most _MAX_OTHER_ENTRY_BYTES."""
        self.require(key)
        shape, entry_dtype = self.archive.header(key)
        name = None
        if key.startswith("parameters/"):
            name = key[len("parameters/"):]
        elif key.startswith("optimizer/state/"):
            name = key[len("optimizer/state/"):].rpartition(".")[0]
        if name is not None:
            if name not in declared:
                raise self.error(f"entry {key!r} names no parameter of the architecture "
                                 f"({list(declared)})")
            self.check_shape_and_dtype(key, shape, entry_dtype, _Like(declared[name], dtype))
        elif math.prod(shape) * entry_dtype.itemsize > _MAX_OTHER_ENTRY_BYTES:
            raise self.error(f"entry {key!r} declares shape {shape} of {entry_dtype}, more "
                             f"than such an entry can hold ({_MAX_OTHER_ENTRY_BYTES} bytes)")
        return self.array(key)

    def check_shape_and_dtype(self, key, shape, dtype, like):
        if shape != like.shape:
            raise self.error(f"entry {key!r} has shape {shape}, but the architecture "
                             f"needs {like.shape}")
        if dtype != like.dtype:
            raise self.error(f"entry {key!r} has dtype {dtype}, but the network's "
                             f"dtype is {like.dtype}")

    def version_1_state(self, config, net, declared):
        """A format-1 file's contents as a ``state_dict`` (arrays named by position)."""
        names = list(declared)
        likes = [_Like(shape, net.dtype) for shape in declared.values()]
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
                                                                  net, names, likes)}
        return {"parameters": {name: self.array(f"weight_{i}", like=likes[i])
                               for i, name in enumerate(names)},
                "optimizer": optimizer,
                "classes": (self.checked_entry("classes", {}, net.dtype)
                            if config["has_classes"] else None),
                "rng_state": config["rng_state"], "epochs_trained": config["epochs_trained"],
                "history": config.get("history") or {}}

    def version_1_optimizer_arrays(self, counts, net, names, likes):
        if counts is None:
            return None
        slots = net.optimizer.active_state_names()
        if (not isinstance(counts, list) or len(counts) != len(names)
                or any(c != len(slots) for c in counts)):
            raise self.error(f"the optimizer state must have {len(slots)} array(s) for each "
                             f"of the {len(names)} parameters, the config says {counts!r}")
        return {f"{name}.{slot}": self.array(f"optimizer_{i}_{j}", like=likes[i])
                for i, name in enumerate(names) for j, slot in enumerate(slots)}
