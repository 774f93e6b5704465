"""descend.callbacks.TensorBoard, read back by the real TensorBoard server.

The server runs on a free loopback port (127.0.0.1 only) over the test's
log_dir; the scalars are read through its HTTP data API and compared with
History value for value (TensorBoard stores scalars as float32). Skipped,
with the reason, where tensorboard or tensorboardX is not installed
(``pip install "descend[tensorboard]" tensorboard``).
"""
import json
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

import descend as dn
from descend.callbacks import TensorBoard

EPOCHS = 4


def _require(module, what):
    try:
        __import__(module)
    except ImportError:
        pytest.skip(f"{module} is not installed ({what}): pip install {module}")


def _data():
    X, y = dn.datasets.load_digits()
    return X[:600], y[:600]


def _net(seed=0):
    net = dn.Sequential([dn.Dense(24, activation="relu", name="hidden"), dn.Dense(10)],
                        input_dim=64, seed=seed, n_threads=1)
    net.compile("softmax_cross_entropy", dn.optimizers.SGD(learning_rate=0.1, momentum=0.5))
    return net


class TensorBoardServer:
    """``tensorboard --logdir DIR`` on 127.0.0.1, a port the OS picks; stopped on exit."""

    def __init__(self, log_dir):
        self.log_dir = log_dir

    def __enter__(self):
        command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(self.log_dir),
                   "--host", "127.0.0.1", "--port", "0", "--load_fast", "false",
                   "--reload_interval", "1"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        lines = queue.Queue()
        self.reader = threading.Thread(
            target=lambda: [lines.put(line) for line in self.process.stdout], daemon=True)
        self.reader.start()
        deadline, seen = time.monotonic() + 120, []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if found:
                self.url = f"http://127.0.0.1:{found.group(1)}"
                return self
        self.__exit__()
        raise RuntimeError("tensorboard did not start:\n" + "".join(seen))

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=20)     # the server's output ends with it: then close
        self.process.stdout.close()

    def get(self, path, **query):
        url = f"{self.url}/data/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())

    def wait_for(self, plugin, run, tags, timeout=120):
        """Poll the plugin's tag list until the run has all `tags` (loading is async)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.get(f"plugin/{plugin}/tags").get(run, {})
            if set(tags) <= set(found):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{plugin} tags of {run}: {sorted(found)}, "
                                     f"expected {sorted(tags)}")
            time.sleep(0.5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two fits (EPOCHS, then 2 more) of one net with a TensorBoard callback,
    and the server reading its log_dir."""
    _require("tensorboardX", "writes the event files")
    _require("tensorboard", "the server the test reads them back from")
    log_dir = tmp_path_factory.mktemp("tb") / "run"
    X, y = _data()
    net = _net()
    callback = TensorBoard(log_dir, histogram_freq=2, gradient_data=(X[:200], y[:200]))
    first = net.fit(X, y, epochs=EPOCHS, batch_size=32, validation_split=0.25,
                    callbacks=[callback], verbose=0)
    first = {key: list(values) for key, values in first.history.items()}
    grads = net.gradients(X[:200], y[:200])     # the weights of the last histogram epoch
    second = net.fit(X, y, epochs=2, batch_size=32, validation_split=0.25,
                     callbacks=[callback], verbose=0).history
    with TensorBoardServer(log_dir) as server:
        yield server, net, first, second, grads


def test_every_scalar_of_history_is_on_the_server_value_for_value(trained):
    server, _, first, second, _ = trained
    keys = ("loss", "accuracy", "learning_rate", "seconds", "samples_per_second")
    val_keys = ("loss", "accuracy")
    server.wait_for("scalars", "train", ["epoch_" + key for key in keys])
    server.wait_for("scalars", "validation", ["epoch_" + key for key in val_keys])
    # step = epoch counted over both fits: the second fit continues the curves
    steps = list(range(EPOCHS + 2))
    for run, names, prefix in (("train", keys, ""), ("validation", val_keys, "val_")):
        for name in names:
            points = server.get("plugin/scalars/scalars", run=run, tag="epoch_" + name)
            assert [step for _, step, _ in points] == steps, (run, name)
            expected = first[prefix + name] + second[prefix + name]
            assert [value for _, _, value in points] == \
                [float(np.float32(v)) for v in expected], (run, name)
    assert set(server.get("plugin/scalars/tags")["validation"]) == {"epoch_loss",
                                                                   "epoch_accuracy"}


def test_gradient_norms_and_histograms_at_every_histogram_epoch(trained):
    server, net, _, _, grads = trained
    layers = ["hidden", "dense_1"]
    server.wait_for("scalars", "train", [f"gradient_norm/{name}" for name in layers])
    for name, (d_kernel, _) in zip(layers, grads):
        points = server.get("plugin/scalars/scalars", run="train",
                            tag=f"gradient_norm/{name}")
        # histogram_freq=2: epochs 2 and 4 of the first fit (steps 1, 3), 2 of the second
        assert [step for _, step, _ in points] == [1, 3, 5]
        assert points[1][2] == float(np.float32(np.linalg.norm(d_kernel)))
    tags = [f"{name}/{what}" for name in layers
            for what in ("kernel", "bias", "kernel_gradient", "bias_gradient")]
    server.wait_for("histograms", "train", tags)
    kernel = server.get("plugin/histograms/histograms", run="train", tag="hidden/kernel")
    assert [step for _, step, _ in kernel] == [1, 3, 5]
    last_buckets = kernel[-1][2]
    assert sum(count for _, _, count in last_buckets) == net.layers[0].kernel.size
    assert last_buckets[0][0] <= net.layers[0].kernel.min()
    assert last_buckets[-1][1] >= net.layers[0].kernel.max()


def test_the_config_is_on_the_server_as_text(trained):
    server, net, _, _, _ = trained
    server.wait_for("text", "train", ["config/text_summary"])
    entries = server.get("plugin/text/text", run="train", tag="config/text_summary")
    assert [entry["step"] for entry in entries] == [0, EPOCHS]    # one per fit
    text = entries[0]["text"]
    for expected in ("softmax_cross_entropy", "\"class\": \"SGD\"",
                     "\"momentum\": 0.5", "\"epochs\": 4",
                     f"total parameters: {net.count_params()}"):
        assert expected in text


def test_a_process_that_is_not_the_chief_writes_nothing(tmp_path):
    _require("tensorboardX", "writes the event files")
    X, y = _data()
    asked = []
    callbacks = [TensorBoard(tmp_path / "off", is_chief=False),
                 TensorBoard(tmp_path / "lazy", is_chief=lambda: asked.append(1) or False)]
    _net().fit(X, y, epochs=2, verbose=0, callbacks=callbacks)
    assert not (tmp_path / "off").exists() and not (tmp_path / "lazy").exists()
    assert asked == [1]


def test_without_validation_there_is_no_validation_run(tmp_path):
    _require("tensorboardX", "writes the event files")
    X, y = _data()
    _net().fit(X, y, epochs=1, verbose=0, callbacks=[TensorBoard(tmp_path, write_config=False)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]


def test_gradient_data_of_another_width_is_refused_before_the_first_epoch(tmp_path):
    _require("tensorboardX", "writes the event files")
    X, y = _data()
    net = _net()
    callback = TensorBoard(tmp_path, histogram_freq=1, gradient_data=(X[:5, :10], y[:5]))
    with pytest.raises(ValueError, match="10 features, the model 64"):
        net.fit(X, y, epochs=1, verbose=0, callbacks=[callback])
    assert net.epochs_trained == 0


def test_without_tensorboardx_the_error_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)     # import fails
    with pytest.raises(ImportError, match=r'pip install "descend\[tensorboard\]"'):
        TensorBoard(tmp_path)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"update_freq": "batch"}, ValueError, "update_freq"),
    ({"update_freq": 100}, ValueError, "update_freq"),
    ({"histogram_freq": -1}, ValueError, "histogram_freq"),
    ({"histogram_freq": 1.5}, TypeError, "histogram_freq"),
    ({"gradient_data": np.zeros(3)}, TypeError, "gradient_data"),
    ({"gradient_data": (np.zeros((2, 64)), [0, 1])}, ValueError, "histogram_freq"),
    ({"gradient_data": (np.zeros(64), [0]), "histogram_freq": 1}, ValueError, "shape"),
    ({"gradient_data": (np.zeros((2, 64)), [0]), "histogram_freq": 1}, ValueError, "labels"),
    ({"write_config": "yes"}, TypeError, "write_config"),
    ({"is_chief": 0}, TypeError, "is_chief"),
    ({"log_dir": ""}, ValueError, "log_dir"),
])
def test_bad_arguments_name_the_argument(kwargs, error, message):
    kwargs.setdefault("log_dir", "logs")
    with pytest.raises(error, match=message):
        TensorBoard(**kwargs)
