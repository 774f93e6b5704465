from cython cimport floating

from descend._contract cimport (Loss, MEAN_SQUARED_ERROR, BINARY_CROSS_ENTROPY,
                               SOFTMAX_CROSS_ENTROPY)

cdef double weighted_loss_and_gradient(int loss, const floating* output,
                                       const floating* target, const int* labels,
                                       const double* weight, floating* grad, int n, int k,
                                       double grad_scale, int n_threads) noexcept nogil

cdef inline double mean_scale(int loss, double total_weight, long k) noexcept nogil:
    """1 / (total weight of the terms the mean loss averages): 1 / W for
    softmax_cross_entropy (one term per sample), 1 / (W k) for the
    elementwise losses (one term per sample and output), where W is the
    number of samples, or the sum of their weights (sample_weight). A batch
    whose weights sum to 0 gets 0: its loss and gradient are 0, never NaN."""
    if total_weight <= 0:
        return 0.0
    return 1.0 / total_weight if loss == SOFTMAX_CROSS_ENTROPY else 1.0 / (total_weight * k)
