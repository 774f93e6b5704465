"""Session 21's breaker: the verified-file cache of load_mnist, ... Each test
names what the code did before its fix ("was: ...")."""
import os
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
