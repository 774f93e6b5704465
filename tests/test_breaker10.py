"""Session 10's breaker: a negative zero density in the Python-side plans,
bench/shapes.py's directories, and an aborting MPI rank whose stderr is not
a plain pipe that the launcher reads."""
import numpy as np
import pytest

import descend as dn
from descend import plans
from test_breaker5 import bench_script


# ------------------------------------------- a density of -0.0 in Python plans
@pytest.mark.parametrize("density", [-0.0, np.float64(-0.0), np.float32(-0.0)])
def test_check_plan_refuses_a_negative_zero_density_as_descend_plan_does(density):
    """0 <= -0.0 in Python: plan=, net.plan and pin_plan took the -0.0 that
    DESCEND_PLAN refuses (in both its forms) since robust10."""
    with pytest.raises(ValueError, match=r"plan\['predict_sparse_density'\] must be a number "
                                         r"in \[0, 1\] or None, got .*-0\.0.*negative zero"):
        plans.check_plan({"predict_sparse_density": density})


@pytest.mark.parametrize("density", [0, 0.0, np.float64(0.0), 1, 1.0, 0.3])
def test_check_plan_keeps_taking_an_unsigned_zero_and_the_ends(density):
    assert plans.check_plan({"predict_sparse_density": density}) == {
        "predict_sparse_density": density}


def test_pin_plan_and_a_network_plan_refuse_a_negative_zero_density():
    net = dn.Sequential([dn.Dense(2)], input_dim=3, seed=0)
    with pytest.raises(ValueError, match="negative zero"):
        net.pin_plan({"predict_sparse_density": -0.0})
    assert net.plan is None                             # refused before any change
    net.plan = {"predict_sparse_density": -0.0}         # assigned by hand: refused at use
    with pytest.raises(ValueError, match="negative zero"):
        net.predict(np.zeros((4, 3)))
    net.plan = {"predict_sparse_density": 0.0}
    assert net.predict(np.zeros((4, 3))).shape == (4, 2)


def test_descend_plan_and_check_plan_agree_on_a_negative_zero(monkeypatch):
    for text in ("predict_sparse_density=-0.0", '{"predict_sparse_density": -0.0}'):
        monkeypatch.setenv("DESCEND_PLAN", text)
        with pytest.raises(ValueError, match="negative zero"):
            plans.forced_from_env()
    with pytest.raises(ValueError, match="negative zero"):
        plans.check_plan({"predict_sparse_density": -0.0})


# ------------------------------------------------- bench/shapes.py directories
@pytest.mark.parametrize("option", ["--data-home", "--scratch"])
def test_bench_shapes_refuses_a_file_as_a_directory_before_any_work(option, tmp_path, capsys,
                                                                   monkeypatch):
    """--data-home naming a file failed only after the scratch directory was
    made (in load_mnist); --scratch naming a file in os.makedirs."""
    shapes = bench_script("shapes.py")
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("x")
    scratch = tmp_path / "scratch"
    monkeypatch.setattr(shapes, "run", lambda cell: pytest.fail("a cell ran"))
    monkeypatch.setattr(dn.datasets, "load_mnist", lambda **k: pytest.fail("MNIST was read"))
    argv = ["--data-home", str(tmp_path), "--scratch", str(scratch)]
    argv[argv.index(option) + 1] = str(a_file)
    with pytest.raises(SystemExit) as stop:
        shapes.main(argv)
    assert stop.value.code == 2
    assert f"{option}: expected a directory, got {str(a_file)!r} (a file)" in (
        capsys.readouterr().err)
    assert not scratch.exists()
