"""Input checks shared by the public entry points.

Every check raises before any state changes, with a message that names the
argument, what was expected and what came.
"""
import numbers
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype, name="dtype"):
    """np.dtype for 'float32'/'float64' (or their numpy types), else raise."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if dtype is None or resolved not in FLOAT_DTYPES:
        raise ValueError(f"{name} must be 'float32' or 'float64', got {dtype!r}")
    return resolved


def check_int(value, name, minimum=None, allow_none=False):
    """value as an int >= minimum (None passes if allow_none).

    Raises TypeError for a non-integer (bools included), ValueError below
    the minimum; both messages name the argument and the value received.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


# More OpenMP threads than this is a mistake, not a setting: libgomp cannot
# start a team of 10**5 threads and crashes the process instead of failing.
MAX_THREADS = max(64, 8 * (os.cpu_count() or 1))


def check_n_threads(n_threads, name="n_threads"):
    """n_threads as an int (None passes): non-zero, at most MAX_THREADS.

    Negative values keep their meaning (all usable cores but |n| - 1); numpy
    integers are accepted. Raises TypeError / ValueError naming the argument.
    """
    if n_threads is None:
        return None
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"{name} must be an int or None, got {type(n_threads).__name__} "
                        f"{n_threads!r}")
    n_threads = int(n_threads)
    if n_threads == 0:
        raise ValueError(f"{name} must be a positive int, -1 or None, got 0")
    if n_threads > MAX_THREADS:
        raise ValueError(f"{name} must be at most {MAX_THREADS} (8 threads per CPU of this "
                         f"machine), got {n_threads}")
    return n_threads


def check_float(value, name, minimum=None, maximum=None, min_inclusive=True,
                max_inclusive=True):
    """value as a finite float within the bounds (inclusive unless told).

    Raises TypeError for a non-real (bools included), ValueError for NaN,
    inf or a value out of range, naming the argument and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value < minimum or (value == minimum and not min_inclusive)):
        bound = ">=" if min_inclusive else ">"
        raise ValueError(f"{name} must be {bound} {minimum}, got {value}")
    if maximum is not None and (value > maximum or (value == maximum and not max_inclusive)):
        bound = "<=" if max_inclusive else "<"
        raise ValueError(f"{name} must be {bound} {maximum}, got {value}")
    return value


def check_X(X, dtype, name="X", n_features=None):
    """X as a C-contiguous 2-D array of `dtype` (copied at most once).

    Integer, bool and float inputs are converted to the network's dtype;
    anything else (strings, objects, complex) is a TypeError. Raises
    ValueError for a wrong number of dimensions, no samples, NaN/inf, or a
    feature count other than `n_features`.
    """
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name} must be a 2-D array of numbers, got {type(X).__name__}")
    array = np.asarray(X)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got 1-D shape {array.shape}; "
            f"use {name}.reshape(-1, 1) for a single feature or .reshape(1, -1) "
            "for a single sample")
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {array.shape})")
    if array.shape[1] == 0:
        raise ValueError(f"{name} has 0 features (shape {array.shape})")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(
            f"{name} has {array.shape[1]} features, but the network expects {n_features}")
    with np.errstate(over="ignore"):
        # values too large for float32 become inf here, and are reported below
        array = np.ascontiguousarray(array, dtype=dtype)
    if not all_finite(array):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s)"
            + (" (after conversion to " + str(dtype) + ")" if np.asarray(X).dtype != dtype else ""))
    return array


def all_finite(array, chunk_elements=1 << 20):
    """True if no element is NaN or infinite; checks row blocks so the
    temporary boolean mask stays small (not the size of X)."""
    flat = array.reshape(-1) if array.flags.c_contiguous else np.ravel(array)
    for start in range(0, flat.size, chunk_elements):
        if not np.isfinite(flat[start:start + chunk_elements]).all():
            return False
    return True


def check_lengths(X, y, x_name="X", y_name="y"):
    """ValueError naming both lengths unless len(X) == len(y)."""
    if np.ndim(y) == 0:
        raise ValueError(f"{y_name} must be an array with one entry per sample of {x_name} "
                         f"({len(X)}), got {type(y).__name__} {y!r}")
    if len(X) != len(y):
        raise ValueError(
            f"{x_name} and {y_name} have different lengths: len({x_name}) = {len(X)}, "
            f"len({y_name}) = {len(y)}")


def check_array_like(array, like, what):
    """ValueError naming `what` unless `array` is an ndarray of like's shape and
    dtype holding finite values (a state array loaded into a live one)."""
    if not isinstance(array, np.ndarray) or array.shape != like.shape:
        raise ValueError(f"{what} has shape {np.shape(array)}, expected {like.shape}")
    if array.dtype != like.dtype:
        raise ValueError(f"{what} has dtype {array.dtype}, expected {like.dtype}")
    if not all_finite(array):
        raise ValueError(f"{what} contains NaN or infinite values")
    return array
