# The whole mini-batch loop of an epoch in one compiled call.
#
# For each batch: gather the rows of the shuffled order, forward through all
# layers (dropout included), fused loss and gradient, backward through all
# layers, penalties, clipping and the optimizer update of every parameter
# array. No Python runs per batch, except a progress call every
# `progress_every` batches, which is also where Ctrl-C is noticed. Every
# buffer is allocated once, when the EpochRunner is built at the start of fit.
# The kernels are the same cdef functions the per-layer Python path calls.
cimport numpy as cnp
from cython cimport floating
from cpython.exc cimport PyErr_CheckSignals
from libc.math cimport sqrt, isfinite
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy
from libc.stdint cimport uint64_t

import numpy as np

from descend._dense cimport dense_forward, dense_backward, dropout, descend_mix
from descend._losses cimport loss_and_gradient, MEAN_SQUARED_ERROR, SOFTMAX_CROSS_ENTROPY, BINARY_CROSS_ENTROPY
from descend._optim cimport (OptimizerConfig, optimizer_step, add_penalty_gradient,
                             sum_squares, scale_and_clip, make_config_py)

cnp.import_array()


cdef struct Param:
    # one parameter array (a kernel or a bias), its gradient and optimizer state
    void* value
    void* grad
    void* state1
    void* state2
    void* state3
    long size
    double l1, l2           # penalty on this array (0: none)
    double decay            # 1 if the optimizer's weight decay applies, else 0


cdef struct LayerPlan:
    int n_in, n_out, activation
    double alpha
    double dropout_rate     # on this layer's input; 0: none
    Param kernel
    Param bias              # bias.value is NULL when use_bias=False
    void* z                 # (batch, n_out) pre-activation
    void* a                 # (batch, n_out) activation (== z for identity)
    void* dz                # (batch, n_out) dL/da, then dL/dz
    void* dropped           # (batch, n_in) the input after dropout


cdef inline void* data(object array) except? NULL:
    """Address of a C-contiguous array's data; None -> NULL."""
    if array is None:
        return NULL
    if not (<cnp.ndarray>array).flags.c_contiguous:
        raise ValueError("internal error: buffer is not C-contiguous")
    return cnp.PyArray_DATA(<cnp.ndarray>array)


cdef class EpochRunner:
    """Compiled training epochs over fixed data, layers and optimizer.

    Built once per fit by descend.Sequential; holds references to every
    array it writes so that the raw pointers it keeps stay valid. Weights
    must be changed in place (Sequential.set_weights does so).
    """
    cdef LayerPlan* plans
    cdef int n_layers
    cdef int batch_size
    cdef int n_threads
    cdef int loss
    cdef int n_outputs
    cdef bint is_float32
    cdef OptimizerConfig config
    cdef double clipnorm, global_clipnorm, clipvalue
    cdef object keep_alive
    cdef object X, targets, labels
    cdef object x_batch, targets_batch, labels_batch

    def __cinit__(self):
        self.plans = NULL

    def __dealloc__(self):
        free(self.plans)

    def __init__(self, X, targets, labels, list layers, int loss,
                 dict optimizer_config, double clipnorm, double global_clipnorm,
                 double clipvalue, int batch_size, int n_threads):
        """
        X (n, d), targets (n, k) or None, labels (n,) int32 or None;
        layers: one dict per Dense layer with keys kernel, bias, dkernel,
        dbias, kernel_state, bias_state (lists of 3 arrays or None),
        activation, alpha, dropout_rate, kernel_l1, kernel_l2, bias_l1,
        bias_l2, kernel_decay, bias_decay.
        """
        cdef int i
        cdef LayerPlan* p
        self.is_float32 = X.dtype == np.float32
        dtype = X.dtype
        self.X, self.targets, self.labels = X, targets, labels
        self.n_layers = len(layers)
        self.batch_size = batch_size
        self.n_threads = n_threads
        self.loss = loss
        self.config = make_config_py(optimizer_config)
        self.clipnorm, self.global_clipnorm, self.clipvalue = clipnorm, global_clipnorm, clipvalue
        # (wraparound is off in compiled code: no negative indices)
        self.n_outputs = layers[len(layers) - 1]["kernel"].shape[1]
        self.keep_alive = []
        self.x_batch = np.empty((batch_size, X.shape[1]), dtype=dtype)
        self.targets_batch = (None if targets is None else
                              np.empty((batch_size, targets.shape[1]), dtype=dtype))
        self.labels_batch = None if labels is None else np.empty(batch_size, dtype=np.int32)
        self.plans = <LayerPlan*>malloc(self.n_layers * sizeof(LayerPlan))
        if self.plans == NULL:
            raise MemoryError()
        for i, spec in enumerate(layers):
            p = &self.plans[i]
            kernel = spec["kernel"]
            if kernel.dtype != dtype:
                raise TypeError(f"internal error: layer {i} dtype {kernel.dtype} != {dtype}")
            p.n_in, p.n_out = kernel.shape[0], kernel.shape[1]
            p.activation = spec["activation"]
            p.alpha = spec["alpha"]
            p.dropout_rate = spec["dropout_rate"]
            self._fill_param(&p.kernel, kernel, spec["dkernel"], spec["kernel_state"],
                             spec["kernel_l1"], spec["kernel_l2"], spec["kernel_decay"])
            self._fill_param(&p.bias, spec["bias"], spec["dbias"], spec["bias_state"],
                             spec["bias_l1"], spec["bias_l2"], spec["bias_decay"])
            z = np.empty((batch_size, p.n_out), dtype=dtype)
            # identity layers need no separate activation buffer
            a = z if p.activation == 0 else np.empty_like(z)
            dz = np.empty_like(z)
            dropped = (np.empty((batch_size, p.n_in), dtype=dtype)
                       if p.dropout_rate > 0 else None)
            self.keep_alive.extend([z, a, dz, dropped])
            p.z, p.a, p.dz, p.dropped = data(z), data(a), data(dz), data(dropped)

    cdef _fill_param(self, Param* param, value, grad, state, double l1,
                     double l2, double decay):
        state = list(state) if state is not None else []
        state += [None] * (3 - len(state))
        self.keep_alive.extend([value, grad] + state)
        param.value = data(value)
        param.grad = data(grad)
        param.state1, param.state2, param.state3 = data(state[0]), data(state[1]), data(state[2])
        param.size = 0 if value is None else value.size
        param.l1, param.l2, param.decay = l1, l2, decay

    def run_epoch(self, cnp.intp_t[::1] order, double learning_rate,
                  double weight_decay, long step, unsigned long long seed,
                  object progress=None, int progress_every=0):
        """Train one epoch over the rows of X in `order`.

        Returns a dict: loss_sum (sum over batches of the batch's mean loss
        times its size), penalty_sum (sum of the penalty over batches),
        n_batches, n_correct (classification), step (updates done so far),
        finite (False if a non-finite loss stopped the epoch early).
        """
        if self.is_float32:
            return self._run[float](order, learning_rate, weight_decay, step, seed,
                                    progress, progress_every)
        return self._run[double](order, learning_rate, weight_decay, step, seed,
                                 progress, progress_every)

    cdef dict _run(self, cnp.intp_t[::1] order, double learning_rate,
                   double weight_decay, long step, unsigned long long seed,
                   object progress, int progress_every, floating dummy=0):
        cdef long n = order.shape[0]
        cdef long n_batches = (n + self.batch_size - 1) // self.batch_size
        cdef long chunk = progress_every if progress_every > 0 else n_batches
        cdef long batch = 0, stop, start, nb
        cdef double loss_sum = 0.0, penalty_sum = 0.0, batch_loss
        cdef long n_correct = 0
        cdef bint finite = True
        cdef floating* X = <floating*>data(self.X)
        cdef floating* T = <floating*>data(self.targets)
        cdef int* Y = <int*>data(self.labels)
        cdef floating* xb = <floating*>data(self.x_batch)
        cdef floating* tb = <floating*>data(self.targets_batch)
        cdef int* yb = <int*>data(self.labels_batch)
        while batch < n_batches and finite:
            stop = min(batch + chunk, n_batches)
            with nogil:
                while batch < stop:
                    start = batch * self.batch_size
                    nb = min(<long>self.batch_size, n - start)
                    self._gather(X, T, Y, &order[start], nb, xb, tb, yb)
                    batch_loss = self._train_batch(xb, tb, yb, <int>nb, learning_rate,
                                                   weight_decay, step + 1,
                                                   descend_mix(seed, <uint64_t>batch),
                                                   &penalty_sum, &n_correct)
                    if not isfinite(batch_loss):
                        finite = False
                        break
                    step += 1
                    loss_sum += batch_loss * nb
                    batch += 1
            PyErr_CheckSignals()    # Ctrl-C raises KeyboardInterrupt here
            if progress is not None:
                progress(batch, loss_sum / max(batch * self.batch_size if batch < n_batches else n, 1))
        return {"loss_sum": loss_sum, "penalty_sum": penalty_sum,
                "n_batches": batch, "n_correct": n_correct, "step": step,
                "finite": finite, "n_samples": min(batch * self.batch_size, n)}

    cdef void _gather(self, floating* X, floating* T, int* Y, cnp.intp_t* rows,
                      long nb, floating* xb, floating* tb, int* yb) noexcept nogil:
        cdef long i
        cdef long d = self.plans[0].n_in
        cdef long k = self.n_outputs
        for i in range(nb):
            memcpy(xb + i * d, X + rows[i] * d, d * sizeof(floating))
            if T != NULL:
                memcpy(tb + i * k, T + rows[i] * k, k * sizeof(floating))
            if Y != NULL:
                yb[i] = Y[rows[i]]

    cdef double _train_batch(self, floating* xb, floating* tb, int* yb, int nb,
                             double learning_rate, double weight_decay, long step,
                             uint64_t batch_seed, double* penalty_sum,
                             long* n_correct) noexcept nogil:
        """Forward, loss, backward and update on one batch; returns its mean loss."""
        cdef int l
        cdef LayerPlan* p
        cdef LayerPlan* last = &self.plans[self.n_layers - 1]
        cdef floating* inp
        cdef double loss, scale, penalty = 0.0, total_sq
        cdef int nt = self.n_threads
        # forward
        for l in range(self.n_layers):
            p = &self.plans[l]
            inp = self._layer_input(l, xb)
            if p.dropout_rate > 0:
                dropout(<floating*>p.dropped, inp, nb, p.n_in, p.dropout_rate,
                        descend_mix(batch_seed, <uint64_t>l), nt)
                inp = <floating*>p.dropped
            dense_forward(inp, nb, p.n_in, <floating*>p.kernel.value,
                          <floating*>p.bias.value, p.n_out, <floating*>p.z,
                          <floating*>p.a, p.activation, <floating>p.alpha, nt)
        # loss: mean over samples (and outputs, for the elementwise losses)
        if self.loss == SOFTMAX_CROSS_ENTROPY:
            scale = 1.0 / nb
        else:
            scale = 1.0 / (<double>nb * last.n_out)
        loss = scale * loss_and_gradient(self.loss, <floating*>last.a, tb, yb,
                                         <floating*>last.dz, nb, last.n_out, scale, nt)
        n_correct[0] += count_correct(self.loss, <floating*>last.a, tb, yb, nb, last.n_out)
        if not isfinite(loss):
            return loss
        # backward: layer l writes dL/d(its input) into layer l-1's dz
        for l in range(self.n_layers - 1, -1, -1):
            p = &self.plans[l]
            inp = <floating*>p.dropped if p.dropout_rate > 0 else self._layer_input(l, xb)
            dense_backward(inp, nb, p.n_in, <floating*>p.kernel.value, p.n_out,
                           <floating*>p.z, <floating*>p.a, <floating*>p.dz,
                           <floating*>p.kernel.grad, <floating*>p.bias.grad,
                           <floating*>self.plans[l - 1].dz if l > 0 else NULL,
                           p.activation, <floating>p.alpha, nt)
            if l > 0 and p.dropout_rate > 0:
                dropout(<floating*>self.plans[l - 1].dz, <floating*>self.plans[l - 1].dz,
                        nb, p.n_in, p.dropout_rate, descend_mix(batch_seed, <uint64_t>l), nt)
        # penalties, clipping, update
        for l in range(self.n_layers):
            penalty += self._penalize[floating](&self.plans[l].kernel)
            penalty += self._penalize[floating](&self.plans[l].bias)
        penalty_sum[0] += penalty
        if self.global_clipnorm > 0:
            total_sq = 0.0
            for l in range(self.n_layers):
                total_sq += self._sum_sq[floating](&self.plans[l].kernel)
                total_sq += self._sum_sq[floating](&self.plans[l].bias)
            scale = self.global_clipnorm / (sqrt(total_sq) + 1e-6)
            if scale < 1:
                for l in range(self.n_layers):
                    self._scale[floating](&self.plans[l].kernel, scale, 0.0)
                    self._scale[floating](&self.plans[l].bias, scale, 0.0)
        for l in range(self.n_layers):
            self._update[floating](&self.plans[l].kernel, learning_rate, weight_decay, step)
            self._update[floating](&self.plans[l].bias, learning_rate, weight_decay, step)
        return loss + penalty

    cdef inline floating* _layer_input(self, int l, floating* xb) noexcept nogil:
        return xb if l == 0 else <floating*>self.plans[l - 1].a

    cdef double _penalize(self, Param* q, floating dummy=0) noexcept nogil:
        if q.value == NULL or (q.l1 == 0 and q.l2 == 0):
            return 0.0
        return add_penalty_gradient(<floating*>q.value, <floating*>q.grad, q.size,
                                    q.l1, q.l2, self.n_threads)

    cdef double _sum_sq(self, Param* q, floating dummy=0) noexcept nogil:
        if q.value == NULL:
            return 0.0
        return sum_squares(<floating*>q.grad, q.size, self.n_threads)

    cdef void _scale(self, Param* q, double scale, double clipvalue,
                     floating dummy=0) noexcept nogil:
        if q.value != NULL:
            scale_and_clip(<floating*>q.grad, q.size, scale, clipvalue, self.n_threads)

    cdef void _update(self, Param* q, double learning_rate, double weight_decay,
                      long step, floating dummy=0) noexcept nogil:
        cdef double scale
        if q.value == NULL:
            return
        if self.clipnorm > 0:
            scale = self.clipnorm / (sqrt(sum_squares(<floating*>q.grad, q.size,
                                                      self.n_threads)) + 1e-6)
            if scale < 1:
                scale_and_clip(<floating*>q.grad, q.size, scale, 0.0, self.n_threads)
        if self.clipvalue > 0:
            scale_and_clip(<floating*>q.grad, q.size, 1.0, self.clipvalue, self.n_threads)
        optimizer_step(&self.config, <floating*>q.value, <floating*>q.grad,
                       <floating*>q.state1, <floating*>q.state2, <floating*>q.state3,
                       q.size, learning_rate, weight_decay * q.decay, step,
                       self.n_threads)


cdef long count_correct(int loss, floating* output, floating* targets, int* labels,
                        int n, int k) noexcept nogil:
    """Correct predictions in a batch: argmax == label (softmax), or
    (logit > 0) == (target > 0.5) per output (binary); 0 for regression."""
    cdef long correct = 0
    cdef int i, j, best
    if loss == SOFTMAX_CROSS_ENTROPY:
        for i in range(n):
            best = 0
            for j in range(1, k):
                if output[<long>i * k + j] > output[<long>i * k + best]:
                    best = j
            correct += best == labels[i]
    elif loss == BINARY_CROSS_ENTROPY:
        for i in range(n * k):
            correct += (output[i] > 0) == (targets[i] > 0.5)
    return correct
