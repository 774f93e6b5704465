"""Take docs/tensorboard_scalars.png: TensorBoard's scalars page for a fit.

Trains a 64-128-10 ReLU network on the bundled digits for 40 epochs with
``descend.callbacks.TensorBoard`` (validation split 0.25, weight and gradient
histograms every 5 epochs), serves the log directory with ``tensorboard`` on
a free loopback port, and screenshots the scalars page with headless
Chromium.

    pip install ".[tensorboard]"          # tensorboardX and tensorboard
    apt-get install chromium              # Debian; or set CHROMIUM=/path/to/chrome
    python docs/tensorboard_screenshot.py [--output docs/tensorboard_scalars.png]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import descend as dn

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def train(log_dir):
    """A short fit on the digits that logs to log_dir; returns its History."""
    X, y = dn.datasets.load_digits()
    net = dn.Sequential([dn.Dense(128, activation="relu", name="hidden"),
                         dn.Dense(10, name="logits")], input_dim=64, seed=0)
    net.compile("softmax_cross_entropy",
                dn.optimizers.SGD(learning_rate=dn.schedules.ExponentialDecay(0.05, 0.95),
                                  momentum=0.9))
    callback = dn.callbacks.TensorBoard(log_dir, histogram_freq=5,
                                        gradient_data=(X[:500], y[:500]))
    return net.fit(X, y, epochs=40, batch_size=32, validation_split=0.25,
                   callbacks=[callback], verbose=0)


def serve(log_dir):
    """Start tensorboard on 127.0.0.1 (a port the OS picks): (process, url)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(log_dir),
         "--host", "127.0.0.1", "--port", "0", "--load_fast", "false"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:          # it prints its URL once it listens
        found = re.search(r"http://127\.0\.0\.1:\d+/", line)
        if found:
            return process, found.group(0)
    raise RuntimeError("tensorboard exited before it served the logs")


def wait_for_scalars(url, timeout=60):
    """Wait until the server has loaded the validation run's scalars."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "data/plugin/scalars/tags", timeout=10) as reply:
            if b"validation" in reply.read():
                return
        time.sleep(0.5)
    raise RuntimeError("tensorboard did not load the scalars in time")


def screenshot(url, output, chromium):
    """Headless Chromium's picture of the scalars dashboard."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                        "--window-size=1300,720", "--virtual-time-budget=20000",
                        f"--screenshot={output}",
                        url + "#scalars&_smoothingWeight=0&tagFilter=epoch_(loss|accuracy)"],
                       check=True, capture_output=True, timeout=180)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(Path(__file__).with_name(
        "tensorboard_scalars.png")))
    args = parser.parse_args(argv)
    chromium = os.environ.get("CHROMIUM") or next(
        filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])),
        None)
    if chromium is None:
        sys.exit("no Chromium found: apt-get install chromium, or set CHROMIUM")
    with tempfile.TemporaryDirectory() as log_dir:
        history = train(log_dir)
        print(f"trained: final val_accuracy {history['val_accuracy'][-1]:.3f}")
        process, url = serve(log_dir)
        try:
            wait_for_scalars(url)
            screenshot(url, os.path.abspath(args.output), chromium)
        finally:
            process.terminate()
            process.wait(timeout=20)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
