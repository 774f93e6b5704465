# Dense layer kernels: forward, backward, and the dropout mask.
#
# Shapes are row-major, samples are rows: x (n, n_in), w (n_in, n_out),
# b (n_out,), z and a (n, n_out). The cdef cores take raw pointers so that the
# fused epoch loop (_train.pyx) can call them on its own buffers without the
# GIL; the def twins at the bottom take memoryviews and serve the per-layer
# Python path and the tests. One implementation, two drivers.
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

cimport numpy as cnp

from descend._blas cimport gemm
from descend._losses cimport softmax_row
from descend._activations cimport activate, derivative
from descend._contract cimport (IDENTITY, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SOFTPLUS,
                               GELU)
from descend._simd cimport AVX512, simd_use, use_isa_named

cnp.import_array()

# GEMMs are cut into blocks of this many rows of C whatever the number of
# threads: every BLAS call then sees the same operands for any n_threads, so
# results are bit-identical between n_threads=1 and 2 (BLAS picks its kernel
# by matrix size, and a different split would change the last bits).
cdef int ROWS_PER_BLOCK = 256   # sgemm: ~98 GFLOP/s at 256 rows, ~84 at 64 (1 thread)

# SERIAL: a parallel region costs ~0.6 us of CPU even with one thread (libgomp
# builds a team; measured on an Intel Xeon model 207), and the fused epoch
# calls these kernels with n_threads=1 from inside its own team some fifty
# times a batch at batch 32. So n_threads=1 runs the loop on the calling
# thread, without a region (the same iterations in the same order: the same
# bits as a team of one).


cdef void gemm_rows(bint trans_a, bint trans_b, int m, int n, int k,
                    floating alpha, const floating* a, int lda,
                    const floating* b, int ldb, floating beta,
                    floating* c, int ldc, int n_threads) noexcept nogil:
    """C := alpha * op(A) . op(B) + beta * C, in blocks of rows of C spread
    over the threads.

    Each thread calls a single-threaded BLAS GEMM on its blocks, so BLAS
    must be limited to one thread while n_threads > 1. One thread runs the
    blocks without opening a parallel region (see SERIAL below).
    """
    cdef int block
    cdef int blocks = (m + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
    if n_threads == 1 or blocks <= 1:
        for block in range(blocks):
            _gemm_block(block, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    for block in prange(blocks, num_threads=min(n_threads, blocks), schedule="static"):
        _gemm_block(block, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


cdef inline void _gemm_block(int block, bint trans_a, bint trans_b, int m, int n, int k,
                             floating alpha, const floating* a, int lda,
                             const floating* b, int ldb, floating beta,
                             floating* c, int ldc) noexcept nogil:
    """Block `block` of gemm_rows: rows [block * ROWS_PER_BLOCK, ...) of C."""
    cdef int r0 = block * ROWS_PER_BLOCK
    cdef int r1 = min(r0 + ROWS_PER_BLOCK, m)
    # row r of op(A) starts at a + r*lda, or at column r of A if transposed
    gemm(trans_a, trans_b, r1 - r0, n, k, alpha,
         a + (r0 if trans_a else <long>r0 * lda), lda, b, ldb, beta,
         c + <long>r0 * ldc, ldc)


cdef void dense_forward(const floating* x, int n, int n_in,
                        const floating* w, const floating* b, int n_out,
                        floating* z, floating* a, int activation,
                        floating alpha, int n_threads) noexcept nogil:
    """z := x . w + b ; a := act(z). b may be NULL (no bias); a may equal z.
    Blocks of ROWS_PER_BLOCK rows (dense_forward_block each) spread over the
    threads: one parallel region, and none for one thread or one block."""
    cdef int block, r0
    cdef int blocks = (n + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK
    if n_threads == 1 or blocks <= 1:
        for block in range(blocks):
            r0 = block * ROWS_PER_BLOCK
            dense_forward_block(x + <long>r0 * n_in, min(ROWS_PER_BLOCK, n - r0), n_in, w,
                                n_out, b, n_out, z + <long>r0 * n_out, a + <long>r0 * n_out,
                                activation, alpha)
        return
    for block in prange(blocks, num_threads=min(n_threads, blocks), schedule="static"):
        r0 = block * ROWS_PER_BLOCK
        dense_forward_block(x + <long>r0 * n_in, min(ROWS_PER_BLOCK, n - r0), n_in, w,
                            n_out, b, n_out, z + <long>r0 * n_out, a + <long>r0 * n_out,
                            activation, alpha)


cdef void dense_forward_block(const floating* x, int n, int n_in,
                              const floating* w, int ldw, const floating* b, int n_out,
                              floating* z, floating* a, int activation,
                              floating alpha) noexcept nogil:
    """z := x . w + b ; a := act(z) on the calling thread: one GEMM over all n
    rows (the caller cuts the blocks: the fused epoch's are the plan's, so
    that the weight matrix is packed once per block, not once per 256 rows),
    then bias and activation row by row. w's rows are ldw >= n_out apart
    (the fused epoch's padded working copies, _train.pyx). b may be NULL; a
    may equal z."""
    cdef int i
    gemm(False, False, n, n_out, n_in, <floating>1, x, n_in, w, ldw, <floating>0, z, n_out)
    if b == NULL and activation == IDENTITY and a == z:
        return
    for i in range(n):
        bias_activation_row(z + <long>i * n_out, a + <long>i * n_out, b, n_out,
                            activation, alpha)


cdef void activation_backward(const floating* z, const floating* a, floating* dz,
                              int n, int k, int activation, floating alpha,
                              int n_threads) noexcept nogil:
    """dz := dz * act'(z) elementwise (dL/da in, dL/dz out); z, a, dz are (n, k)."""
    cdef int i
    if activation == IDENTITY:
        return
    if n_threads == 1:
        activation_backward_columns(z, a, dz, n, k, k, activation, alpha)
        return
    for i in prange(n, num_threads=n_threads, schedule="static"):
        derivative_row(z + <long>i * k, a + <long>i * k, dz + <long>i * k, k,
                       activation, alpha)


cdef void activation_backward_columns(const floating* z, const floating* a, floating* dz,
                                     int n, int k, long ld, int activation,
                                     floating alpha) noexcept nogil:
    """dz := dz * act'(z) on k columns of n rows whose starts are ld apart
    (a block of columns of an (n, ld) array), on the calling thread."""
    cdef int i
    if activation == IDENTITY:
        return
    for i in range(n):
        derivative_row(z + i * ld, a + i * ld, dz + i * ld, k, activation, alpha)



# The per-row loops of the common activations (relu, identity), in C so that
# each is compiled portable / AVX2 / AVX-512 (descend/_simd.pxd); elementwise,
# so every version gives the same bits. z and a of one row may be one array.
cdef extern from *:
    r"""
    #include <string.h>
    #define DESCEND_ROW_LOOPS(T, S, ISA, ATTRIBUTE)                             \
        /* z += b (b may be NULL); a = relu(z) or z (identity); relu(NaN) is  \
           NaN (as numpy.maximum and PyTorch): a NaN is never hidden as 0 */   \
        ATTRIBUTE static void descend_bias_act_##S##_##ISA(                     \
                T *z, T *a, const T *DESCEND_RESTRICT b, int k, int relu) {     \
            int j;                                                              \
            if (b != NULL)                                                      \
                for (j = 0; j < k; j++) z[j] = z[j] + b[j];                     \
            if (relu && a == z) {                                               \
                for (j = 0; j < k; j++) z[j] = z[j] <= 0 ? 0 : z[j];            \
            } else if (relu) {                                                  \
                T *DESCEND_RESTRICT out = a;                                    \
                const T *DESCEND_RESTRICT in = z;                               \
                for (j = 0; j < k; j++) out[j] = in[j] <= 0 ? 0 : in[j];        \
            } else if (a != z) {                                                \
                memcpy(a, z, (size_t)k * sizeof(T));                            \
            }                                                                   \
        }                                                                       \
        /* dz = dz * relu'(z): 0 where z <= 0 (and where z is NaN) */          \
        ATTRIBUTE static void descend_relu_grad_##S##_##ISA(                    \
                const T *DESCEND_RESTRICT z, T *DESCEND_RESTRICT dz, int k) {   \
            int j;                                                              \
            for (j = 0; j < k; j++) dz[j] = z[j] > 0 ? dz[j] : 0;               \
        }                                                                       \
        /* sums[j] = sum over the n rows i of dz[i ld + j], i in order (the   \
           bias gradient of k columns: vectorized over j, the same bits) */    \
        ATTRIBUTE static void descend_column_sums_##S##_##ISA(                  \
                const T *DESCEND_RESTRICT dz, int n, long ld,                   \
                T *DESCEND_RESTRICT sums, int k) {                              \
            int i, j;                                                           \
            for (j = 0; j < k; j++) sums[j] = 0;                                \
            for (i = 0; i < n; i++)                                             \
                for (j = 0; j < k; j++) sums[j] += dz[i * ld + j];              \
        }
    #define DESCEND_DENSE_ROWS(ISA, ATTRIBUTE)                                  \
        DESCEND_ROW_LOOPS(float, f, ISA, ATTRIBUTE)                             \
        DESCEND_ROW_LOOPS(double, d, ISA, ATTRIBUTE)
    DESCEND_THREE_VERSIONS(DESCEND_DENSE_ROWS)
    #define descend_bias_act_f DESCEND_PICK(descend_bias_act_f)
    #define descend_bias_act_d DESCEND_PICK(descend_bias_act_d)
    #define descend_relu_grad_f DESCEND_PICK(descend_relu_grad_f)
    #define descend_relu_grad_d DESCEND_PICK(descend_relu_grad_d)
    #define descend_column_sums_f DESCEND_PICK(descend_column_sums_f)
    #define descend_column_sums_d DESCEND_PICK(descend_column_sums_d)
    """
    void bias_act_f "descend_bias_act_f"(float* z, float* a, const float* b, int k,
                                         int relu) noexcept nogil
    void bias_act_d "descend_bias_act_d"(double* z, double* a, const double* b, int k,
                                         int relu) noexcept nogil
    void relu_grad_f "descend_relu_grad_f"(const float* z, float* dz, int k) noexcept nogil
    void relu_grad_d "descend_relu_grad_d"(const double* z, double* dz, int k) noexcept nogil
    void column_sums_f "descend_column_sums_f"(const float* dz, int n, long ld, float* sums,
                                               int k) noexcept nogil
    void column_sums_d "descend_column_sums_d"(const double* dz, int n, long ld, double* sums,
                                               int k) noexcept nogil

simd_use(AVX512)


def _use_isa(str name):
    """Run the row loops of `name` ("avx512", "avx2", "portable"), or the
    widest below it this CPU has; returns the name of the loops now in use.
    For tests and benchmarks: not while a fit runs."""
    return use_isa_named(name)


# The other activations' row loops take the activation as an argument, and
# each branch of the dispatchers passes a constant: once inlined, the
# compiler drops the per-element switch (a switch on every element made these
# passes cost half as much as the GEMMs).

cdef void bias_activation_row(floating* z, floating* a, const floating* b,
                              int k, int activation, floating alpha) noexcept nogil:
    """z[j] += b[j] ; a[j] = act(z[j]) over one row of k values."""
    if activation == RELU or activation == IDENTITY:
        if floating is float:
            bias_act_f(z, a, b, k, activation == RELU)
        else:
            bias_act_d(z, a, b, k, activation == RELU)
    elif activation == SIGMOID:
        _bias_activation_row(z, a, b, k, SIGMOID, alpha)
    elif activation == TANH:
        _bias_activation_row(z, a, b, k, TANH, alpha)
    elif activation == LEAKY_RELU:
        _bias_activation_row(z, a, b, k, LEAKY_RELU, alpha)
    elif activation == ELU:
        _bias_activation_row(z, a, b, k, ELU, alpha)
    elif activation == SOFTPLUS:
        _bias_activation_row(z, a, b, k, SOFTPLUS, alpha)
    else:
        _bias_activation_row(z, a, b, k, GELU, alpha)


cdef inline void _bias_activation_row(floating* z, floating* a, const floating* b,
                                      int k, int activation,
                                      floating alpha) noexcept nogil:
    cdef int j
    cdef floating v
    for j in range(k):
        v = z[j] + b[j] if b != NULL else z[j]
        z[j] = v
        a[j] = activate(v, activation, alpha)


cdef inline void derivative_row(const floating* z, const floating* a, floating* dz,
                                int k, int activation, floating alpha) noexcept nogil:
    """dz[j] *= act'(z[j]) over one row of k values."""
    cdef int j
    if activation == RELU:
        if floating is float:
            relu_grad_f(z, dz, k)
        else:
            relu_grad_d(z, dz, k)
    elif activation == IDENTITY:
        return
    elif activation == SIGMOID:
        _derivative_row(z, a, dz, k, SIGMOID, alpha)
    elif activation == TANH:
        _derivative_row(z, a, dz, k, TANH, alpha)
    elif activation == LEAKY_RELU:
        _derivative_row(z, a, dz, k, LEAKY_RELU, alpha)
    elif activation == ELU:
        _derivative_row(z, a, dz, k, ELU, alpha)
    elif activation == SOFTPLUS:
        _derivative_row(z, a, dz, k, SOFTPLUS, alpha)
    else:
        _derivative_row(z, a, dz, k, GELU, alpha)


cdef inline void _derivative_row(const floating* z, const floating* a, floating* dz,
                                 int k, int activation, floating alpha) noexcept nogil:
    cdef int j
    for j in range(k):
        dz[j] = dz[j] * derivative(z[j], a[j], activation, alpha)


cdef void dense_grad_input(const floating* dz, int n, int n_out,
                           const floating* w, int n_in, floating* dx,
                           int n_threads) noexcept nogil:
    """dx := dz . w^T, the gradient with respect to the layer's input (n, n_in)."""
    gemm_rows(False, True, n, n_in, n_out, <floating>1, dz, n_out, w, n_out,
              <floating>0, dx, n_in, n_threads)


cdef void dense_grad_params(const floating* x, int n, int n_in,
                            const floating* dz, int n_out,
                            floating* dw, floating* db,
                            int row_begin, int row_end, int col_begin,
                            int col_end, int n_threads) noexcept nogil:
    """dw[r] := (x^T . dz)[r] for kernel rows r in [row_begin, row_end);
    db[j] := sum_i dz[i, j] for bias entries j in [col_begin, col_end)
    (skipped if db is NULL). The ranges let threads share one layer."""
    if row_end > row_begin:
        # rows of x^T are columns of x: start at column row_begin
        gemm_rows(True, False, row_end - row_begin, n_out, n, <floating>1,
                  x + row_begin, n_in, dz, n_out, <floating>0,
                  dw + <long>row_begin * n_out, n_out, n_threads)
    if db != NULL and col_end > col_begin:
        if floating is float:
            column_sums_f(dz + col_begin, n, n_out, db + col_begin, col_end - col_begin)
        else:
            column_sums_d(dz + col_begin, n, n_out, db + col_begin, col_end - col_begin)


cdef void dropout(floating* out, const floating* inp, int n, int k,
                  long first_row, double rate, uint64_t seed,
                  int n_threads) noexcept nogil:
    """out := inp * mask / (1 - rate), mask[i, j] ~ Bernoulli(1 - rate).

    Inverted dropout (Srivastava et al. 2014, scaled at training time so
    that inference is the identity). The mask is a pure function of
    (seed, (first_row + i) * k + j), where first_row is the index of row 0
    of these rows within the batch: the forward pass (on activations) and
    the backward pass (on their gradients, in place) rebuild the same mask,
    whichever thread handles which rows.
    """
    cdef int i
    cdef floating scale = <floating>(1.0 / (1.0 - rate))
    if n_threads == 1:      # SERIAL
        for i in range(n):
            _dropout_row(out + <long>i * k, inp + <long>i * k, k, (first_row + i) * k, rate,
                         seed, scale)
        return
    for i in prange(n, num_threads=n_threads, schedule="static"):
        _dropout_row(out + <long>i * k, inp + <long>i * k, k, (first_row + i) * k, rate, seed,
                     scale)


cdef inline void _dropout_row(floating* out, const floating* inp, int k, long first,
                              double rate, uint64_t seed, floating scale) noexcept nogil:
    """One row of dropout: its k entries are items first .. first + k - 1 of
    the mask's stream."""
    cdef int j
    for j in range(k):
        if descend_uniform(seed, <uint64_t>(first + j)) < rate:
            out[j] = 0
        else:
            out[j] = inp[j] * scale


# ---- memoryview twins (the Python per-layer path and the tests) ----------

cdef check_threads(int n_threads):
    """A thread count below 1 would make the OpenMP runtime abort the process."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")


cdef check_activation(int activation):
    if not 0 <= activation <= 7:
        raise ValueError(f"activation code must be in 0..7, got {activation}")


cdef check_shape(str name, tuple got, tuple expected):
    """ValueError unless an array has the shape the kernel needs (the cores
    trust their sizes: a wrong one would read or write out of bounds)."""
    if got != expected:
        raise ValueError(f"{name} has shape {got}, expected {expected}")


def dense_forward_py(const floating[:, ::1] x, const floating[:, ::1] w,
                     const floating[::1] b, floating[:, ::1] z,
                     floating[:, ::1] a, int activation, double alpha,
                     int n_threads):
    """z := x . w + b ; a := act(z), in place. b may be None."""
    check_threads(n_threads)
    check_activation(activation)
    cdef int n = x.shape[0], n_in = x.shape[1], n_out = w.shape[1]
    check_shape("w", (w.shape[0], w.shape[1]), (n_in, n_out))
    check_shape("z", (z.shape[0], z.shape[1]), (n, n_out))
    check_shape("a", (a.shape[0], a.shape[1]), (n, n_out))
    if b is not None:
        check_shape("b", (b.shape[0],), (n_out,))
    if n == 0:
        return
    with nogil:
        dense_forward(&x[0, 0], n, n_in, &w[0, 0],
                      &b[0] if b is not None else NULL, n_out,
                      &z[0, 0], &a[0, 0], activation, <floating>alpha, n_threads)


def dense_backward_py(const floating[:, ::1] x, const floating[:, ::1] w,
                      const floating[:, ::1] z, const floating[:, ::1] a,
                      floating[:, ::1] dz, floating[:, ::1] dw,
                      floating[::1] db, floating[:, ::1] dx,
                      int activation, double alpha, int n_threads):
    """Backpropagate through one Dense layer, in place.

    dz holds dL/da on entry and dL/dz = dL/da * act'(z) on exit; then
    dw := x^T . dz, db := column sums of dz (unless None), dx := dz . w^T
    (unless None, as for the first layer).
    """
    check_threads(n_threads)
    check_activation(activation)
    cdef int n = x.shape[0], n_in = x.shape[1], n_out = w.shape[1]
    check_shape("w", (w.shape[0], w.shape[1]), (n_in, n_out))
    # three calls, not a loop over (name, array) pairs: Cython typed such a
    # loop's variable differently from build to build (wheels not reproducible)
    check_shape("z", (z.shape[0], z.shape[1]), (n, n_out))
    check_shape("a", (a.shape[0], a.shape[1]), (n, n_out))
    check_shape("dz", (dz.shape[0], dz.shape[1]), (n, n_out))
    check_shape("dw", (dw.shape[0], dw.shape[1]), (n_in, n_out))
    if db is not None:
        check_shape("db", (db.shape[0],), (n_out,))
    if dx is not None:
        check_shape("dx", (dx.shape[0], dx.shape[1]), (n, n_in))
    if n == 0:
        return
    with nogil:
        activation_backward(&z[0, 0], &a[0, 0], &dz[0, 0], n, n_out, activation,
                            <floating>alpha, n_threads)
        dense_grad_params(&x[0, 0], n, n_in, &dz[0, 0], n_out, &dw[0, 0],
                          &db[0] if db is not None else NULL, 0, n_in, 0, n_out,
                          n_threads)
        if dx is not None:
            dense_grad_input(&dz[0, 0], n, n_out, &w[0, 0], n_in, &dx[0, 0], n_threads)


def dropout_py(floating[:, ::1] out, const floating[:, ::1] inp, double rate,
               unsigned long long seed, int n_threads, long first_row=0):
    """out := inp * mask / (1 - rate) for the mask given by seed (in place ok);
    row 0 of inp is row `first_row` of its batch (the mask is keyed by the
    row's index in the batch, so a rank's share of a batch gets the rows'
    one-process masks)."""
    if first_row < 0:
        raise ValueError(f"first_row must be >= 0, got {first_row}")
    check_threads(n_threads)
    check_shape("out", (out.shape[0], out.shape[1]), (inp.shape[0], inp.shape[1]))
    if not 0 <= rate < 1:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    if inp.shape[0] == 0:
        return
    with nogil:
        dropout(&out[0, 0], &inp[0, 0], inp.shape[0], inp.shape[1], first_row, rate,
                seed, n_threads)


def dropout_seed_py(unsigned long long epoch_seed, long batch, long layer):
    """Seed of the dropout mask of (batch, layer) within an epoch."""
    return descend_mix(descend_mix(epoch_seed, <uint64_t>batch), <uint64_t>layer)


def activation_forward_py(const floating[:, ::1] z, floating[:, ::1] a,
                          int activation, double alpha):
    """a := act(z) elementwise (for tests and element timing)."""
    check_activation(activation)
    cdef Py_ssize_t i, j
    check_shape("a", (a.shape[0], a.shape[1]), (z.shape[0], z.shape[1]))
    with nogil:
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                a[i, j] = activate(z[i, j], activation, <floating>alpha)


def activation_derivative_py(const floating[:, ::1] z, const floating[:, ::1] a,
                             floating[:, ::1] d, int activation, double alpha):
    """d := act'(z) elementwise, given a = act(z)."""
    check_activation(activation)
    cdef Py_ssize_t i, j
    check_shape("a", (a.shape[0], a.shape[1]), (z.shape[0], z.shape[1]))
    check_shape("d", (d.shape[0], d.shape[1]), (z.shape[0], z.shape[1]))
    with nogil:
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                d[i, j] = derivative(z[i, j], a[i, j], activation, <floating>alpha)


def gemm_row_blocks_py(const floating[:, ::1] x not None, const floating[:, ::1] w not None,
                       floating[:, ::1] z not None, int rows):
    """z[i:i+rows] := x[i:i+rows] . w for each block of `rows` rows, one
    single-threaded BLAS call per block, all in one compiled loop: how the
    fused epoch's phase A calls BLAS (descend.plans times it to choose the
    block size). BLAS should be limited to one thread."""
    cdef int n = x.shape[0], n_in = x.shape[1], n_out = w.shape[1], r0
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    check_shape("w", (w.shape[0], w.shape[1]), (n_in, n_out))
    check_shape("z", (z.shape[0], z.shape[1]), (n, n_out))
    if n == 0 or n_in == 0 or n_out == 0:
        return
    with nogil:
        r0 = 0
        while r0 < n:
            gemm(False, False, min(rows, n - r0), n_out, n_in, <floating>1,
                 &x[r0, 0], n_in, &w[0, 0], n_out, <floating>0, &z[r0, 0], n_out)
            r0 = r0 + rows


# ---- inference: the whole forward pass in one call (Sequential.predict) ----

cdef enum:
    LINK_IDENTITY = 0
    LINK_SIGMOID = 1
    LINK_SOFTMAX = 2


cdef int _columns(object array):
    """Columns of a 2-D ndarray; 0 for anything else."""
    if type(array) is not cnp.ndarray or cnp.PyArray_NDIM(<cnp.ndarray>array) != 2:
        return 0
    return (<cnp.ndarray>array).shape[1]


cdef bint _rows_of(object array, int dtype_num, int n, int k):
    """array is a C-contiguous (n, k) ndarray of the dtype (k >= 1; n < 0: any n)."""
    if type(array) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>array
    return (cnp.PyArray_TYPE(a) == dtype_num and cnp.PyArray_NDIM(a) == 2
            and cnp.PyArray_IS_C_CONTIGUOUS(a) and (n < 0 or a.shape[0] == n)
            and a.shape[1] == k and k >= 1)


cdef bint _vector_of(object array, int dtype_num, int k):
    """array is a contiguous (k,) ndarray of the dtype."""
    if type(array) is not cnp.ndarray:
        return False
    cdef cnp.ndarray a = <cnp.ndarray>array
    return (cnp.PyArray_TYPE(a) == dtype_num and cnp.PyArray_NDIM(a) == 1
            and cnp.PyArray_IS_C_CONTIGUOUS(a) and a.shape[0] == k)


cdef long non_finite(const floating* v, long size) noexcept nogil:
    """How many of v[0 .. size) are NaN or infinite (x - x is 0 only for
    finite x; an integer count vectorizes, a float sum would not)."""
    cdef long i, bad = 0
    for i in range(size):
        bad += (v[i] - v[i]) != 0
    return bad


cdef int forward_dtype(x, tuple kernels, tuple biases, tuple activations, tuple alphas,
                       int link):
    """The dtype number (NPY_FLOAT32 or NPY_FLOAT64) of a forward pass whose
    arguments fit together (see forward_rows_py), or -1 where they do not."""
    cdef int n_layers = len(kernels)
    if (n_layers == 0 or len(biases) != n_layers or len(activations) != n_layers
            or len(alphas) != n_layers or not 0 <= link <= 2 or type(x) is not cnp.ndarray):
        return -1
    cdef int dtype_num = cnp.PyArray_TYPE(<cnp.ndarray>x)
    if dtype_num != cnp.NPY_FLOAT32 and dtype_num != cnp.NPY_FLOAT64:
        return -1
    cdef int i, width = _columns(x)
    if width < 1 or not _rows_of(x, dtype_num, -1, width) or (<cnp.ndarray>x).shape[0] < 1:
        return -1
    for i in range(n_layers):
        w = kernels[i]
        if (not _rows_of(w, dtype_num, width, _columns(w))
                or not (biases[i] is None or _vector_of(biases[i], dtype_num, _columns(w)))
                or not 0 <= activations[i] <= 7):
            return -1
        width = _columns(w)
    return dtype_num


def forward_rows_py(x, tuple kernels, tuple biases, tuple activations, tuple alphas,
                    int link, int n_threads):
    """The network's output after its link, for the rows of x, in one call.

    Each block of ROWS_PER_BLOCK rows goes through every layer (z := x . w
    + b and a := act(z) by the cores of ``dense_forward``) and the link (0
    none, 1 sigmoid, 2 softmax by ``softmax_row``) on one thread; the blocks
    are spread over the team in one parallel region. The per-layer path cuts
    its GEMMs into the same blocks, so the bits are the same; one region
    instead of two per layer means one wait for the team, not six, on a
    loaded machine, and one call instead of a Python loop over the layers
    makes a one-sample predict ~10x faster.

    x (n, n_in) and the kernels (n_in, n_out): C-contiguous float32 or
    float64 ndarrays of one dtype; biases (n_out,) or None; activations
    the kernels' codes, alphas their parameters. Returns None when an input
    or output value is not finite (the caller's full path then raises), or
    when the arrays do not fit together (the caller's checks say why). BLAS
    must be limited to one thread.
    """
    cdef int dtype_num = forward_dtype(x, kernels, biases, activations, alphas, link)
    if dtype_num < 0 or n_threads < 1:
        return None
    cdef int n_layers = len(kernels)
    n = (<cnp.ndarray>x).shape[0]
    # every layer's output for all rows: the blocks write their own rows
    outputs = [cnp.PyArray_EMPTY(2, [n, _columns(w)], dtype_num, 0) for w in kernels]
    if dtype_num == cnp.NPY_FLOAT32:
        bad = _forward_rows[float](x, kernels, biases, activations, alphas, outputs, link,
                                   n_threads)
    else:
        bad = _forward_rows[double](x, kernels, biases, activations, alphas, outputs, link,
                                    n_threads)
    return None if bad else outputs[n_layers - 1]     # (no wraparound: not [-1])


cdef struct LayerRef:
    const void* kernel      # (n_in, n_out)
    const void* bias        # (n_out,) or NULL
    void* out               # (n, n_out): this layer's output for all rows
    int n_out
    int activation
    double alpha


cdef long _forward_rows(cnp.ndarray x, tuple kernels, tuple biases, tuple activations,
                        tuple alphas, list outputs, int link, int n_threads,
                        floating dummy=0) except -1:
    """forward_rows_py's work on arrays it has checked: the count of
    non-finite inputs and outputs."""
    cdef int n = x.shape[0], n_layers = len(kernels), n_in = x.shape[1], i
    cdef int blocks = (n + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK, block
    cdef long bad = 0
    cdef LayerRef* refs = <LayerRef*>malloc(n_layers * sizeof(LayerRef))
    if refs == NULL:
        raise MemoryError()
    for i in range(n_layers):
        refs[i].kernel = cnp.PyArray_DATA(<cnp.ndarray>kernels[i])
        refs[i].bias = (NULL if biases[i] is None else
                        cnp.PyArray_DATA(<cnp.ndarray>biases[i]))
        refs[i].out = cnp.PyArray_DATA(<cnp.ndarray>outputs[i])
        refs[i].n_out = (<cnp.ndarray>kernels[i]).shape[1]
        refs[i].activation = activations[i]
        refs[i].alpha = alphas[i]
    cdef const floating* x_data = <const floating*>cnp.PyArray_DATA(x)
    with nogil:
        if blocks == 1 or n_threads == 1:     # no team to start
            for block in range(blocks):
                bad += _forward_block(x_data, n, n_in, block, refs, n_layers, link)
        else:
            for block in prange(blocks, num_threads=min(n_threads, blocks), schedule="static"):
                bad += _forward_block(x_data, n, n_in, block, refs, n_layers, link)
    free(refs)
    return bad


cdef long _forward_block(const floating* x, int n, int n_in, int block, const LayerRef* refs,
                         int n_layers, int link) noexcept nogil:
    """Rows [block * ROWS_PER_BLOCK, ...) of x through every layer and the
    link; the count of non-finite inputs and outputs of these rows."""
    cdef int r0 = block * ROWS_PER_BLOCK, rows = min(ROWS_PER_BLOCK, n - r0), i, n_out = 0
    cdef long bad = non_finite(x + <long>r0 * n_in, <long>rows * n_in)
    cdef const floating* a_in = x + <long>r0 * n_in
    cdef floating* z = NULL
    for i in range(n_layers):
        n_out = refs[i].n_out
        z = <floating*>refs[i].out + <long>r0 * n_out
        # one block of <= ROWS_PER_BLOCK rows on this thread (no nested team),
        # in place: the per-layer path's blocks, so the same bits
        dense_forward_block(a_in, rows, n_in, <const floating*>refs[i].kernel, n_out,
                            <const floating*>refs[i].bias, n_out, z, z, refs[i].activation,
                            <floating>refs[i].alpha)
        a_in = z
        n_in = n_out
    apply_link(z, rows, n_out, link)
    return bad + non_finite(z, <long>rows * n_out)


cdef void apply_link(floating* z, int rows, int n_out, int link) noexcept nogil:
    """z (rows, n_out) := link(z) in place: 0 none, 1 sigmoid, 2 softmax per row."""
    cdef int r
    cdef long j
    if link == LINK_SOFTMAX:
        for r in range(rows):
            softmax_row(z + <long>r * n_out, z + <long>r * n_out, n_out)
    elif link == LINK_SIGMOID:
        for j in range(<long>rows * n_out):
            z[j] = activate(z[j], SIGMOID, <floating>0)
