"""Tests of descend.datasets against the real data.

MNIST is read from the shared datasets folder next to the repository
(``<repo>/../shared/datasets/mnist``); the tests that need it are skipped when
it is absent. No test touches the network: the download path is exercised
with a local HTTP server on 127.0.0.1.
"""
import os
import functools
import re
import gzip
import hashlib
import http.server
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from descend import datasets

MNIST_DIR = Path(os.environ.get("DESCEND_DATA") or
                 Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist")
needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / name).is_file() for name in datasets.MNIST_FILES),
    reason=f"MNIST files not found in {MNIST_DIR} (DESCEND_DATA, else the shared "
    "datasets folder beside the repository: set DESCEND_DATA to the directory of the "
    "four MNIST files); MNIST tests need them and never download",
)

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
DIGITS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


# ---------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------

def test_digits_shapes_range_and_counts():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    # Pixels are counts 0..16, so X * 16 must be whole numbers.
    np.testing.assert_array_equal(X * 16, np.round(X * 16))
    np.testing.assert_array_equal(np.bincount(y, minlength=10), DIGITS_COUNTS)


def test_digits_first_row_matches_file():
    # The first row of the UCI test set is a 0; check the values survive intact.
    first = [0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0]
    X, y = datasets.load_digits(dtype="float64")
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X[0, :16] * 16, first)
    assert y[0] == 0


def test_digits_dict_form():
    d = datasets.load_digits(return_X_y=False)
    assert d["images"].shape == (1797, 8, 8)
    np.testing.assert_array_equal(d["images"].reshape(1797, 64), d["data"])
    assert d["target_names"] == [str(k) for k in range(10)]
    assert d["target"].dtype == np.int64


# ---------------------------------------------------------------------------
# breast cancer
# ---------------------------------------------------------------------------

def test_breast_cancer_shapes_counts_names():
    X, y, names = datasets.load_breast_cancer(return_names=True)
    assert X.shape == (569, 30) and X.dtype == np.float32
    assert y.shape == (569,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y), [212, 357])
    assert names == ["malignant", "benign"]
    assert tuple(names) == datasets.BREAST_CANCER_CLASS_NAMES
    # First sample of the original file: mean radius 17.99, malignant.
    assert X[0, 0] == pytest.approx(17.99) and y[0] == 0
    assert np.all(np.isfinite(X)) and X.min() >= 0


def test_breast_cancer_standardize_and_dtype():
    raw, y_raw = datasets.load_breast_cancer(dtype="float64")
    X, y = datasets.load_breast_cancer(dtype=np.float64, standardize=True)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(y, y_raw)
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(X, (raw - raw.mean(0)) / raw.std(0))
    X32, _ = datasets.load_breast_cancer(standardize=True)
    assert X32.dtype == np.float32
    np.testing.assert_allclose(X32, X, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# dtype validation
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["int32", "float16", np.int64, None, "nonsense", 3])
@pytest.mark.parametrize(
    "loader",
    [datasets.load_digits, datasets.load_breast_cancer,
     functools.partial(datasets.load_mnist, MNIST_DIR, False)],
    ids=["digits", "breast_cancer", "mnist"],
)
def test_bad_dtype_names_dtype(loader, bad):
    # Checked before any file is read, so this needs no MNIST files.
    # one rule: a value of a type that cannot name a dtype is a TypeError
    error = TypeError if bad is None or bad == 3 else ValueError
    with pytest.raises(error, match=r"dtype must be 'float32' or 'float64'.*got"):
        loader(dtype=bad)


# ---------------------------------------------------------------------------
# MNIST, real files
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist32():
    return datasets.load_mnist(data_home=MNIST_DIR, download=False)


@needs_mnist
def test_mnist_shapes_dtypes(mnist32):
    X_train, X_test, y_train, y_test = mnist32
    assert X_train.shape == (60000, 784) and X_train.dtype == np.float32
    assert X_test.shape == (10000, 784) and X_test.dtype == np.float32
    assert y_train.shape == (60000,) and y_train.dtype == np.int64
    assert y_test.shape == (10000,) and y_test.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    assert X_test.min() == 0.0 and X_test.max() == 1.0


@needs_mnist
def test_mnist_label_counts_and_mean_pixel(mnist32):
    X_train, _, y_train, y_test = mnist32
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), MNIST_TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), MNIST_TEST_COUNTS)
    mean = X_train.mean(dtype=np.float64)
    assert abs(mean - 33.318 / 255) < 1e-3


@needs_mnist
def test_mnist_float64(mnist32):
    X_train, X_test, y_train, _ = datasets.load_mnist(MNIST_DIR, download=False, dtype="float64")
    assert X_train.dtype == np.float64 and X_test.dtype == np.float64
    # Same pixels as the float32 load: both are k / 255 rounded to the dtype.
    np.testing.assert_array_equal(X_test.astype(np.float32), mnist32.X_test)
    np.testing.assert_array_equal(y_train, mnist32.y_train)
    # Scaling is exactly pixel / 255: every value times 255 is an integer.
    np.testing.assert_allclose(X_test * 255, np.round(X_test * 255), atol=1e-9)


@needs_mnist
def test_mnist_env_var(monkeypatch):
    monkeypatch.setenv("DESCEND_DATA", str(MNIST_DIR))
    assert datasets.get_mnist_dir() == MNIST_DIR
    _, X_test, _, y_test = datasets.load_mnist(download=False)
    assert X_test.shape == (10000, 784)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), MNIST_TEST_COUNTS)


def test_mnist_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("DESCEND_DATA", str(tmp_path / "env"))
    assert datasets.get_mnist_dir(tmp_path / "arg") == tmp_path / "arg"
    assert datasets.get_mnist_dir() == tmp_path / "env"
    monkeypatch.delenv("DESCEND_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert datasets.get_mnist_dir() == tmp_path / ".cache" / "descend" / "mnist"


# ---------------------------------------------------------------------------
# MNIST, missing and corrupt files
# ---------------------------------------------------------------------------

def test_mnist_missing_files_message(tmp_path):
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"")  # one present
    with pytest.raises(FileNotFoundError) as info:
        datasets.load_mnist(data_home=tmp_path, download=False)
    assert isinstance(info.value, OSError)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "DESCEND_DATA" in message
    missing = [n for n in datasets.MNIST_FILES if n != "train-labels-idx1-ubyte.gz"]
    for name in missing:
        assert name in message
    assert "train-labels-idx1-ubyte.gz" not in message.split("Put the")[0]


def test_mnist_missing_default_dir_not_created(monkeypatch, tmp_path):
    monkeypatch.delenv("DESCEND_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(datasets.DatasetNotFoundError, match="DESCEND_DATA") as info:
        datasets.load_mnist(download=False)
    assert str(tmp_path / ".cache" / "descend" / "mnist") in str(info.value)
    assert not (tmp_path / ".cache").exists()


def _mnist_copy(src_dir, dst_dir, corrupt=None, corruption=None):
    """Link the MNIST files of src_dir into dst_dir, writing `corrupt` anew."""
    for name in datasets.MNIST_FILES:
        if name == corrupt:
            (dst_dir / name).write_bytes(corruption(gzip.decompress((src_dir / name).read_bytes())))
        else:
            (dst_dir / name).symlink_to(src_dir / name)


@needs_mnist
def test_mnist_sha_mismatch(tmp_path):
    name = "train-labels-idx1-ubyte.gz"

    def flip_one_label(raw):
        raw = bytearray(raw)
        raw[8 + 100] = (raw[8 + 100] + 1) % 10  # still a valid IDX file
        return gzip.compress(bytes(raw))

    _mnist_copy(MNIST_DIR, tmp_path, corrupt=name, corruption=flip_one_label)
    bad = hashlib.sha256(gzip.decompress((tmp_path / name).read_bytes())).hexdigest()
    with pytest.raises(ValueError) as info:
        datasets.load_mnist(data_home=tmp_path, download=False)
    message = str(info.value)
    assert name in message
    assert datasets.MNIST_FILES[name] in message  # expected hash
    assert bad in message  # actual hash
    # A file the user put there is reported, never deleted.
    assert (tmp_path / name).exists()


@needs_mnist
def test_mnist_not_gzip(tmp_path):
    name = "t10k-labels-idx1-ubyte.gz"
    _mnist_copy(MNIST_DIR, tmp_path, corrupt=name, corruption=lambda raw: raw)  # not compressed
    with pytest.raises(ValueError, match=f"{name}.*not a valid gzip"):
        datasets.load_mnist(data_home=tmp_path, download=False)


def test_parse_idx_valid_and_corrupt():
    header = np.array([0x803, 2, 3, 4], dtype=">i4").tobytes()
    payload = bytes(range(24))
    arr = datasets._parse_idx(header + payload, "x", 0x803)
    assert arr.shape == (2, 3, 4) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr.ravel(), np.arange(24))

    with pytest.raises(ValueError, match="magic"):
        datasets._parse_idx(header + payload, "x", 0x801)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 4\) \(40 bytes\).*holds 39 bytes"):
        datasets._parse_idx(header + payload[:-1], "x", 0x803)
    with pytest.raises(ValueError, match="too short"):
        datasets._parse_idx(header[:6], "x", 0x803)
    with pytest.raises(ValueError, match="negative"):
        datasets._parse_idx(np.array([0x801, -1], dtype=">i4").tobytes(), "x", 0x801)


# ---------------------------------------------------------------------------
# MNIST, download from a local HTTP server
# ---------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def serve():
    """Start HTTP servers on 127.0.0.1 serving given directories; yields a factory."""
    servers = []

    def start(directory):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/mnist/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _closed_port_url():
    # A port nobody listens on: connection refused at once, no waiting.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@needs_mnist
def test_mnist_download_with_fallback(tmp_path, serve):
    good_root = tmp_path / "good"
    shutil.copytree(MNIST_DIR, good_root / "mnist")
    empty_root = tmp_path / "empty"  # answers 404 for every file
    (empty_root / "mnist").mkdir(parents=True)
    mirrors = (_closed_port_url(), serve(empty_root), serve(good_root))

    home = tmp_path / "home" / "mnist"  # does not exist yet: must be created
    X_train, X_test, y_train, y_test = datasets.load_mnist(
        data_home=home, mirrors=mirrors, timeout=10
    )
    np.testing.assert_array_equal(np.bincount(y_train, minlength=10), MNIST_TRAIN_COUNTS)
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), MNIST_TEST_COUNTS)
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    # All four files landed under their final names, no temporary left over.
    assert sorted(p.name for p in home.iterdir()) == sorted(datasets.MNIST_FILES)
    for name in datasets.MNIST_FILES:
        assert (home / name).read_bytes() == (MNIST_DIR / name).read_bytes()

    # Second load: everything is there, so no mirror is contacted.
    np.testing.assert_array_equal(datasets.load_mnist(data_home=home, mirrors=()).y_train,
                                  y_train)


@needs_mnist
def test_mnist_download_only_missing(tmp_path, serve):
    # Three files present; only the missing one is fetched (the server has
    # only that one, so fetching another would fail).
    name = "t10k-labels-idx1-ubyte.gz"
    served = tmp_path / "served" / "mnist"
    served.mkdir(parents=True)
    shutil.copy(MNIST_DIR / name, served / name)
    home = tmp_path / "home"
    home.mkdir()
    for other in datasets.MNIST_FILES:
        if other != name:
            (home / other).symlink_to(MNIST_DIR / other)
    _, _, _, y_test = datasets.load_mnist(home, mirrors=[serve(served.parent)])
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), MNIST_TEST_COUNTS)
    assert (home / name).is_file() and not (home / name).is_symlink()


@needs_mnist
def test_mnist_download_bad_content_is_deleted(tmp_path, serve):
    name = "t10k-labels-idx1-ubyte.gz"
    served = tmp_path / "served" / "mnist"
    served.mkdir(parents=True)
    raw = bytearray(gzip.decompress((MNIST_DIR / name).read_bytes()))
    raw[-1] ^= 1
    (served / name).write_bytes(gzip.compress(bytes(raw)))
    home = tmp_path / "home"
    home.mkdir()
    for other in datasets.MNIST_FILES:
        if other != name:
            (home / other).symlink_to(MNIST_DIR / other)

    with pytest.raises(ValueError) as info:
        datasets.load_mnist(home, mirrors=[serve(served.parent)])
    message = str(info.value)
    assert name in message and datasets.MNIST_FILES[name] in message
    assert hashlib.sha256(bytes(raw)).hexdigest() in message
    # Neither the final file nor a temporary is left behind.
    assert sorted(p.name for p in home.iterdir()) == sorted(
        n for n in datasets.MNIST_FILES if n != name
    )


def test_mnist_download_unreachable(tmp_path):
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load_mnist(tmp_path, mirrors=[_closed_port_url()], timeout=5)
    message = str(info.value)
    assert "DESCEND_DATA" in message and str(tmp_path) in message
    assert "train-images-idx3-ubyte.gz" in message
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_mnist_mirrors_default_is_module_constant():
    assert all(m.startswith("https://") for m in datasets.MIRRORS)
    assert len(datasets.MIRRORS) >= 2


# ---------------------------------------------------------------------------
# train_test_split
# ---------------------------------------------------------------------------

def test_split_sizes_and_partition():
    X = np.arange(200).reshape(100, 2)
    y = np.arange(100)
    X_tr, X_te, y_tr, y_te = datasets.train_test_split(X, y, seed=0)
    assert X_tr.shape == (75, 2) and X_te.shape == (25, 2)
    # Rows stay paired with their targets, and the two sets partition the data.
    np.testing.assert_array_equal(X_tr[:, 0] // 2, y_tr)
    np.testing.assert_array_equal(X_te[:, 0] // 2, y_te)
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr, y_te])), y)


def test_split_test_size_rounding_and_int():
    X = np.zeros((10, 1))
    y = np.zeros(10)
    assert len(datasets.train_test_split(X, y, test_size=0.3, seed=0)[1]) == 3
    assert len(datasets.train_test_split(X, y, test_size=0.25, seed=0)[1]) == 3  # ceil(2.5)
    assert len(datasets.train_test_split(X, y, test_size=4, seed=0)[1]) == 4


def test_split_deterministic_and_leaves_global_state():
    X, y = datasets.load_digits()
    state = np.random.get_state()
    a = datasets.train_test_split(X, y, seed=123)
    b = datasets.train_test_split(X, y, seed=123)
    c = datasets.train_test_split(X, y, seed=124)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[3], c[3])
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1])
    # A Generator is accepted as the seed too.
    d = datasets.train_test_split(X, y, seed=np.random.default_rng(123))
    np.testing.assert_array_equal(d[3], a[3])


def test_split_stratified_proportions():
    X, y = datasets.load_digits()
    _, _, y_tr, y_te = datasets.train_test_split(X, y, test_size=0.2, seed=7, stratify=True)
    assert len(y_te) == 360  # ceil(0.2 * 1797)
    counts = np.bincount(y, minlength=10)
    test_counts = np.bincount(y_te, minlength=10)
    # Each class is split in the overall proportion, up to one sample of rounding.
    assert np.all(np.abs(test_counts - 360 * counts / 1797) < 1)
    np.testing.assert_array_equal(test_counts + np.bincount(y_tr, minlength=10), counts)
    # Not grouped by class: the test labels are shuffled.
    assert not np.all(np.diff(y_te) >= 0)


def test_split_stratified_breast_cancer():
    X, y = datasets.load_breast_cancer()
    _, _, y_tr, y_te = datasets.train_test_split(X, y, test_size=0.25, seed=1, stratify=True)
    # 143 test samples; the ideal malignant share is 143 * 212 / 569 = 53.28.
    assert len(y_te) == 143
    assert np.sum(y_te == 0) == 53 and np.sum(y_te == 1) == 90
    assert np.sum(y_tr == 0) == 159 and np.sum(y_tr == 1) == 267


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, float("nan"), 0, 10, -1])
def test_split_bad_test_size(bad):
    with pytest.raises(ValueError, match="test_size"):
        datasets.train_test_split(np.zeros((10, 2)), np.zeros(10), test_size=bad)


@pytest.mark.parametrize("bad", [True, "0.2", None])
def test_split_test_size_of_a_wrong_type(bad):
    with pytest.raises(TypeError, match=r"test_size must be an int >= 1 or a finite float in "
                                        r"\(0, 1\), got"):
        datasets.train_test_split(np.zeros((10, 2)), np.zeros(10), test_size=bad)


def test_split_length_mismatch_and_empty():
    with pytest.raises(ValueError, match=r"len\(X\)=10, len\(y\)=9"):
        datasets.train_test_split(np.zeros((10, 2)), np.zeros(9))
    with pytest.raises(ValueError, match="empty"):
        datasets.train_test_split(np.zeros((0, 2)), np.zeros(0))


def test_split_stratify_needs_two_per_class():
    y = np.array([0, 0, 0, 1, 1, 2])
    with pytest.raises(ValueError, match="stratify.*class 2 has 1"):
        datasets.train_test_split(np.zeros((6, 1)), y, test_size=2, stratify=True)


@pytest.mark.parametrize("test_size, part, size", [(0.8, "train", 1), (2, "test", 2)])
def test_split_stratify_needs_each_set_to_hold_every_class(test_size, part, size):
    # was: a class silently missing from the train set (0.8) or the test set (2)
    X, y = np.arange(12).reshape(6, 2), np.array([0, 0, 1, 1, 2, 2])
    message = (rf"test_size={test_size} gives {part}_size = {size} \(of 6 samples\), which "
               r"should be greater or equal to the number of classes = 3")
    with pytest.raises(ValueError, match=message):
        datasets.train_test_split(X, y, test_size=test_size, stratify=True, seed=0)
    # labels given as the stratify array: its classes are counted, not y's
    with pytest.raises(ValueError, match=message):
        datasets.train_test_split(X, np.zeros(6), test_size=test_size, stratify=y, seed=0)
    datasets.train_test_split(X, y, test_size=test_size, stratify=np.zeros(6), seed=0)


# ---------------------------------------------------------------------------
# one field order for every loader that returns train and test sets
# ---------------------------------------------------------------------------

def test_train_test_split_returns_the_named_split():
    X = np.arange(20).reshape(10, 2)
    y = np.arange(10) % 2
    split = datasets.train_test_split(X, y, test_size=3, seed=0)
    assert isinstance(split, datasets.Split)
    assert split._fields == ("X_train", "X_test", "y_train", "y_test")
    X_train, X_test, y_train, y_test = split
    assert split.X_train is X_train and split.y_test is y_test
    assert X_train.shape == (7, 2) and X_test.shape == (3, 2)
    assert y_train.shape == (7,) and y_test.shape == (3,)
    # rows and labels stay paired: row k of X is (2k, 2k + 1), label k % 2
    np.testing.assert_array_equal(split.y_train, (split.X_train[:, 0] // 2) % 2)
    np.testing.assert_array_equal(split.y_test, (split.X_test[:, 0] // 2) % 2)


@needs_mnist
def test_load_mnist_has_train_test_split_order(mnist32):
    assert isinstance(mnist32, datasets.Split)
    assert mnist32._fields == ("X_train", "X_test", "y_train", "y_test")
    assert mnist32.X_train.shape == (60000, 784) and mnist32[0] is mnist32.X_train
    assert mnist32.X_test.shape == (10000, 784) and mnist32[1] is mnist32.X_test
    assert mnist32.y_train.shape == (60000,) and mnist32[2] is mnist32.y_train
    assert mnist32.y_test.shape == (10000,) and mnist32[3] is mnist32.y_test


def _offline(monkeypatch):
    """No network: every download fails as it does without a connection."""
    import urllib.error
    import urllib.request

    def urlopen(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def test_mnist_offline_names_the_keyword_and_leaves_no_empty_directory(monkeypatch, tmp_path):
    _offline(monkeypatch)
    monkeypatch.setenv("DESCEND_DATA", str(tmp_path / "data" / "mnist"))
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load_mnist()
    message = str(info.value)
    assert "point data_home or the DESCEND_DATA environment variable" in message
    assert "Temporary failure in name resolution" in message
    assert list(tmp_path.iterdir()) == []          # data/mnist were made, then removed
    # a directory that existed before stays, and so does what it held
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(datasets.DatasetNotFoundError):
        datasets.load_mnist(tmp_path / "mine" / "a" / "b")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_mnist_messages_name_the_option_on_the_command_line(monkeypatch, tmp_path):
    _offline(monkeypatch)
    with datasets._command_line_option("--data-home"):
        with pytest.raises(datasets.DatasetNotFoundError) as missing:
            datasets.load_mnist(tmp_path, download=False)
        with pytest.raises(datasets.DatasetNotFoundError) as offline:
            datasets.load_mnist(tmp_path / "new")
    for info in (missing, offline):
        assert "point --data-home or the DESCEND_DATA environment variable" in str(info.value)
        assert "data_home" not in str(info.value)
    assert "load_mnist(download=True)" not in str(missing.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(datasets.DatasetNotFoundError, match="point data_home or"):
        datasets.load_mnist(tmp_path, download=False)          # the keyword again outside



@pytest.mark.parametrize("under", ["", "mnist/2026"])
def test_a_data_home_under_a_file_is_a_value_error_naming_the_file(tmp_path, monkeypatch,
                                                                   under):
    # a directory under a file was reported as "MNIST file(s) missing from ..."
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    value = str(afile / under) if under else str(afile)
    reason = f"({str(afile)!r} is a file)" if under else "(a file)"
    for download in (False, True):
        with pytest.raises(ValueError, match=re.escape(
                f"data_home must be a directory, got {value!r} {reason}")):
            datasets.load_mnist(data_home=value, download=download)
    monkeypatch.setenv("DESCEND_DATA", value)
    with pytest.raises(ValueError, match=re.escape(
            f"DESCEND_DATA must be a directory, got {value!r} {reason}")):
        datasets.load_mnist(download=False)


def test_a_data_home_holding_a_nul_byte_is_a_value_error():
    # was "MNIST file(s) missing from a b" (the byte printed as a space)
    with pytest.raises(ValueError, match=re.escape(
            "data_home must be a directory, got 'a\\x00b': a path cannot hold a NUL byte")):
        datasets.load_mnist(data_home="a\0b", download=False)


# ---------------------------------------------------------------------------
# MNIST, uncompressed IDX files (as Kaggle, tutorials and torchvision have them)
# ---------------------------------------------------------------------------

def _raw_copies(dst_dir, raw):
    """Write the uncompressed IDX form (the name without .gz) of the MNIST
    files in `raw` into dst_dir, and link the others' .gz."""
    for name in datasets.MNIST_FILES:
        if name in raw:
            (dst_dir / name.removesuffix(".gz")).write_bytes(
                gzip.decompress((MNIST_DIR / name).read_bytes()))
        else:
            (dst_dir / name).symlink_to(MNIST_DIR / name)


@needs_mnist
@pytest.mark.parametrize("raw", [
    list(datasets.MNIST_FILES),
    ["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]], ids=["all-raw", "two-raw"])
def test_mnist_reads_uncompressed_idx_files(tmp_path, mnist32, raw):
    # was: "MNIST file(s) missing" for every file without its .gz
    from descend import benchmark
    from descend.experiments._common import mnist_available
    _raw_copies(tmp_path, raw)
    for _ in range(2):          # the second load from the cache of verified files
        split = datasets.load_mnist(tmp_path, download=False)
        for got, expected in zip(split, mnist32):
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.bincount(split.y_test, minlength=10), MNIST_TEST_COUNTS)
    for name in raw:
        raw_name = name.removesuffix(".gz")
        assert datasets._stat_key(tmp_path / raw_name, raw_name) in datasets._VERIFIED
    # the benchmark and the experiments find them too
    assert benchmark.mnist_dir(tmp_path) == tmp_path
    assert mnist_available(tmp_path)


@needs_mnist
def test_a_corrupt_uncompressed_idx_file_is_named(tmp_path, mnist32):
    name = "train-labels-idx1-ubyte"
    _raw_copies(tmp_path, [name + ".gz"])
    raw = bytearray((tmp_path / name).read_bytes())
    raw[8 + 100] = (raw[8 + 100] + 1) % 10          # still a valid IDX file
    (tmp_path / name).write_bytes(bytes(raw))
    bad = hashlib.sha256(bytes(raw)).hexdigest()
    with pytest.raises(datasets.DatasetCorruptError) as info:
        datasets.load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert message.startswith(f"{name}: SHA-256 of the content of {tmp_path / name} ")
    assert datasets.MNIST_FILES[name + ".gz"] in message and bad in message
    assert (tmp_path / name).read_bytes() == bytes(raw)    # reported, not deleted
    # with its .gz beside it, the .gz is the one read
    (tmp_path / (name + ".gz")).symlink_to(MNIST_DIR / (name + ".gz"))
    np.testing.assert_array_equal(datasets.load_mnist(tmp_path, download=False).y_train,
                                  mnist32.y_train)


@needs_mnist
def test_an_uncompressed_idx_file_changed_after_a_load_is_hashed_again(tmp_path):
    name = "t10k-labels-idx1-ubyte"
    _raw_copies(tmp_path, [name + ".gz"])
    datasets.load_mnist(tmp_path, download=False)
    raw = bytearray((tmp_path / name).read_bytes())
    raw[-1] = (raw[-1] + 1) % 10
    with open(tmp_path / name, "r+b") as f:     # in place: same path, inode and size
        f.write(raw)
    with pytest.raises(datasets.DatasetCorruptError, match=f"^{name}: SHA-256 .* does not "
                                                           f"match"):
        datasets.load_mnist(tmp_path, download=False)


def test_the_missing_message_accepts_either_form(tmp_path):
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"")       # present, uncompressed
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load_mnist(tmp_path, download=False)
    message = str(info.value)
    listed = message.split(". Put the")[0]
    assert listed == (f"MNIST file(s) missing from {tmp_path}: train-images-idx3-ubyte.gz, "
                      "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (each "
                      "gzip-compressed or uncompressed, its name without .gz)")


@needs_mnist
def test_only_a_file_missing_in_both_forms_is_downloaded_as_gz(tmp_path, serve):
    name = "t10k-labels-idx1-ubyte.gz"
    served = tmp_path / "served" / "mnist"
    served.mkdir(parents=True)
    shutil.copy(MNIST_DIR / name, served / name)      # the server has only that one
    home = tmp_path / "home"
    home.mkdir()
    _raw_copies(home, [n for n in datasets.MNIST_FILES if n != name])
    (home / name).unlink()
    _, _, _, y_test = datasets.load_mnist(home, mirrors=[serve(served.parent)])
    np.testing.assert_array_equal(np.bincount(y_test, minlength=10), MNIST_TEST_COUNTS)
    assert sorted(p.name for p in home.iterdir()) == sorted(
        [n.removesuffix(".gz") for n in datasets.MNIST_FILES if n != name] + [name])


# ---------------------------------------------------------------------------
# the download timeout
# ---------------------------------------------------------------------------

TIMEOUT_MESSAGE = (r"load_mnist: timeout must be a finite float in \(0, 9\.22337e\+09\], "
                   r"got {} \({}\)")


@pytest.mark.parametrize("timeout, shown", [
    (1e300, r"1e\+300"), (threading.TIMEOUT_MAX * 2, r"18446744072\.0"),
    (10 ** 10, "10000000000"), (float("inf"), "inf"), (0.0, r"0\.0"), (-1, "-1")])
def test_mnist_timeout_beyond_what_a_socket_takes_is_a_value_error(tmp_path, timeout, shown):
    # was: OverflowError "timestamp out of range for platform time_t" from the
    # socket layer, after the directory was made
    home = tmp_path / "new"
    with pytest.raises(ValueError, match=TIMEOUT_MESSAGE.format(shown, type(timeout).__name__)):
        datasets.load_mnist(home, mirrors=[_closed_port_url()], timeout=timeout)
    assert not home.exists()


def test_mnist_timeout_of_timeout_max_is_accepted(tmp_path):
    # the largest a socket takes: the download is tried (and refused here)
    with pytest.raises(datasets.DatasetNotFoundError, match="Connection refused"):
        datasets.load_mnist(tmp_path, mirrors=[_closed_port_url()],
                            timeout=threading.TIMEOUT_MAX)


# ---------------------------------------------------------------------------
# an empty data_home
# ---------------------------------------------------------------------------

def test_an_empty_data_home_is_refused_as_load_mnist_refuses_it(monkeypatch, tmp_path):
    # was: get_mnist_dir('') == Path('.'), where load_mnist refused ''
    monkeypatch.chdir(tmp_path)
    message = re.escape("data_home must be a directory, got '': an empty path (write '.' "
                        "for the current directory)")
    with pytest.raises(ValueError, match=message):
        datasets.get_mnist_dir("")
    with pytest.raises(ValueError, match=r"data_home must be None or a non-empty str .*, got ''"):
        datasets.load_mnist(data_home="", download=False)
    with datasets._command_line_option("--data-home"):
        with pytest.raises(ValueError, match=re.escape("--data-home must be a directory, "
                                                       "got '': an empty path")):
            datasets.get_mnist_dir("")
    assert datasets.get_mnist_dir(".") == Path(".")
    # an empty DESCEND_DATA is still "unset"
    monkeypatch.setenv("DESCEND_DATA", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert datasets.get_mnist_dir() == tmp_path / ".cache" / "descend" / "mnist"
    assert list(tmp_path.iterdir()) == []
