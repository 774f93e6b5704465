"""Session 9's leftovers (robust10): one check of a stored profile's numbers,
bench/predict_compare.py's --data-home, DESCEND_PLAN's two forms taking the
same numbers, a DESCEND_CACHE_DIR of only whitespace."""
import pytest

from descend import plans


# ------------------------------------------------- a stored profile's numbers
@pytest.mark.parametrize("value, positive, non_negative", [
    (1, True, True), (0.25, True, True), (1e308, True, True),
    (0, False, True), (0.0, False, True), (-0.0, False, True),
    (-1, False, False), (-1e-300, False, False),
    (True, False, False), (False, False, False),       # JSON's true is no figure
    (float("nan"), False, False), (float("inf"), False, False),
    ("1", False, False), (None, False, False), ([1], False, False)])
def test_one_check_of_a_finite_number_for_records_and_figures(value, positive, non_negative):
    """_records_are_valid (>= 0) and _figures_are_valid (> 0), and predict's
    figures, each had their own three-line copy of this check."""
    assert plans.is_finite_number(value) is positive
    assert plans.is_finite_number(value, zero=True) is non_negative
