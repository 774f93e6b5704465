"""Session 23's first breaker: checkpoints of networks no file can hold, the
newsgroups loader's categories, distributed ranks given other data, and
model paths that name a directory. Each test names what the code did
before its fix ("was: ...")."""
import re

import numpy as np
import pytest

import descend as dn
from descend import datasets, losses


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 4)), rng.integers(0, 3, 40)


def small_net(optimizer="sgd", loss="softmax_cross_entropy"):
    net = dn.Sequential([dn.Dense(8, activation="relu"), dn.Dense(3)], input_dim=4,
                        seed=0, dtype="float64", n_threads=1)
    return net.compile(loss, optimizer)


class _CustomLoss(losses.SoftmaxCrossEntropy):
    """A subclass: model files name descend's own losses only."""


@pytest.mark.parametrize("make", [
    lambda: small_net(dn.optimizers.SGD(dn.schedules.LambdaSchedule(lambda epoch: 0.1))),
    lambda: small_net(loss=_CustomLoss()),
], ids=["lambda-schedule", "custom-loss"])
def test_a_checkpoint_of_a_network_no_file_holds_is_refused_before_the_first_epoch(
        make, data, tmp_path):
    # was: the ValueError of model.save came at the end of the first epoch,
    # which had trained (epochs_trained 1, weights moved) and written nothing
    net = make()
    before = net.get_weights()
    checkpoint = dn.callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch}.npz"))
    with pytest.raises(ValueError, match="^ModelCheckpoint: cannot save"):
        net.fit(*data, epochs=2, verbose=0, callbacks=[checkpoint])
    assert net.epochs_trained == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, net.get_weights()))
    assert list(tmp_path.iterdir()) == []


_POSTS = {
    ("20news-bydate-train", "sci.med", "1"): "From: a\n\ndoctor patient doctor",
    ("20news-bydate-train", "comp.graphics", "2"): "From: b\n\nimage pixel render",
    ("20news-bydate-test", "sci.med", "3"): "From: c\n\ndoctor image",
    ("20news-bydate-test", "rec.autos", "4"): "From: d\n\ncar engine",
}


@pytest.mark.parametrize("categories, unknown", [
    (["sci.med", "sci.medd"], "['sci.medd']"),       # a typo
    (("rec.autos", "comp.graphics"), "['rec.autos']"),    # test posts only
])
def test_newsgroups_categories_without_training_posts_are_named(tmp_path, categories,
                                                                 unknown):
    # was: left out silently; the typo gave a one-class problem (names ['sci.med'])
    from test_domain_data import newsgroups_archive
    directory = newsgroups_archive(tmp_path, _POSTS)
    with pytest.raises(ValueError, match=re.escape(unknown) + " have no training posts .* its "
                                         r"newsgroups are \['comp.graphics', 'sci.med'\]"):
        datasets.load_newsgroups(directory, download=False, categories=categories,
                                 verify=False)
    names = datasets.load_newsgroups(directory, download=False, categories=["sci.med"],
                                     verify=False)[4]
    assert names == ["sci.med"]


_OTHER_DATA_WORKER = """
rng = np.random.default_rng(0)
X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)
found = {}
for what in ("same", "y", "X", "validation"):
    Xr, yr, Xv = X.copy(), y.copy(), X[:20].copy()
    if dist.rank == 1 and what == "y":
        yr[[0, 1]] = yr[[1, 0]] if yr[0] != yr[1] else (yr[0] + 1) % 3
    if dist.rank == 1 and what == "X":
        Xr[5, 1] += 1.0
    if dist.rank == 1 and what == "validation":
        Xv[0, 0] += 1.0
    net = dn.Sequential([dn.Dense(3)], input_dim=4, seed=0, dtype="float64")
    net.compile("softmax_cross_entropy", "sgd")
    try:
        net.fit(Xr, yr, epochs=1, batch_size=8, verbose=0, distributed=dist,
                validation_data=(Xv, y[:20]))
        found[what] = None
    except ValueError as exc:
        found[what] = str(exc)
report(found)
"""


# What every worker script starts with: its body calls report(value) once
# on every rank, and the test gets the ranks' values as a list.
_WORKER_HEADER = """\
import json, os, sys
import numpy as np
import descend as dn
dist = dn.distributed.MPI()


def report(value):
    everyone = dist.comm.allgather(value)
    if dist.rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump(everyone, f)
"""


def _run_on_two_ranks(body, tmp_path):
    """Run _WORKER_HEADER + `body` under ``mpiexec -n 2``; the list of the
    ranks' reported values. Skipped without mpi4py or mpiexec."""
    from test_distributed import _have_mpi4py, _mpiexec
    if not _have_mpi4py() or _mpiexec() is None:
        pytest.skip("needs mpi4py and mpiexec")
    import json
    import os
    import pathlib
    import subprocess
    import sys
    script, out = tmp_path / "worker.py", tmp_path / "out.json"
    script.write_text(_WORKER_HEADER + body)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    package_root = str(pathlib.Path(dn.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([package_root, env.get("PYTHONPATH", "")])
    done = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script), str(out)],
                          env=env, capture_output=True, text=True, timeout=240,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text())


def test_distributed_ranks_given_other_data_are_refused_on_every_rank(tmp_path):
    # was: a rank whose X, y or validation data differed (loaded or shuffled
    # otherwise) trained the job on a mix of the ranks' data, silently
    found = _run_on_two_ranks(_OTHER_DATA_WORKER, tmp_path)
    for rank in found:
        assert rank["same"] is None
        for what in ("y", "X", "validation"):
            assert rank[what].startswith("distributed fit: rank 1 differs from rank 0 in "
                                         "X, y and validation data (SHA-256)"), rank[what]


def test_a_model_path_ending_with_a_separator_is_refused_naming_it(tmp_path):
    # was: an OSError naming the temporary file, from the rename
    net = small_net()
    path = str(tmp_path / "m.npz") + "/"
    with pytest.raises(ValueError, match="ends with a path separator"):
        net.save(path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make", [
    lambda d: dn.callbacks.ModelCheckpoint(str(d / "checkpoints") + "/"),
    lambda d: dn.callbacks.CSVLogger(str(d / "log.csv") + "/"),
], ids=["ModelCheckpoint", "CSVLogger"])
def test_callback_files_ending_with_a_separator_are_refused_when_made(make, tmp_path):
    # was: ModelCheckpoint made the directory and raised at the end of the
    # first epoch, after it trained; CSVLogger an IsADirectoryError at fit's start
    with pytest.raises(ValueError, match="must be a file name, got .*, which ends with a "
                                         "path separator"):
        make(tmp_path)


_LOCAL_FIT_AFTER_DISTRIBUTED_WORKER = """
rng = np.random.default_rng(0)
X, y = rng.normal(size=(60, 4)), rng.integers(0, 3, 60)
net = dn.Sequential([dn.Dense(3)], input_dim=4, seed=0, dtype="float64")
net.compile("softmax_cross_entropy", "sgd")
net.fit(X, y, epochs=1, batch_size=8, verbose=0, distributed=dist)
after_distributed = os.path.exists(net.save(f"distributed-{dist.rank}.npz"))
net.fit(X[:20], y[:20], epochs=1, batch_size=8, verbose=0)     # this rank alone
after_local = os.path.exists(net.save(f"local-{dist.rank}.npz"))
report([after_distributed, after_local])
"""


def test_a_fit_without_distributed_makes_every_rank_save_again(tmp_path):
    # was: once a network had been fit with distributed=MPI(), a rank other
    # than 0 returned the path from every later save without writing it,
    # after a fit of its own too
    found = _run_on_two_ranks(_LOCAL_FIT_AFTER_DISTRIBUTED_WORKER, tmp_path)
    assert found == [[True, True], [False, True]]


@pytest.mark.parametrize("X, message", [
    (np.ones((4, 4)) * (1 + 1j), "X must hold real numbers, got dtype complex128"),
    ([["a"] * 4] * 4, "X must hold real numbers, got dtype <U1"),
])
def test_check_gradients_refuses_x_as_gradients_does(X, message):
    # was: complex X lost its imaginary part (a ComplexWarning, then a result),
    # strings raised numpy's "could not convert string to float" naming no argument
    net = small_net()
    y = np.array([0, 1, 2, 0])
    with pytest.raises(TypeError, match=re.escape(message)):
        dn.gradcheck.check_gradients(net, X, y)
    with pytest.raises(TypeError, match=re.escape(message)):
        net.gradients(X, y)


def test_save_refuses_to_replace_a_file_this_user_may_not_write(tmp_path, monkeypatch):
    # was: the rename replaced a read-only model file (it needs only the
    # directory's permission), where open(path, "w"), np.save or torch.save
    # raise PermissionError
    import os
    path = tmp_path / "best.npz"
    small_net().save(path)
    path.chmod(0o444)
    original = path.read_bytes()
    if os.access(path, os.W_OK):        # root writes any file: as if it could not
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
            False if os.fspath(p) == str(path) and mode & os.W_OK else access(p, mode, **kw)))
    other = dn.Sequential([dn.Dense(2)], input_dim=3, seed=1)
    with pytest.raises(PermissionError, match="best.npz"):
        other.save(path)
    assert path.read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz"]


@pytest.mark.parametrize("make", [
    lambda path: dn.callbacks.ModelCheckpoint(str(path)),
    lambda path: dn.callbacks.CSVLogger(str(path), append=True),
], ids=["ModelCheckpoint", "CSVLogger"])
def test_callback_files_this_user_may_not_write_are_refused_when_made(make, tmp_path,
                                                                      monkeypatch):
    # was: ModelCheckpoint's save raised PermissionError after the first epoch
    # had trained (now that save refuses such files), CSVLogger at fit's start
    import os
    path = tmp_path / "kept"
    path.write_text("epoch,loss\n")
    path.chmod(0o444)
    if os.access(path, os.W_OK):        # root writes any file: as if it could not
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (
            False if os.fspath(p) == str(path) and mode & os.W_OK else access(p, mode, **kw)))
    with pytest.raises(ValueError, match="is read-only"):
        make(path)


def test_a_file_saved_with_more_threads_than_this_machine_runs_loads(tmp_path, data):
    # was: "invalid architecture in the config: n_threads must be an int in
    # [1, 64]..." for a network saved with n_threads=128 on a 16-core server
    from test_adversarial import _rewrite
    from descend._validation import MAX_THREADS
    net = small_net()
    net.fit(*data, epochs=1, verbose=0)
    path = net.save(tmp_path / "m.npz")
    _rewrite(path, path, lambda arrays, config: config["model"].update(
        n_threads=2 * MAX_THREADS))
    with pytest.warns(RuntimeWarning, match=f"saved with n_threads={2 * MAX_THREADS}, more "
                                            "than this machine runs") as caught:
        loaded = dn.load(path)
    assert caught[0].filename == __file__
    assert loaded.n_threads is None
    np.testing.assert_array_equal(loaded.predict(data[0]), net.predict(data[0]))


_UNSAVABLE_CHECKPOINT_WORKER = """
rng = np.random.default_rng(0)
X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
net = dn.Sequential([dn.Dense(3)], input_dim=4, seed=0, dtype="float64")
net.compile("softmax_cross_entropy",
            dn.optimizers.SGD(dn.schedules.LambdaSchedule(lambda epoch: 0.1)))
try:
    net.fit(X, y, epochs=1, batch_size=8, verbose=0, distributed=dist,
            callbacks=[dn.callbacks.ModelCheckpoint("m-{epoch}.npz")])
    found = None
except ValueError as exc:
    found = str(exc)
report((found, net.epochs_trained))
"""


def test_a_distributed_checkpoint_of_an_unsavable_network_is_refused_on_every_rank(tmp_path):
    # ModelCheckpoint runs on rank 0 only: its refusal there left rank 1
    # waiting in a collective until MPI_Abort ended the job
    found = _run_on_two_ranks(_UNSAVABLE_CHECKPOINT_WORKER, tmp_path)
    # (every rank checks the same network: each raises the check's own error)
    for message, epochs in found:
        assert message.startswith("ModelCheckpoint: cannot save this network"), message
        assert epochs == 0
    assert not list(tmp_path.glob("m-*.npz"))


_BAD_GRADIENT_DATA_WORKER = """
rng = np.random.default_rng(0)
X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
found = []
for gradient_data in ((X[:8, :3], y[:8]), (X[:8], np.full(8, 7))):
    net = dn.Sequential([dn.Dense(3)], input_dim=4, seed=0, dtype="float64")
    net.compile("softmax_cross_entropy", "sgd")
    board = dn.callbacks.TensorBoard("logs", histogram_freq=1, gradient_data=gradient_data)
    try:
        net.fit(X, y, epochs=1, batch_size=8, verbose=0, distributed=dist, callbacks=[board])
        found.append([None, net.epochs_trained])
    except ValueError as exc:
        found.append([str(exc), net.epochs_trained])
report(found)
"""


def test_a_distributed_tensorboards_gradient_data_is_checked_on_every_rank(tmp_path):
    # TensorBoard runs on rank 0 only: its refusal of gradient_data there
    # left rank 1 waiting in a collective until MPI_Abort ended the job
    pytest.importorskip("tensorboardX")
    found = _run_on_two_ranks(_BAD_GRADIENT_DATA_WORKER, tmp_path)
    for rank in found:
        (features, epochs), (labels, epochs_too) = rank
        assert features == "TensorBoard: gradient_data has 3 features, the model 4."
        assert "TensorBoard's gradient_data[1]" in labels and "7" in labels, labels
        assert epochs == epochs_too == 0
