"""Small real datasets for examples, tests and benchmarks.

Three datasets are available:

* :func:`load_digits` -- the UCI optical digits test set (1797 images of 8x8
  pixels), bundled with the package, so it works with no setup at all.
* :func:`load_breast_cancer` -- the UCI Breast Cancer Wisconsin (Diagnostic)
  tabular dataset (569 samples, 30 features), also bundled.
* :func:`load_mnist` -- MNIST (70000 images of 28x28 pixels). It is too large
  to ship, so it is read from a local directory and, when missing, downloaded
  from public mirrors. Every load checks the SHA-256 of the files' IDX content
  (decompressed, for the ``.gz`` ones).

:func:`train_test_split` splits arrays reproducibly, optionally stratified.

This module imports only NumPy, the standard library and the pure-Python
``descend._validation`` on purpose: loading data must not depend on the
compiled kernels being built.
"""
from __future__ import annotations

import contextlib
import contextvars
import gzip
import hashlib
import http.client
import logging
import math
import os
import tempfile
import urllib.request
import zlib
from importlib import resources
from numbers import Integral, Real
from pathlib import Path
from typing import NamedTuple

import numpy as np

from descend._validation import (InstanceOf, Interval, as_array, check, refuse_unknown_keywords,
                                 validate_params)

__all__ = [
    "BREAST_CANCER_CLASS_NAMES",
    "DIGITS_CLASS_NAMES",
    "MIRRORS",
    "MNIST_FILES",
    "DatasetCorruptError",
    "DatasetNotFoundError",
    "Split",
    "get_mnist_dir",
    "load_breast_cancer",
    "load_digits",
    "load_mnist",
    "train_test_split",
]

_log = logging.getLogger(__name__)

# The package whose ``data/`` folder holds the bundled files. ``__package__`` is
# "descend" once installed; the fallback keeps the name right if this file is
# ever executed on its own.
_PACKAGE = __package__ or "descend"

DIGITS_CLASS_NAMES = tuple(str(d) for d in range(10))
"""Names of the digits classes: ``"0"`` to ``"9"`` (label ``k`` is digit ``k``)."""

BREAST_CANCER_CLASS_NAMES = ("malignant", "benign")
"""Names of the breast cancer classes, indexed by label (0 = malignant, 1 = benign)."""

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
"""Base URLs tried in order to download missing MNIST files (override with
``load_mnist(mirrors=...)``). yann.lecun.com is left out: it often refuses
automated downloads."""

# SHA-256 of the *decompressed* IDX bytes. The .gz files themselves differ
# between mirrors and re-compressions, their content does not.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
"""The four MNIST file names and the SHA-256 of their decompressed content."""

_IDX_MAGIC_LABELS = 0x00000801  # unsigned bytes, 1 dimension
_IDX_MAGIC_IMAGES = 0x00000803  # unsigned bytes, 3 dimensions

# Files whose hash has already been checked in this process, keyed by
# (name, path, inode, size, mtime_ns, ctime_ns), the name the MNIST file it
# was checked as (a symbolic link t10k-images-idx3-ubyte.gz to a checked
# train-images-idx3-ubyte.gz is not that file): a repeated load skips re-hashing
# 55 MB, and any change to the file changes the key so it is checked again
# (a write, or a copy over it, moves ctime, which no one can set back as
# os.utime sets mtime back).
_VERIFIED = set()


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not on disk and could not be downloaded.

    A subclass of :class:`FileNotFoundError` (hence of :class:`OSError`), so
    ``except OSError`` catches it. The message says which files are missing
    and where to put them.
    """


class DatasetCorruptError(ValueError):
    """A dataset's file is on disk but its content is wrong: not valid gzip,
    a bad IDX header, a SHA-256 that does not match.

    A subclass of :class:`ValueError` (what these errors were before it
    existed), so that a caller can tell a corrupt file, which the user must
    replace, from a bad argument. The message names the file.
    """


# How a message tells the user to point at another data directory: the
# keyword for Python callers, the option when the call came from the command
# line (``python -m descend demo|bench|experiments`` set it, see
# :func:`_command_line_option`).
_DATA_HOME_SETTING = contextvars.ContextVar("data_home_setting", default="data_home")


@contextlib.contextmanager
def _command_line_option(option="--data-home"):
    """Within the block, dataset messages name ``option`` instead of the
    ``data_home`` keyword (the CLI wraps its commands in this)."""
    token = _DATA_HOME_SETTING.set(option)
    try:
        yield
    finally:
        _DATA_HOME_SETTING.reset(token)


def _point_to_the_files():
    """The end of a missing-files message: how to point descend at them."""
    return (f"or point {_DATA_HOME_SETTING.get()} or the DESCEND_DATA environment "
            "variable to the directory that holds them.")


def _new_directories(directory):
    """The not yet existing directories from ``directory`` up, deepest first."""
    created = []
    for path in (directory, *directory.parents):
        if path.exists():
            break
        created.append(path)
    return created


def _remove_if_empty(directories):
    """Remove what a failed download created (deepest first), if still empty."""
    for path in directories:
        try:
            path.rmdir()
        except OSError:     # not empty (a concurrent download), or gone already
            return


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

class _FloatFraction(Interval):
    """A float (not an int) in (0, 1): the fraction form of test_size."""

    def __init__(self):
        super().__init__(Real, 0, 1, closed="neither")

    def type_ok(self, value):
        return super().type_ok(value) and not isinstance(value, Integral)


class Split(NamedTuple):
    """Train and test sets, in scikit-learn's ``train_test_split`` order.

    Returned by :func:`train_test_split` and :func:`load_mnist`; unpack it
    (``X_train, X_test, y_train, y_test = split``) or read its fields
    (``split.X_train``).

    Examples
    --------
    >>> import numpy as np
    >>> split = train_test_split(np.arange(8).reshape(4, 2), np.array([0, 1, 0, 1]),
    ...                          test_size=1, seed=0)
    >>> split._fields
    ('X_train', 'X_test', 'y_train', 'y_test')
    >>> split.X_train.shape, split.y_test.shape
    ((3, 2), (1,))
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def _bundled(name):
    """A readable handle on ``data/<name>`` inside the installed package."""
    return resources.files(_PACKAGE) / "data" / name


# ---------------------------------------------------------------------------
# bundled datasets
# ---------------------------------------------------------------------------

@validate_params({"return_X_y": ["boolean"], "dtype": ["dtype"]})
def load_digits(return_X_y=True, dtype="float32"):
    """Load the UCI optical recognition of handwritten digits (test set).

    1797 grey-level images of 8x8 pixels, each pixel an integer count 0..16,
    of the ten digits written by 13 people distinct from those of the UCI
    training set. The data ship with the package: no download is needed.

    Parameters
    ----------
    return_X_y : bool, default=True
        If True return ``(X, y)``. If False return a dict with keys
        ``"data"`` (same as ``X``), ``"target"`` (``y``), ``"images"`` (``X``
        reshaped to ``(1797, 8, 8)``) and ``"target_names"``.
    dtype : {"float32", "float64"}, default="float32"
        Floating type of ``X``.

    Returns
    -------
    X : ndarray of shape (1797, 64), dtype ``dtype``
        Pixels in row-major order, scaled to [0, 1] by dividing by 16.
    y : ndarray of shape (1797,), dtype int64
        Digit labels 0..9 (counts per digit: 178 182 177 183 181 182 181 179
        174 180).

    Raises
    ------
    ValueError
        If ``dtype`` is not float32 or float64, or if the bundled file is
        malformed.

    References
    ----------
    E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits",
    UCI Machine Learning Repository, 1998 (CC BY 4.0).
    https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits
    """
    with _bundled("digits.csv.gz").open("rb") as raw, gzip.open(raw, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != 65:
        raise ValueError(f"digits.csv.gz: expected 65 columns, got {table.shape[1]}")
    pixels, y = table[:, :64], table[:, 64].copy()
    if pixels.min() < 0 or pixels.max() > 16 or y.min() < 0 or y.max() > 9:
        raise ValueError("digits.csv.gz: pixel values must be 0..16 and labels 0..9")
    X = pixels.astype(dtype)
    X /= 16  # 16 is the largest count a 4x4 block of the 32x32 bitmap can hold
    if return_X_y:
        return X, y
    return {
        "data": X,
        "target": y,
        "images": X.reshape(-1, 8, 8),
        "target_names": list(DIGITS_CLASS_NAMES),
    }


@validate_params({"dtype": ["dtype"], "standardize": ["boolean"], "return_names": ["boolean"]})
def load_breast_cancer(dtype="float32", standardize=False, return_names=False):
    """Load the UCI Breast Cancer Wisconsin (Diagnostic) dataset.

    569 samples of 30 real-valued features computed from digitised images of
    fine needle aspirates of breast masses (mean, standard error and "worst"
    value of ten cell nucleus measurements), with a binary diagnosis. The data
    ship with the package: no download is needed.

    Parameters
    ----------
    dtype : {"float32", "float64"}, default="float32"
        Floating type of ``X``.
    standardize : bool, default=False
        If True, shift and scale each feature to zero mean and unit variance
        (population standard deviation). The statistics are those of all 569
        samples; for an unbiased estimate of generalisation, split first and
        standardise with the training statistics instead.
    return_names : bool, default=False
        If True also return the class names.

    Returns
    -------
    X : ndarray of shape (569, 30), dtype ``dtype``
        Features, in raw units unless ``standardize`` is True.
    y : ndarray of shape (569,), dtype int64
        0 = malignant (212 samples), 1 = benign (357 samples).
    names : list of str
        Only if ``return_names`` is True: ``["malignant", "benign"]``, the
        name of class ``k`` at index ``k`` (also available as
        :data:`BREAST_CANCER_CLASS_NAMES`).

    Raises
    ------
    ValueError
        If ``dtype`` is not float32 or float64, or if the bundled file is
        malformed.

    References
    ----------
    W. Wolberg, W. Street and O. Mangasarian, "Breast Cancer Wisconsin
    (Diagnostic)", UCI Machine Learning Repository, 1995 (CC BY 4.0).
    https://archive.ics.uci.edu/dataset/17/breast+cancer+wisconsin+diagnostic
    """
    with _bundled("breast_cancer.csv").open("r", encoding="ascii") as f:
        # Header: "<n_samples>,<n_features>,<name of class 0>,<name of class 1>".
        header = f.readline().strip().split(",")
        try:
            n_samples, n_features = int(header[0]), int(header[1])
            names = [s.strip() for s in header[2:]]
        except (IndexError, ValueError):
            raise ValueError(f"breast_cancer.csv: malformed header {header!r}") from None
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape != (n_samples, n_features + 1) or len(names) != 2:
        raise ValueError(
            f"breast_cancer.csv: header announces {n_samples} x {n_features} and "
            f"2 class names, file holds {table.shape[0]} x {table.shape[1] - 1} "
            f"and {len(names)} names"
        )
    X, labels = table[:, :-1], table[:, -1]
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("breast_cancer.csv: labels must be 0 or 1")
    y = labels.astype(np.int64)
    if standardize:
        # Statistics in float64 so that float32 output loses nothing extra.
        std = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    X = X.astype(dtype)
    if return_names:
        return X, y, names
    return X, y


# ---------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------

def _described(value, array):
    """`value` as an error message shows it: a str or scalar by repr, an array by shape."""
    return f"{value!r}" if array.ndim == 0 else f"shape {array.shape}"


def get_mnist_dir(data_home=None):
    """Directory where :func:`load_mnist` looks for (and downloads) MNIST.

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        If given, this directory is returned (with ``~`` expanded).

    Returns
    -------
    pathlib.Path
        ``data_home`` if given; else the ``DESCEND_DATA`` environment variable
        if set and non-empty; else ``~/.cache/descend/mnist``. The four MNIST
        files (``.gz`` or uncompressed) are expected directly in this
        directory.

    Raises
    ------
    ValueError
        ``data_home`` is empty; ``data_home`` (or ``DESCEND_DATA``) is only
        whitespace, holds a NUL byte, or starts with ``~name`` of no known
        user (an empty ``DESCEND_DATA`` is taken as unset).
    TypeError
        ``data_home`` is not a str or os.PathLike (bytes included).
    """
    return _data_dir(data_home, "mnist")


def _data_dir(data_home, name):
    """``data_home``, else ``$DESCEND_DATA`` if set and non-empty, else
    ``~/.cache/descend/<name>``, checked by :func:`_directory` (the one check
    of every loader's data directory)."""
    if data_home is not None:
        return _directory(data_home, _DATA_HOME_SETTING.get())
    env = os.environ.get("DESCEND_DATA")
    if env:
        return _directory(env, "DESCEND_DATA")
    return Path.home() / ".cache" / "descend" / name


def _file_in_the_way(directory):
    """Why `directory` can be neither read nor made: "(a file)" when it is
    an existing file, "('/x' is a file)" when one of its parents is; None
    when its nearest existing ancestor is a directory."""
    directory = Path(directory)
    for path in (directory, *directory.parents):
        if os.path.exists(path):
            if os.path.isdir(path):
                return None
            return "(a file)" if path == directory else f"({str(path)!r} is a file)"
    return None


def _not_a_file(directory, data_home):
    """ValueError naming the setting (data_home, its CLI option or
    DESCEND_DATA) when the data directory is an existing file or lies under
    one (the loaders said "files missing from" it)."""
    reason = _file_in_the_way(directory)
    if reason:
        setting = _DATA_HOME_SETTING.get() if data_home is not None else "DESCEND_DATA"
        raise ValueError(f"{setting} must be a directory, got {str(directory)!r} {reason}")


def _directory(value, setting):
    """Path(value) with a leading ~ expanded; ValueError naming `setting` for
    a value that is empty, only whitespace or a ~name of no known user."""
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise TypeError(f"{setting} must be a str or os.PathLike path, got {value!r} "
                        f"({type(value).__name__})")
    if "\0" in text:           # the OS refuses it; the loaders said "files missing"
        raise ValueError(f"{setting} must be a directory, got {text!r}: a path cannot "
                         f"hold a NUL byte")
    if not text:               # Path('') is '.': a forgotten value, not a choice
        raise ValueError(f"{setting} must be a directory, got '': an empty path "
                         f"(write '.' for the current directory)")
    if not text.strip():
        raise ValueError(f"{setting} must be a directory, got {text!r}: only whitespace "
                         f"(write {'./' + text!r} for a directory of that name)")
    try:
        return Path(text).expanduser()
    except RuntimeError:        # pathlib: "Could not determine home directory."
        raise ValueError(f"{setting} must be a directory, its leading ~ the home directory "
                         f"(~) or a user's (~name), got {text!r}: no such user or home "
                         f"directory (write ./{text} for a directory of that name)") from None


def _stat_key(path, name):
    """Identity of a file's current version checked as the MNIST file `name`
    (``.gz`` or uncompressed), for the :data:`_VERIFIED` cache."""
    stat = os.stat(path)
    return (name, str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns,
            stat.st_ctime_ns)


def _mnist_path(directory, name):
    """The file :func:`load_mnist` reads for ``name`` (a key of
    :data:`MNIST_FILES`): the ``.gz``, else the uncompressed IDX file named
    without ``.gz`` (as Kaggle, tutorials and torchvision have them); None
    when neither is in ``directory``."""
    for path in (directory / name, directory / name.removesuffix(".gz")):
        if path.is_file():
            return path
    return None


def _decompress_and_verify(path, name, compressed=True):
    """Read ``path`` (decompressed unless ``compressed`` is False) and check
    the SHA-256 of its content against ``MNIST_FILES[name]``.

    Returns the IDX bytes. Raises DatasetCorruptError (naming the file, the
    expected and the actual hash) on a mismatch or if a ``compressed`` file
    is not valid gzip.
    """
    # an uncompressed file goes by its own name in messages, not its .gz's
    shown = name if compressed else name.removesuffix(".gz")
    key = _stat_key(path, shown)  # before the read: a change during it is a new key
    try:
        data = Path(path).read_bytes()
        if compressed:
            data = gzip.decompress(data)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        # BadGzipFile is an OSError; report it as corrupt content, not as a
        # file-system problem.
        raise DatasetCorruptError(f"{shown}: {path} is not a valid gzip file ({exc})") from None
    if key in _VERIFIED:
        return data
    expected = MNIST_FILES[name]
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise DatasetCorruptError(
            f"{shown}: SHA-256 of the {'decompressed ' if compressed else ''}content of "
            f"{path} does not match (expected {expected}, got {got}); the file is corrupt "
            f"or not MNIST"
        )
    _VERIFIED.add(key)
    return data


def _download(name, directory, mirrors, timeout):
    """Download ``name`` into ``directory`` from the first mirror that serves it.

    Each attempt goes to a temporary file in ``directory`` which is verified
    and then renamed onto the final name, so the final path only ever holds a
    complete, verified file (even with concurrent downloads). A download with
    the wrong content is deleted and the next mirror is tried.

    Returns the verified decompressed bytes.
    """
    target = directory / name
    network_errors, content_errors = [], []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + name
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
        except OSError as exc:     # read-only or not creatable: no file can come here
            raise DatasetNotFoundError(
                f"MNIST file {name} is not in {directory}, and cannot be downloaded there "
                f"({exc}); copy the four MNIST files ({', '.join(MNIST_FILES)}) into it, "
                + _point_to_the_files()) from None
        try:
            try:
                with os.fdopen(fd, "wb") as out:
                    request = urllib.request.Request(url, headers={"User-Agent": "descend"})
                    with urllib.request.urlopen(request, timeout=timeout) as response:
                        while True:
                            chunk = response.read(1 << 20)
                            if not chunk:
                                break
                            out.write(chunk)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # URLError/HTTPError/timeouts are OSErrors; ValueError is an
                # URL that urllib cannot handle. All mean "try the next mirror".
                network_errors.append(f"{url}: {exc}")
                os.unlink(tmp)
                continue
            try:
                data = _decompress_and_verify(tmp, name)
            except ValueError as exc:
                content_errors.append(f"{url}: {exc}")
                os.unlink(tmp)
                continue
        except BaseException:
            # Interrupted (e.g. Ctrl-C): leave no partial file behind.
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a cache may be shared
        os.replace(tmp, target)  # atomic: readers never see a partial file
        _VERIFIED.add(_stat_key(target, name))  # same size and mtime as the checked tmp
        _log.info("downloaded %s from %s", name, url)
        return data
    if content_errors:
        # Something answered, but with the wrong bytes: that is an integrity
        # problem rather than a missing file.
        raise DatasetCorruptError(
            f"{name}: no mirror served the expected content (downloads with "
            "the wrong content were deleted):\n  "
            + "\n  ".join(content_errors + network_errors)
        )
    raise DatasetNotFoundError(
        f"could not download MNIST file {name} into {directory}; tried:\n  "
        + "\n  ".join(network_errors or ["(no mirrors given)"])
        + "\nWithout internet access, copy the four MNIST files ("
        + ", ".join(MNIST_FILES)
        + f") into {directory}, " + _point_to_the_files()
    )


def _parse_idx(data, name, magic):
    """Parse IDX bytes (big-endian header, uint8 payload) into an ndarray.

    Parameters
    ----------
    data : bytes
        Decompressed IDX content.
    name : str
        File name, for error messages.
    magic : int
        Expected magic number: 0x00000801 (labels, 1-D) or 0x00000803
        (images, 3-D). Its low byte is the number of dimensions.

    Returns
    -------
    ndarray of uint8, shape given by the header (a read-only view of ``data``).

    Raises
    ------
    ValueError
        If the magic number or the length of ``data`` is not as expected.
    """
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetCorruptError(f"{name}: {len(data)} bytes is too short for an IDX header")
    header = np.frombuffer(data, dtype=">i4", count=1 + ndim)
    if int(header[0]) != magic:
        raise DatasetCorruptError(
            f"{name}: bad IDX magic number 0x{int(header[0]) & 0xFFFFFFFF:08x}, "
            f"expected 0x{magic:08x}"
        )
    shape = tuple(int(d) for d in header[1:])
    if any(d < 0 for d in shape):
        raise DatasetCorruptError(f"{name}: negative dimension in IDX header {shape}")
    expected = header_size + math.prod(shape)
    if len(data) != expected:
        raise DatasetCorruptError(
            f"{name}: IDX header announces shape {shape} ({expected} bytes), "
            f"file holds {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


_MIRRORS = InstanceOf(tuple, list, description="a list of base URLs (str)")


@validate_params({"data_home": [None, "path"], "download": ["boolean"], "dtype": ["dtype"],
                  "mirrors": [None, _MIRRORS],
                  "timeout": ["timeout"]})
def load_mnist(data_home=None, download=True, dtype="float32", *, mirrors=None, timeout=60.0):
    """Load the MNIST database of handwritten digits.

    The four standard IDX files are looked for in a directory (see
    ``data_home``), each gzip-compressed (``.gz``, read when both forms are
    there) or uncompressed (the name without ``.gz``, as Kaggle and
    torchvision have them); files missing in both forms are downloaded
    there, as ``.gz``, if ``download`` is True. Every load checks the SHA-256
    of each file's IDX content (decompressed: the ``.gz`` bytes vary between
    mirrors, the content does not), once per process for a file that has
    not changed since (its path, inode, size, modification and
    status-change times).

    Parameters
    ----------
    data_home : str or os.PathLike, optional
        Directory holding ``train-images-idx3-ubyte.gz``,
        ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
        ``t10k-labels-idx1-ubyte.gz``, or any of them uncompressed
        (``train-images-idx3-ubyte`` and so on). Defaults to the
        ``DESCEND_DATA`` environment variable, else ``~/.cache/descend/mnist`` (see
        :func:`get_mnist_dir`).
    download : bool, default=True
        Download missing files from ``mirrors``. If False, missing files are
        an error and nothing is created on disk.
    dtype : {"float32", "float64"}, default="float32"
        Floating type of the images.
    mirrors : sequence of str, optional
        Base URLs to try in order; defaults to :data:`MIRRORS`.
    timeout : float, default=60.0
        Socket timeout in seconds for each download attempt, in
        (0, ``threading.TIMEOUT_MAX``] (about 292 years: the most a socket
        takes).

    Returns
    -------
    Split
        The named tuple ``(X_train, X_test, y_train, y_test)``, in the order
        of :func:`train_test_split` (and scikit-learn's):

        X_train : ndarray of shape (60000, 784), dtype ``dtype``
            Training images, row-major 28x28 pixels scaled to [0, 1]
            (divided by 255).
        X_test : ndarray of shape (10000, 784), dtype ``dtype``
            Test images, scaled like ``X_train``.
        y_train : ndarray of shape (60000,), dtype int64
            Training labels 0..9.
        y_test : ndarray of shape (10000,), dtype int64
            Test labels 0..9.

    Raises
    ------
    DatasetNotFoundError
        (A :class:`FileNotFoundError`.) Files are missing (in both forms) and
        ``download`` is False, every mirror failed, or the directory cannot
        be created or written. The message lists the missing files
        and the directory where they are expected, and names the
        ``data_home`` keyword (``--data-home`` when ``python -m descend``
        made the call) and ``DESCEND_DATA``. Directories created for a
        download that failed are removed again.
    TypeError
        ``data_home`` not a str or path, ``mirrors`` not a list of str,
        ``timeout`` not a real number.
    ValueError
        If ``data_home`` (or ``DESCEND_DATA``) is an existing file, lies
        under one, holds a NUL byte or is an empty string; if ``dtype`` is
        not float32 or float64; if ``timeout`` is not in
        (0, ``threading.TIMEOUT_MAX``] (NaN and infinity included).
    DatasetCorruptError
        (A :class:`ValueError`.) If the SHA-256 of a file's (decompressed)
        content differs from the expected one (the message names the file,
        ``.gz`` or uncompressed, and both hashes; a freshly downloaded bad
        file is deleted, a file that was already there is left alone); or if
        a ``.gz`` file is not valid gzip, or a file not valid IDX.

    References
    ----------
    Y. LeCun, C. Cortes and C. J. C. Burges, "The MNIST database of
    handwritten digits". Y. LeCun, L. Bottou, Y. Bengio and P. Haffner,
    "Gradient-based learning applied to document recognition", Proc. IEEE
    86(11), 1998.
    """
    directory = get_mnist_dir(data_home)
    _not_a_file(directory, data_home)
    mirrors = MIRRORS if mirrors is None else tuple(
        check(mirror, f"mirrors[{i}]", ["str"], "load_mnist") for i, mirror in enumerate(mirrors))

    paths = {name: _mnist_path(directory, name) for name in MNIST_FILES}
    missing = [name for name, path in paths.items() if path is None]
    if missing and not download:
        download_hint = ("" if _DATA_HOME_SETTING.get() != "data_home" else
                         " (or call load_mnist(download=True) with internet access)")
        raise DatasetNotFoundError(
            f"MNIST file(s) missing from {directory}: {', '.join(missing)} (each "
            f"gzip-compressed or uncompressed, its name without .gz). "
            f"Put the four files there{download_hint}, " + _point_to_the_files()
        )

    # a download that fails leaves no empty directory behind
    created = _new_directories(directory) if missing else []
    contents = {}
    try:
        for name, path in paths.items():
            if path is None:
                contents[name] = _download(name, directory, mirrors, timeout)
                paths[name] = directory / name
            else:
                contents[name] = _decompress_and_verify(
                    path, name, compressed=path.name == name)
    except BaseException:
        _remove_if_empty(created)
        raise

    arrays = {}
    for split in ("train", "t10k"):
        images, labels = f"{split}-images-idx3-ubyte.gz", f"{split}-labels-idx1-ubyte.gz"
        images = _parse_idx(contents[images], paths[images].name, _IDX_MAGIC_IMAGES)
        labels = _parse_idx(contents[labels], paths[labels].name, _IDX_MAGIC_LABELS)
        if images.shape[1:] != (28, 28) or images.shape[0] != labels.shape[0]:
            raise DatasetCorruptError(
                f"MNIST {split}: images of shape {images.shape} do not match "
                f"labels of shape {labels.shape}"
            )
        X = images.reshape(images.shape[0], -1).astype(dtype)
        X /= 255  # in place: avoids a second 188 MB (float32) temporary
        arrays[split] = X, labels.astype(np.int64)
    (X_train, y_train), (X_test, y_test) = arrays["train"], arrays["t10k"]
    return Split(X_train, X_test, y_train, y_test)


# ---------------------------------------------------------------------------
# splitting
# ---------------------------------------------------------------------------

# an int is a count, a float a fraction (bounds against n are checked in the body)
_TEST_SIZE = [Interval(Integral, 1, None), _FloatFraction()]


# scikit-learn's names for what train_test_split calls otherwise
_SKLEARN_SPLIT_HINTS = {"random_state": "descend's name: seed",
                        "train_size": "give test_size: the train set is the rest",
                        "shuffle": "the split is always shuffled; seed fixes it"}


def train_test_split(X, y, test_size=0.25, seed=None, stratify=False, **unknown):
    """Split samples into random train and test subsets.

    Parameters
    ----------
    X : array_like of shape (n_samples, ...)
        Samples, first axis indexed by sample.
    y : array_like of shape (n_samples,) or (n_samples, ...)
        Targets, one per sample; 1-D when ``stratify`` is True.
    test_size : float or int, default=0.25
        A float in (0, 1) is the fraction of samples in the test set (the
        count is rounded up); an int is the test-set count. Both sets must
        end up non-empty.
    seed : int, numpy.random.Generator or None, default=None
        Seed for :func:`numpy.random.default_rng`. The same seed gives the
        same split; NumPy's global random state is neither used nor changed.
    stratify : bool or array_like of shape (n_samples,), default=False
        If True, each class of ``y`` is split in (close to) the same
        proportion, so class frequencies in both sets match those of ``y``
        up to rounding; an array (as scikit-learn's ``stratify=y``) gives
        the labels to stratify by. Every class needs at least 2 samples.

    Returns
    -------
    Split
        The named tuple ``(X_train, X_test, y_train, y_test)``:

        X_train, X_test : ndarray
            Rows of ``X`` (as an array), in random order.
        y_train, y_test : ndarray
            The matching entries of ``y``.

    Raises
    ------
    ValueError
        If ``X`` and ``y`` are empty or of different lengths, if ``test_size``
        is out of range or would leave a set empty, or if ``stratify`` is
        used and a class has fewer than 2 samples, the labels are not 1-D,
        or the test or train set would be smaller than the number of
        classes (as scikit-learn).
    TypeError
        If the labels to stratify by mix types that do not compare (1 and
        "a" in an object array).
    """
    refuse_unknown_keywords("train_test_split", unknown, _SKLEARN_SPLIT_HINTS)
    X = as_array(X, "X", "an array with one row per sample")
    y = as_array(y, "y", "an array with one entry per sample")
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError("X and y must be arrays with one entry per sample, not scalars")
    n = X.shape[0]
    if n != y.shape[0]:
        raise ValueError(f"X and y have different lengths: len(X)={n}, len(y)={y.shape[0]}")
    if n == 0:
        raise ValueError("X and y are empty: need at least 2 samples to split")

    test_size = check(test_size, "test_size", _TEST_SIZE, "train_test_split")
    check(seed, "seed", [None, Interval(Integral, 0, None), np.random.Generator],
          "train_test_split")
    if isinstance(test_size, float):
        # round() first so that e.g. 0.3 * 10 = 3.0000000000000004 gives 3, not 4.
        n_test = math.ceil(round(float(test_size) * n, 9))
    else:
        n_test = int(test_size)
    if not 1 <= n_test <= n - 1:
        raise ValueError(
            f"test_size={test_size!r} gives {n_test} test samples out of {n}; "
            f"both sets must be non-empty (need 1 <= n_test <= {n - 1})"
        )

    if stratify is None or isinstance(stratify, (bool, np.bool_)):
        strata = y if stratify else None
    else:
        strata = as_array(stratify, "stratify", f"True/False or {n} labels")
        if strata.shape[:1] != (n,):
            raise ValueError(f"stratify must be True/False or {n} labels (one per sample), "
                             f"got {_described(stratify, strata)}")
    rng = np.random.default_rng(seed)
    if strata is None:
        order = rng.permutation(n)
        test_idx, train_idx = order[:n_test], order[n_test:]
    else:
        test_idx, train_idx = _stratified_split(strata, strata is y, test_size, n_test, rng)
    return Split(X[train_idx], X[test_idx], y[train_idx], y[test_idx])


def _stratified_split(strata, of_y, test_size, n_test, rng):
    """(test indices, train indices) with each class of the 1-D labels
    `strata` split in (close to) the proportion n_test / n; ValueError when
    a class has fewer than 2 samples or a set is smaller than the number of
    classes (it could not hold one of each, as scikit-learn refuses)."""
    n = strata.shape[0]
    if strata.ndim != 1:
        raise ValueError(f"stratify needs 1-D labels, got shape {strata.shape}")
    try:
        classes, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    except TypeError:       # objects of types that do not compare (1 and "a")
        name = "y (stratify=True)" if of_y else "stratify"
        raise TypeError(f"{name} must hold labels of one comparable kind (numbers or "
                        f"strings), got {sorted({type(v).__name__ for v in strata})} "
                        f"mixed") from None
    if counts.min() < 2:
        raise ValueError(
            f"stratify=True needs at least 2 samples per class; class "
            f"{classes[counts.argmin()].tolist()!r} has {counts.min()}"
        )
    for part, size in (("test", n_test), ("train", n - n_test)):
        if size < len(classes):
            raise ValueError(
                f"stratify: test_size={test_size!r} gives {part}_size = {size} (of {n} "
                f"samples), which should be greater or equal to the number of classes = "
                f"{len(classes)} (each class in both sets)")
    # Largest-remainder allocation: each class gets floor(its ideal share),
    # then the leftover test slots go to the largest fractional parts, so
    # the total is exactly n_test and no class is off by more than one.
    ideal = n_test * counts / n
    per_class = np.floor(ideal).astype(np.int64)
    leftover = n_test - per_class.sum()
    if leftover:
        # Random tie-breaking, so equal remainders favour no class.
        keys = np.lexsort((rng.random(len(classes)), -(ideal - per_class)))
        per_class[keys[:leftover]] += 1
    test_parts, train_parts = [], []
    for k in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == k))
        test_parts.append(members[: per_class[k]])
        train_parts.append(members[per_class[k]:])
    # Shuffle again so the sets are not grouped by class.
    test_idx = rng.permutation(np.concatenate(test_parts))
    return test_idx, rng.permutation(np.concatenate(train_parts))


# Text and fraud data of the domains experiment (NumPy and the standard library only).
from descend._domain_data import (CREDITCARD_FILES, NEWSGROUPS_ARCHIVE,  # noqa: E402
                                  NEWSGROUPS_CATEGORIES, load_creditcard, load_newsgroups)

__all__ += ["CREDITCARD_FILES", "NEWSGROUPS_ARCHIVE", "NEWSGROUPS_CATEGORIES",
            "load_creditcard", "load_newsgroups"]
