from cython cimport floating

cdef enum Loss:
    MEAN_SQUARED_ERROR = 0
    BINARY_CROSS_ENTROPY = 1
    SOFTMAX_CROSS_ENTROPY = 2

cdef double loss_and_gradient(int loss, const floating* output,
                              const floating* target, const int* labels,
                              floating* grad, int n, int k, double grad_scale,
                              int n_threads) noexcept nogil

cdef inline double mean_scale(int loss, long n, long k) noexcept nogil:
    """1 / (number of terms the mean loss averages): 1 / n for
    softmax_cross_entropy (one term per sample), 1 / (n k) for the
    elementwise losses (one term per sample and output)."""
    return 1.0 / n if loss == SOFTMAX_CROSS_ENTROPY else 1.0 / (<double>n * k)
