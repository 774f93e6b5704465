from cython cimport floating

cdef enum:
    # kernel rows per pass of sparse_grad_kernel (columns of x: 16 floats
    # are one AVX-512 vector and one cache line); a multiple of 4
    GRAD_COLUMNS = 16


cdef inline long sparse_scratch_ints(int n, int n_in) noexcept nogil:
    """The ints of scratch that sparse_grad_kernel (for n rows) and
    sparse_rows_forward (for rows of n_in inputs) need: one thread's."""
    # the gradient: GRAD_COLUMNS lists of n samples (ints), or GRAD_COLUMNS /
    # 4 buckets of n slots, each a sample and a word of four masks (three
    # ints); the forward: n_in columns (ints) and 4 n_in masks (shorts).
    # Whole cache lines (so that threads' scratch do not share one, and the
    # words stay aligned).
    return (max(GRAD_COLUMNS * <long>n, 3 * <long>n_in) + 15) // 16 * 16


cdef inline long sparse_scratch_values(int n, int n_in) noexcept nogil:
    """The values of scratch they need: the lists' entries (one per sample
    and column), or four rows' entries."""
    return (max(GRAD_COLUMNS * <long>n, 4 * <long>n_in) + 15) // 16 * 16


cdef int nonzero_entries(const floating* x, int n, int* index,
                         floating* value) noexcept nogil

cdef void sparse_forward(const int* index, const floating* value, const int* count,
                         int n, int stride, const floating* w, const floating* b,
                         int n_out, floating* z, floating* a, int activation,
                         floating alpha) noexcept nogil

cdef void update_rows(const int* index, const floating* value, int m, floating scale,
                      const floating* dz, int n_out, floating* w) noexcept nogil

cdef long sparse_rows_forward(const floating* x, int rows, int n_in, const floating* w,
                              const floating* b, int n_out, floating* z, floating* a,
                              int activation, floating alpha, int* scratch,
                              floating* scratch_values) noexcept nogil

cdef void sparse_grad_kernel(const floating* x, long ld, int n, const floating* dz, int n_out,
                             int row_begin, int row_end, floating scale, floating* out,
                             int* scratch, floating* scratch_values) noexcept nogil
