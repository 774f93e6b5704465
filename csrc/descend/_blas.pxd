# Row-major BLAS wrappers over scipy.linalg.cython_blas (nothing to link:
# scipy ships the BLAS and exports its symbols through this module).
#
# BLAS is column-major. A row-major M x N matrix is the same memory as its
# column-major transpose, so C = op(A) op(B) in row-major is computed as
# C^T = op(B)^T op(A)^T in column-major: swap the operands and M with N.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """C := alpha * op(A) . op(B) + beta * C  (row-major; C is m x n)."""
    cdef char ta = b"T" if trans_a else b"N"
    cdef char tb = b"T" if trans_b else b"N"
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)


cdef inline void gemv(int m, int n, const floating* a, const floating* x,
                      floating* y) noexcept nogil:
    """y := A . x for a row-major m x n matrix A (x has n entries, y m)."""
    # column-major, A is the n x m matrix A^T: y = (A^T)^T . x
    cdef char trans = b"T"
    cdef int one = 1
    cdef floating alpha = 1, beta = 0
    if m == 0:
        return
    if floating is float:
        sgemv(&trans, &n, &m, &alpha, <float*>a, &n, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&trans, &n, &m, &alpha, <double*>a, &n, <double*>x, &one, &beta, y, &one)
