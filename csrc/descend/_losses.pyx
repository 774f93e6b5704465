# Losses fused with their output link: the loss and dL/d(output) in one pass.
#
# `output` is the last layer's pre-link output (n, k): predictions for mean
# squared error, logits for the two cross-entropies. Per-sample losses are
# summed in float64 whatever the dtype; the caller divides by the count.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log, log1p, fabs

from descend._activations cimport sigmoid


cdef double weighted_loss_and_gradient(int loss, const floating* output,
                                       const floating* target, const int* labels,
                                       const double* weight, floating* grad, int n, int k,
                                       double grad_scale, int n_threads) noexcept nogil:
    """Return the weighted summed loss sum_i w_i l_i over n samples;
    grad := grad_scale * w_i * dl_i/doutput_i, row by row.

    mean_squared_error     l_i = sum_j (o_ij - t_ij)^2,       grad 2 (o - t)
    binary_cross_entropy   l_i = sum_j max(o,0) - o t + log1p(exp(-|o|)),
                                                              grad sigmoid(o) - t
    softmax_cross_entropy  l_i = logsumexp(o_i) - o_i[label_i],
                                                              grad softmax(o_i) - onehot
    `target` (n, k) is used by the first two, `labels` (n,) by the third.
    `weight` (n,) holds the samples' weights, NULL for all 1 (the same bits
    as without weights: a weight of 1.0 multiplies exactly). grad may be
    NULL (loss only). Callers pass grad_scale = mean_scale(loss, W, k) with
    W the batch's number of samples or sum of weights, making grad the
    gradient of the (weighted) mean loss sum_i w_i l_i / W.
    Row by row, summed by row: on the calling thread for n_threads=1 (how
    the fused epoch calls it from inside its team: a parallel region costs
    ~0.6 us even for one thread), else over a team of n_threads.
    """
    cdef double total = 0.0
    cdef int i
    if n_threads == 1:
        for i in range(n):
            total += _loss_row(loss, output, target, labels, weight, grad, i, k, grad_scale)
        return total
    for i in prange(n, num_threads=n_threads, schedule="static"):
        total += _loss_row(loss, output, target, labels, weight, grad, i, k, grad_scale)
    return total


cdef inline double _loss_row(int loss, const floating* output, const floating* target,
                             const int* labels, const double* weight, floating* grad, int i,
                             int k, double grad_scale) noexcept nogil:
    """Row i's weighted loss w_i l_i (and its gradient, unless grad is NULL)."""
    if loss == MEAN_SQUARED_ERROR:
        return _squared_error_row(output, target, weight, grad, i, k, grad_scale)
    if loss == BINARY_CROSS_ENTROPY:
        return _binary_cross_entropy_row(output, target, weight, grad, i, k, grad_scale)
    return _softmax_cross_entropy_row(output, labels, weight, grad, i, k, grad_scale)


cdef inline double _squared_error_row(const floating* output, const floating* target,
                                      const double* weight, floating* grad, int i, int k,
                                      double grad_scale) noexcept nogil:
    cdef double total = 0.0, diff
    cdef double w = weight[i] if weight != NULL else 1.0
    cdef double row_scale = 2.0 * grad_scale * w
    cdef int j
    cdef long idx
    for j in range(k):
        idx = <long>i * k + j
        diff = <double>output[idx] - <double>target[idx]
        total += w * (diff * diff)
        if grad != NULL:
            grad[idx] = <floating>(row_scale * diff)
    return total


cdef inline double _binary_cross_entropy_row(const floating* output, const floating* target,
                                             const double* weight, floating* grad, int i,
                                             int k, double grad_scale) noexcept nogil:
    cdef double total = 0.0, o, t
    cdef double w = weight[i] if weight != NULL else 1.0
    cdef double row_scale = grad_scale * w
    cdef int j
    cdef long idx
    for j in range(k):
        idx = <long>i * k + j
        o = output[idx]
        t = target[idx]
        # log(1 + exp(o)) - o t, stable for |o| up to any float
        total += w * ((o if o > 0 else 0.0) - o * t + log1p(exp(-fabs(o))))
        if grad != NULL:
            grad[idx] = <floating>(row_scale * (sigmoid(o) - t))
    return total


cdef inline double _softmax_cross_entropy_row(const floating* output, const int* labels,
                                              const double* weight, floating* grad, int i,
                                              int k, double grad_scale) noexcept nogil:
    cdef double row_max, sum_exp, log_sum_exp
    cdef double w = weight[i] if weight != NULL else 1.0
    cdef double row_scale = grad_scale * w
    cdef int j
    cdef long row = <long>i * k
    # shift by the row max so exp() never overflows
    row_max = output[row]
    for j in range(1, k):
        if output[row + j] > row_max:
            row_max = output[row + j]
    sum_exp = 0.0
    for j in range(k):
        sum_exp = sum_exp + exp(<double>output[row + j] - row_max)
    log_sum_exp = row_max + log(sum_exp)
    if grad != NULL:
        for j in range(k):
            grad[row + j] = <floating>(row_scale * exp(<double>output[row + j] - log_sum_exp))
        grad[row + labels[i]] -= <floating>row_scale
    return w * (log_sum_exp - <double>output[row + labels[i]])


# ---- links and memoryview twins ----------------------------------------------

def softmax_py(const floating[:, ::1] logits, floating[:, ::1] proba, int n_threads):
    """proba := softmax(logits) row by row (max-shifted), in place."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    cdef int n = logits.shape[0], k = logits.shape[1], i, j
    if (proba.shape[0], proba.shape[1]) != (n, k):
        raise ValueError(f"proba has shape {(proba.shape[0], proba.shape[1])}, expected {(n, k)}")
    if n == 0 or k == 0:
        return
    with nogil:
        for i in prange(n, num_threads=n_threads, schedule="static"):
            softmax_row(&logits[i, 0], &proba[i, 0], k)


def loss_and_gradient_py(int loss, const floating[:, ::1] output,
                         const floating[:, ::1] target, const int[::1] labels,
                         floating[:, ::1] grad, double grad_scale, int n_threads,
                         const double[::1] weight=None):
    """Summed loss sum_i w_i l_i (float64); fills grad (unless None) with
    grad_scale * w_i * dl_i/doutput_i (weighted_loss_and_gradient's twin).

    target is used by mean_squared_error and binary_cross_entropy, labels by
    softmax_cross_entropy; pass None for the unused one. weight: (n,)
    float64 sample weights, None for all 1.
    """
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    if loss not in (MEAN_SQUARED_ERROR, BINARY_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY):
        raise ValueError(f"loss code must be 0, 1 or 2, got {loss}")
    cdef int n = output.shape[0], k = output.shape[1]
    cdef double total
    if grad is not None and (grad.shape[0], grad.shape[1]) != (n, k):
        raise ValueError(f"grad has shape {(grad.shape[0], grad.shape[1])}, expected {(n, k)}")
    if weight is not None and weight.shape[0] != n:
        raise ValueError(f"weight has {weight.shape[0]} entries, expected {n}")
    if loss == 2:
        if labels is None or labels.shape[0] != n:
            raise ValueError(f"softmax_cross_entropy needs {n} labels")
        for i in range(n):
            if not 0 <= labels[i] < k:
                raise ValueError(f"labels[{i}] = {labels[i]} is not a class id in [0, {k})")
    elif target is None or (target.shape[0], target.shape[1]) != (n, k):
        raise ValueError(f"target must have shape {(n, k)}")
    if n == 0:
        return 0.0
    with nogil:
        total = weighted_loss_and_gradient(
            loss, &output[0, 0], &target[0, 0] if target is not None else NULL,
            &labels[0] if labels is not None else NULL,
            &weight[0] if weight is not None else NULL,
            &grad[0, 0] if grad is not None else NULL, n, k, grad_scale, n_threads)
    return total


def mean_scale_py(int loss, double total_weight, long k):
    """mean_scale's twin: 1 / W (softmax_cross_entropy) or 1 / (W k) (the
    others), W the number of samples or the sum of their weights; 0 for W = 0."""
    if not (total_weight >= 0) or k < 1:
        raise ValueError(f"total_weight must be >= 0 and k >= 1, got "
                         f"total_weight={total_weight}, k={k}")
    return mean_scale(loss, total_weight, k)
