from cython cimport floating
from libc.math cimport exp

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


cdef inline void softmax_row(const floating* logits, floating* proba, int k) noexcept nogil:
    """proba := softmax(logits) of one row of k, max-shifted, summed in float64
    (the link of softmax_cross_entropy: predict's and softmax_py's one core)."""
    cdef int j
    cdef double row_max = logits[0], sum_exp = 0.0
    for j in range(1, k):
        if logits[j] > row_max:
            row_max = logits[j]
    for j in range(k):
        sum_exp = sum_exp + exp(<double>logits[j] - row_max)
    for j in range(k):
        proba[j] = <floating>(exp(<double>logits[j] - row_max) / sum_exp)
