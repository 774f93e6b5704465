from cython cimport floating

from descend._contract cimport (Loss, MEAN_SQUARED_ERROR, BINARY_CROSS_ENTROPY,
                               SOFTMAX_CROSS_ENTROPY)

cdef double loss_and_gradient(int loss, const floating* output,
                              const floating* target, const int* labels,
                              floating* grad, int n, int k, double grad_scale,
                              int n_threads) noexcept nogil
