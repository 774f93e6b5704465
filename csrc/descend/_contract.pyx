# The Python side of _contract.pxd: its cpdef enums (Activation, Loss,
# OptimizerKind, Strategy) become importable classes of this module, and
# LayerSpec's fields are checked once, when it is built
# (descend._validation.check_layer_spec), so that the compiled loop can
# trust them.
"""Codes and specs shared by the Python layer and the compiled kernels.

``Activation``, ``Loss``, ``OptimizerKind`` and ``Strategy`` are integer
enums (members compare equal to the kernels' C enum values):
descend.activations, descend.losses, descend.optimizers and the tests take
their codes from here. ``LayerSpec`` is what the compiled epoch loop
(``descend._train.EpochRunner``) is told about each Dense layer.
"""
from descend._validation import check_layer_spec

__all__ = ["Activation", "Loss", "OptimizerKind", "Strategy", "LayerSpec"]


cdef class LayerSpec:
    """One Dense layer as the compiled epoch loop sees it.

    Built once per fit (``descend.training.runner_specs``) and checked then,
    so that the loop, which reads and writes the arrays without bounds
    checks, can trust every shape, dtype and code.

    Parameters
    ----------
    kernel : ndarray of shape (n_in, n_out), float32 or float64
        The layer's live kernel (C-contiguous, writeable: updated in place).
    bias : ndarray of shape (n_out,) or None
        The live bias, same dtype; None for ``use_bias=False``.
    kernel_state, bias_state : sequence of ndarray, optional
        The optimizer's state arrays of the kernel / bias in the kernels'
        slot order (s1, s2, s3), each shaped and typed like its parameter.
    activation : Activation, default IDENTITY
    alpha : float, default 0.0
        The activation's parameter (leaky_relu slope, elu scale).
    dropout_rate : float in [0, 1), default 0.0
        Dropout on the layer's input.
    kernel_l1, kernel_l2, bias_l1, bias_l2 : float >= 0, default 0.0
        Penalty l1 * sum|w| + l2 * sum w**2 on each array.
    kernel_l1_proximal, bias_l1_proximal : bool, default False
        L1 by a soft-threshold step after the update instead of in the gradient.
    decay_bias : bool, default False
        Whether the optimizer's weight decay applies to the bias (it always
        applies to the kernel).

    Raises
    ------
    TypeError
        An array that is not a float32/float64 ndarray of the kernel's dtype.
    ValueError
        A shape that does not fit, a non-contiguous or read-only array, an
        unknown activation code, a rate or penalty out of range.
    """

    def __init__(self, kernel, bias, kernel_state=(), bias_state=(), *,
                 activation=Activation.IDENTITY, alpha=0.0, dropout_rate=0.0,
                 kernel_l1=0.0, kernel_l2=0.0, bias_l1=0.0, bias_l2=0.0,
                 kernel_l1_proximal=False, bias_l1_proximal=False, decay_bias=False):
        # the checks are Python (descend._validation, one message style): they
        # run once per layer and fit, and compiled they would cost wheel size
        (self.kernel, self.bias, self.kernel_state, self.bias_state, self.activation,
         self.alpha, self.dropout_rate, penalties, flags) = check_layer_spec(
            kernel, bias, kernel_state, bias_state, activation, [int(a) for a in Activation],
            alpha, dropout_rate,
            dict(kernel_l1=kernel_l1, kernel_l2=kernel_l2, bias_l1=bias_l1, bias_l2=bias_l2),
            dict(kernel_l1_proximal=kernel_l1_proximal, bias_l1_proximal=bias_l1_proximal,
                 decay_bias=decay_bias))
        self.kernel_l1, self.kernel_l2 = penalties["kernel_l1"], penalties["kernel_l2"]
        self.bias_l1, self.bias_l2 = penalties["bias_l1"], penalties["bias_l2"]
        self.kernel_l1_proximal = flags["kernel_l1_proximal"]
        self.bias_l1_proximal = flags["bias_l1_proximal"]
        self.decay_bias = flags["decay_bias"]
