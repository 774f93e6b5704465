"""Argument checks: one declarative constraint table, one message style.

A public entry point declares what each argument may be, as a list of
constraints (any one of them suffices), in the spirit of scikit-learn's
``_parameter_constraints``::

    _parameter_constraints = {
        "units": [Interval(Integral, 1, None)],
        "use_bias": ["boolean"],
        "mode": [Options("auto", "min", "max")],
        "n_threads": ["n_threads", None],
    }

and checks its arguments with :func:`validate` (a dict), :func:`check` (one
value) or the :func:`validate_params` decorator (a function's arguments).
Every check runs before any state changes and returns the value converted
to its canonical type (``int``, ``float``, ``bool``, ``numpy.dtype``, ``str``
for paths).

One message style, naming the argument, what was expected and what came::

    [Owner: ]<argument> must be <expected>, got <repr of value> (<type>)

One rule for the exception type: ``TypeError`` when the value's type fits
none of the constraints (a string where a number goes, a bool where an int
goes), ``ValueError`` when its type fits but the value does not (a negative
patience, NaN, an unknown option).

Shorthand constraints accepted in tables: ``None`` (the value None),
``"boolean"`` (bool or numpy.bool_), ``callable``, ``"dtype"`` (float32 or
float64), ``"path"`` (a non-empty str or os.PathLike), ``"str"`` (a non-empty
str), ``"n_threads"`` (a thread count, see :data:`MAX_THREADS`),
``"timeout"`` (seconds a socket waits: a finite float in
(0, ``threading.TIMEOUT_MAX``]), a class (instances of it) or a
:class:`Constraint` object.
"""
import functools
import inspect
import os
import reprlib
import sys
import threading
from numbers import Integral, Real

import numpy as np

__all__ = ["Constraint", "Interval", "Options", "InstanceOf", "make_constraint", "check",
           "validate", "validate_params", "check_dtype", "check_int", "check_float",
           "check_bool", "check_n_threads", "check_team_size", "check_X", "check_lengths", "all_finite",
           "learning_rate_dtype_problem", "flush_cut_rate",
           "as_array", "reject_masked", "check_storable_labels",
           "unwritable_directory", "check_output_directory", "check_output_file"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# More OpenMP threads than this is a mistake, not a setting: libgomp cannot
# start a team of 10**5 threads and crashes the process instead of failing.
MAX_THREADS = max(64, 8 * (os.cpu_count() or 1))

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60


def short_repr(value):
    """repr(value) cut to a readable length (an int of 400 digits, a long
    string), for error messages."""
    return _REPR.repr(value)


# ---------------------------------------------------------------------------
# constraints
# ---------------------------------------------------------------------------
class Constraint:
    """One admissible kind of value, with its description for messages.

    Subclasses implement :meth:`type_ok` (is the value's type one this
    constraint speaks about?), :meth:`value_ok` (called only when the type
    fits) and, if needed, :meth:`convert`.
    """

    description = "valid"

    def type_ok(self, value):
        """True if the value's type is one this constraint accepts."""
        return True

    def value_ok(self, value):
        """True if a value of an accepted type is admissible."""
        return True

    def convert(self, value):
        """The value in its canonical type (called once it passed)."""
        return value

    def __repr__(self):
        return f"<{type(self).__name__}: {self.description}>"


def _number(bound):
    return f"{bound:g}" if isinstance(bound, float) else f"{bound}"


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


class Interval(Constraint):
    """Numbers of `kind` (``numbers.Integral`` or ``numbers.Real``) in a range.

    Parameters
    ----------
    kind : numbers.Integral or numbers.Real
        Integral accepts Python and numpy integers; Real accepts any real
        number (ints included) and converts it to float. Bools never pass.
    low, high : number or None
        Bounds; None is unbounded on that side.
    closed : {"both", "left", "right", "neither"}, default "both"
        Which bounds belong to the interval.
    finite : bool, default True
        For Real: NaN never passes; +/-inf passes only with ``finite=False``
        (and then only if the bounds allow it).
    """

    def __init__(self, kind, low=None, high=None, closed="both", finite=True):
        if kind not in (Integral, Real):
            raise TypeError(f"kind must be numbers.Integral or numbers.Real, got {kind!r}")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', "
                             f"got {closed!r}")
        self.kind, self.low, self.high, self.closed = kind, low, high, closed
        self.finite = finite

    @property
    def description(self):
        # built only for a message: checks on hot paths construct Intervals
        low, high = _number(self.low), _number(self.high)
        noun = "an int" if self.kind is Integral else (
            "a finite float" if self.finite else "a float")
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        if self.low is None and self.high is None:
            return noun if self.kind is Integral or self.finite else "a float (not NaN)"
        if self.high is None:
            return f"{noun} {'>=' if left else '>'} {low}"
        if self.low is None:
            return f"{noun} {'<=' if right else '<'} {high}"
        return f"{noun} in {'[' if left else '('}{low}, {high}{']' if right else ')'}"

    def type_ok(self, value):
        return isinstance(value, self.kind) and not _is_bool(value)

    def value_ok(self, value):
        if self.kind is Real:
            try:
                value = float(value)
            except OverflowError:   # an int (or Fraction) beyond the float range
                return False
            if value != value or (self.finite and value in (np.inf, -np.inf)):
                return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def convert(self, value):
        return int(value) if self.kind is Integral else float(value)


class Options(Constraint):
    """One of a fixed set of values (strings, usually).

    The type fits if the value has the type of one of the options.
    """

    def __init__(self, *options):
        self.options = tuple(options)
        self._types = tuple({type(o) for o in self.options})
        shown = [repr(o) for o in self.options]
        self.description = (shown[0] if len(shown) == 1 else
                            "one of " + ", ".join(shown))

    def type_ok(self, value):
        return isinstance(value, self._types) and not (
            _is_bool(value) and bool not in self._types)

    def value_ok(self, value):
        return any(value == option for option in self.options)


class InstanceOf(Constraint):
    """An instance of one of the given classes."""

    def __init__(self, *types, description=None):
        self.types = types
        self.description = description or " or ".join(
            f"{_article(t.__name__)} {t.__name__}" for t in types)

    def type_ok(self, value):
        return isinstance(value, self.types)


class _NoneConstraint(Constraint):
    description = "None"

    def type_ok(self, value):
        return value is None


class _Boolean(Constraint):
    description = "a bool"

    def type_ok(self, value):
        return _is_bool(value)

    def convert(self, value):
        return bool(value)


class _Callable(Constraint):
    description = "a callable"

    def type_ok(self, value):
        return callable(value)


class _DType(Constraint):
    description = "'float32' or 'float64' (or numpy.float32 / numpy.float64)"

    def type_ok(self, value):
        return isinstance(value, (str, type, np.dtype))

    def value_ok(self, value):
        try:
            return np.dtype(value) in FLOAT_DTYPES
        except TypeError:
            return False

    def convert(self, value):
        return np.dtype(value)


class _Path(Constraint):
    description = "a non-empty str or os.PathLike path"

    def type_ok(self, value):
        return isinstance(value, (str, os.PathLike)) and isinstance(os.fspath(value), str)

    def value_ok(self, value):
        return os.fspath(value) != ""

    def convert(self, value):
        return os.fspath(value)


class _Text(Constraint):
    description = "a non-empty str"

    def type_ok(self, value):
        return isinstance(value, str)

    def value_ok(self, value):
        return value != ""


# A socket timeout above threading.TIMEOUT_MAX overflows the clock's
# arithmetic: OverflowError "timestamp out of range" from deep in urllib.
_TIMEOUT = Interval(Real, 0, threading.TIMEOUT_MAX, closed="right")

_SHORTHANDS = {"boolean": _Boolean(), "dtype": _DType(), "path": _Path(), "str": _Text(),
               "timeout": _TIMEOUT}
_NONE = _NoneConstraint()
_CALLABLE = _Callable()


# negative counts keep their meaning: all usable cores but |n| - 1
_N_THREADS = [Interval(Integral, 1, MAX_THREADS), Interval(Integral, None, -1)]


def make_constraint(spec):
    """The Constraint object for a table entry (see the module docstring)."""
    if isinstance(spec, Constraint):
        return spec
    if spec is None:
        return _NONE
    if spec is callable:
        return _CALLABLE
    if isinstance(spec, type):
        return InstanceOf(spec)
    if isinstance(spec, str) and spec in _SHORTHANDS:
        return _SHORTHANDS[spec]
    raise ValueError(f"unknown constraint {spec!r}")


def _constraints(specs):
    constraints = []
    for spec in specs:
        if isinstance(spec, Constraint):
            constraints.append(spec)
        elif spec == "n_threads":
            constraints.extend(_N_THREADS)
        else:
            constraints.append(make_constraint(spec))
    return constraints


# ---------------------------------------------------------------------------
# checking
# ---------------------------------------------------------------------------
def _article(noun):
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _join(descriptions):
    unique = list(dict.fromkeys(descriptions))
    if len(unique) == 1:
        return unique[0]
    return ", ".join(unique[:-1]) + " or " + unique[-1]


def describe(specs):
    """The <expected> part of the message for a list of constraints."""
    return _join([c.description for c in _constraints(specs)])


def refuse_unknown_keywords(owner, unknown, hints):
    """Python's TypeError for the first of the `unknown` keyword arguments
    given to `owner`, with what descend calls it where another library's
    name was used (`hints`: {their name: the hint}); nothing if none."""
    if unknown:
        name = next(iter(unknown))
        hint = hints.get(name)
        raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}"
                        + (f" ({hint})" if hint else ""))


def error_message(name, expected, value, owner=None):
    """The one message style: '[Owner: ]name must be expected, got value (type)'."""
    prefix = f"{owner}: " if owner else ""
    return (f"{prefix}{name} must be {expected}, got {_REPR.repr(value)} "
            f"({type(value).__name__})")


def check(value, name, specs, owner=None):
    """`value` converted by the first constraint of `specs` it satisfies.

    Parameters
    ----------
    value : object
    name : str
        The argument's name, as the user spells it (``"patience"``,
        ``"validation_data[0]"``).
    specs : list
        Constraints (or shorthands); any one suffices.
    owner : str or None
        The class or function the argument belongs to, prefixed to the
        message (``"EarlyStopping: patience must be ..."``).

    Raises
    ------
    TypeError
        If the value's type fits none of the constraints.
    ValueError
        If its type fits one but the value does not.
    """
    constraints = _constraints(specs)
    type_fits = False
    for constraint in constraints:
        if constraint.type_ok(value):
            type_fits = True
            if constraint.value_ok(value):
                return constraint.convert(value)
    error = ValueError if type_fits else TypeError
    raise error(error_message(name, _join([c.description for c in constraints]), value, owner))


def validate(table, params, owner=None):
    """{name: converted value} for every entry of `params` (a dict).

    Each value is checked against ``table[name]``; names absent from the
    table are a bug of the caller (KeyError).
    """
    return {name: check(value, name, table[name], owner) for name, value in params.items()}


def validate_params(table, owner=None):
    """Decorator: check a function's arguments against `table` on each call.

    Arguments named in the table are checked and replaced by their
    converted value; the others pass through. The message names the
    function (or `owner`).
    """
    def decorator(function):
        signature = inspect.signature(function)
        unknown = set(table) - set(signature.parameters)
        if unknown:
            raise ValueError(f"constraints for unknown parameters {sorted(unknown)} of "
                             f"{function.__qualname__}")
        who = owner or function.__name__

        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, specs in table.items():
                bound.arguments[name] = check(bound.arguments[name], name, specs, who)
            return function(*bound.args, **bound.kwargs)

        wrapper._parameter_constraints = table
        return wrapper
    return decorator


# ---------------------------------------------------------------------------
# the named checks the rest of the package calls (all over the table above)
# ---------------------------------------------------------------------------
def check_dtype(dtype, name="dtype", owner=None):
    """np.dtype for 'float32'/'float64' (or their numpy types), else raise.

    None is a TypeError (numpy would read it as float64, which hides a
    missing argument); 'float16', 'int32' and the like are ValueErrors.
    """
    return check(dtype, name, ["dtype"], owner)


def check_verbose(verbose):
    """fit's, partial_fit's, predict's and evaluate's verbose: a bool or 0, 1,
    2 (a numpy integer counts as its value, as batch_size's does), or
    "auto", Keras's default, which is 1 (as Keras runs it outside a
    parameter-server strategy)."""
    if isinstance(verbose, np.integer):
        verbose = int(verbose)
    verbose = check(verbose, "verbose", ["boolean", Options(0, 1, 2, "auto")])
    return 1 if isinstance(verbose, str) else verbose


def check_int(value, name, minimum=None, allow_none=False, owner=None):
    """value as an int >= minimum (None passes if allow_none).

    TypeError for a non-integer (bools included), ValueError below the
    minimum.
    """
    specs = [Interval(Integral, minimum, None)] + ([None] if allow_none else [])
    return check(value, name, specs, owner)


def check_float(value, name, minimum=None, maximum=None, min_inclusive=True,
                max_inclusive=True, owner=None):
    """value as a finite float within the bounds (inclusive unless told).

    TypeError for a non-real (bools included), ValueError for NaN, inf or a
    value out of range.
    """
    closed = {(True, True): "both", (True, False): "left", (False, True): "right",
              (False, False): "neither"}[(bool(min_inclusive), bool(max_inclusive))]
    return check(value, name, [Interval(Real, minimum, maximum, closed)], owner)


def learning_rate_dtype_problem(value, dtype):
    """What a learning rate (a real >= 0) must be to train parameters of
    `dtype`, or None if `value` is that: "must be ..." without the name or
    the value, for the caller's message.

    0 passes (a callback or a schedule may pause training). A positive rate
    below the dtype's smallest normal number (1.2e-38 for float32) does not:
    it trains nothing while looking like a rate (1e-46 is 0.0 in float32; no
    weight of normal size moves by so little; the updates of optimizers with
    state flush subnormal numbers to zero, the reason ``epsilon`` has the
    same bound). A rate above the dtype's largest finite number is infinite
    in the update.
    """
    info = np.finfo(dtype)
    # Python numbers: a numpy scalar of another width compared with them would
    # warn of its cast; bounds printed in full (tiny.item()!r)
    tiny, largest, name = info.tiny.item(), info.max.item(), np.dtype(dtype).name
    value = value.item() if isinstance(value, np.generic) else value
    if 0 < value < tiny:
        return (f"must be at least {tiny!r} when positive (the smallest normal {name}: "
                f"a smaller rate moves no weight of normal size, and optimizers with "
                f"state flush it to zero)")
    if value > largest:
        return (f"must be at most {largest!r} (the largest finite {name}: the update "
                f"computes in {name})")
    return None


def flush_cut_rate(rate, dtype):
    """A learning rate that plateau cuts (``ReduceLROnPlateau``'s, with
    ``min_lr=0``) took below the smallest normal number of `dtype`, as 0.0:
    descend's own decay towards 0, which ends at 0 (allowed mid-fit) as the
    hardware would flush it, where a rate a caller chose there is refused
    (:func:`learning_rate_dtype_problem`). Any other rate unchanged."""
    return 0.0 if 0 < rate < np.finfo(dtype).tiny.item() else rate


def check_bool(value, name, owner=None):
    """value as a bool (numpy.bool_ accepted); TypeError for anything else."""
    return check(value, name, ["boolean"], owner)


def check_n_threads(n_threads, name="n_threads", owner=None):
    """n_threads as an int (None passes): 1..MAX_THREADS, or negative.

    Negative values keep their meaning (all usable cores but |n| - 1); 0
    and more than MAX_THREADS (8 per CPU of this machine) are ValueErrors.
    """
    return check(n_threads, name, ["n_threads", None], owner)


_TEAM_SIZE = [Interval(Integral, 1, MAX_THREADS)]


def check_team_size(n_threads, name="n_threads", owner=None):
    """The OpenMP team size a kernel gets: an int in [1, MAX_THREADS] (more
    makes libgomp abort the process)."""
    return check(n_threads, name, _TEAM_SIZE, owner)


def _check_real(dtype, name):
    """TypeError unless `dtype` holds real numbers (bool, int, uint, float)."""
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")


def directory_ending(path):
    """How `path` ends if it can only name a directory: "a path separator"
    or "'.'" / "'..'" as its last component (abspath turns 'ck/.' into
    'ck', so a writer's checks passed and the write failed, after training);
    None for a file name."""
    last = os.path.basename(os.fspath(path))
    if not last:
        return "a path separator"
    return repr(last) if last in (".", "..") else None


def unwritable_directory(path):
    """Why `path` cannot serve as an output directory ("'x' is a file",
    "'x' is not writable", "'x' is a symbolic link to 'y', which does not
    exist"), or None if it is a writable directory or its nearest existing
    ancestor is one (so that makedirs will succeed).

    For output paths checked before a long run rather than when it writes;
    `path` itself being a file is the caller's message."""
    existing = os.path.abspath(os.fspath(path))
    # lexists, not exists: a symbolic link to nothing is not missing (makedirs
    # raises "File exists" on it, after the run) and must not be climbed past
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if os.path.islink(existing) and not os.path.exists(existing):
        return (f"{existing!r} is a symbolic link to {os.readlink(existing)!r}, which does "
                "not exist")
    if not os.path.isdir(existing):
        return f"{existing!r} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing!r} is not writable"
    return None


def check_output_directory(path, name, owner=None):
    """path (a non-empty str or PathLike, as a str) if it is, or can be made, a
    writable directory; else a TypeError/ValueError naming `name`. For
    output directories checked before a long run, not when it writes."""
    path = check(path, name, ["path"], owner)
    prefix = f"{owner}: " if owner else ""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{prefix}{name} must be a directory, got {path!r} (a file)")
    reason = unwritable_directory(path)
    if reason:
        raise ValueError(f"{prefix}{name} must be a directory that can be created or "
                         f"written, got {path!r} ({reason})")
    return path


def check_output_file(path, name, owner=None, makedirs=False):
    """path (a non-empty str or PathLike, as a str) if a file can be written
    there; else a TypeError/ValueError naming `name`. For the files of
    callbacks, checked before fit trains rather than when they write.

    Parameters
    ----------
    path : str or os.PathLike
    name : str
        The argument's name ("filepath", "filename").
    owner : str or None
        Prefixed to the message ("ModelCheckpoint").
    makedirs : bool, default False
        Whether the writer creates missing directories (else the directory
        must exist).

    Raises
    ------
    TypeError
        `path` is not a path.
    ValueError
        `path` ends with a path separator, '.' or '..', or is a file this user may not
        write; its directory is a file, not writable, under a symbolic link
        to nothing or (without `makedirs`) missing; or `path` is a symbolic
        link to nothing in a missing directory.
    """
    path = check(path, name, ["path"], owner)
    prefix = f"{owner}: " if owner else ""
    ending = directory_ending(path)
    if ending:
        # (abspath drops the separator: the parent was checked, and the writer
        # failed on the directory name once the first epoch had trained)
        raise ValueError(f"{prefix}{name} must be a file name, got {path!r}, which ends "
                         f"with {ending} (a directory's name)")
    directory = os.path.dirname(os.path.abspath(path))
    reason = unwritable_directory(directory)
    if reason is None and not makedirs and not os.path.isdir(directory):
        reason = f"{directory!r} does not exist"
    if reason is None and os.path.isfile(path) and not os.access(path, os.W_OK):
        reason = f"{path!r} is read-only"   # (was: refused when written, after an epoch)
    if reason is None and os.path.islink(path) and not os.path.exists(path):
        # open() writes through the link: its target's directory must exist
        target = os.path.join(directory, os.readlink(path))
        if not os.path.isdir(os.path.dirname(target)):
            reason = (f"{path!r} is a symbolic link to {os.readlink(path)!r}, whose "
                      "directory does not exist")
    if reason:
        raise ValueError(f"{prefix}{name} must be a file in a directory that can be "
                         f"{'created or ' if makedirs else ''}written, got {path!r} ({reason})")
    return path


def check_X(X, dtype, name="X", n_features=None, lazy=False):
    """X as a C-contiguous 2-D array of `dtype` (copied at most once).

    With `lazy`, an np.memmap or h5py/zarr-style array is not read whole: it
    is checked chunk by chunk and returned as a ``descend._outofcore.LazyRows``.

    Integer, bool and float inputs are converted to the network's dtype;
    anything else (strings, objects, complex), a scipy.sparse matrix or a
    numpy masked array is a TypeError. Raises ValueError for a wrong number
    of dimensions, no samples, NaN/inf, or a feature count other than
    `n_features`.
    """
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(error_message(name, "a 2-D array of numbers", X))
    sparse = sys.modules.get("scipy.sparse")   # not imported: X cannot be one of its matrices
    if sparse is not None and sparse.issparse(X):
        # np.asarray would make a 0-d object array: "must hold real numbers" misleads
        raise TypeError(f"{name} must be a dense 2-D array, got a scipy.sparse "
                        f"{type(X).__name__} of shape {X.shape}: pass {name}.toarray() (fit "
                        "skips the zeros of mostly-zero inputs itself)")
    if lazy:
        from descend import _outofcore
        if _outofcore.is_lazy(X):
            # an np.memmap of any dtype is lazy: complex must not lose its
            # imaginary part in the chunked reads
            _check_real(np.dtype(X.dtype), name)
            return _outofcore.check_lazy_X(X, dtype, name, n_features)
    array = as_array(X, name, "a 2-D array of numbers")
    _check_real(array.dtype, name)
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


def as_array(value, name, expected):
    """np.asarray(value), the one conversion of the data arguments (X, y,
    sample_weight, validation_data[...]).

    Raises
    ------
    TypeError
        For a numpy masked array (see :func:`reject_masked`) or a
        scipy.sparse matrix or array.
    ValueError
        For a ragged sequence: numpy's "inhomogeneous shape", naming `name`
        and what was expected.
    """
    reject_masked(value, name)
    sparse = sys.modules.get("scipy.sparse")   # not imported: value cannot be one of its types
    if sparse is not None and sparse.issparse(value):
        # np.asarray makes a 0-d object array of it: "got ndarray array(<Compressed
        # Sparse Row ...>)" or "not scalars" misled
        raise TypeError(f"{name} must be {expected}, got a scipy.sparse "
                        f"{type(value).__name__} of shape {value.shape}, which is not "
                        f"supported here: pass a dense array ({name}.toarray())")
    try:
        return np.asarray(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be {expected}, got a {type(value).__name__} of rows "
                         f"of different lengths ({exc})") from None


def reject_masked(value, name):
    """TypeError naming `name` if `value` is a numpy masked array.

    np.asarray keeps its data and drops its mask: the placeholders under the
    mask would be trained on (or predicted, or weighed) as real values.

    Raises
    ------
    TypeError
        If `value` is a ``numpy.ma.MaskedArray``.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} must be an array without a mask, got a numpy.ma.MaskedArray of shape "
            f"{value.shape} (descend would use the values under its mask); fill or drop "
            f"the masked entries first, e.g. {name}.filled(value), or "
            f"np.ma.compress_rows({name}) to drop the rows of a 2-D array")


_INT64 = np.iinfo(np.int64)


def check_storable_labels(values, name):
    """ValueError naming `name` for a class label numpy cannot hold as it is.

    A str or bytes label ending in a NUL character ('\\x00'): numpy's
    fixed-width strings (which ``classes_`` becomes in an estimator and in a
    saved file) drop trailing NULs, so 'a\\x00' turns into 'a', a label of
    its own or the same one twice (save then wrote a file load refused).
    A Python int beyond the 64-bit range: a model file stores int labels
    as int64 (save raised a bare OverflowError).

    Parameters
    ----------
    values : iterable
        The labels as Python objects (an object array's ``tolist()``).
    name : str
        The argument holding them ("y", "classes").

    Raises
    ------
    ValueError
        For the first such label, named.
    """
    for value in values:
        if (isinstance(value, str) and value.endswith("\x00")) or (
                isinstance(value, bytes) and value.endswith(b"\x00")):
            raise ValueError(
                f"{name} has the label {value!r}, which ends in a NUL character: numpy's "
                f"fixed-width strings drop trailing NULs (it would be "
                f"{value.rstrip(value[-1:])!r} in classes_ and in a saved model); strip "
                "them or use other labels")
        if isinstance(value, int) and not _INT64.min <= value <= _INT64.max:
            raise ValueError(
                f"{name} has the label {_REPR.repr(value)}, an int beyond the 64-bit range "
                f"[{_INT64.min}, {_INT64.max}] that numpy and a saved model hold labels in; "
                "use smaller ints or strings as labels")


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
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (shape {like.shape}, dtype "
                         f"{like.dtype}), got {type(array).__name__}")
    if array.shape != like.shape:
        raise ValueError(f"{what} has shape {np.shape(array)}, expected {like.shape}")
    if array.dtype != like.dtype:
        raise ValueError(f"{what} has dtype {array.dtype}, expected {like.dtype}")
    if not all_finite(array):
        raise ValueError(f"{what} contains NaN or infinite values")
    return array


# ---------------------------------------------------------------------------
# the compiled epoch loop's layer spec (descend._contract.LayerSpec)
# ---------------------------------------------------------------------------
_SPEC_OWNER = "LayerSpec"


def _live_array(value, name, ndim, dtype=None):
    """value itself if it is a writeable C-contiguous float32/float64 ndarray
    of ndim dimensions (and of `dtype`, if given): the compiled loop updates
    it in place, so it is never copied."""
    if not isinstance(value, np.ndarray):
        raise TypeError(error_message(name, "a numpy.ndarray", value, _SPEC_OWNER))
    if value.dtype not in FLOAT_DTYPES or (dtype is not None and value.dtype != dtype):
        raise TypeError(f"{_SPEC_OWNER}: {name} must have dtype "
                        f"{dtype or 'float32 or float64'}, got {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(f"{_SPEC_OWNER}: {name} must be {ndim}-D, got shape {value.shape}")
    if 0 in value.shape:
        # a layer without inputs or units: the loop would train nothing and
        # report a loss over zero outputs
        raise ValueError(f"{_SPEC_OWNER}: {name} must have no empty dimension, got shape "
                         f"{value.shape}")
    if not (value.flags.c_contiguous and value.flags.writeable):
        raise ValueError(f"{_SPEC_OWNER}: {name} must be a writeable C-contiguous array "
                         "(it is updated in place, never copied)")
    return value


def _state_arrays(state, param, name):
    """One parameter array's optimizer state as a tuple of at most 3 arrays
    (the kernels' slots s1, s2, s3) shaped and typed like it."""
    if state is not None and (isinstance(state, (str, bytes, np.ndarray))
                              or not hasattr(state, "__iter__")):
        raise TypeError(error_message(name, "a sequence of numpy.ndarray or None", state,
                                      _SPEC_OWNER))
    state = () if state is None else tuple(state)
    if param is None and state:
        raise ValueError(f"{_SPEC_OWNER}: {name} must be empty without a bias")
    if len(state) > 3:
        raise ValueError(f"{_SPEC_OWNER}: {name} holds at most 3 arrays, got {len(state)}")
    for i, array in enumerate(state):
        _live_array(array, f"{name}[{i}]", param.ndim, param.dtype)
        if array.shape != param.shape:
            raise ValueError(f"{_SPEC_OWNER}: {name}[{i}] must have shape {param.shape}, "
                             f"got {array.shape}")
    return state


def check_layer_spec(kernel, bias, kernel_state, bias_state, activation, codes, alpha,
                     dropout_rate, penalties, flags):
    """The fields of a ``descend._contract.LayerSpec``, checked and converted.

    Parameters
    ----------
    kernel : ndarray (n_in, n_out); bias : ndarray (n_out,) or None
    kernel_state, bias_state : sequence of ndarray or None
    activation : int, one of `codes` (the Activation enum's values)
    alpha : float; dropout_rate : float in [0, 1)
    penalties : dict of the four penalties (kernel_l1, ...): floats >= 0
    flags : dict of the bool settings (kernel_l1_proximal, ...)

    Returns
    -------
    tuple
        (kernel, bias, kernel_state, bias_state, activation, alpha,
        dropout_rate, penalties, flags), each converted.
    """
    kernel = _live_array(kernel, "kernel", 2)
    if bias is not None:
        bias = _live_array(bias, "bias", 1, kernel.dtype)
        if bias.shape != (kernel.shape[1],):
            raise ValueError(f"{_SPEC_OWNER}: bias must have shape ({kernel.shape[1]},) to "
                             f"match kernel {kernel.shape}, got {bias.shape}")
    # an int (numpy ints too) among the codes: TypeError for "relu", 3.0, None
    activation = check_int(activation, "activation", owner=_SPEC_OWNER)
    if activation not in codes:
        raise ValueError(error_message("activation", "an Activation code",
                                       activation, _SPEC_OWNER))
    kernel_state = _state_arrays(kernel_state, kernel, "kernel_state")
    bias_state = _state_arrays(bias_state, bias, "bias_state")
    _check_distinct({"kernel": kernel, "bias": bias,
                     **{f"kernel_state[{i}]": a for i, a in enumerate(kernel_state)},
                     **{f"bias_state[{i}]": a for i, a in enumerate(bias_state)}})
    return (kernel, bias, kernel_state, bias_state, int(activation),
            check_float(alpha, "alpha", owner=_SPEC_OWNER),
            check_float(dropout_rate, "dropout_rate", 0.0, 1.0, max_inclusive=False,
                        owner=_SPEC_OWNER),
            {name: check_float(value, name, 0.0, owner=_SPEC_OWNER)
             for name, value in penalties.items()},
            {name: check_bool(value, name, owner=_SPEC_OWNER) for name, value in flags.items()})


def _check_distinct(arrays):
    """ValueError unless no two of a spec's arrays (a dict name -> array or
    None) share memory: the loop writes each of them in its own step (an
    optimizer state that is the kernel itself would overwrite the weights)."""
    named = [(name, a) for name, a in arrays.items() if a is not None]
    for i, (name, a) in enumerate(named):
        for other, b in named[i + 1:]:
            if np.shares_memory(a, b):
                raise ValueError(f"{_SPEC_OWNER}: {name} and {other} share memory; every "
                                 "parameter and state array must be its own buffer")


def check_live_params(model, training=True):
    """ValueError unless each Dense layer's kernel and bias are still arrays the
    compiled loop can write: the layer's shape, the network's dtype, C order,
    writeable, finite (they are public and may have been replaced, not
    modified). `training=False` (predict, evaluate: the arrays are only
    read) leaves out writeable and finite. The layers' settings are
    ``model._check_structure``'s to check, first."""
    from descend.layers import Dense     # here: layers imports this module
    n_in = model.input_dim
    for i, layer in enumerate(model.layers):
        if not isinstance(layer, Dense):
            continue
        for attr, shape in (("kernel", (n_in, layer.units)),
                            ("bias", (layer.units,) if layer.use_bias else None)):
            p = getattr(layer, attr)
            if shape is None:
                continue
            if not (isinstance(p, np.ndarray) and p.shape == shape
                    and p.dtype == model.dtype and p.flags.c_contiguous
                    and (p.flags.writeable or not training)):
                got = (f"{p.dtype} array of shape {p.shape}, C-contiguous "
                       f"{p.flags.c_contiguous}, writeable {p.flags.writeable}"
                       if isinstance(p, np.ndarray) else type(p).__name__)
                raise ValueError(
                    f"layers[{i}].{attr} must be a {'writeable ' if training else ''}"
                    f"C-contiguous {model.dtype} array of shape {shape}, got a {got}; "
                    "modify the live arrays in place or use set_weights")
            if training and not np.isfinite(p).all():
                raise ValueError(f"layers[{i}].{attr} contains NaN or infinite values")
        n_in = layer.units


# ---------------------------------------------------------------------------
# warnings
# ---------------------------------------------------------------------------
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def outside_stacklevel():
    """The ``stacklevel`` for a ``warnings.warn`` in the caller of this
    function that names the first frame outside descend: the user's line
    that called into it (``fit``, a callback hook called by hand), however
    deep inside descend the warning is raised. (Python 3.12's
    ``skip_file_prefixes`` does this; descend supports 3.11.)"""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level
