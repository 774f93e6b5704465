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
# The kernels take the rows of x as they are (dense, as the epoch copies a
# batch) and find the non-zero entries as they go, in the form each loop
# wants: the forward (sparse_rows_forward) the union of four rows'
# non-zero columns (one row's, where the CPU has no four-row loop); the
# kernel gradient (sparse_grad_kernel) reads 16 columns of every row at a
# time and lists, per four columns (per column), the samples that have an
# entry there. (Compressing each row first, and searching those lists per
# group of kernel rows in the gradient, cost about as much as the
# gradient's row loop.)
from cython cimport floating
from libc.string cimport memcpy, memset
from cython.parallel cimport prange, threadid

from descend._blas cimport gemm

cimport numpy as cnp
from libc.stdlib cimport free, malloc
from libc.stdint cimport intptr_t, uint64_t

from descend._dense cimport apply_link, bias_activation_row, forward_dtype, non_finite
from descend._simd cimport PORTABLE, AVX2, AVX512, cpu_has

cnp.import_array()

# The two loops all the work goes through, in C: the row loop (add rows of
# a matrix, each times a value, into one row) and the compression of a row
# to its non-zero entries. Each is compiled three times: portable C (SSE2 on
# x86-64), AVX2 + FMA, and AVX-512 (F); the widest the CPU has is chosen at
# import, as BLAS libraries choose their kernels (a wheel cannot assume any
# of them, and the build uses no -march flag). The wide versions are
# written with intrinsics, so that MSVC (which does not vectorize for an ISA
# it was not told to target) dispatches them too; GCC and Clang get the
# ISA per function with a target attribute.
#
# The AVX2 and AVX-512 row loops compute every element the same way, a
# chain of fused multiply-adds z = fma(v_j, w_j, z) in j order, in
# registers (lanes are independent): they give the same bits, so a plan
# pinned on one CPU reproduces on the other. The portable loop rounds each
# product (no FMA) and sums four rows per pass: it agrees to rounding.
# Measured on 1024 MNIST rows (784 -> 256, float32, 1 thread), forward /
# kernel gradient: AMD EPYC, autovectorized AVX2 / portable: 2.8 / 4.4 ms and
# 3.4 / 5.4 ms; Intel Xeon (Sapphire Rapids class), see plans.py's profile.
cdef extern from *:
    r"""
    /* ---- portable: z[:n] += sum over j < m of vals[j] * w[cols[j] * n, :n],
       four rows of w per pass over z. T is float or double. */
    #define DESCEND_ROWS_PORTABLE(T, S)                                         \
        static void descend_rows_##S##_portable(const int *cols, const T *vals, \
                int m, const T *w, int n, T *DESCEND_RESTRICT z) {              \
            int j = 0, c;                                                       \
            for (; j + 4 <= m; j += 4) {                                        \
                const T *w0 = w + (long)cols[j] * n, *w1 = w + (long)cols[j + 1] * n; \
                const T *w2 = w + (long)cols[j + 2] * n, *w3 = w + (long)cols[j + 3] * n; \
                T v0 = vals[j], v1 = vals[j + 1], v2 = vals[j + 2], v3 = vals[j + 3]; \
                for (c = 0; c < n; c++)                                         \
                    z[c] += (v0 * w0[c] + v1 * w1[c]) + (v2 * w2[c] + v3 * w3[c]); \
            }                                                                   \
            for (; j < m; j++) {                                                \
                const T *w0 = w + (long)cols[j] * n;                            \
                T v0 = vals[j];                                                 \
                for (c = 0; c < n; c++)                                         \
                    z[c] += v0 * w0[c];                                         \
            }                                                                   \
        }
    DESCEND_ROWS_PORTABLE(float, f)
    DESCEND_ROWS_PORTABLE(double, d)

    /* ---- portable: the per-sample SGD step on the rows where the input is
       non-zero, w[cols[j] * n, :n] += (scale * vals[j]) * dz[:n] (the product
       rounded, then the sum) */
    #define DESCEND_UPDATE_PORTABLE(T, S)                                       \
        static void descend_update_##S##_portable(const int *cols, const T *vals, \
                int m, T scale, const T *dz, int n, T *DESCEND_RESTRICT w) {    \
            int j, c;                                                           \
            for (j = 0; j < m; j++) {                                           \
                T *row = w + (long)cols[j] * n;                                 \
                const T v = scale * vals[j];                                    \
                for (c = 0; c < n; c++)                                         \
                    row[c] += v * dz[c];                                        \
            }                                                                   \
        }
    DESCEND_UPDATE_PORTABLE(float, f)
    DESCEND_UPDATE_PORTABLE(double, d)

    static int descend_nonzero_f_portable(const float *x, int n, int *index, float *value) {
        (void)x; (void)n; (void)index; (void)value; return -1;   /* the Cython loop */
    }
    static int descend_nonzero_d_portable(const double *x, int n, int *index, double *value) {
        (void)x; (void)n; (void)index; (void)value; return -1;
    }

    #if DESCEND_X86
    /* ---- wide row loops: the columns of z in blocks of K vectors held in
       registers (K independent FMA chains hide the FMA latency) while every
       row j adds into them; then single vectors; then the tail (masked
       lanes with AVX-512, scalar fma with AVX2: the same rounding). */
    #define DESCEND_ROWS_BLOCK(V, LANES, K, LOAD, STORE, SET1, FMA)             \
        for (; c + (K) * (LANES) <= n; c += (K) * (LANES)) {                    \
            V acc[K]; int k, j;                                                 \
            for (k = 0; k < (K); k++) acc[k] = LOAD(z + c + k * (LANES));       \
            for (j = 0; j < m; j++) {                                           \
                const V v = SET1(vals[j]);                                      \
                const_row = w + (long)cols[j] * n + c;                          \
                for (k = 0; k < (K); k++)                                       \
                    acc[k] = FMA(v, LOAD(const_row + k * (LANES)), acc[k]);     \
            }                                                                   \
            for (k = 0; k < (K); k++) STORE(z + c + k * (LANES), acc[k]);       \
        }

    #define DESCEND_ROWS_WIDE(T, S, ISA, TARGET, V, LANES, LOAD, STORE, SET1, FMA, TAIL) \
        DESCEND_TARGET(TARGET) static void descend_rows_##S##_##ISA(            \
                const int *cols, const T *vals, int m, const T *w, int n,       \
                T *DESCEND_RESTRICT z) {                                        \
            int c = 0;                                                          \
            const T *const_row;                                                 \
            DESCEND_ROWS_BLOCK(V, LANES, 8, LOAD, STORE, SET1, FMA)             \
            DESCEND_ROWS_BLOCK(V, LANES, 1, LOAD, STORE, SET1, FMA)             \
            TAIL(T, S)                                                          \
        }

    /* AVX2: scalar fma for the last columns (fmaf: one rounding, as the lanes) */
    #define DESCEND_TAIL_SCALAR(T, S)                                           \
        for (; c < n; c++) {                                                    \
            T acc = z[c]; int j;                                                \
            for (j = 0; j < m; j++)                                             \
                acc = DESCEND_FMA_##S(vals[j], w[(long)cols[j] * n + c], acc);  \
            z[c] = acc;                                                         \
        }
    #define DESCEND_FMA_f fmaf
    #define DESCEND_FMA_d fma
    DESCEND_ROWS_WIDE(float, f, avx2, "avx2,fma", __m256, 8, _mm256_loadu_ps,
                      _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps, DESCEND_TAIL_SCALAR)
    DESCEND_ROWS_WIDE(double, d, avx2, "avx2,fma", __m256d, 4, _mm256_loadu_pd,
                      _mm256_storeu_pd, _mm256_set1_pd, _mm256_fmadd_pd, DESCEND_TAIL_SCALAR)

    /* AVX-512: the last columns as one masked vector */
    #define DESCEND_TAIL_MASKED_f(T, S)                                         \
        if (c < n) {                                                            \
            __mmask16 mask = (__mmask16)((1u << (n - c)) - 1); int j;           \
            __m512 acc = _mm512_maskz_loadu_ps(mask, z + c);                    \
            for (j = 0; j < m; j++)                                             \
                acc = _mm512_fmadd_ps(_mm512_set1_ps(vals[j]), _mm512_maskz_loadu_ps( \
                    mask, w + (long)cols[j] * n + c), acc);                     \
            _mm512_mask_storeu_ps(z + c, mask, acc);                            \
        }
    #define DESCEND_TAIL_MASKED_d(T, S)                                         \
        if (c < n) {                                                            \
            __mmask8 mask = (__mmask8)((1u << (n - c)) - 1); int j;             \
            __m512d acc = _mm512_maskz_loadu_pd(mask, z + c);                   \
            for (j = 0; j < m; j++)                                             \
                acc = _mm512_fmadd_pd(_mm512_set1_pd(vals[j]), _mm512_maskz_loadu_pd( \
                    mask, w + (long)cols[j] * n + c), acc);                     \
            _mm512_mask_storeu_pd(z + c, mask, acc);                            \
        }
    DESCEND_ROWS_WIDE(float, f, avx512, "avx512f", __m512, 16, _mm512_loadu_ps,
                      _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps, DESCEND_TAIL_MASKED_f)
    DESCEND_ROWS_WIDE(double, d, avx512, "avx512f", __m512d, 8, _mm512_loadu_pd,
                      _mm512_storeu_pd, _mm512_set1_pd, _mm512_fmadd_pd, DESCEND_TAIL_MASKED_d)

    /* ---- wide per-sample SGD steps: every element one fused multiply-add,
       w = fma(scale * vals[j], dz, w) (BLAS's axpy's rounding), so that AVX2
       and AVX-512 give the same bits; the last columns by scalar fma (AVX2)
       or one masked vector (AVX-512). dz stays in L1 from row to row. */
    #define DESCEND_UPDATE_WIDE(T, S, ISA, TARGET, V, LANES, LOAD, STORE, SET1, FMA, TAIL) \
        DESCEND_TARGET(TARGET) static void descend_update_##S##_##ISA(          \
                const int *cols, const T *vals, int m, T scale, const T *dz, int n, \
                T *DESCEND_RESTRICT w) {                                        \
            int j, c;                                                           \
            for (j = 0; j < m; j++) {                                           \
                T *row = w + (long)cols[j] * n;                                 \
                const T v = scale * vals[j];                                    \
                const V vv = SET1(v);                                           \
                for (c = 0; c + (LANES) <= n; c += (LANES))                     \
                    STORE(row + c, FMA(vv, LOAD(dz + c), LOAD(row + c)));       \
                TAIL(T, S)                                                      \
            }                                                                   \
        }
    #define DESCEND_UPDATE_TAIL_SCALAR(T, S)                                    \
        for (; c < n; c++)                                                      \
            row[c] = DESCEND_FMA_##S(v, dz[c], row[c]);
    #define DESCEND_UPDATE_TAIL_MASKED_f(T, S)                                  \
        if (c < n) {                                                            \
            __mmask16 mask = (__mmask16)((1u << (n - c)) - 1);                  \
            _mm512_mask_storeu_ps(row + c, mask, _mm512_fmadd_ps(vv,            \
                _mm512_maskz_loadu_ps(mask, dz + c), _mm512_maskz_loadu_ps(mask, row + c))); \
        }
    #define DESCEND_UPDATE_TAIL_MASKED_d(T, S)                                  \
        if (c < n) {                                                            \
            __mmask8 mask = (__mmask8)((1u << (n - c)) - 1);                    \
            _mm512_mask_storeu_pd(row + c, mask, _mm512_fmadd_pd(vv,            \
                _mm512_maskz_loadu_pd(mask, dz + c), _mm512_maskz_loadu_pd(mask, row + c))); \
        }
    DESCEND_UPDATE_WIDE(float, f, avx2, "avx2,fma", __m256, 8, _mm256_loadu_ps,
                        _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps,
                        DESCEND_UPDATE_TAIL_SCALAR)
    DESCEND_UPDATE_WIDE(double, d, avx2, "avx2,fma", __m256d, 4, _mm256_loadu_pd,
                        _mm256_storeu_pd, _mm256_set1_pd, _mm256_fmadd_pd,
                        DESCEND_UPDATE_TAIL_SCALAR)
    DESCEND_UPDATE_WIDE(float, f, avx512, "avx512f", __m512, 16, _mm512_loadu_ps,
                        _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps,
                        DESCEND_UPDATE_TAIL_MASKED_f)
    DESCEND_UPDATE_WIDE(double, d, avx512, "avx512f", __m512d, 8, _mm512_loadu_pd,
                        _mm512_storeu_pd, _mm512_set1_pd, _mm512_fmadd_pd,
                        DESCEND_UPDATE_TAIL_MASKED_d)

    /* ---- compress-stores: the lanes of v where mask is set, packed to
       dst. Compressed in a register, then a masked store of the first
       popcount(mask) lanes, not the memory form of vcompress: AMD Zen 4
       runs that as microcode, about a hundred cycles each (it took 87% of
       the per-sample path's non-zero scan on an AMD EPYC family 25 model
       17), where the register form costs a few cycles on every AVX-512 CPU. */
    #define DESCEND_COMPRESS(NAME, T, V, MASK, COMPRESS, MSTORE)                \
        DESCEND_TARGET("avx512f") static inline void NAME(T *dst, MASK mask, V v) { \
            MSTORE(dst, (MASK)((1u << descend_popcount((unsigned)mask)) - 1u),  \
                   COMPRESS(mask, v));                                          \
        }
    DESCEND_COMPRESS(descend_compress_ps, float, __m512, __mmask16,
                     _mm512_maskz_compress_ps, _mm512_mask_storeu_ps)
    DESCEND_COMPRESS(descend_compress_pd, double, __m512d, __mmask8,
                     _mm512_maskz_compress_pd, _mm512_mask_storeu_pd)
    DESCEND_COMPRESS(descend_compress_epi32, int, __m512i, __mmask16,
                     _mm512_maskz_compress_epi32, _mm512_mask_storeu_epi32)
    DESCEND_COMPRESS(descend_compress_epi64, unsigned short, __m512i, __mmask8,
                     _mm512_maskz_compress_epi64, _mm512_mask_storeu_epi64)

    /* ---- four rows at once (AVX-512): z[s, :n] += sum over
       j < m with bit s of bits[j] set of vals[s * stride + j * step] * w[cols[j] * n, :n],
       for s < 4 (z rows ldz apart), where masks[4 * j + s] is all ones when
       row s has an entry in column j and 0 when not (the values: each row's
       together, step 1, as the union below gives them, or each entry's four
       together, stride 1, as the kernel gradient's buckets). cols are the union of
       the four rows' non-zero columns, in order (descend_union4_*); each
       loaded vector of w serves the four rows, so the rows of w come from
       L2 a quarter as often as in the one-row loop. A row without an entry
       in column j leaves its lanes as they are (masked FMA): every element
       of z gets the one-row loop's chain of FMAs, in the same order, hence
       its bits. (The masks are loaded, not computed, so that the mask
       moves do not take the FMA port.) */
    #define DESCEND_ROWS4(T, S, V, LANES, MASK, LOADZ, STORE, SET1, MFMA, MLOADZ, MSTORE) \
        DESCEND_TARGET("avx512f") static void descend_rows4_##S##_avx512(       \
                const int *cols, const T *vals, long stride, long step,         \
                const unsigned short *masks,                                    \
                int m, const T *w, int n, T *z, long ldz) {                     \
            int c = 0, j, s, k;                                                 \
            for (; c + 4 * (LANES) <= n; c += 4 * (LANES)) {                    \
                V acc[4][4];                                                    \
                for (s = 0; s < 4; s++)                                         \
                    for (k = 0; k < 4; k++)                                     \
                        acc[s][k] = LOADZ(z + s * ldz + c + k * (LANES));       \
                for (j = 0; j < m; j++) {                                       \
                    const T *row = w + (long)cols[j] * n + c;                   \
                    V w0 = LOADZ(row), w1 = LOADZ(row + (LANES));               \
                    V w2 = LOADZ(row + 2 * (LANES)), w3 = LOADZ(row + 3 * (LANES)); \
                    for (s = 0; s < 4; s++) {                                   \
                        const MASK on = (MASK)masks[4 * j + s];                 \
                        const V v = SET1(vals[s * stride + j * step]);          \
                        acc[s][0] = MFMA(v, w0, acc[s][0], on);                 \
                        acc[s][1] = MFMA(v, w1, acc[s][1], on);                 \
                        acc[s][2] = MFMA(v, w2, acc[s][2], on);                 \
                        acc[s][3] = MFMA(v, w3, acc[s][3], on);                 \
                    }                                                           \
                }                                                               \
                for (s = 0; s < 4; s++)                                         \
                    for (k = 0; k < 4; k++)                                     \
                        STORE(z + s * ldz + c + k * (LANES), acc[s][k]);        \
            }                                                                   \
            for (; c < n; c += (LANES)) {                                       \
                /* single vectors, the last one masked to the columns left */  \
                const MASK cols_left = n - c >= (LANES) ? (MASK)~0u             \
                    : (MASK)((1u << (n - c)) - 1);                              \
                V acc[4];                                                       \
                for (s = 0; s < 4; s++)                                         \
                    acc[s] = MLOADZ(cols_left, z + s * ldz + c);                \
                for (j = 0; j < m; j++) {                                       \
                    const V w0 = MLOADZ(cols_left, w + (long)cols[j] * n + c);  \
                    for (s = 0; s < 4; s++)                                     \
                        acc[s] = MFMA(SET1(vals[s * stride + j * step]), w0, acc[s], \
                                      (MASK)masks[4 * j + s]);                  \
                }                                                               \
                for (s = 0; s < 4; s++)                                         \
                    MSTORE(z + s * ldz + c, cols_left, acc[s]);                 \
            }                                                                   \
        }
    DESCEND_ROWS4(float, f, __m512, 16, __mmask16, _mm512_loadu_ps, _mm512_storeu_ps,
                  _mm512_set1_ps, _mm512_mask3_fmadd_ps, _mm512_maskz_loadu_ps,
                  _mm512_mask_storeu_ps)
    DESCEND_ROWS4(double, d, __m512d, 8, __mmask8, _mm512_loadu_pd, _mm512_storeu_pd,
                  _mm512_set1_pd, _mm512_mask3_fmadd_pd, _mm512_maskz_loadu_pd,
                  _mm512_mask_storeu_pd)

    /* masks[4 * j + s] for the chunk's union columns j (the set bits of
       `any`, `lanes` <= 16 columns; row s's bits in on[s]) at once: each
       column's four 16-bit masks are one 64-bit lane, compressed as
       its columns are; returns how many. (One column at a time, the four
       stores per column took most of the union's time.) */
    DESCEND_TARGET("avx512f") static inline int descend_union4_masks(
            const unsigned on[4], unsigned any, int lanes, unsigned short *masks) {
        const __m512i low = _mm512_set1_epi32(0xFFFF), high = _mm512_set1_epi32((int)0xFFFF0000u);
        int stored;
        /* per column (32-bit lane): rows 0 and 1, rows 2 and 3 */
        __m512i rows01 = _mm512_or_si512(_mm512_maskz_mov_epi32((__mmask16)on[0], low),
                                         _mm512_maskz_mov_epi32((__mmask16)on[1], high));
        __m512i rows23 = _mm512_or_si512(_mm512_maskz_mov_epi32((__mmask16)on[2], low),
                                         _mm512_maskz_mov_epi32((__mmask16)on[3], high));
        /* columns 0-7 and 8-15, each [rows 0-1, rows 2-3] in a 64-bit lane */
        __m512i first = _mm512_permutex2var_epi32(rows01, _mm512_setr_epi32(
            0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), rows23);
        descend_compress_epi64(masks, (__mmask8)(any & 0xFFu), first);
        stored = descend_popcount(any & 0xFFu);
        if (lanes == 16 && (any >> 8)) {
            __m512i second = _mm512_permutex2var_epi32(rows01, _mm512_setr_epi32(
                8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31), rows23);
            descend_compress_epi64(masks + 4 * stored, (__mmask8)(any >> 8), second);
            stored += descend_popcount(any >> 8);
        }
        return stored;
    }
    /* ---- the input of the four-row loop: the columns where any of `rows`
       (<= 4) rows of a (rows, n) is non-zero (a NaN counts), in order, to
       cols; row s's entries there to vals[s * n + j] (0 where it has none,
       and for s >= rows), masks[4 * j + s] as above. Returns how many. */
    #define DESCEND_UNION4(T, S, V, LANES, MASK, LOADU, CMP, COMPRESS, COLUMNS) \
        DESCEND_TARGET("avx512f") static int descend_union4_##S##_avx512(       \
                const T *a, int rows, int n, int *cols, T *vals,                \
                unsigned short *masks) {                                        \
            int r = 0, count = 0, s;                                            \
            __m512i columns = COLUMNS;                                          \
            const __m512i step = _mm512_set1_epi32(LANES);                      \
            for (; r + (LANES) <= n; r += (LANES)) {                            \
                V v[4]; MASK on[4], any = 0;                                    \
                for (s = 0; s < 4; s++) {                                       \
                    v[s] = s < rows ? LOADU(a + (long)s * n + r) : CMP##_ZERO;  \
                    on[s] = s < rows ? CMP(v[s]) : 0;                           \
                    any |= on[s];                                               \
                }                                                               \
                if (any) {                                                      \
                    descend_compress_epi32(cols + count, (__mmask16)any, columns);         \
                    for (s = 0; s < 4; s++)                                     \
                        COMPRESS(vals + (long)s * n + count, any, v[s]);        \
                    const unsigned on_rows[4] = {on[0], on[1], on[2], on[3]};   \
                    count += descend_union4_masks(on_rows, any, LANES,          \
                                                  masks + 4 * count);           \
                }                                                               \
                columns = _mm512_add_epi32(columns, step);                      \
            }                                                                   \
            for (; r < n; r++) {                                                \
                int hit = 0;                                                    \
                for (s = 0; s < rows; s++) hit |= a[(long)s * n + r] != 0;      \
                if (!hit) continue;                                             \
                cols[count] = r;                                                \
                for (s = 0; s < 4; s++) {                                       \
                    T value = s < rows ? a[(long)s * n + r] : 0;                \
                    vals[(long)s * n + count] = value;                          \
                    masks[4 * count + s] = (unsigned short)(value != 0 ? 0xFFFFu : 0u); \
                }                                                               \
                count++;                                                        \
            }                                                                   \
            return count;                                                       \
        }
    #define DESCEND_CMP_F(v) _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ)
    #define DESCEND_CMP_F_ZERO _mm512_setzero_ps()
    #define DESCEND_CMP_D(v) _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_NEQ_UQ)
    #define DESCEND_CMP_D_ZERO _mm512_setzero_pd()
    DESCEND_UNION4(float, f, __m512, 16, __mmask16, _mm512_loadu_ps, DESCEND_CMP_F,
                   descend_compress_ps,
                   _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))
    DESCEND_UNION4(double, d, __m512d, 8, __mmask8, _mm512_loadu_pd, DESCEND_CMP_D,
                   descend_compress_pd,
                   _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0))

    /* ---- compression with AVX2: 8 floats (4 doubles) compared with zero at
       once; the set bits of the mask are the non-zero lanes. != is
       unordered: a NaN counts as non-zero, as in C. */
    DESCEND_TARGET("avx2") static unsigned descend_mask_f_avx2(const float *x) {
        return (unsigned)_mm256_movemask_ps(
            _mm256_cmp_ps(_mm256_loadu_ps(x), _mm256_setzero_ps(), _CMP_NEQ_UQ));
    }
    DESCEND_TARGET("avx2") static unsigned descend_mask_d_avx2(const double *x) {
        return (unsigned)_mm256_movemask_pd(
            _mm256_cmp_pd(_mm256_loadu_pd(x), _mm256_setzero_pd(), _CMP_NEQ_UQ));
    }
    #define DESCEND_NONZERO_AVX2(T, S)                                          \
        DESCEND_TARGET("avx2") static int descend_nonzero_##S##_avx2(           \
                const T *x, int n, int *index, T *value) {                      \
            const int lanes = 32 / (int)sizeof(T);                              \
            int r = 0, count = 0;                                               \
            for (; r + lanes <= n; r += lanes) {                                \
                unsigned mask = descend_mask_##S##_avx2(x + r);                 \
                for (; mask; mask &= mask - 1) {                                \
                    int lane = descend_ctz(mask);                               \
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

    /* ---- compression with AVX-512: compare 16 floats (8 doubles), then
       compress the non-zero lanes' values and column numbers to the lists. */
    DESCEND_TARGET("avx512f") static int descend_nonzero_f_avx512(
            const float *x, int n, int *index, float *value) {
        int r = 0, count = 0;
        __m512i columns = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        const __m512i step = _mm512_set1_epi32(16);
        for (; r + 16 <= n; r += 16) {
            __m512 v = _mm512_loadu_ps(x + r);
            __mmask16 mask = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            if (mask) {
                descend_compress_ps(value + count, mask, v);
                descend_compress_epi32(index + count, mask, columns);
                count += descend_popcount((unsigned)mask);
            }
            columns = _mm512_add_epi32(columns, step);
        }
        for (; r < n; r++)
            if (x[r] != 0) { index[count] = r; value[count++] = x[r]; }
        return count;
    }
    DESCEND_TARGET("avx512f") static int descend_nonzero_d_avx512(
            const double *x, int n, int *index, double *value) {
        int r = 0, count = 0;
        __m512i columns = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0);
        const __m512i step = _mm512_set1_epi32(8);
        for (; r + 8 <= n; r += 8) {
            __m512d v = _mm512_loadu_pd(x + r);
            __mmask8 mask = _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_NEQ_UQ);
            if (mask) {
                descend_compress_pd(value + count, mask, v);
                descend_compress_epi32(index + count, (__mmask16)mask, columns);
                count += descend_popcount((unsigned)mask);
            }
            columns = _mm512_add_epi32(columns, step);
        }
        for (; r < n; r++)
            if (x[r] != 0) { index[count] = r; value[count++] = x[r]; }
        return count;
    }

    #endif

    /* the loops in use: set once at import (the widest the CPU has) */
    typedef void (*descend_rows_f_fn)(const int *, const float *, int, const float *, int, float *);
    typedef void (*descend_rows_d_fn)(const int *, const double *, int, const double *, int, double *);
    typedef int (*descend_nonzero_f_fn)(const float *, int, int *, float *);
    typedef int (*descend_nonzero_d_fn)(const double *, int, int *, double *);
    static descend_rows_f_fn descend_rows_f = descend_rows_f_portable;
    static descend_rows_d_fn descend_rows_d = descend_rows_d_portable;
    static descend_nonzero_f_fn descend_nonzero_f = descend_nonzero_f_portable;
    static descend_nonzero_d_fn descend_nonzero_d = descend_nonzero_d_portable;
    typedef void (*descend_update_f_fn)(const int *, const float *, int, float, const float *,
                                        int, float *);
    typedef void (*descend_update_d_fn)(const int *, const double *, int, double,
                                        const double *, int, double *);
    static descend_update_f_fn descend_update_f = descend_update_f_portable;
    static descend_update_d_fn descend_update_d = descend_update_d_portable;
    static int descend_isa = DESCEND_PORTABLE;
    typedef void (*descend_rows4_f_fn)(const int *, const float *, long, long,
                                       const unsigned short *, int, const float *, int, float *,
                                       long);
    typedef void (*descend_rows4_d_fn)(const int *, const double *, long, long,
                                       const unsigned short *, int, const double *, int, double *,
                                       long);
    /* the four-row loops: AVX-512 only (elsewhere NULL: rows go one at a time) */
    static descend_rows4_f_fn descend_rows4_f = 0;
    static descend_rows4_d_fn descend_rows4_d = 0;
    typedef int (*descend_union4_f_fn)(const float *, int, int, int *, float *, unsigned short *);
    typedef int (*descend_union4_d_fn)(const double *, int, int, int *, double *, unsigned short *);
    static descend_union4_f_fn descend_union4_f = 0;
    static descend_union4_d_fn descend_union4_d = 0;

    /* use the loops of `isa`, or the widest below it the CPU has; returns the one used */
    static int descend_use_isa(int isa) {
        descend_rows_f = descend_rows_f_portable;
        descend_rows_d = descend_rows_d_portable;
        descend_nonzero_f = descend_nonzero_f_portable;
        descend_nonzero_d = descend_nonzero_d_portable;
        descend_update_f = descend_update_f_portable;
        descend_update_d = descend_update_d_portable;
        descend_isa = DESCEND_PORTABLE;
        descend_rows4_f = 0;
        descend_rows4_d = 0;
        descend_union4_f = 0;
        descend_union4_d = 0;
    #if DESCEND_X86
        if (isa >= DESCEND_AVX512 && descend_cpu_has(DESCEND_AVX512)) {
            descend_rows_f = descend_rows_f_avx512;
            descend_rows_d = descend_rows_d_avx512;
            descend_nonzero_f = descend_nonzero_f_avx512;
            descend_nonzero_d = descend_nonzero_d_avx512;
            descend_update_f = descend_update_f_avx512;
            descend_update_d = descend_update_d_avx512;
            descend_isa = DESCEND_AVX512;
            descend_rows4_f = descend_rows4_f_avx512;
            descend_rows4_d = descend_rows4_d_avx512;
            descend_union4_f = descend_union4_f_avx512;
            descend_union4_d = descend_union4_d_avx512;
        } else if (isa >= DESCEND_AVX2 && descend_cpu_has(DESCEND_AVX2)) {
            descend_rows_f = descend_rows_f_avx2;
            descend_rows_d = descend_rows_d_avx2;
            descend_nonzero_f = descend_nonzero_f_avx2;
            descend_nonzero_d = descend_nonzero_d_avx2;
            descend_update_f = descend_update_f_avx2;
            descend_update_d = descend_update_d_avx2;
            descend_isa = DESCEND_AVX2;
        }
    #endif
        return descend_isa;
    }
    static void descend_add_weighted_rows_f(const int *cols, const float *vals, int m,
                                            const float *w, int n, float *z) {
        descend_rows_f(cols, vals, m, w, n, z);
    }
    static void descend_add_weighted_rows_d(const int *cols, const double *vals, int m,
                                            const double *w, int n, double *z) {
        descend_rows_d(cols, vals, m, w, n, z);
    }
    static void descend_update_rows_f(const int *cols, const float *vals, int m, float scale,
                                      const float *dz, int n, float *w) {
        descend_update_f(cols, vals, m, scale, dz, n, w);
    }
    static void descend_update_rows_d(const int *cols, const double *vals, int m,
                                      double scale, const double *dz, int n, double *w) {
        descend_update_d(cols, vals, m, scale, dz, n, w);
    }
    static int descend_nonzero_entries_f(const float *x, int n, int *index, float *value) {
        return descend_nonzero_f(x, n, index, value);
    }
    static int descend_nonzero_entries_d(const double *x, int n, int *index, double *value) {
        return descend_nonzero_d(x, n, index, value);
    }
    /* the four-row loop of the CPU, or NULL */
    static int descend_has_rows4(void) { return descend_rows4_f != 0; }
    static void descend_add_weighted_rows4_f(const int *cols, const float *vals, long stride, long step,
            const unsigned short *masks, int m, const float *w, int n, float *z, long ldz) {
        descend_rows4_f(cols, vals, stride, step, masks, m, w, n, z, ldz);
    }
    static void descend_add_weighted_rows4_d(const int *cols, const double *vals, long stride, long step,
            const unsigned short *masks, int m, const double *w, int n, double *z, long ldz) {
        descend_rows4_d(cols, vals, stride, step, masks, m, w, n, z, ldz);
    }
    static int descend_union_of_rows4_f(const float *a, int rows, int n, int *cols,
                                        float *vals, unsigned short *masks) {
        return descend_union4_f(a, rows, n, cols, vals, masks);
    }
    static int descend_union_of_rows4_d(const double *a, int rows, int n, int *cols,
                                        double *vals, unsigned short *masks) {
        return descend_union4_d(a, rows, n, cols, vals, masks);
    }

    /* ---- up to four rows of z at once, their entries given as a union (the
       four-row loop's input): z[s, :n] += sum over j < m where masks[4 * j + s]
       is set of vals[s * stride + j * step] * w[cols[j] * n, :n], for s < rows (<= 4;
       z rows ldz apart). The four-row loop where the CPU has one and there
       are four rows; otherwise each row's entries are picked out, in order,
       a chunk at a time, for the one-row loop. Every element of z gets the
       one-row loop's sum in the same order either way: the same bits. (A
       chunk is a multiple of four entries, so the portable loop, which adds
       four entries per pass, also groups them as it would unchunked.) */
    #define DESCEND_PICKED 256
    #define DESCEND_MASKED_ROWS(T, S)                                           \
        static void descend_add_masked_rows_##S(const int *cols, const T *vals, \
                long stride, long step, const unsigned short *masks, int m, const T *w, \
                int n, T *z, long ldz, int rows) {                              \
            int picked_cols[DESCEND_PICKED], s, j, k;                           \
            T picked_vals[DESCEND_PICKED];                                      \
            if (rows == 4 && descend_rows4_##S) {                               \
                descend_rows4_##S(cols, vals, stride, step, masks, m, w, n, z, ldz); \
                return;                                                         \
            }                                                                   \
            for (s = 0; s < rows; s++) {                                        \
                for (j = 0, k = 0; j < m; j++) {                                \
                    if (!masks[4 * j + s]) continue;                            \
                    picked_cols[k] = cols[j];                                   \
                    picked_vals[k++] = vals[s * stride + j * step];             \
                    if (k == DESCEND_PICKED) {                                  \
                        descend_rows_##S(picked_cols, picked_vals, k, w, n, z + s * ldz); \
                        k = 0;                                                  \
                    }                                                           \
                }                                                               \
                if (k) descend_rows_##S(picked_cols, picked_vals, k, w, n, z + s * ldz); \
            }                                                                   \
        }
    DESCEND_MASKED_ROWS(float, f)
    DESCEND_MASKED_ROWS(double, d)


    /* ---- the kernel gradient's lists, read off the batch's rows: for the
       columns [c, c + width) of x (n rows, ld apart; width <= 16), the
       samples with a non-zero entry (a NaN counts), in sample order, each
       with its entry times scale: where the CPU has the four-row loop, one
       list per bucket of four columns (descend_buckets_*_avx512 below: the
       four-row loop's input), elsewhere one list per column (here: the
       one-row loop's input): column c + q's list at samples[q * n + k],
       vals[q * n + k], k < fill[q]: each row's 16 columns compared with
       zero at once, then its non-zero ones visited. One pass over the
       samples, the 16 columns of a row in one or two cache lines: no
       per-sample lists to search. */
    #define DESCEND_COLUMNS_OF(T, S, ISA, ATTRIBUTE)                            \
        ATTRIBUTE static void descend_columns_##S##_##ISA(                      \
                const T *x, long ld, int n, int width, T scale, int *samples,   \
                T *vals, int *fill) {                                           \
            int i, q, k;                                                        \
            unsigned on;                                                        \
            for (q = 0; q < width; q++) fill[q] = 0;                            \
            for (i = 0; i < n; i++) {                                           \
                const T *row = x + (long)i * ld;                                \
                for (on = descend_mask16_##S##_##ISA(row, width); on; on &= on - 1) { \
                    q = descend_ctz(on);                                        \
                    k = fill[q]++;                                              \
                    samples[(long)q * n + k] = i;                               \
                    vals[(long)q * n + k] = scale * row[q];                     \
                }                                                               \
            }                                                                   \
        }
    /* bit q set where row[q] != 0 (a NaN counts), q < width <= 16 */
    #define DESCEND_MASK16_PORTABLE(T, S, ISA, ATTRIBUTE)                       \
        ATTRIBUTE static inline unsigned descend_mask16_##S##_##ISA(const T *row, int width) { \
            unsigned on = 0; int q;                                             \
            for (q = 0; q < width; q++) on |= (unsigned)(row[q] != 0) << q;     \
            return on;                                                          \
        }
    DESCEND_MASK16_PORTABLE(float, f, portable, DESCEND_NO_ATTRIBUTE)
    DESCEND_MASK16_PORTABLE(double, d, portable, DESCEND_NO_ATTRIBUTE)
    DESCEND_COLUMNS_OF(float, f, portable, DESCEND_NO_ATTRIBUTE)
    DESCEND_COLUMNS_OF(double, d, portable, DESCEND_NO_ATTRIBUTE)
    #if DESCEND_X86
    /* AVX2: 16 columns as two (four) compares with zero */
    DESCEND_MASK16_PORTABLE(float, f, avx2_tail, DESCEND_TARGET("avx2"))
    DESCEND_MASK16_PORTABLE(double, d, avx2_tail, DESCEND_TARGET("avx2"))
    DESCEND_TARGET("avx2") static inline unsigned descend_mask16_f_avx2(const float *row,
                                                                      int width) {
        if (width < 16) return descend_mask16_f_avx2_tail(row, width);
        return descend_mask_f_avx2(row) | descend_mask_f_avx2(row + 8) << 8;
    }
    DESCEND_TARGET("avx2") static inline unsigned descend_mask16_d_avx2(const double *row,
                                                                      int width) {
        if (width < 16) return descend_mask16_d_avx2_tail(row, width);
        return descend_mask_d_avx2(row) | descend_mask_d_avx2(row + 4) << 4
            | descend_mask_d_avx2(row + 8) << 8 | descend_mask_d_avx2(row + 12) << 12;
    }
    DESCEND_COLUMNS_OF(float, f, avx2, DESCEND_TARGET("avx2,fma"))
    DESCEND_COLUMNS_OF(double, d, avx2, DESCEND_TARGET("avx2,fma"))

    /* The four-row loop's lists (AVX-512): bucket b (columns c + 4b ... c +
       4b + 3) lists the samples with a non-zero entry in any of its
       columns at samples[b * n + k], their four entries times scale at
       vals[4 (b * n + k) + s] (s: the column within the bucket; 0 past
       width), and the four masks of descend_rows4 (all ones where the
       entry is non-zero) as one word masks[b * n + k]; fill[b] of them
       (fill[0..3]: buckets past width stay empty). The 16 columns are
       compared with zero at once; a bucket's slot gets its four scaled
       entries as one 128-bit (256-bit) store and its masks from the table
       (x86 is little-endian: mask s in bits 16s). */
    #define DESCEND_NIBBLE(q) (((q) & 1 ? 0xFFFFull : 0) | ((q) & 2 ? 0xFFFFull << 16 : 0) | \
                               ((q) & 4 ? 0xFFFFull << 32 : 0) | ((q) & 8 ? 0xFFFFull << 48 : 0))
    static const uint64_t descend_nibble_masks[16] = {
        DESCEND_NIBBLE(0), DESCEND_NIBBLE(1), DESCEND_NIBBLE(2), DESCEND_NIBBLE(3),
        DESCEND_NIBBLE(4), DESCEND_NIBBLE(5), DESCEND_NIBBLE(6), DESCEND_NIBBLE(7),
        DESCEND_NIBBLE(8), DESCEND_NIBBLE(9), DESCEND_NIBBLE(10), DESCEND_NIBBLE(11),
        DESCEND_NIBBLE(12), DESCEND_NIBBLE(13), DESCEND_NIBBLE(14), DESCEND_NIBBLE(15)};
    /* The rows are read 16 columns at a time, one row after another, ld
       apart: too far apart for the hardware's stride prefetcher, so each
       row's next 16 columns (the next call's) are asked for now (a hint:
       it never faults, past the array's end either), and that call finds
       them in cache. */
    #define DESCEND_PREFETCH_NEXT(row)                                          \
        _mm_prefetch((const char *)((row) + 16), _MM_HINT_T1);                  \
        _mm_prefetch((const char *)((row) + 31), _MM_HINT_T1);
    /* bucket B's slot of sample i: its sample, masks and four values (STORE) */
    #define DESCEND_BUCKET_SLOT(B, STORE)                                       \
        {                                                                       \
            const unsigned nibble = (on >> (4 * (B))) & 15u;                    \
            const long slot = (long)(B) * n + fill[B];                          \
            samples[slot] = i;                                                  \
            masks[slot] = descend_nibble_masks[nibble];                         \
            STORE;                                                              \
            fill[B] += nibble != 0;                                             \
        }
    DESCEND_TARGET("avx512f") static void descend_buckets_f_avx512(
            const float *x, long ld, int n, int width, float scale, int *samples,
            float *vals, uint64_t *masks, int *fill) {
        const __mmask16 columns = (__mmask16)((1u << width) - 1);
        const __m512 scales = _mm512_set1_ps(scale);
        int i;
        fill[0] = fill[1] = fill[2] = fill[3] = 0;
        for (i = 0; i < n; i++) {
            const __m512 v = _mm512_maskz_loadu_ps(columns, x + (long)i * ld);
            const unsigned on = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            __m512 scaled;
            DESCEND_PREFETCH_NEXT(x + (long)i * ld)
            if (!on) continue;
            scaled = _mm512_mul_ps(v, scales);
            DESCEND_BUCKET_SLOT(0, _mm_storeu_ps(vals + 4 * slot, _mm512_extractf32x4_ps(scaled, 0)))
            DESCEND_BUCKET_SLOT(1, _mm_storeu_ps(vals + 4 * slot, _mm512_extractf32x4_ps(scaled, 1)))
            DESCEND_BUCKET_SLOT(2, _mm_storeu_ps(vals + 4 * slot, _mm512_extractf32x4_ps(scaled, 2)))
            DESCEND_BUCKET_SLOT(3, _mm_storeu_ps(vals + 4 * slot, _mm512_extractf32x4_ps(scaled, 3)))
        }
    }
    DESCEND_TARGET("avx512f") static void descend_buckets_d_avx512(
            const double *x, long ld, int n, int width, double scale, int *samples,
            double *vals, uint64_t *masks, int *fill) {
        const __mmask8 low = (__mmask8)((1u << (width < 8 ? width : 8)) - 1);
        const __mmask8 high = (__mmask8)((1u << (width > 8 ? width - 8 : 0)) - 1);
        const __m512d scales = _mm512_set1_pd(scale);
        int i;
        fill[0] = fill[1] = fill[2] = fill[3] = 0;
        for (i = 0; i < n; i++) {
            const __m512d v0 = _mm512_maskz_loadu_pd(low, x + (long)i * ld);
            const __m512d v1 = _mm512_maskz_loadu_pd(high, x + (long)i * ld + 8);
            const unsigned on = _mm512_cmp_pd_mask(v0, _mm512_setzero_pd(), _CMP_NEQ_UQ)
                | (unsigned)_mm512_cmp_pd_mask(v1, _mm512_setzero_pd(), _CMP_NEQ_UQ) << 8;
            __m512d scaled0, scaled1;
            DESCEND_PREFETCH_NEXT(x + (long)i * ld)
            if (!on) continue;
            scaled0 = _mm512_mul_pd(v0, scales);
            scaled1 = _mm512_mul_pd(v1, scales);
            DESCEND_BUCKET_SLOT(0, _mm256_storeu_pd(vals + 4 * slot, _mm512_extractf64x4_pd(scaled0, 0)))
            DESCEND_BUCKET_SLOT(1, _mm256_storeu_pd(vals + 4 * slot, _mm512_extractf64x4_pd(scaled0, 1)))
            DESCEND_BUCKET_SLOT(2, _mm256_storeu_pd(vals + 4 * slot, _mm512_extractf64x4_pd(scaled1, 0)))
            DESCEND_BUCKET_SLOT(3, _mm256_storeu_pd(vals + 4 * slot, _mm512_extractf64x4_pd(scaled1, 1)))
        }
    }
    #endif
    /* the lists for the loops in use: buckets of four columns with the
       four-row loop, else one list per column */
    #if DESCEND_X86
    #define DESCEND_WIDE_LISTS(S)                                               \
        if (descend_isa == DESCEND_AVX512)                                      \
            descend_buckets_##S##_avx512(x, ld, n, width, scale, samples, vals, masks, fill); \
        else if (descend_isa == DESCEND_AVX2)                                   \
            descend_columns_##S##_avx2(x, ld, n, width, scale, samples, vals, fill); \
        else
    #else
    #define DESCEND_WIDE_LISTS(S)
    #endif
    #define DESCEND_GRAD_LISTS(T, S)                                            \
        static void descend_grad_lists_##S(const T *x, long ld, int n, int width, T scale, \
                int *samples, T *vals, uint64_t *masks, int *fill) {            \
            DESCEND_WIDE_LISTS(S)                                               \
            descend_columns_##S##_portable(x, ld, n, width, scale, samples, vals, fill); \
            (void)masks;                                                        \
        }
    DESCEND_GRAD_LISTS(float, f)
    DESCEND_GRAD_LISTS(double, d)
    """
    int use_isa "descend_use_isa"(int isa) noexcept nogil
    bint has_rows4 "descend_has_rows4"() noexcept nogil
    void add_weighted_rows4_f "descend_add_weighted_rows4_f"(
        const int* cols, const float* vals, long stride, long step, const unsigned short* masks, int m,
        const float* w, int n, float* z, long ldz) noexcept nogil
    void add_weighted_rows4_d "descend_add_weighted_rows4_d"(
        const int* cols, const double* vals, long stride, long step, const unsigned short* masks, int m,
        const double* w, int n, double* z, long ldz) noexcept nogil
    int union_of_rows4_f "descend_union_of_rows4_f"(
        const float* a, int rows, int n, int* cols, float* vals,
        unsigned short* masks) noexcept nogil
    int union_of_rows4_d "descend_union_of_rows4_d"(
        const double* a, int rows, int n, int* cols, double* vals,
        unsigned short* masks) noexcept nogil
    int nonzero_wide_f "descend_nonzero_entries_f"(const float* x, int n, int* index,
                                                   float* value) noexcept nogil
    int nonzero_wide_d "descend_nonzero_entries_d"(const double* x, int n, int* index,
                                                   double* value) noexcept nogil
    void add_weighted_rows_f "descend_add_weighted_rows_f"(
        const int* cols, const float* vals, int m, const float* w, int n,
        float* z) noexcept nogil
    void add_weighted_rows_d "descend_add_weighted_rows_d"(
        const int* cols, const double* vals, int m, const double* w, int n,
        double* z) noexcept nogil
    void update_rows_f "descend_update_rows_f"(
        const int* cols, const float* vals, int m, float scale, const float* dz, int n,
        float* w) noexcept nogil
    void update_rows_d "descend_update_rows_d"(
        const int* cols, const double* vals, int m, double scale, const double* dz, int n,
        double* w) noexcept nogil
    void grad_lists_f "descend_grad_lists_f"(
        const float* x, long ld, int n, int width, float scale, int* samples, float* vals,
        uint64_t* masks, int* fill) noexcept nogil
    void grad_lists_d "descend_grad_lists_d"(
        const double* x, long ld, int n, int width, double scale, int* samples, double* vals,
        uint64_t* masks, int* fill) noexcept nogil
    void add_masked_rows_f "descend_add_masked_rows_f"(
        const int* cols, const float* vals, long stride, long step, const unsigned short* masks, int m,
        const float* w, int n, float* z, long ldz, int rows) noexcept nogil
    void add_masked_rows_d "descend_add_masked_rows_d"(
        const int* cols, const double* vals, long stride, long step, const unsigned short* masks, int m,
        const double* w, int n, double* z, long ldz, int rows) noexcept nogil

_ISA_NAMES = {PORTABLE: "portable", AVX2: "avx2", AVX512: "avx512"}
_ISA_CODES = {name: code for code, name in _ISA_NAMES.items()}

# The row loops in use: "avx512", "avx2" or "portable" (the widest this CPU has).
ISA = _ISA_NAMES[use_isa(AVX512)]


def cpu_features():
    """{"avx2": bool (with FMA), "avx512f": bool}: the instruction sets this
    CPU and OS offer that descend's compiled loops dispatch on."""
    return {"avx2": bool(cpu_has(AVX2)), "avx512f": bool(cpu_has(AVX512))}


def _use_isa(str name):
    """Run the row loops of `name` ("avx512", "avx2", "portable"), or the
    widest below it the CPU has; returns the name of the ones now running.
    For tests and benchmarks: not while a fit runs."""
    global ISA
    if name not in _ISA_CODES:
        raise ValueError(f"name must be one of {sorted(_ISA_CODES)}, got {name!r}")
    ISA = _ISA_NAMES[use_isa(_ISA_CODES[name])]
    return ISA


cdef int nonzero_entries(const floating* x, int n, int* index,
                         floating* value) noexcept nogil:
    """Write the columns and values of x[0:n]'s non-zero entries, in column
    order, to index and value (room for n each); return how many."""
    cdef int r = 0, end, count
    if floating is float:
        count = nonzero_wide_f(x, n, index, value)
    else:
        count = nonzero_wide_d(x, n, index, value)
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


cdef void update_rows(const int* index, const floating* value, int m, floating scale,
                      const floating* dz, int n_out, floating* w) noexcept nogil:
    """The SGD step of one sample on the kernel rows of its non-zero inputs:
    w[index[j], :] += (scale * value[j]) * dz for j < m (scale: minus the
    learning rate; w is (n_in, n_out), dz (n_out,)). One fused multiply-add
    per element (the portable loop: the product, then the sum)."""
    if floating is float:
        update_rows_f(index, value, m, scale, dz, n_out, w)
    else:
        update_rows_d(index, value, m, scale, dz, n_out, w)


cdef long sparse_rows_forward(const floating* x, int rows, int n_in, const floating* w,
                              const floating* b, int n_out, floating* z, floating* a,
                              int activation, floating alpha, int* scratch,
                              floating* scratch_values) noexcept nogil:
    """z := x . w + b ; a := act(z) for `rows` rows of x (rows, n_in), from
    their non-zero entries only (b may be NULL, a may equal z); returns how
    many of those entries are NaN or infinite.

    Where the CPU has the four-row loop, rows go four at a time: the union
    of their non-zero columns (union_of_rows4), each row of w loaded once
    for the four rows (add_weighted_rows4: each element of z gets the
    one-row loop's chain of FMAs, the same bits, from half the loads of w
    on MNIST, where four rows' union has about twice one row's entries);
    the rows left over, and every row elsewhere, one at a time, compressed
    (nonzero_entries). Scratch: sparse_scratch_ints / sparse_scratch_values
    (one thread's)."""
    cdef int g, s, m
    cdef long bad = 0
    cdef int* index = scratch
    cdef unsigned short* masks = <unsigned short*>(scratch + n_in)
    cdef int grouped = rows - rows % 4 if has_rows4() else 0
    for s in range(grouped, rows):      # one at a time
        m = nonzero_entries(x + <long>s * n_in, n_in, index, scratch_values)
        bad += non_finite(scratch_values, m)
        sparse_forward(index, scratch_values, &m, 1, n_in, w, b, n_out, z + <long>s * n_out,
                       a + <long>s * n_out, activation, alpha)
    for g in range(0, grouped, 4):      # four at a time (the same bits)
        if floating is float:
            m = union_of_rows4_f(x + <long>g * n_in, 4, n_in, index, scratch_values, masks)
        else:
            m = union_of_rows4_d(x + <long>g * n_in, 4, n_in, index, scratch_values, masks)
        for s in range(4):
            bad += non_finite(scratch_values + <long>s * n_in, m)
        memset(z + <long>g * n_out, 0, 4 * <long>n_out * sizeof(floating))
        if floating is float:
            add_weighted_rows4_f(index, scratch_values, n_in, 1, masks, m, w, n_out,
                                 z + <long>g * n_out, n_out)
        else:
            add_weighted_rows4_d(index, scratch_values, n_in, 1, masks, m, w, n_out,
                                 z + <long>g * n_out, n_out)
        for s in range(g, g + 4):
            bias_activation_row(z + <long>s * n_out, a + <long>s * n_out, b, n_out,
                                activation, alpha)
    return bad


# Bytes of dz a chunk of sparse_grad_kernel's samples may fill: a quarter of
# one core's L2 (Linux sysfs, read once at import), 256 KiB where the OS does
# not say (a quarter of a 1 MiB L2).
cdef long grad_chunk_bytes = 256 * 1024


cdef inline int grad_chunk_rows(int n_out, size_t itemsize) noexcept nogil:
    """Samples per chunk of sparse_grad_kernel: dz's rows in grad_chunk_bytes,
    at least 64."""
    return <int>min(2147483647, max(64, grad_chunk_bytes // max(1, <long>n_out * <long>itemsize)))


def _set_grad_chunk_bytes(long nbytes):
    """Set the bytes of dz per chunk of the kernel gradient's samples (tests:
    the results must not depend on it on the four-row and AVX2 loops).
    Returns the previous value."""
    global grad_chunk_bytes
    previous = grad_chunk_bytes
    grad_chunk_bytes = max(1, nbytes)
    return previous


def _init_grad_chunk_bytes():
    from descend.plans import l2_cache_bytes
    l2 = l2_cache_bytes()
    if l2:
        _set_grad_chunk_bytes(l2 // 4)


_init_grad_chunk_bytes()


cdef void sparse_grad_kernel(const floating* x, long ld, int n, const floating* dz, int n_out,
                             int row_begin, int row_end, floating scale, floating* out,
                             int* scratch, floating* scratch_values) noexcept nogil:
    """out[r, :] += scale * (x^T . dz)[r, :] for kernel rows r in
    [row_begin, row_end), from the non-zero entries of x (n rows, ld
    apart) only; dz (n, n_out).

    With out = dw zeroed first and scale = 1 this is the kernel's gradient;
    with out = w and scale = -learning_rate, plain SGD's update.

    The rows go GRAD_COLUMNS at a time: one pass over the samples lists
    those with an entry in the rows' columns of x, in sample order, with
    scale times the entries (grad_lists). Where the CPU has the four-row
    loop, the lists are per bucket of four rows, with masks saying which of
    the four each sample has, and each bucket's rows of out add those
    samples' rows of dz in one pass (add_masked_rows: predict's four-row
    loop with the roles turned; there rows of z share the loaded rows of w,
    here rows of out share the loaded rows of dz); elsewhere each row has
    its own list, for the one-row loop. Each out row sums its terms in
    sample order whatever the range and whatever the CPU's loop: a split
    of the rows over threads gives the same bits.

    The samples go in chunks whose rows of dz fill at most a quarter of a
    core's L2 (grad_chunk_rows): every bucket reads its samples' rows of dz
    again, and a whole batch of them (1024 x 256 float64: 2 MB) outgrows
    the L2, which took float64's gradient at batch 1024 to 1.4x its time
    per row at 256. A chunk continues each out row's chain of FMAs where
    the last one stored it, so the four-row and AVX2 loops give the same
    bits chunked or not (the portable loop, which sums four terms per pass,
    rounds differently at chunk ends: a rule of shapes and cache size).

    Scratch: sparse_scratch_ints / sparse_scratch_values (one thread's).
    """
    cdef int c, q, width
    cdef int fill[GRAD_COLUMNS]
    cdef long slots = n
    cdef bint buckets = has_rows4()
    cdef int* samples = scratch
    # buckets: after the samples' 4n ints, 16n bytes on (the words aligned)
    cdef uint64_t* masks = <uint64_t*>(scratch + 4 * slots)
    cdef int first = 0, rows, chunk = grad_chunk_rows(n_out, sizeof(floating))
    cdef const floating* xs
    cdef const floating* dzs
    while first < n:
        rows = min(chunk, n - first)
        xs = x + <long>first * ld
        dzs = dz + <long>first * n_out
        c = row_begin
        while c < row_end:
            width = min(GRAD_COLUMNS, row_end - c)
            if floating is float:
                grad_lists_f(xs + c, ld, rows, width, scale, samples, scratch_values, masks, fill)
            else:
                grad_lists_d(xs + c, ld, rows, width, scale, samples, scratch_values, masks, fill)
            for q in range((width + 3) // 4 if buckets else width):
                if fill[q] == 0:
                    continue
                if not buckets:
                    if floating is float:
                        add_weighted_rows_f(samples + q * rows, scratch_values + q * rows,
                                            fill[q], dzs, n_out, out + <long>(c + q) * n_out)
                    else:
                        add_weighted_rows_d(samples + q * rows, scratch_values + q * rows,
                                            fill[q], dzs, n_out, out + <long>(c + q) * n_out)
                elif floating is float:
                    add_masked_rows_f(samples + q * rows, scratch_values + 4 * q * rows, 1, 4,
                                      <unsigned short*>(masks + q * rows), fill[q], dzs, n_out,
                                      out + <long>(c + 4 * q) * n_out, n_out, min(4, width - 4 * q))
                else:
                    add_masked_rows_d(samples + q * rows, scratch_values + 4 * q * rows, 1, 4,
                                      <unsigned short*>(masks + q * rows), fill[q], dzs, n_out,
                                      out + <long>(c + 4 * q) * n_out, n_out, min(4, width - 4 * q))
            c = c + width
        first = first + rows



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
    import numpy as np
    cdef int[::1] scratch = np.empty(sparse_scratch_ints(1, n_in), np.int32)
    cdef floating[::1] scratch_values = np.empty(sparse_scratch_values(1, n_in),
                                                 np.float32 if floating is float else np.float64)
    with nogil:
        sparse_rows_forward(&x[0, 0], n, n_in, &w[0, 0], &b[0] if b is not None else NULL,
                            n_out, &z[0, 0], &a[0, 0], activation, <floating>alpha,
                            &scratch[0], &scratch_values[0])


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
    cdef int[::1] scratch = np.empty(sparse_scratch_ints(n, n_in), np.int32)
    cdef floating[::1] scratch_values = np.empty(sparse_scratch_values(n, n_in),
                                                 np.float32 if floating is float else np.float64)
    with nogil:
        sparse_grad_kernel(&x[0, 0], n_in, n, &dz[0, 0], n_out, first, last,
                           <floating>scale, &out[0, 0], &scratch[0], &scratch_values[0])


def update_rows_py(const floating[::1] x not None, double scale,
                   const floating[::1] dz not None, floating[:, ::1] w not None):
    """w[i, :] += (scale * x[i]) * dz for the non-zero x[i], in place: the
    per-sample SGD step (update_rows on nonzero_entries' list of x)."""
    import numpy as np
    cdef int n_in = x.shape[0], n_out = dz.shape[0], m
    if (w.shape[0], w.shape[1]) != (n_in, n_out):
        raise ValueError(f"w has shape {(w.shape[0], w.shape[1])}, expected {(n_in, n_out)}")
    if n_in == 0 or n_out == 0:
        raise ValueError("x, dz and w must not be empty")
    cdef int[::1] index = np.empty(n_in, np.int32)
    cdef floating[::1] values = np.empty(n_in, np.float32 if floating is float else np.float64)
    with nogil:
        m = nonzero_entries(&x[0], n_in, &index[0], &values[0])
        update_rows(&index[0], &values[0], m, <floating>scale, &dz[0], n_out, &w[0, 0])


cdef class SparseLayerRun:
    """The first layer's work on the rows of x as the fused epoch does it
    with plain SGD, sparse or dense, batch by batch: for each batch of
    `batch_size` rows, copy the rows, then z := x . w in blocks of
    `sample_rows` rows (phase A), then the update out -= 0.001 x^T . dz in
    blocks of `kernel_rows` kernel rows (phase B), through the sparse
    kernels or (dense=True) through single-threaded BLAS. Buffers are
    allocated once; each call runs the work once, without the GIL
    (descend.plans times the two against each other)."""
    cdef object arrays
    cdef int n, n_in, n_out, batch_size, sample_rows, kernel_rows
    cdef bint dense

    def __init__(self, x, w, dz, dense=False, batch_size=None, sample_rows=64,
                 kernel_rows=None):
        """x (n, n_in), w (n_in, n_out), dz (n, n_out): C-contiguous arrays of
        one float dtype; batch_size (default n), sample_rows and kernel_rows
        (default n_in): the epoch's batch and block sizes."""
        import numpy as np
        x, w, dz = (np.ascontiguousarray(a) for a in (x, w, dz))
        if x.dtype not in (np.float32, np.float64) or w.dtype != x.dtype or dz.dtype != x.dtype:
            raise TypeError("x, w and dz must share a float32 or float64 dtype")
        if x.ndim != 2 or w.ndim != 2 or dz.ndim != 2:
            raise ValueError("x, w and dz must be 2-D")
        self.n, self.n_in, self.n_out = x.shape[0], x.shape[1], w.shape[1]
        if w.shape[0] != self.n_in or dz.shape[0] != self.n or dz.shape[1] != self.n_out:
            raise ValueError("x (n, n_in), w (n_in, n_out) and dz (n, n_out) must agree")
        if self.n == 0 or self.n_in == 0 or self.n_out == 0:
            raise ValueError("x, w and dz must not be empty")
        self.dense = dense
        self.batch_size = min(self.n, max(1, batch_size or self.n))
        self.sample_rows = max(1, sample_rows)
        self.kernel_rows = max(1, kernel_rows or self.n_in)
        dtype = x.dtype
        n, n_in, n_out = self.n, self.n_in, self.n_out
        # what the kernels read and write on 64-byte boundaries, as the
        # epoch's buffers and a network's kernel are (descend._aligned); x
        # is read only to copy its rows
        from descend import _aligned
        self.arrays = (x, _aligned.copy(w), _aligned.copy(dz), _aligned.empty((n, n_in), dtype),
                       _aligned.empty((n, n_out), dtype), _aligned.copy(w),
                       _aligned.empty(sparse_scratch_ints(self.batch_size, n_in), np.int32),
                       _aligned.empty(sparse_scratch_values(self.batch_size, n_in), dtype))

    def outputs(self):
        """(z, out) of the last call: z (n, n_out) the forward product, out
        (n_in, n_out) starts as a copy of w and gets every call's update."""
        return self.arrays[4], self.arrays[5]

    def __call__(self):
        if self.arrays[0].dtype.itemsize == 4:
            self._run[float]()
        else:
            self._run[double]()

    cdef void _run(self, floating dummy=0):
        cdef const floating[:, ::1] x = self.arrays[0]
        cdef const floating[:, ::1] w = self.arrays[1]
        cdef const floating[:, ::1] dz = self.arrays[2]
        cdef floating[:, ::1] rows_copied = self.arrays[3]
        cdef floating[:, ::1] z = self.arrays[4]
        cdef floating[:, ::1] out = self.arrays[5]
        cdef int[::1] scratch = self.arrays[6]
        cdef floating[::1] scratch_values = self.arrays[7]
        cdef int b0 = 0, nb, i, k0, rows
        with nogil:
            while b0 < self.n:
                nb = min(self.batch_size, self.n - b0)
                for i in range(b0, b0 + nb):
                    memcpy(&rows_copied[i, 0], &x[i, 0], self.n_in * sizeof(floating))
                i = b0
                while i < b0 + nb:
                    rows = min(self.sample_rows, b0 + nb - i)
                    if self.dense:
                        gemm(False, False, rows, self.n_out, self.n_in, <floating>1,
                             &rows_copied[i, 0], self.n_in, &w[0, 0], self.n_out, <floating>0,
                             &z[i, 0], self.n_out)
                    else:
                        sparse_rows_forward(&rows_copied[i, 0], rows, self.n_in, &w[0, 0], NULL,
                                            self.n_out, &z[i, 0], &z[i, 0], 0, 0, &scratch[0],
                                            &scratch_values[0])
                    i = i + rows
                k0 = 0
                while k0 < self.n_in:
                    rows = min(self.kernel_rows, self.n_in - k0)
                    if self.dense:
                        gemm(True, False, rows, self.n_out, nb, <floating>-0.001,
                             &rows_copied[b0, k0], self.n_in, &dz[b0, 0], self.n_out,
                             <floating>1, &out[k0, 0], self.n_out)
                    else:
                        sparse_grad_kernel(&rows_copied[b0, 0], self.n_in, nb, &dz[b0, 0],
                                           self.n_out, k0, k0 + rows, <floating>-0.001,
                                           &out[0, 0], &scratch[0], &scratch_values[0])
                    k0 = k0 + rows
                b0 = b0 + nb


# ---- inference: predict's lean path for a few rows ----

cdef struct RowLayer:
    const void* kernel      # (n_in, n_out)
    const void* bias        # (n_out,) or NULL
    int n_out
    int activation
    double alpha


def forward_rows_sparse_py(x, tuple kernels, tuple biases, tuple activations, tuple alphas,
                           int link, int n_threads, int gemm_min_rows):
    """``_dense.forward_rows_py``'s result with a sparse first layer.

    The first layer computes z := x . w + b ; a := act(z) as
    ``sparse_forward`` does: from the non-zero entries of x only (MNIST's
    zero pixels), each output a chain of FMAs in input order. On AVX-512
    the rows go four at a time (``add_weighted_rows4``: each vector of w
    loaded once for the four rows, the same bits); elsewhere one at a time.
    The other layers do the same when x has fewer than `gemm_min_rows`
    rows (skipping the zeros a ReLU leaves), and otherwise a single-threaded
    GEMM per block, as ``forward_rows_py``. Blocks of ROWS_PER_BLOCK
    rows (the GEMM blocks of ``_dense``: the same bits as the per-layer
    path) go through every layer and the link on one thread, the blocks
    spread over n_threads in one parallel region: the same bits for any
    n_threads.

    With fewer than `gemm_min_rows` rows there is no BLAS call, so no BLAS
    thread limit to set, and nothing is packed (a GEMM packs the whole
    kernel for every call, which a few rows do not repay); otherwise BLAS
    must be limited to one thread. Arguments and result as
    ``forward_rows_py``: None where the arrays do not fit together or an
    input or output value is not finite.
    """
    cdef int dtype_num = forward_dtype(x, kernels, biases, activations, alphas, link)
    if dtype_num < 0 or n_threads < 1 or gemm_min_rows < 1:
        return None
    cdef int last = len(kernels) - 1
    out = cnp.PyArray_EMPTY(2, [(<cnp.ndarray>x).shape[0], (<cnp.ndarray>kernels[last]).shape[1]],
                            dtype_num, 0)
    if dtype_num == cnp.NPY_FLOAT32:
        bad = _row_loop_rows[float](x, kernels, biases, activations, alphas, out, link, n_threads,
                                    gemm_min_rows)
    else:
        bad = _row_loop_rows[double](x, kernels, biases, activations, alphas, out, link,
                                     n_threads, gemm_min_rows)
    return None if bad else out


# rows per block of the forward pass (a multiple of 4): a thread's unit of
# work, the rows of its activation buffers, and _dense's GEMM blocks
cdef int ROW_LOOP_BLOCK = 256


cdef struct RowScratch:
    int* index              # (3 widest,) sparse_rows_forward's scratch ints
    void* value             # (4, widest) its scratch values
    void* buffers           # (2, ROW_LOOP_BLOCK, widest) activations of a block


cdef long _row_loop_rows(cnp.ndarray x, tuple kernels, tuple biases, tuple activations,
                         tuple alphas, cnp.ndarray out, int link, int n_threads,
                         int gemm_min_rows, floating dummy=0) except -1:
    """forward_rows_sparse_py's work on arrays it has checked: the count of
    non-finite inputs and outputs."""
    cdef int n = x.shape[0], n_in = x.shape[1], n_layers = len(kernels), widest = n_in
    cdef int i, block, blocks = (n + ROW_LOOP_BLOCK - 1) // ROW_LOOP_BLOCK
    cdef int threads = min(n_threads, blocks)
    cdef long bad = 0
    for i in range(n_layers):
        widest = max(widest, (<cnp.ndarray>kernels[i]).shape[1])
    # each thread's scratch on its own cache lines (64 bytes), starting on
    # one (malloc gives 16-byte alignment: the vector loops' loads would
    # straddle two lines, see descend._aligned)
    cdef long per_thread = (widest * (sizeof(int) + 4 * sizeof(unsigned short))
                            + (4 + 2 * ROW_LOOP_BLOCK) * <long>widest * sizeof(floating) + 63) // 64 * 64
    cdef RowLayer* layers = <RowLayer*>malloc(n_layers * sizeof(RowLayer))
    cdef RowScratch* scratch = <RowScratch*>malloc(threads * sizeof(RowScratch))
    cdef char* allocated = <char*>malloc(threads * per_thread + 64)
    if layers == NULL or scratch == NULL or allocated == NULL:
        free(layers)
        free(scratch)
        free(allocated)
        raise MemoryError()
    cdef char* memory = allocated + (-<intptr_t>allocated & 63)
    for i in range(threads):
        scratch[i].value = memory + i * per_thread
        scratch[i].buffers = <floating*>scratch[i].value + 4 * <long>widest
        scratch[i].index = <int*>(<floating*>scratch[i].buffers + 2 * ROW_LOOP_BLOCK * <long>widest)
    for i in range(n_layers):
        layers[i].kernel = cnp.PyArray_DATA(<cnp.ndarray>kernels[i])
        layers[i].bias = (NULL if biases[i] is None else
                          cnp.PyArray_DATA(<cnp.ndarray>biases[i]))
        layers[i].n_out = (<cnp.ndarray>kernels[i]).shape[1]
        layers[i].activation = activations[i]
        layers[i].alpha = alphas[i]
    cdef const floating* x_data = <const floating*>cnp.PyArray_DATA(x)
    cdef floating* out_data = <floating*>cnp.PyArray_DATA(out)
    with nogil:
        if threads == 1:        # no team to start
            for block in range(blocks):
                bad += _row_loop_block(x_data, n, n_in, block, layers, n_layers, out_data,
                                       link, widest, gemm_min_rows, &scratch[0])
        else:
            for block in prange(blocks, num_threads=threads, schedule="static"):
                bad += _row_loop_block(x_data, n, n_in, block, layers, n_layers, out_data,
                                       link, widest, gemm_min_rows, &scratch[threadid()])
    free(layers)
    free(scratch)
    free(allocated)
    return bad


cdef long _row_loop_block(const floating* x, int n, int n_in, int block, const RowLayer* layers,
                          int n_layers, floating* out, int link, int widest,
                          int gemm_min_rows, RowScratch* scratch) noexcept nogil:
    """Rows [block * ROW_LOOP_BLOCK, ...) of x through every layer and the
    link; the count of non-finite inputs and outputs of these rows."""
    cdef int r0 = block * ROW_LOOP_BLOCK, rows = min(ROW_LOOP_BLOCK, n - r0), i
    cdef int width = n_in, n_out = n_in, r
    cdef long bad = 0
    cdef const floating* a_in = x + <long>r0 * n_in
    cdef floating* a_out = NULL
    for i in range(n_layers):
        n_out = layers[i].n_out
        if i == n_layers - 1:
            a_out = out + <long>r0 * n_out
        else:
            a_out = <floating*>scratch.buffers + (i % 2) * <long>ROW_LOOP_BLOCK * widest
        if i == 0:      # (counts the non-finite inputs)
            bad = _row_loop_layer(a_in, rows, width, &layers[i], a_out, scratch)
        elif n < gemm_min_rows:
            _row_loop_layer(a_in, rows, width, &layers[i], a_out, scratch)
        else:
            # forward_rows_py's work for this layer: the same bits
            gemm(False, False, rows, n_out, width, <floating>1, a_in, width,
                 <const floating*>layers[i].kernel, n_out, <floating>0, a_out, n_out)
            for r in range(rows):
                bias_activation_row(a_out + <long>r * n_out, a_out + <long>r * n_out,
                                    <const floating*>layers[i].bias, n_out,
                                    layers[i].activation, <floating>layers[i].alpha)
        a_in = a_out
        width = n_out
    apply_link(a_out, rows, n_out, link)
    return bad + non_finite(a_out, <long>rows * n_out)


cdef long _row_loop_layer(const floating* a, int rows, int n_in, const RowLayer* layer,
                          floating* z, RowScratch* scratch) noexcept nogil:
    """z (rows, n_out) := act(a . w + b) for a (rows, n_in), through the row
    loops (sparse_rows_forward); returns how many entries of a are NaN or
    infinite (counted on the compressed rows: every such entry is among
    the non-zero ones, and a row of MNIST has a fifth of them)."""
    return sparse_rows_forward(a, rows, n_in, <const floating*>layer.kernel,
                               <const floating*>layer.bias, layer.n_out, z, z,
                               layer.activation, <floating>layer.alpha, scratch.index,
                               <floating*>scratch.value)
