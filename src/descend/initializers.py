"""Weight initializers (Keras-compatible semantics, NumPy only).

Every initializer is a callable object ``init(shape, rng, dtype)`` that
returns a new, C-contiguous :class:`numpy.ndarray` of the requested shape and
dtype.  All randomness comes from the :class:`numpy.random.Generator` passed
in; the global NumPy random state is never touched, so a run is reproducible
from the seed of that one generator.

Random values are always drawn in float64 and only then cast to the requested
dtype.  For a given generator state, ``float32`` and ``float64`` requests
therefore return the same numbers up to the final rounding.

Shapes follow the Keras layout: a Dense kernel is ``(fan_in, fan_out)``, a
bias is 1-D ``(n_out,)``.  See :func:`compute_fans` for how fans are derived.

Initializers can be named by string (``"glorot_uniform"`` or
``"GlorotUniform"``), passed as instances, or rebuilt from the dict returned
by :meth:`Initializer.get_config`; :func:`get` accepts all three.

Examples
--------
>>> import numpy as np
>>> from descend import initializers
>>> rng = np.random.default_rng(0)
>>> w = initializers.get("he_normal")((784, 128), rng, np.float32)
>>> w.shape, w.dtype
((784, 128), dtype('float32'))
>>> initializers.serialize(initializers.RandomNormal(stddev=0.1))
{'name': 'random_normal', 'mean': 0.0, 'stddev': 0.1}
"""

from __future__ import annotations

import abc
import inspect
import math
import operator

import numpy as np

from descend._validation import (InstanceOf, Options, check, check_dtype, check_float,
                                 error_message)

__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunNormal",
    "LecunUniform",
    "Orthogonal",
    "compute_fans",
    "get",
    "serialize",
]

# Standard deviation of a standard normal truncated to [-2, 2].  Keras'
# VarianceScaling divides by it so that the *truncated* distribution has the
# intended variance ``scale / fan`` (truncation alone would shrink it to
# about 77% of that).
_TRUNCATED_STDDEV_CORRECTION = 0.87962566103423978

# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------
def _check_shape(shape):
    """Return ``shape`` as a tuple of Python ints, or raise."""
    expected = "a non-empty tuple of positive ints"

    def as_int(dim):
        # bool is an int subclass but (True, 3) is certainly a bug.
        if isinstance(dim, (bool, np.bool_)):
            return None
        try:
            return operator.index(dim)
        except TypeError:
            return None

    dims = [as_int(dim) for dim in shape] if isinstance(shape, (tuple, list)) else [None]
    if None in dims:
        raise TypeError(error_message("shape", expected, shape))
    if not dims or min(dims) <= 0:
        raise ValueError(error_message("shape", expected, shape))
    return tuple(dims)


def _check_rng(rng):
    check(rng, "rng", [InstanceOf(np.random.Generator, description=(
        "a numpy.random.Generator (e.g. numpy.random.default_rng(seed))"))])


def _check_dtype(dtype):
    """Return ``dtype`` as a numpy dtype, accepting only float32/float64."""
    # np.dtype(None) silently means float64; check_dtype treats None as a caller bug.
    return check_dtype(dtype)


def _check_real(name, value):
    """Return ``value`` as a finite Python float, or raise naming ``name``."""
    return check_float(value, name)


def _check_positive(name, value):
    """Return ``value`` as a finite float > 0, or raise naming ``name``."""
    return check_float(value, name, minimum=0.0, min_inclusive=False)


def _finish(values, dtype):
    """Cast float64 draws to ``dtype`` as a fresh C-contiguous array."""
    # np.array(..., copy=True) guarantees the caller owns the result even if
    # ``values`` is already float64 and C-ordered.
    return np.array(values, dtype=dtype, order="C", copy=True)


def compute_fans(shape):
    """Return ``(fan_in, fan_out)`` for a weight shape, as Keras does.

    Parameters
    ----------
    shape : tuple of int
        Weight shape.

    Returns
    -------
    fan_in, fan_out : int
        * 1-D ``(n,)`` (a bias): ``fan_in = fan_out = n``.
        * 2-D ``(fan_in, fan_out)`` (a Dense kernel): taken as is.
        * N-D, N > 2 (a convolution kernel ``(*spatial, in, out)``): with
          ``receptive = prod(shape[:-2])``, ``fan_in = shape[-2] * receptive``
          and ``fan_out = shape[-1] * receptive``.

    Raises
    ------
    TypeError, ValueError
        If ``shape`` is not a non-empty tuple of positive ints.
    """
    shape = _check_shape(shape)
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def _truncated_standard_normal(rng, size):
    """Standard normal draws restricted to [-2, 2] by resampling.

    Out-of-range values are redrawn from ``rng`` (vectorised over all of them
    at once) until none remain; about 4.6% of draws are rejected per round,
    so the loop ends after a handful of rounds.
    """
    # Work on a flat array so that the rejected positions are 1-D indices;
    # only those are redrawn and re-tested in each round.
    z = rng.standard_normal(math.prod(size))
    bad = np.flatnonzero(np.abs(z) > 2.0)
    while bad.size:
        z[bad] = rng.standard_normal(bad.size)
        bad = bad[np.abs(z[bad]) > 2.0]
    return z.reshape(size)


# --------------------------------------------------------------------------
# base class
# --------------------------------------------------------------------------
class Initializer(abc.ABC):
    """Base class of all weight initializers.

    Subclasses implement :meth:`_generate`, which receives an already
    validated shape and generator and returns float64 values; the base
    :meth:`__call__` validates the arguments and casts the result.

    Attributes
    ----------
    name : str
        Snake-case registry name, also the ``"name"`` entry of the config.
    """

    name = "initializer"

    def __call__(self, shape, rng, dtype=np.float64):
        """Create an initial weight array.

        Parameters
        ----------
        shape : tuple of int
            Shape of the array, every entry a positive int.  A Dense kernel
            is ``(fan_in, fan_out)``; a bias is ``(n_out,)``.
        rng : numpy.random.Generator
            Source of all randomness.  Deterministic initializers
            (:class:`Zeros`, :class:`Ones`, :class:`Constant`) do not draw
            from it but still require it, so that all initializers share one
            calling convention.
        dtype : {numpy.float32, numpy.float64}, default numpy.float64
            Dtype of the result.  Values are drawn in float64 then cast.

        Returns
        -------
        numpy.ndarray
            New C-contiguous array of ``shape`` and ``dtype``.

        Raises
        ------
        TypeError
            If ``shape`` is not a tuple/list of ints, ``rng`` is not a
            :class:`numpy.random.Generator` or ``dtype`` is not a dtype.
        ValueError
            If ``shape`` is empty or has a non-positive entry, or ``dtype``
            is neither float32 nor float64.
        """
        shape = _check_shape(shape)
        _check_rng(rng)
        dtype = _check_dtype(dtype)
        values = _finish(self._generate(shape, rng), dtype)
        if not np.isfinite(values).all():
            raise ValueError(f"{self!r} drew values that are not finite in "
                             f"{np.dtype(dtype).name}: its scale is too large for the dtype")
        return values

    @abc.abstractmethod
    def _generate(self, shape, rng):
        """Draw float64 values of the given shape from rng (subclasses)."""

    def get_config(self):
        """Return a JSON-serialisable dict ``{"name": ..., **params}``.

        ``get(init.get_config())`` builds an equal initializer.
        """
        return {"name": self.name}

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash((type(self), tuple(sorted(self.get_config().items()))))

    def __repr__(self):
        params = {k: v for k, v in self.get_config().items() if k != "name"}
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------------------
# deterministic initializers
# --------------------------------------------------------------------------
class Zeros(Initializer):
    """Fill with 0.  The usual bias initializer.

    Examples
    --------
    >>> Zeros()((3,), np.random.default_rng(0))
    array([0., 0., 0.])
    """

    name = "zeros"

    def _generate(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    """Fill with 1 (e.g. the scale of a normalisation layer)."""

    name = "ones"

    def _generate(self, shape, rng):
        return np.ones(shape)


class Constant(Initializer):
    """Fill with a constant scalar.

    Parameters
    ----------
    value : float, default 0.0
        Finite fill value.

    Raises
    ------
    TypeError
        If ``value`` is not a real number.
    ValueError
        If ``value`` is NaN or infinite.
    """

    name = "constant"

    def __init__(self, value=0.0):
        self.value = _check_real("value", value)

    def _generate(self, shape, rng):
        return np.full(shape, self.value)

    def get_config(self):
        return {"name": self.name, "value": self.value}


# --------------------------------------------------------------------------
# plain random initializers
# --------------------------------------------------------------------------
class RandomNormal(Initializer):
    """Draw from the normal distribution ``N(mean, stddev**2)``.

    Parameters
    ----------
    mean : float, default 0.0
        Mean of the distribution (finite).
    stddev : float, default 0.05
        Standard deviation, > 0 (Keras default 0.05).

    Raises
    ------
    ValueError
        If ``stddev <= 0`` or either parameter is not finite.
    """

    name = "random_normal"

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean = _check_real("mean", mean)
        self.stddev = _check_positive("stddev", stddev)

    def _generate(self, shape, rng):
        return self.mean + self.stddev * rng.standard_normal(shape)

    def get_config(self):
        return {"name": self.name, "mean": self.mean, "stddev": self.stddev}


class RandomUniform(Initializer):
    """Draw from the uniform distribution on ``[minval, maxval)``.

    Parameters
    ----------
    minval : float, default -0.05
        Lower bound (inclusive).
    maxval : float, default 0.05
        Upper bound (exclusive), must be > ``minval``.

    Raises
    ------
    ValueError
        If ``minval >= maxval`` or either bound is not finite.
    """

    name = "random_uniform"

    def __init__(self, minval=-0.05, maxval=0.05):
        self.minval = _check_real("minval", minval)
        self.maxval = _check_real("maxval", maxval)
        if not self.minval < self.maxval:
            raise ValueError(
                f"minval must be < maxval, got minval={self.minval!r} and "
                f"maxval={self.maxval!r}"
            )

    def _generate(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, size=shape)

    def get_config(self):
        return {"name": self.name, "minval": self.minval, "maxval": self.maxval}


class TruncatedNormal(Initializer):
    """Normal ``N(mean, stddev**2)`` truncated to ``mean ± 2 * stddev``.

    Values more than two standard deviations from the mean are redrawn.
    As in Keras, ``stddev`` is the parameter of the underlying normal; the
    truncated distribution's own standard deviation is about
    ``0.8796 * stddev``.

    Parameters
    ----------
    mean : float, default 0.0
        Mean of the distribution (finite).
    stddev : float, default 0.05
        Standard deviation of the untruncated normal, > 0.

    Raises
    ------
    ValueError
        If ``stddev <= 0`` or either parameter is not finite.
    """

    name = "truncated_normal"

    def __init__(self, mean=0.0, stddev=0.05):
        self.mean = _check_real("mean", mean)
        self.stddev = _check_positive("stddev", stddev)

    def _generate(self, shape, rng):
        return self.mean + self.stddev * _truncated_standard_normal(rng, shape)

    def get_config(self):
        return {"name": self.name, "mean": self.mean, "stddev": self.stddev}


# --------------------------------------------------------------------------
# variance scaling family
# --------------------------------------------------------------------------
class VarianceScaling(Initializer):
    """Scale the variance of the weights to the layer's fans (Keras semantics).

    With ``n`` the fan selected by ``mode`` (``fan_in``, ``fan_out`` or
    ``(fan_in + fan_out) / 2``; see :func:`compute_fans`), the target
    variance is ``scale / n`` and values are drawn from

    * ``"truncated_normal"``: normal with mean 0 and
      ``stddev = sqrt(scale / n) / 0.87962566103423978``, truncated at
      ``± 2 * stddev``.  The constant is the standard deviation of a standard
      normal truncated to [-2, 2], so the truncated values have variance
      ``scale / n``;
    * ``"untruncated_normal"``: normal with mean 0 and
      ``stddev = sqrt(scale / n)``;
    * ``"uniform"``: uniform on ``[-limit, limit)`` with
      ``limit = sqrt(3 * scale / n)``.

    Parameters
    ----------
    scale : float, default 1.0
        Positive scaling factor.
    mode : {"fan_in", "fan_out", "fan_avg"}, default "fan_in"
        Which fan divides ``scale``.
    distribution : {"truncated_normal", "untruncated_normal", "uniform"}, \
default "truncated_normal"
        Distribution to draw from (``"normal"`` is accepted as an alias of
        ``"truncated_normal"``, as in Keras).

    Raises
    ------
    ValueError
        If ``scale <= 0`` or ``mode``/``distribution`` is not one of the
        listed values.

    References
    ----------
    .. [1] X. Glorot and Y. Bengio, "Understanding the difficulty of training
       deep feedforward neural networks", AISTATS 2010.
    .. [2] K. He, X. Zhang, S. Ren and J. Sun, "Delving Deep into Rectifiers:
       Surpassing Human-Level Performance on ImageNet Classification",
       ICCV 2015.
    .. [3] Y. LeCun, L. Bottou, G. Orr and K.-R. Müller, "Efficient
       BackProp", in Neural Networks: Tricks of the Trade, 1998.
    """

    name = "variance_scaling"
    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal"):
        self.scale = _check_positive("scale", scale)
        mode = check(mode, "mode", [Options(*self._MODES)])
        if distribution == "normal":
            distribution = "truncated_normal"
        distribution = check(distribution, "distribution", [Options(*self._DISTRIBUTIONS)])
        self.mode = mode
        self.distribution = distribution

    def _variance(self, shape):
        fan_in, fan_out = compute_fans(shape)
        if self.mode == "fan_in":
            fan = fan_in
        elif self.mode == "fan_out":
            fan = fan_out
        else:
            fan = (fan_in + fan_out) / 2.0
        # Fans are >= 1 because shapes are positive; max() mirrors Keras.
        return self.scale / max(1.0, fan)

    def _generate(self, shape, rng):
        variance = self._variance(shape)
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(variance) / _TRUNCATED_STDDEV_CORRECTION
            return stddev * _truncated_standard_normal(rng, shape)
        if self.distribution == "untruncated_normal":
            return math.sqrt(variance) * rng.standard_normal(shape)
        limit = math.sqrt(3.0 * variance)
        return rng.uniform(-limit, limit, size=shape)

    def get_config(self):
        return {
            "name": self.name,
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
        }


class _FixedVarianceScaling(VarianceScaling):
    """VarianceScaling preset whose parameters are fixed by the class."""

    _preset = {}

    def __init__(self):
        super().__init__(**self._preset)

    def get_config(self):
        # The preset is implied by the name; emitting it would make
        # ``get(config)`` pass arguments that __init__ does not accept.
        return {"name": self.name}


class GlorotUniform(_FixedVarianceScaling):
    """Glorot (Xavier) uniform initializer.

    Draws from ``U[-limit, limit)`` with
    ``limit = sqrt(6 / (fan_in + fan_out))``, i.e. variance
    ``2 / (fan_in + fan_out)``.  Equivalent to
    ``VarianceScaling(1.0, "fan_avg", "uniform")``.  Keras' default kernel
    initializer.

    References
    ----------
    .. [1] X. Glorot and Y. Bengio, "Understanding the difficulty of training
       deep feedforward neural networks", AISTATS 2010.
    """

    name = "glorot_uniform"
    _preset = {"scale": 1.0, "mode": "fan_avg", "distribution": "uniform"}


class GlorotNormal(_FixedVarianceScaling):
    """Glorot (Xavier) truncated-normal initializer.

    Truncated normal (at ± 2 stddev) with mean 0 and
    ``stddev = sqrt(2 / (fan_in + fan_out)) / 0.87962566103423978``, so the
    values have variance ``2 / (fan_in + fan_out)``.  Equivalent to
    ``VarianceScaling(1.0, "fan_avg", "truncated_normal")``.

    References
    ----------
    .. [1] X. Glorot and Y. Bengio, "Understanding the difficulty of training
       deep feedforward neural networks", AISTATS 2010.
    """

    name = "glorot_normal"
    _preset = {"scale": 1.0, "mode": "fan_avg", "distribution": "truncated_normal"}


class HeUniform(_FixedVarianceScaling):
    """He (Kaiming) uniform initializer, for ReLU networks.

    Draws from ``U[-limit, limit)`` with ``limit = sqrt(6 / fan_in)``, i.e.
    variance ``2 / fan_in``.  Equivalent to
    ``VarianceScaling(2.0, "fan_in", "uniform")``.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Delving Deep into Rectifiers:
       Surpassing Human-Level Performance on ImageNet Classification",
       ICCV 2015.
    """

    name = "he_uniform"
    _preset = {"scale": 2.0, "mode": "fan_in", "distribution": "uniform"}


class HeNormal(_FixedVarianceScaling):
    """He (Kaiming) truncated-normal initializer, for ReLU networks.

    Truncated normal (at ± 2 stddev) with mean 0 and
    ``stddev = sqrt(2 / fan_in) / 0.87962566103423978``, so the values have
    variance ``2 / fan_in``.  Equivalent to
    ``VarianceScaling(2.0, "fan_in", "truncated_normal")``.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren and J. Sun, "Delving Deep into Rectifiers:
       Surpassing Human-Level Performance on ImageNet Classification",
       ICCV 2015.
    """

    name = "he_normal"
    _preset = {"scale": 2.0, "mode": "fan_in", "distribution": "truncated_normal"}


class LecunNormal(_FixedVarianceScaling):
    """LeCun truncated-normal initializer (e.g. for SELU networks).

    Truncated normal (at ± 2 stddev) with mean 0 and
    ``stddev = sqrt(1 / fan_in) / 0.87962566103423978``, so the values have
    variance ``1 / fan_in``.  Equivalent to
    ``VarianceScaling(1.0, "fan_in", "truncated_normal")``.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, G. Orr and K.-R. Müller, "Efficient
       BackProp", in Neural Networks: Tricks of the Trade, 1998.
    """

    name = "lecun_normal"
    _preset = {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal"}


class LecunUniform(_FixedVarianceScaling):
    """LeCun uniform initializer.

    Draws from ``U[-limit, limit)`` with ``limit = sqrt(3 / fan_in)``, i.e.
    variance ``1 / fan_in``.  Equivalent to
    ``VarianceScaling(1.0, "fan_in", "uniform")``.

    References
    ----------
    .. [1] Y. LeCun, L. Bottou, G. Orr and K.-R. Müller, "Efficient
       BackProp", in Neural Networks: Tricks of the Trade, 1998.
    """

    name = "lecun_uniform"
    _preset = {"scale": 1.0, "mode": "fan_in", "distribution": "uniform"}


# --------------------------------------------------------------------------
# orthogonal
# --------------------------------------------------------------------------
class Orthogonal(Initializer):
    """Random (semi-)orthogonal matrix, times ``gain``.

    The shape is flattened to a matrix of ``rows = prod(shape[:-1])`` and
    ``cols = shape[-1]``.  A standard normal matrix of shape
    ``(max(rows, cols), min(rows, cols))`` is factored as ``A = QR``; the
    columns of ``Q`` are multiplied by ``sign(diag(R))`` so that ``Q`` is
    uniformly (Haar) distributed rather than biased by the QR convention.
    ``Q`` is transposed when ``rows < cols``, scaled by ``gain`` and reshaped.

    For a Dense kernel ``W`` of shape ``(fan_in, fan_out)``:

    * ``fan_in >= fan_out``: orthonormal columns, ``W.T @ W = gain**2 * I``;
    * ``fan_in < fan_out``: orthonormal rows, ``W @ W.T = gain**2 * I``.

    Parameters
    ----------
    gain : float, default 1.0
        Positive multiplicative factor.

    Raises
    ------
    ValueError
        If ``gain <= 0`` (at construction) or, when called, if ``shape`` has
        fewer than two dimensions.

    References
    ----------
    .. [1] A. M. Saxe, J. L. McClelland and S. Ganguli, "Exact solutions to
       the nonlinear dynamics of learning in deep linear neural networks",
       ICLR 2014.
    """

    name = "orthogonal"

    def __init__(self, gain=1.0):
        self.gain = _check_positive("gain", gain)

    def _generate(self, shape, rng):
        if len(shape) < 2:
            raise ValueError(
                "shape must have at least 2 dimensions for the orthogonal "
                f"initializer, got {shape!r}"
            )
        rows = math.prod(shape[:-1])
        cols = shape[-1]
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        # Sign correction; a zero diagonal entry has probability 0 but would
        # zero a column, so map it to +1.
        d = np.sign(np.diag(r))
        d[d == 0] = 1.0
        q *= d
        if rows < cols:
            q = q.T
        return self.gain * q.reshape(shape)

    def get_config(self):
        return {"name": self.name, "gain": self.gain}


# --------------------------------------------------------------------------
# lookup and (de)serialisation
# --------------------------------------------------------------------------
_CLASSES = (
    Zeros,
    Ones,
    Constant,
    RandomNormal,
    RandomUniform,
    TruncatedNormal,
    VarianceScaling,
    GlorotUniform,
    GlorotNormal,
    HeUniform,
    HeNormal,
    LecunNormal,
    LecunUniform,
    Orthogonal,
)

# Both spellings resolve: "glorot_uniform" and "GlorotUniform".
_REGISTRY = {}
for _cls in _CLASSES:
    _REGISTRY[_cls.name] = _cls
    _REGISTRY[_cls.__name__] = _cls
del _cls


def _valid_names():
    return ", ".join(sorted(cls.name for cls in _CLASSES))


def _from_name(name):
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown initializer {name!r}; valid names are: {_valid_names()} "
            "(CamelCase class names are accepted too)"
        ) from None
    return cls


def get(identifier):
    """Resolve ``identifier`` to an :class:`Initializer`.

    Parameters
    ----------
    identifier : str, Initializer, Initializer subclass or dict
        * a name such as ``"glorot_uniform"`` or ``"GlorotUniform"``
          (built with default parameters);
        * an :class:`Initializer` instance, returned unchanged;
        * an :class:`Initializer` subclass, instantiated with defaults;
        * a config dict ``{"name": ..., **params}`` as produced by
          :meth:`Initializer.get_config` / :func:`serialize`.

    Returns
    -------
    Initializer

    Raises
    ------
    ValueError
        If the name is unknown (the message lists the valid names), a config
        dict has no ``"name"`` or carries parameters the initializer does not
        accept, or a parameter value is invalid.
    TypeError
        If ``identifier`` is of any other type.

    Examples
    --------
    >>> get("he_normal")
    HeNormal()
    >>> get({"name": "random_uniform", "minval": -1.0, "maxval": 1.0})
    RandomUniform(minval=-1.0, maxval=1.0)
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        return identifier()
    if isinstance(identifier, str):
        return _from_name(identifier)()
    if isinstance(identifier, dict):
        if "name" not in identifier:
            raise ValueError(
                "identifier config dict must have a 'name' entry, got keys "
                f"{sorted(identifier)!r}"
            )
        params = {k: v for k, v in identifier.items() if k != "name"}
        cls = _from_name(identifier["name"])
        # Check the keys against the constructor first so that a stray key
        # is reported as a bad config (ValueError), not as a bad call.
        try:
            inspect.signature(cls).bind(**params)
        except TypeError as exc:
            raise ValueError(
                f"invalid config for initializer {identifier['name']!r}: {exc}"
            ) from None
        return cls(**params)
    raise TypeError(
        "identifier must be an initializer name (str), an Initializer instance "
        f"or a config dict, got {type(identifier).__name__} {identifier!r}"
    )


def serialize(init):
    """Return the config dict of an initializer (inverse of :func:`get`).

    Parameters
    ----------
    init : Initializer

    Returns
    -------
    dict
        JSON-serialisable ``{"name": ..., **params}``.

    Raises
    ------
    TypeError
        If ``init`` is not an :class:`Initializer`.
    """
    check(init, "init", [Initializer])
    return init.get_config()
