# First-layer kernels for inputs that are mostly zeros.
#
# A Dense layer's matrix products touch kernel row r only through the input
# column x[:, r]: z = x . w sums x[i, r] * w[r, :] over r, and dw = x^T . dz
# gives row r of dw from x[:, r]. Where x[i, r] == 0 that work adds exact
# zeros, so these kernels skip it: for MNIST, whose pixels are ~81% zero, the
# first layer (80% of the net's FLOPs in 784-256-128-10) does about a fifth
# of the dense work. The results are the dense ones up to the order of the
# sums (rounding).
#
# The rows of x are kept in a compressed form, filled per batch: row i's
# non-zero entries, in column order, at index[i * stride : i * stride +
# count[i]] (their columns) and value[...] (their values); stride is the
# row width, so that any row fits and each row's place is fixed (threads
# fill their rows without any prefix sum).
from cython cimport floating
from libc.string cimport memset

from descend._dense cimport bias_activation_row

# The two loops all the work goes through, in C: the row loop (add rows of
# a matrix, each times a value, into one row) and the compression of a row
# to its non-zero entries. Each is compiled twice, portable C (SSE2 on
# x86-64) and with AVX2 + FMA, and the second is chosen at import where the
# CPU has both, as BLAS libraries choose their kernels: a wheel cannot
# assume AVX2. Measured on 1024 MNIST rows (784 -> 256, float32), AVX2 /
# portable: forward 2.8 / 4.4 ms, kernel gradient 3.4 / 5.4 ms. Other
# compilers and CPUs get the portable version only.
cdef extern from *:
    r"""
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    #define DESCEND_AVX2 1
    #else
    #define DESCEND_AVX2 0
    #endif
    #if defined(_MSC_VER)
    #define DESCEND_RESTRICT __restrict    /* MSVC's C has no C99 restrict before C11 mode */
    #else
    #define DESCEND_RESTRICT restrict
    #endif

    /* z[:n] += sum over j < m of vals[j] * w[cols[j] * n, :n], four rows of
       w per pass over z. T is float or double. */
    #define DESCEND_ADD_WEIGHTED_ROWS(T)                                        \
        int j = 0, c;                                                           \
        for (; j + 4 <= m; j += 4) {                                            \
            const T *w0 = w + (long)cols[j] * n, *w1 = w + (long)cols[j + 1] * n; \
            const T *w2 = w + (long)cols[j + 2] * n, *w3 = w + (long)cols[j + 3] * n; \
            T v0 = vals[j], v1 = vals[j + 1], v2 = vals[j + 2], v3 = vals[j + 3]; \
            for (c = 0; c < n; c++)                                             \
                z[c] += (v0 * w0[c] + v1 * w1[c]) + (v2 * w2[c] + v3 * w3[c]);  \
        }                                                                       \
        for (; j < m; j++) {                                                    \
            const T *w0 = w + (long)cols[j] * n;                                \
            T v0 = vals[j];                                                     \
            for (c = 0; c < n; c++)                                             \
                z[c] += v0 * w0[c];                                             \
        }

    #define DESCEND_SPARSE_ROW_KERNELS(T, S, ATTR)                              \
        ATTR static void descend_add_weighted_rows_##S(                         \
                const int *cols, const T *vals, int m, const T *w, int n,       \
                T *DESCEND_RESTRICT z) { DESCEND_ADD_WEIGHTED_ROWS(T) }

    DESCEND_SPARSE_ROW_KERNELS(float, f_base, )
    DESCEND_SPARSE_ROW_KERNELS(double, d_base, )
    #if DESCEND_AVX2
    DESCEND_SPARSE_ROW_KERNELS(float, f_avx2, __attribute__((target("avx2,fma"))))
    DESCEND_SPARSE_ROW_KERNELS(double, d_avx2, __attribute__((target("avx2,fma"))))
    #endif

    #if DESCEND_AVX2
    #include <immintrin.h>
    /* nonzero_entries with AVX2: 8 floats (4 doubles) compared with zero at
       once; the set bits of the mask are the non-zero lanes. != is unordered:
       a NaN counts as non-zero, as in C. */
    __attribute__((target("avx2"))) static inline unsigned descend_nonzero_mask_f(
            const float *x) {
        return (unsigned)_mm256_movemask_ps(
            _mm256_cmp_ps(_mm256_loadu_ps(x), _mm256_setzero_ps(), _CMP_NEQ_UQ));
    }
    __attribute__((target("avx2"))) static inline unsigned descend_nonzero_mask_d(
            const double *x) {
        return (unsigned)_mm256_movemask_pd(
            _mm256_cmp_pd(_mm256_loadu_pd(x), _mm256_setzero_pd(), _CMP_NEQ_UQ));
    }
    #define DESCEND_NONZERO_AVX2(T, S)                                          \
        __attribute__((target("avx2"))) static int descend_nonzero_##S##_avx2(  \
                const T *x, int n, int *index, T *value) {                      \
            const int lanes = 32 / (int)sizeof(T);                              \
            int r = 0, count = 0;                                               \
            for (; r + lanes <= n; r += lanes) {                                \
                unsigned mask = descend_nonzero_mask_##S(x + r);                \
                for (; mask; mask &= mask - 1) {                                \
                    int lane = __builtin_ctz(mask);                             \
                    index[count] = r + lane;                                    \
                    value[count++] = x[r + lane];                               \
                }                                                               \
            }                                                                   \
            for (; r < n; r++)                                                  \
                if (x[r] != 0) { index[count] = r; value[count++] = x[r]; }     \
            return count;                                                       \
        }
    DESCEND_NONZERO_AVX2(float, f)
    DESCEND_NONZERO_AVX2(double, d)
    #endif

    static int descend_sparse_avx2 = 0;    /* set once, at import */
    /* the count of non-zero entries, or -1 where AVX2 is not available */
    static int descend_nonzero_f(const float *x, int n, int *index, float *value) {
    #if DESCEND_AVX2
        if (descend_sparse_avx2) return descend_nonzero_f_avx2(x, n, index, value);
    #endif
        return -1;
    }
    static int descend_nonzero_d(const double *x, int n, int *index, double *value) {
    #if DESCEND_AVX2
        if (descend_sparse_avx2) return descend_nonzero_d_avx2(x, n, index, value);
    #endif
        return -1;
    }
    static int descend_sparse_init(void) {
    #if DESCEND_AVX2
        __builtin_cpu_init();
        descend_sparse_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #endif
        return descend_sparse_avx2;
    }
    /* the tests run both versions: off, or back on where the CPU has AVX2 */
    static int descend_sparse_use_avx2(int on) {
        descend_sparse_avx2 = 0;
        return on ? descend_sparse_init() : 0;
    }
    static void descend_add_weighted_rows_f(const int *cols, const float *vals, int m,
                                            const float *w, int n, float *z) {
    #if DESCEND_AVX2
        if (descend_sparse_avx2) { descend_add_weighted_rows_f_avx2(cols, vals, m, w, n, z); return; }
    #endif
        descend_add_weighted_rows_f_base(cols, vals, m, w, n, z);
    }
    static void descend_add_weighted_rows_d(const int *cols, const double *vals, int m,
                                            const double *w, int n, double *z) {
    #if DESCEND_AVX2
        if (descend_sparse_avx2) { descend_add_weighted_rows_d_avx2(cols, vals, m, w, n, z); return; }
    #endif
        descend_add_weighted_rows_d_base(cols, vals, m, w, n, z);
    }
    """
    int sparse_init "descend_sparse_init"() noexcept nogil
    int sparse_use_avx2 "descend_sparse_use_avx2"(int on) noexcept nogil
    int nonzero_avx2_f "descend_nonzero_f"(const float* x, int n, int* index,
                                            float* value) noexcept nogil
    int nonzero_avx2_d "descend_nonzero_d"(const double* x, int n, int* index,
                                            double* value) noexcept nogil
    void add_weighted_rows_f "descend_add_weighted_rows_f"(
        const int* cols, const float* vals, int m, const float* w, int n,
        float* z) noexcept nogil
    void add_weighted_rows_d "descend_add_weighted_rows_d"(
        const int* cols, const double* vals, int m, const double* w, int n,
        double* z) noexcept nogil

# True where the AVX2 + FMA versions of the row loops run.
USES_AVX2 = bool(sparse_init())


def _use_avx2(bint enabled):
    """Switch the AVX2 versions off (False) or back on where the CPU has
    AVX2 + FMA (True); returns whether they run now. For tests: not while
    a fit runs."""
    global USES_AVX2
    USES_AVX2 = bool(sparse_use_avx2(enabled))
    return USES_AVX2


cdef int nonzero_entries(const floating* x, int n, int* index,
                         floating* value) noexcept nogil:
    """Write the columns and values of x[0:n]'s non-zero entries, in column
    order, to index and value (room for n each); return how many."""
    cdef int r = 0, end, count
    if floating is float:
        count = nonzero_avx2_f(x, n, index, value)
    else:
        count = nonzero_avx2_d(x, n, index, value)
    if count >= 0:
        return count
    count = 0
    while r < n:
        end = min(r + 8, n)
        # a block of 8 zeros is skipped with one test (MNIST rows are mostly
        # runs of zeros): & rather than `and`, so that it is one comparison
        # of 8 lanes, not 8 branches
        if end - r == 8 and ((x[r] == 0) & (x[r + 1] == 0) & (x[r + 2] == 0)
                             & (x[r + 3] == 0) & (x[r + 4] == 0) & (x[r + 5] == 0)
                             & (x[r + 6] == 0) & (x[r + 7] == 0)):
            r = end
            continue
        while r < end:
            # no branch on x[r]: within a block zeros and non-zeros alternate
            # too often for a branch predictor
            index[count] = r
            value[count] = x[r]
            count += x[r] != 0
            r = r + 1
    return count


cdef void sparse_forward(const int* index, const floating* value, const int* count,
                         int n, int stride, const floating* w, const floating* b,
                         int n_out, floating* z, floating* a, int activation,
                         floating alpha) noexcept nogil:
    """z := x . w + b ; a := act(z) for n compressed rows of x (b may be NULL,
    a may equal z). Row i of z sums value * w[index, :] over row i's entries."""
    cdef int i
    cdef floating* zi
    for i in range(n):
        zi = z + <long>i * n_out
        memset(zi, 0, n_out * sizeof(floating))
        if floating is float:
            add_weighted_rows_f(index + <long>i * stride, value + <long>i * stride,
                                count[i], w, n_out, zi)
        else:
            add_weighted_rows_d(index + <long>i * stride, value + <long>i * stride,
                                count[i], w, n_out, zi)
        bias_activation_row(zi, a + <long>i * n_out, b, n_out, activation, alpha)


cdef void sparse_grad_kernel(const int* index, const floating* value, const int* count,
                             int n, int stride, const floating* dz, int n_out,
                             int row_begin, int row_end, floating scale, floating* out,
                             int* cursor, int* col_start, int* col_sample,
                             floating* col_value) noexcept nogil:
    """out[r, :] += scale * (x^T . dz)[r, :] for kernel rows r in
    [row_begin, row_end), x given by n compressed rows, dz (n, n_out).

    With out = dw zeroed first and scale = 1 this is the kernel's gradient;
    with out = w and scale = -learning_rate, plain SGD's update.

    The rows go in groups of GRAD_GROUP_ROWS. For each group, the columns of
    x are gathered first (the samples with a non-zero entry there, and scale
    times the entries), then out[r] adds those samples' rows of dz in one
    pass, the same loop as the forward product. Each out row sums its terms
    in sample order whatever the range: a split of the rows over threads
    gives the same bits.

    Scratch: cursor (n ints), col_start (GRAD_GROUP_ROWS + 1 ints),
    col_sample and col_value (n * GRAD_GROUP_ROWS each).
    """
    cdef int i, j, r, lo, hi, mid, group_end, slot
    cdef const int* cols
    cdef const floating* vals
    # cursor[i]: row i's first entry at or after the current group's first row
    for i in range(n):
        cols = index + <long>i * stride
        lo, hi = 0, count[i]
        while lo < hi:
            mid = (lo + hi) // 2
            if cols[mid] < row_begin:
                lo = mid + 1
            else:
                hi = mid
        cursor[i] = lo
    while row_begin < row_end:
        group_end = min(row_begin + GRAD_GROUP_ROWS, row_end)
        # count the entries per column of the group, then place them by
        # column (a counting sort; samples stay in order within a column)
        for r in range(group_end - row_begin + 1):
            col_start[r] = 0
        for i in range(n):
            cols = index + <long>i * stride
            j = cursor[i]
            while j < count[i] and cols[j] < group_end:
                col_start[cols[j] - row_begin + 1] += 1
                j = j + 1
        for r in range(group_end - row_begin):
            col_start[r + 1] += col_start[r]
        # (col_start[r] now: the first slot of column row_begin + r; it moves
        # on as the column fills, ending at the next column's first slot)
        for i in range(n):
            cols = index + <long>i * stride
            vals = value + <long>i * stride
            j = cursor[i]
            while j < count[i] and cols[j] < group_end:
                slot = col_start[cols[j] - row_begin]
                col_sample[slot] = i
                col_value[slot] = scale * vals[j]
                col_start[cols[j] - row_begin] = slot + 1
                j = j + 1
            cursor[i] = j
        slot = 0
        for r in range(row_begin, group_end):
            if floating is float:
                add_weighted_rows_f(col_sample + slot, col_value + slot,
                                    col_start[r - row_begin] - slot, dz, n_out,
                                    out + <long>r * n_out)
            else:
                add_weighted_rows_d(col_sample + slot, col_value + slot,
                                    col_start[r - row_begin] - slot, dz, n_out,
                                    out + <long>r * n_out)
            slot = col_start[r - row_begin]
        row_begin = group_end


# ---- memoryview twins (the tests) -------------------------------------------

def _compress(const floating[:, ::1] x):
    """x's rows in the compressed form: (index, value, count), stride = x's width."""
    import numpy as np
    cdef int n = x.shape[0], width = x.shape[1], i
    dtype = np.float32 if floating is float else np.float64
    index_array = np.zeros((n, max(width, 1)), dtype=np.int32)
    value_array = np.zeros((n, max(width, 1)), dtype=dtype)
    count_array = np.zeros(n, dtype=np.int32)
    cdef int[:, ::1] index = index_array
    cdef floating[:, ::1] value = value_array
    cdef int[::1] count = count_array
    with nogil:
        for i in range(n):
            count[i] = nonzero_entries(&x[i, 0], width, &index[i, 0], &value[i, 0])
    return index_array, value_array, count_array


def nonzero_entries_py(const floating[:, ::1] x not None):
    """(index, value, count) of x's rows, as the fused loop builds them: row
    i's non-zero columns are index[i, :count[i]], their values value[i, :count[i]]."""
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must have at least one row and column, got {tuple(x.shape)[:2]}")
    return _compress(x)


def sparse_forward_py(const floating[:, ::1] x not None, const floating[:, ::1] w not None,
                      const floating[::1] b, floating[:, ::1] z not None,
                      floating[:, ::1] a not None, int activation, double alpha):
    """z := x . w + b ; a := act(z), computed from x's non-zero entries only."""
    if not 0 <= activation <= 7:
        raise ValueError(f"activation code must be in 0..7, got {activation}")
    cdef int n = x.shape[0], n_in = x.shape[1], n_out = w.shape[1]
    for name, got, expected in (("w", (w.shape[0], w.shape[1]), (n_in, n_out)),
                                ("z", (z.shape[0], z.shape[1]), (n, n_out)),
                                ("a", (a.shape[0], a.shape[1]), (n, n_out))):
        if got != expected:
            raise ValueError(f"{name} has shape {got}, expected {expected}")
    if b is not None and b.shape[0] != n_out:
        raise ValueError(f"b has shape ({b.shape[0]},), expected ({n_out},)")
    if n == 0 or n_in == 0 or n_out == 0:
        raise ValueError("x, w and z must not be empty")
    index_array, value_array, count_array = _compress(x)
    cdef int[:, ::1] index = index_array
    cdef floating[:, ::1] value = value_array
    cdef int[::1] count = count_array
    with nogil:
        sparse_forward(&index[0, 0], &value[0, 0], &count[0], n, n_in, &w[0, 0],
                       &b[0] if b is not None else NULL, n_out, &z[0, 0], &a[0, 0],
                       activation, <floating>alpha)


def sparse_grad_kernel_py(const floating[:, ::1] x not None,
                          const floating[:, ::1] dz not None,
                          floating[:, ::1] out not None, row_begin, row_end,
                          double scale):
    """out[r] += scale * (x^T . dz)[r] for r in [row_begin, row_end), in place,
    from x's non-zero entries only. row_begin, row_end: ints."""
    import numpy as np
    import operator
    cdef int n = x.shape[0], n_in = x.shape[1], n_out = dz.shape[1]
    cdef int first, last
    row_begin, row_end = operator.index(row_begin), operator.index(row_end)
    if dz.shape[0] != n:
        raise ValueError(f"dz has {dz.shape[0]} rows, expected {n} (x's rows)")
    if (out.shape[0], out.shape[1]) != (n_in, n_out):
        raise ValueError(f"out has shape {(out.shape[0], out.shape[1])}, "
                         f"expected {(n_in, n_out)}")
    if not 0 <= row_begin <= row_end <= n_in:
        raise ValueError(f"rows [{row_begin}, {row_end}) must lie in [0, {n_in}]")
    if n == 0 or n_in == 0 or n_out == 0:
        raise ValueError("x, dz and out must not be empty")
    first, last = row_begin, row_end
    index_array, value_array, count_array = _compress(x)
    cdef int[:, ::1] index = index_array
    cdef floating[:, ::1] value = value_array
    cdef int[::1] count = count_array
    cdef int[::1] cursor = np.zeros(n, dtype=np.int32)
    cdef int[::1] col_start = np.zeros(GRAD_GROUP_ROWS + 1, dtype=np.int32)
    cdef int[::1] col_sample = np.zeros(n * GRAD_GROUP_ROWS, dtype=np.int32)
    cdef floating[::1] col_value = np.zeros(n * GRAD_GROUP_ROWS, dtype=value_array.dtype)
    with nogil:
        sparse_grad_kernel(&index[0, 0], &value[0, 0], &count[0], n, n_in, &dz[0, 0],
                           n_out, first, last, <floating>scale, &out[0, 0],
                           &cursor[0], &col_start[0], &col_sample[0], &col_value[0])
