from cython cimport floating

cdef enum:
    # kernel rows per group in sparse_grad_kernel (its scratch scales with it)
    GRAD_GROUP_ROWS = 64

cdef int nonzero_entries(const floating* x, int n, int* index,
                         floating* value) noexcept nogil

cdef void sparse_forward(const int* index, const floating* value, const int* count,
                         int n, int stride, const floating* w, const floating* b,
                         int n_out, floating* z, floating* a, int activation,
                         floating alpha) noexcept nogil

cdef void sparse_grad_kernel(const int* index, const floating* value, const int* count,
                             int n, int stride, const floating* dz, int n_out,
                             int row_begin, int row_end, floating scale, floating* out,
                             int* cursor, int* col_start, int* col_sample,
                             floating* col_value) noexcept nogil
