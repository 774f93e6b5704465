"""Layers: Dense (fully connected) and Dropout.

A layer's forward/backward methods run the compiled kernels of
``csrc/descend/_dense.pyx``; the fused epoch loop (``_train.pyx``) calls the
same kernels, so the per-layer path and ``fit`` compute the same numbers.
"""
import sys
from numbers import Integral, Real

import numpy as np

from descend import _aligned, _dense, activations, initializers
from descend._contract import Activation
from descend._validation import (InstanceOf, Interval, Options, check, check_bool, check_float, check_int,
                                 check_team_size, error_message, refuse_unknown_keywords)
from descend.regularizers import L1L2
from descend.regularizers import get as get_regularizer

# what a Dense layer's settings hold once constructed (its check_settings)
_REGULARIZER = InstanceOf(L1L2, description="an L1L2 (descend.regularizers.l1, l2, l1_l2)")
_SETTINGS = {"units": [Interval(Integral, 1, None)],
             "activation": [Options(*activations.ACTIVATIONS, "softmax")],
             "alpha": [Interval(Real)], "use_bias": ["boolean"],
             "kernel_regularizer": [None, _REGULARIZER], "bias_regularizer": [None, _REGULARIZER]}
_RATE = [Interval(Real, 0.0, 1.0, closed="left")]


# Keras gives the first layer the input size; descend gives it to the network
_KERAS_INPUT_HINTS = dict.fromkeys(
    ("input_dim", "input_shape"),
    "the input size goes to the network: Sequential([...], input_dim=n), or the first fit "
    "sets it")


def check_kernel_sizes(dense_layers, input_dim, dtype):
    """Every Dense layer's check_size, before any of them draws its
    parameters (a refused third layer left the first two built and the
    network's generator moved on)."""
    n_ins = [input_dim] + [layer.units for layer in dense_layers[:-1]]
    for i, (n_in, layer) in enumerate(zip(n_ins, dense_layers)):
        layer.check_size(n_in, dtype, "input_dim" if i == 0 else None)


class Dense:
    """Fully connected layer: a = activation(x W + b).

    Parameters
    ----------
    units : int
        Number of outputs (n_out), >= 1.
    activation : str or None
        One of ``descend.activations.ACTIVATIONS`` (None = identity). The last
        layer may name ``"softmax"`` (with softmax_cross_entropy) or
        ``"sigmoid"`` (with binary_cross_entropy): it then outputs logits and
        the loss applies the link, fused and numerically stable.
    kernel_initializer : str, Initializer or None
        None picks ``he_normal`` for relu-family activations (relu,
        leaky_relu, elu, gelu) and ``glorot_uniform`` otherwise.
    bias_initializer : str or Initializer, default "zeros"
    use_bias : bool, default True
    alpha : float or None
        Negative slope of leaky_relu (default 0.01) or scale of elu
        (default 1.0); ignored by other activations.
    kernel_regularizer, bias_regularizer : L1L2, dict, or None
        Penalties added to the loss and to the gradient (see
        ``descend.regularizers``). Biases are not penalised unless given.

    Attributes
    ----------
    kernel : ndarray, shape (n_in, units)
        The live weight array (float32 or float64, the network's dtype).
    bias : ndarray, shape (units,) or None
    """

    def __init__(self, units, activation=None, kernel_initializer=None,
                 bias_initializer="zeros", use_bias=True, alpha=None,
                 kernel_regularizer=None, bias_regularizer=None, name=None, **unknown):
        refuse_unknown_keywords("Dense", unknown, _KERAS_INPUT_HINTS)
        self.units = check_int(units, "units", minimum=1)
        self.activation = activations.canonical_name(activation)
        if alpha is None:
            alpha = activations.DEFAULT_ALPHA.get(self.activation, 0.0)
        self.alpha = check_float(alpha, "alpha")
        if kernel_initializer is None:
            kernel_initializer = ("he_normal" if self.activation in activations.RELU_FAMILY
                                  else "glorot_uniform")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.use_bias = check_bool(use_bias, "use_bias")
        self.kernel_regularizer = get_regularizer(kernel_regularizer, "kernel_regularizer")
        self.bias_regularizer = get_regularizer(bias_regularizer, "bias_regularizer")
        self.name = check(name, "name", [None, "str"], "Dense")
        self.kernel = None
        self.bias = None
        self._cache = None

    def check_settings(self, name="Dense"):
        """Check the settings as they stand: public attributes a caller may
        assign after construction (``net.layers[0].use_bias = "yes"``).
        Run by compile, fit and predict (``Sequential._check_structure``).

        Raises
        ------
        TypeError, ValueError
            Naming ``<name>.<setting>``, what it must be and what it is.
        """
        for setting, specs in _SETTINGS.items():
            check(getattr(self, setting), f"{name}.{setting}", specs)

    # -- structure ---------------------------------------------------------
    @property
    def built(self):
        return self.kernel is not None

    @property
    def n_in(self):
        # np.shape: a kernel replaced by a list is reported by the checks, not here
        return None if self.kernel is None else np.shape(self.kernel)[0]

    def check_size(self, n_in, dtype, n_in_name=None):
        """ValueError for a kernel beyond any array's size (numpy's "array is
        too big" named neither the layer nor units); one only beyond the
        memory is left to numpy's MemoryError, as in Keras and PyTorch.
        `n_in_name`: the argument n_in came from (input_dim), named too."""
        nbytes = n_in * self.units * np.dtype(dtype).itemsize
        if nbytes > sys.maxsize:
            source = f" ({n_in_name}={n_in})" if n_in_name else ""
            fix = f" or a smaller {n_in_name}" if n_in_name else ""
            raise ValueError(f"Dense(units={self.units}): its ({n_in}, {self.units}) "
                             f"{np.dtype(dtype).name} kernel{source} would take {nbytes:.3g} "
                             f"bytes, beyond any array's size ({sys.maxsize:.3g} bytes); "
                             f"choose fewer units{fix}")

    def build(self, n_in, rng, dtype):
        """Draw the parameters from the network's Generator."""
        self.check_size(n_in, dtype)
        # on a 64-byte boundary: the compiled loops' vector loads (see _aligned)
        self.kernel = _aligned.copy(self.kernel_initializer((n_in, self.units), rng, dtype))
        self.bias = (_aligned.copy(self.bias_initializer((self.units,), rng, dtype))
                     if self.use_bias else None)

    def __setstate__(self, state):
        # pickle and copy.deepcopy give new arrays at NumPy's 16-byte
        # alignment: nothing refers to them yet, so they are aligned again
        self.__dict__.update(state)
        for name in ("kernel", "bias"):
            if isinstance(state.get(name), np.ndarray):
                setattr(self, name, _aligned.realigned(state[name]))

    def __copy__(self):
        # copy.copy would pass the live arrays through __setstate__, which
        # copies those that are not aligned (a kernel the user assigned): a
        # shallow copy shares every attribute
        return _aligned.shallow_copy(self)

    def kernel_activation_code(self, is_last, loss_link):
        """Kernel activation code; a last-layer link fused into the loss is identity."""
        if self.activation == "softmax" or (is_last and self.activation == loss_link):
            return activations.ACTIVATIONS["identity"]
        return activations.ACTIVATIONS[self.activation]

    def params(self):
        return [self.kernel] + ([self.bias] if self.use_bias else [])

    def count_params(self):
        return sum(p.size for p in self.params())

    def get_config(self):
        return {"class": "Dense", "units": self.units, "activation": self.activation,
                "alpha": self.alpha, "use_bias": self.use_bias, "name": self.name,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": self.kernel_regularizer.get_config()
                if self.kernel_regularizer else None,
                "bias_regularizer": self.bias_regularizer.get_config()
                if self.bias_regularizer else None}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("class", None)
        return cls(**config)

    # -- per-layer path (same kernels as the fused loop) ---------------------
    def forward(self, x, activation=None, n_threads=1, keep_for_backward=True):
        """Outputs a = activation(x W + b) of a built layer; caches x, z, a for backward.

        Parameters
        ----------
        x : ndarray, shape (n_samples, n_in), dtype of the layer (float32 or float64)
            C-contiguous inputs.
        activation : str or None, default None
            None applies the layer's own activation (a ``"softmax"`` layer
            returns logits: the loss applies softmax). A name of
            ``descend.activations.ACTIVATIONS`` overrides it, e.g.
            ``"identity"`` for the logits of a sigmoid output layer. (The
            kernels' integer code of an activation is accepted as well: it
            is how descend's own drivers call this method.)
        n_threads : int, default 1
            OpenMP team size, in [1, MAX_THREADS].
        keep_for_backward : bool, default True
            Keep x, z and a for one ``backward`` call (which releases them).
            Inference passes False, so that no reference to the caller's data
            (or its converted copy) outlives the call.

        Returns
        -------
        ndarray, shape (n_samples, units), same dtype as x

        Raises
        ------
        RuntimeError
            If the layer is not built.
        TypeError, ValueError
            If x is not a 2-D C-contiguous array of the layer's dtype with
            n_in columns, or activation or n_threads is invalid.

        Examples
        --------
        >>> import numpy as np
        >>> import descend as dn
        >>> layer = dn.Dense(2, activation="relu")
        >>> layer.build(3, np.random.default_rng(0), np.float64)
        >>> layer.kernel[...] = [[1.0, -1.0], [0.0, 2.0], [1.0, 0.0]]
        >>> layer.forward(np.array([[1.0, 1.0, 1.0]]))        # relu([2, 1])
        array([[2., 1.]])
        >>> layer.forward(np.array([[-1.0, 0.0, 0.0]]), activation="identity")
        array([[-1.,  1.]])
        """
        code = self._activation_code(activation)
        _check_team(n_threads)
        self._check_input(x)
        z = np.empty((x.shape[0], self.units), dtype=x.dtype)
        a = z if code == Activation.IDENTITY else np.empty_like(z)
        _dense.dense_forward_py(x, self.kernel, self.bias, z, a, code,
                                self.alpha, n_threads)
        self._cache = (x, z, a, code) if keep_for_backward else None
        return a

    def _activation_code(self, activation):
        if activation is None:
            activation = ("identity" if self.activation == "softmax" else self.activation)
        if isinstance(activation, str):
            name = activations.canonical_name(activation)
            return activations.ACTIVATIONS["identity" if name == "softmax" else name]
        if isinstance(activation, Integral) and not isinstance(activation, bool) \
                and activation in _CODES:
            return int(activation)
        raise (ValueError if isinstance(activation, Integral) else TypeError)(error_message(
            "activation", f"None or one of {sorted(activations.ACTIVATIONS)} (or its "
            "kernel code)", activation))

    def _check_input(self, x):
        if self.kernel is None:
            raise RuntimeError("Dense.forward needs a built layer: call build(n_in, rng, "
                               "dtype) or build the network first")
        expected = (f"a C-contiguous {self.kernel.dtype} array of shape (n_samples, "
                    f"{self.kernel.shape[0]})")
        if not isinstance(x, np.ndarray):
            raise TypeError(error_message("x", expected, x))
        if (x.dtype != self.kernel.dtype or x.ndim != 2 or x.shape[1] != self.kernel.shape[0]
                or not x.flags.c_contiguous):
            raise ValueError(f"x must be {expected}, got a {x.dtype} array of shape "
                             f"{x.shape}" + ("" if x.flags.c_contiguous
                                             else " (not C-contiguous)"))

    def backward(self, grad_output, need_input_grad, n_threads=1):
        """(dL/dx or None, dL/dW, dL/db or None) from dL/da of the cached forward."""
        if self._cache is None:
            raise RuntimeError("Dense.backward needs the cache of a forward call first")
        _check_team(n_threads)
        x, z, a, code = self._cache
        self._cache = None      # one backward per forward: nothing outlives it
        dz = np.array(grad_output, dtype=x.dtype, order="C", copy=True)
        dkernel = np.empty_like(self.kernel)
        dbias = np.empty_like(self.bias) if self.use_bias else None
        dx = np.empty_like(x) if need_input_grad else None
        _dense.dense_backward_py(x, self.kernel, z, a, dz, dkernel, dbias, dx, code,
                                 self.alpha, n_threads)
        return dx, dkernel, dbias

    def __repr__(self):
        # alpha where the activation reads it (leaky_relu's slope, elu's scale)
        # and it is not the default, as scikit-learn's reprs show parameters
        default = activations.DEFAULT_ALPHA.get(self.activation)
        alpha = f", alpha={self.alpha!r}" if default not in (None, self.alpha) else ""
        return f"Dense({self.units}, activation={self.activation!r}{alpha})"


class Dropout:
    """Inverted dropout (Srivastava et al. 2014): zero each input with
    probability ``rate`` and scale the kept ones by 1 / (1 - rate) in
    training; the identity at predict time.

    The mask is drawn from a counter-based generator seeded from the
    network's numpy Generator each epoch, so a seed fixes it; it is fused
    into the compiled forward and backward passes.

    Parameters
    ----------
    rate : float in [0, 1)
        Fraction of the inputs to drop.
    """

    def __init__(self, rate, name=None):
        self.rate = check(rate, "rate", _RATE)
        self.name = check(name, "name", [None, "str"], "Dropout")

    def check_settings(self, name="Dropout"):
        """Check the rate as it stands (as ``Dense.check_settings``)."""
        check(self.rate, f"{name}.rate", _RATE)

    def get_config(self):
        return {"class": "Dropout", "rate": self.rate, "name": self.name}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("class", None)
        return cls(**config)

    def forward(self, x, seed, n_threads=1):
        """x with the mask of `seed` applied (kept entries scaled by 1 / (1 - rate))."""
        _check_team(n_threads)
        return dropout(x, self.rate, seed, n_threads)

    def backward(self, grad_output, seed, n_threads=1):
        """dL/dx from dL/d(output): the same mask and scale as forward with `seed`."""
        _check_team(n_threads)
        return dropout(grad_output, self.rate, seed, n_threads)

    def __repr__(self):
        return f"Dropout({self.rate})"


_CODES = frozenset(activations.ACTIVATIONS.values())


def dropout(x, rate, seed, n_threads=1, first_row=0):
    """Inverted dropout of x (n, d) with the counter-based mask of `seed`: the
    kernel the fused loop runs; its own transpose, so forward and backward.
    Row 0 of x is row `first_row` of its batch (the mask is keyed by it)."""
    out = np.empty_like(x)
    _dense.dropout_py(out, np.ascontiguousarray(x), rate, seed, n_threads, first_row)
    return out


def _check_team(n_threads):
    """The OpenMP team size the kernels get: an int in [1, MAX_THREADS] (else libgomp
    aborts the process)."""
    check_team_size(n_threads)


def from_config(config):
    """Rebuild a layer from its get_config() dict (no code is executed)."""
    kind = config.get("class") if isinstance(config, dict) else None
    if kind == "Dense":
        return Dense.from_config(config)
    if kind == "Dropout":
        return Dropout.from_config(config)
    raise ValueError(f"unknown layer class in config: {kind!r}")
