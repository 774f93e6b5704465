from cython cimport floating

cdef enum:
    # kernel rows per group in sparse_grad_kernel (its scratch scales with it)
    GRAD_GROUP_ROWS = 64
    # kernel rows per bucket in sparse_grad_kernel where the CPU has the
    # four-row loop: the rows of out that share each loaded row of dz
    SHARED_ROWS = 4


cdef inline long sparse_scratch_ints(int n) noexcept nogil:
    """The ints of scratch sparse_grad_kernel needs for n compressed rows
    (one thread's)."""
    cdef long buckets = GRAD_GROUP_ROWS // SHARED_ROWS
    # buckets of SHARED_ROWS rows: their masks (buckets * n words of 4
    # shorts), cursors (n), fills and last samples (buckets each), the
    # buckets' samples (buckets * n); buckets of one row (no four-row loop):
    # no masks, GRAD_GROUP_ROWS buckets. Whole cache lines (so that threads'
    # scratch do not share one, and the words stay aligned).
    return (max(2 * buckets * n + n + 2 * buckets + buckets * n,
                n + 2 * GRAD_GROUP_ROWS + GRAD_GROUP_ROWS * <long>n) + 15) // 16 * 16


cdef inline long sparse_scratch_values(int n) noexcept nogil:
    """The values of scratch it needs (the buckets' values)."""
    return (GRAD_GROUP_ROWS * <long>n + 15) // 16 * 16


cdef int nonzero_entries(const floating* x, int n, int* index,
                         floating* value) noexcept nogil

cdef void sparse_forward(const int* index, const floating* value, const int* count,
                         int n, int stride, const floating* w, const floating* b,
                         int n_out, floating* z, floating* a, int activation,
                         floating alpha) noexcept nogil

cdef void sparse_grad_kernel(const int* index, const floating* value, const int* count,
                             int n, int stride, const floating* dz, int n_out,
                             int row_begin, int row_end, floating scale, floating* out,
                             int* scratch, floating* scratch_values) noexcept nogil
