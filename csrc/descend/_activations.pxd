# Activation functions: forward value and derivative, one inline pair each.
#
# Every branch is written so that no intermediate overflows for inputs as
# large as +-1000 (in float32 too): exp() only ever sees a non-positive
# argument, and log1p(exp(-|z|)) replaces log(1 + exp(z)).
from cython cimport floating
from libc.math cimport exp, expf, expm1, expm1f, log1p, log1pf, tanh, tanhf, erf, erff

from descend._contract cimport (Activation, IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU,
                               ELU, SOFTPLUS, GELU)

# 1/sqrt(2) and 1/sqrt(2 pi), for the exact (erf) form of GELU
cdef extern from *:
    """
    #define DESCEND_INV_SQRT2 0.70710678118654752440
    #define DESCEND_INV_SQRT_2PI 0.39894228040143267794
    """
    double INV_SQRT2 "DESCEND_INV_SQRT2"
    double INV_SQRT_2PI "DESCEND_INV_SQRT_2PI"


cdef inline floating exp_(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating sigmoid(floating z) noexcept nogil:
    """1 / (1 + exp(-z)), evaluated without overflow for any z."""
    cdef floating e
    if z >= 0:
        return 1 / (1 + exp_(-z))
    e = exp_(z)
    return e / (1 + e)


cdef inline floating softplus(floating z) noexcept nogil:
    """log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))."""
    cdef floating neg_abs = -z if z > 0 else z
    if floating is float:
        return (z if z > 0 else 0) + log1pf(expf(neg_abs))
    else:
        return (z if z > 0 else 0) + log1p(exp(neg_abs))


cdef inline floating activate(floating z, int activation,
                              floating alpha) noexcept nogil:
    """a = act(z). alpha is the negative slope (leaky_relu) or scale (elu)."""
    if activation == IDENTITY:
        return z
    elif activation == RELU:
        return 0 if z <= 0 else z      # NaN stays NaN (as numpy.maximum)
    elif activation == SIGMOID:
        return sigmoid(z)
    elif activation == TANH:
        if floating is float:
            return tanhf(z)
        else:
            return tanh(z)
    elif activation == LEAKY_RELU:
        return z if z > 0 else alpha * z
    elif activation == ELU:
        if z > 0:
            return z
        if floating is float:
            return alpha * expm1f(z)
        else:
            return alpha * expm1(z)
    elif activation == SOFTPLUS:
        return softplus(z)
    else:  # GELU, exact form z * Phi(z) (Hendrycks & Gimpel 2016)
        if floating is float:
            return <float>0.5 * z * (1 + erff(z * <float>INV_SQRT2))
        else:
            return 0.5 * z * (1 + erf(z * INV_SQRT2))


cdef inline floating derivative(floating z, floating a, int activation,
                                floating alpha) noexcept nogil:
    """d act / dz at z, given a = act(z) (reused where it is cheaper)."""
    if activation == IDENTITY:
        return 1
    elif activation == RELU:
        return 1 if z > 0 else 0       # subgradient 0 at exactly 0
    elif activation == SIGMOID:
        return a * (1 - a)
    elif activation == TANH:
        return 1 - a * a
    elif activation == LEAKY_RELU:
        return 1 if z > 0 else alpha
    elif activation == ELU:
        return 1 if z > 0 else a + alpha   # alpha * exp(z) = a + alpha
    elif activation == SOFTPLUS:
        return sigmoid(z)
    else:  # GELU: Phi(z) + z * phi(z)
        if floating is float:
            return (<float>0.5 * (1 + erff(z * <float>INV_SQRT2))
                    + z * <float>INV_SQRT_2PI * expf(<float>-0.5 * z * z))
        else:
            return 0.5 * (1 + erf(z * INV_SQRT2)) + z * INV_SQRT_2PI * exp(-0.5 * z * z)
