"""Session 24's breaker: classes_ of a regression (distributed fit,
train_on_batch, state_dict) and rank-0-only TensorBoard subclasses. Each
test names what the code did before its fix ("was: ...")."""
import numpy as np
import pytest

import descend as dn

_REGRESSION_AFTER_CLASSIFICATION_WORKER = """
X = np.random.default_rng(0).normal(size=(12, 2))
net = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0, dtype="float64")
net.compile("softmax_cross_entropy", "sgd")
net.fit(X, np.arange(12) % 3, epochs=1, batch_size=4, verbose=0, distributed=dist)
net.compile("mean_squared_error", "sgd")
net.fit(X, np.zeros((12, 3)), epochs=1, batch_size=4, verbose=0, distributed=dist)
if dist.rank == 0:
    net.save("m.npz")
report(None if net.classes_ is None else net.classes_.tolist())
"""


def test_a_distributed_regression_fit_clears_a_classification_fits_classes(tmp_path):
    # was: the distributed trainer kept classes_ [0, 1, 2] of the earlier
    # classification fit, which save then refused (a one-process fit clears them)
    from test_breaker13 import _run_on_two_ranks
    assert _run_on_two_ranks(_REGRESSION_AFTER_CLASSIFICATION_WORKER, tmp_path) == [None, None]


def _refit_as_regression():
    X = np.random.default_rng(0).normal(size=(12, 2))
    net = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0)
    net.compile("softmax_cross_entropy", "sgd")
    net.fit(X, np.arange(12) % 3, epochs=1, batch_size=4, verbose=0)
    return net.compile("mean_squared_error", "sgd"), X


def test_a_regression_train_on_batch_clears_a_classification_fits_classes(tmp_path):
    # was: classes_ [0, 1, 2] kept (fit and partial_fit clear them), and
    # save refused them: "classes_ (from the last fit) has 3 labels, but ..."
    net, X = _refit_as_regression()
    net.train_on_batch(X, np.zeros((12, 3)))
    assert net.classes_ is None
    assert dn.load(net.save(tmp_path / "m.npz")).classes_ is None


def test_state_dict_refuses_classes_left_for_a_regression_as_its_docstring_says():
    # was: state_dict held classes_ [0, 1, 2] for the regression loss, which
    # load_state_dict (and descend.load) refused on the same network
    net, _ = _refit_as_regression()
    with pytest.raises(ValueError, match=r"^classes_ \(from the last fit\) has 3 labels, but "
                                         r"the network's mean_squared_error loss is a "
                                         r"regression"):
        net.state_dict()
    net.classes_ = None
    net.load_state_dict(net.state_dict())


_TENSORBOARD_SUBCLASS_WORKER = """
X = np.random.default_rng(0).normal(size=(12, 2))


class Board(dn.callbacks.TensorBoard):
    pass


net = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0, dtype="float64")
net.compile("softmax_cross_entropy", "sgd")
net.fit(X, np.arange(12) % 3, epochs=1, batch_size=4, verbose=0, distributed=dist,
        callbacks=[Board("logs")])
dist.comm.Barrier()
report(sorted(os.listdir(os.path.join("logs", "train"))) if dist.rank == 0 else None)
"""


def test_a_tensorboard_subclass_writes_on_rank_0_alone(tmp_path):
    # was: only a callback whose class is named TensorBoard ran on rank 0
    # alone; a subclass wrote an event file from every rank into the same log_dir
    pytest.importorskip("tensorboardX")
    from test_breaker13 import _run_on_two_ranks
    event_files, _ = _run_on_two_ranks(_TENSORBOARD_SUBCLASS_WORKER, tmp_path)
    assert len(event_files) == 1


def test_a_file_written_with_classes_for_a_regression_loads_without_them(tmp_path):
    # descend before fc66f9b saved a classification fit's classes_ with a
    # network compiled since with a regression loss; load_state_dict now
    # refuses them, which made such files unloadable ("set net.classes_ =
    # None", advice a file cannot follow). The file is made here by writing
    # a classifier's file with the regression loss in its compile config.
    from test_adversarial import _rewrite
    X = np.random.default_rng(0).normal(size=(12, 2))
    net = dn.Sequential([dn.Dense(3)], input_dim=2, seed=0, dtype="float64")
    net.compile("softmax_cross_entropy", "sgd")
    net.fit(X, np.arange(12) % 3, epochs=1, batch_size=4, verbose=0)
    path = net.save(tmp_path / "old.npz")
    _rewrite(path, path, lambda arrays, config: config["compile"].update(
        loss="mean_squared_error"))
    with pytest.warns(RuntimeWarning, match=r"holds 3 classes for the network's "
                                            r"mean_squared_error loss, a regression"):
        loaded = dn.load(path)
    assert loaded.classes_ is None and loaded.loss_.name == "mean_squared_error"
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), net.get_weights()))
