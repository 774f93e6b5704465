from cython cimport floating

cdef enum Loss:
    MEAN_SQUARED_ERROR = 0
    BINARY_CROSS_ENTROPY = 1
    SOFTMAX_CROSS_ENTROPY = 2

cdef double loss_and_gradient(int loss, const floating* output,
                              const floating* target, const int* labels,
                              floating* grad, int n, int k, double grad_scale,
                              int n_threads) noexcept nogil
