"""Session 23's second breaker: the verified-file cache of load_mnist,
numerical_gradients' eps, paths ending in '.', distributed start-up checks.
Each test names what the code did before its fix ("was: ...")."""
import os
import re
from pathlib import Path

import numpy as np
import pytest

import descend as dn
from descend import datasets

MNIST_DIR = Path(os.environ.get("DESCEND_DATA") or
                 Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist")
needs_mnist = pytest.mark.skipif(
    not all((MNIST_DIR / name).is_file() for name in datasets.MNIST_FILES),
    reason=f"MNIST files not found in {MNIST_DIR}; MNIST tests need them and never download")


@needs_mnist
def test_a_link_to_a_verified_train_file_named_as_the_test_file_is_refused(tmp_path):
    # was: the cache of verified files was keyed by the link's target alone,
    # so once train-*.gz had loaded, t10k-*.gz links to them loaded too: a
    # "test set" of the 60000 training images, without an error
    datasets.load_mnist(MNIST_DIR, download=False)
    for name in datasets.MNIST_FILES:
        (tmp_path / name).symlink_to(MNIST_DIR / name.replace("t10k", "train"))
    with pytest.raises(datasets.DatasetCorruptError, match="t10k-.*SHA-256"):
        datasets.load_mnist(tmp_path, download=False)


def _tanh_net(dtype):
    net = dn.Sequential([dn.Dense(5, activation="tanh"), dn.Dense(3)], input_dim=4,
                        seed=0, dtype=dtype, n_threads=1)
    return net.compile("softmax_cross_entropy", "sgd")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(10, 4)), rng.integers(0, 3, 10)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_numerical_gradients_names_an_infinite_weight_not_eps(data, dtype):
    # was: "eps=... is below half the spacing ... near the weight inf: use a
    # larger eps", which no eps helps
    net = _tanh_net(dtype)
    net.dense_layers[0].kernel[0, 0] = np.inf
    with pytest.raises(ValueError, match="holds a weight of inf: .*finite weights"):
        dn.numerical_gradients(net, *data)
    assert net.dense_layers[0].kernel[0, 0] == np.inf


def test_numerical_gradients_refuses_an_eps_past_float32s_range(data):
    # was: RuntimeWarnings of overflow, then a FloatingPointError "the loss is
    # nan for this (X, y)", naming neither eps nor the dtype
    net = _tanh_net("float32")
    before = net.get_weights()
    with pytest.raises(ValueError, match=r"eps=1e\+39 is too large for .*float32"):
        dn.numerical_gradients(net, *data, eps=1e39)
    for got, expected in zip(net.get_weights(), before):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("ending", [".", ".."])
def test_a_model_path_ending_with_a_dot_component_is_refused_naming_it(tmp_path, ending):
    # was: abspath made 'm.npz/.' 'm.npz': an OSError naming the temporary
    # file, from the rename
    net = _tanh_net("float64")
    with pytest.raises(ValueError, match=f"ends with '{re.escape(ending)}', which names a "
                                         "directory"):
        net.save(str(tmp_path / "m.npz") + "/" + ending)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", [
    lambda d: dn.callbacks.ModelCheckpoint(str(d / "checkpoints") + "/."),
    lambda d: dn.callbacks.ModelCheckpoint(str(d / "ck{epoch}") + "/.."),
    lambda d: dn.callbacks.CSVLogger(str(d / "log") + "/.")])
def test_callback_paths_ending_with_a_dot_component_are_refused_before_training(
        tmp_path, data, make):
    # was: ModelCheckpoint("ck/.") trained an epoch, then save said 'ck/.' is
    # a directory; CSVLogger("log/.") a FileNotFoundError naming no argument
    net = _tanh_net("float64")
    with pytest.raises(ValueError, match=r"must be a file name, got .*, which ends with "
                                         r"'\.\.?' \(a directory's name\)"):
        net.fit(*data, epochs=2, batch_size=5, callbacks=[make(tmp_path)], verbose=0)
    assert not net.history


_LAZY_ON_ONE_RANK_WORKER = """
X, y = np.random.default_rng(0).normal(size=(60, 4)), np.arange(60) % 3
if dist.rank == 0:
    np.save("X.npy", X)
dist.comm.Barrier()
X = np.load("X.npy", mmap_mode="r" if dist.rank == 0 else None)
net = dn.Sequential([dn.Dense(3)], input_dim=4, seed=0, dtype="float64")
net.compile("softmax_cross_entropy", "sgd")
try:
    net.fit(X, y, epochs=1, batch_size=8, verbose=0, distributed=dist)
    found = None
except ValueError as exc:
    found = str(exc)
report(found)
"""


def test_a_rank_reading_x_lazily_is_told_so_not_that_its_data_differs(tmp_path):
    # was: "rank 1 differs from rank 0 in X, y and validation data (SHA-256)"
    # for the same X, a memmap on rank 0 (left out of the digest) and in
    # memory on rank 1
    from test_breaker13 import _run_on_two_ranks
    for message in _run_on_two_ranks(_LAZY_ON_ONE_RANK_WORKER, tmp_path):
        assert message.startswith("distributed fit: rank 1 differs from rank 0 in X read "
                                  "lazily (a memmap, h5py): False (rank 1) != True"), message


_CHECKPOINT_FIELD_WORKER = """
X, y = np.random.default_rng(0).normal(size=(60, 4)), np.arange(60) % 3
found = {}
for field in ("val_loss", "allreduce_seconds"):
    net = dn.Sequential([dn.Dense(3)], input_dim=4, seed=0, dtype="float64")
    net.compile("softmax_cross_entropy", "sgd")
    checkpoint = dn.callbacks.ModelCheckpoint("ck_{%s:.0f}.npz" % field)
    try:
        net.fit(X, y, epochs=1, batch_size=8, verbose=0, distributed=dist,
                callbacks=[checkpoint])
        found[field] = None
    except ValueError as exc:
        found[field] = str(exc)
report(found)
"""


def test_distributed_checkpoint_fields_are_checked_on_every_rank(tmp_path):
    # was: ModelCheckpoint("ck_{val_loss}.npz") without validation data was
    # refused on rank 0 alone, in on_train_begin: MPI_Abort ended the job
    from test_breaker13 import _run_on_two_ranks
    for rank in _run_on_two_ranks(_CHECKPOINT_FIELD_WORKER, tmp_path):
        assert rank["allreduce_seconds"] is None
        assert rank["val_loss"].startswith("ModelCheckpoint: `filepath` 'ck_{val_loss:.0f}"
                                           ".npz' uses the field 'val_loss'"), rank
