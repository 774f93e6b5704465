from cython cimport floating
from libc.stdint cimport uint64_t

cdef extern from *:
    """
    /* Counter-based random numbers (splitmix64; Steele, Lea, Flood 2014).
       descend_uniform(seed, i) is output i of the stream seeded with seed,
       as a double in [0, 1). Stateless: the backward pass rebuilds the
       forward pass's dropout mask, and any thread split gives the same mask. */
    static inline uint64_t descend_splitmix64(uint64_t z) {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    static inline double descend_uniform(uint64_t seed, uint64_t index) {
        uint64_t z = descend_splitmix64(seed + (index + 1) * 0x9E3779B97F4A7C15ULL);
        return (double)(z >> 11) * (1.0 / 9007199254740992.0);
    }
    /* A seed for item x of a family seeded with seed (decorrelated). */
    static inline uint64_t descend_mix(uint64_t seed, uint64_t x) {
        return descend_splitmix64(seed ^ descend_splitmix64(x + 0x9E3779B97F4A7C15ULL));
    }
    """
    double descend_uniform(uint64_t seed, uint64_t index) noexcept nogil
    uint64_t descend_mix(uint64_t seed, uint64_t x) noexcept nogil

cdef void gemm_rows(bint trans_a, bint trans_b, int m, int n, int k,
                    floating alpha, const floating* a, int lda,
                    const floating* b, int ldb, floating beta,
                    floating* c, int ldc, int n_threads) noexcept nogil

cdef void dense_forward(const floating* x, int n, int n_in,
                        const floating* w, const floating* b, int n_out,
                        floating* z, floating* a, int activation,
                        floating alpha, int n_threads) noexcept nogil

cdef void dense_forward_block(const floating* x, int n, int n_in,
                              const floating* w, int ldw, const floating* b, int n_out,
                              floating* z, floating* a, int activation,
                              floating alpha) noexcept nogil

cdef void bias_activation_row(floating* z, floating* a, const floating* b,
                              int k, int activation, floating alpha) noexcept nogil

cdef void activation_backward_columns(const floating* z, const floating* a, floating* dz,
                                     int n, int k, long ld, int activation,
                                     floating alpha) noexcept nogil

cdef void activation_backward(const floating* z, const floating* a, floating* dz,
                              int n, int k, int activation, floating alpha,
                              int n_threads) noexcept nogil

cdef void dense_grad_input(const floating* dz, int n, int n_out,
                           const floating* w, int n_in, floating* dx,
                           int n_threads) noexcept nogil

cdef void dense_grad_params(const floating* x, int n, int n_in,
                            const floating* dz, int n_out,
                            floating* dw, floating* db,
                            int row_begin, int row_end, int col_begin,
                            int col_end, int n_threads) noexcept nogil

cdef void dropout(floating* out, const floating* inp, int n, int k,
                  long first_row, double rate, uint64_t seed,
                  int n_threads) noexcept nogil

# ---- predict's forward pass (shared with the row-loop path of _sparse.pyx)
cdef int forward_dtype(x, tuple kernels, tuple biases, tuple activations, tuple alphas,
                       int link)

cdef long non_finite(const floating* v, long size) noexcept nogil

cdef void apply_link(floating* z, int rows, int n_out, int link) noexcept nogil
