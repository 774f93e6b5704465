"""The state protocol (state_dict / load_state_dict / from_config) and old model files."""
import glob
import os

import numpy as np
import pytest

import descend as dn

DATA = os.path.join(os.path.dirname(__file__), "data")
V1_FILES = sorted(p for p in glob.glob(os.path.join(DATA, "v1_*.npz"))
                  if not p.endswith("_expected.npz"))


def expected_of(path):
    with np.load(path[:-4] + "_expected.npz", allow_pickle=False) as f:
        return {key: f[key] for key in f.files}


# --------------------------------------------------------------------------- format 1 files
def test_the_format_1_fixtures_are_there():
    assert len(V1_FILES) == 5


@pytest.mark.parametrize("path", V1_FILES, ids=os.path.basename)
def test_format_1_files_still_load_with_their_predictions_and_optimizer_state(path):
    expected = expected_of(path)
    net = dn.load(path)
    np.testing.assert_array_equal(net.predict(expected["X"]), expected["predict"])
    stored = sorted(key for key in expected if key.startswith("state_"))
    if net.optimizer is None or net.optimizer.state is None:
        assert stored == []
        return
    flat = {f"state_{i}_{j}": a for i, per in enumerate(net.optimizer.get_state()["arrays"])
            for j, a in enumerate(per)}
    assert sorted(flat) == stored
    for key in stored:
        assert flat[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(flat[key], expected[key])
