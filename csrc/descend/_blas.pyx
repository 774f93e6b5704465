# Thin memoryview twins of the row-major wrappers in _blas.pxd, so tests can
# check the wrappers against numpy from Python.
from cython cimport floating


def gemm_py(bint trans_a, bint trans_b, double alpha,
            const floating[:, ::1] a, const floating[:, ::1] b,
            double beta, floating[:, ::1] c):
    """C := alpha * op(A) . op(B) + beta * C, in place on C (row-major)."""
    cdef int m = c.shape[0], n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int k_b = b.shape[1] if trans_b else b.shape[0]
    cdef int m_a = a.shape[1] if trans_a else a.shape[0]
    cdef int n_b = b.shape[0] if trans_b else b.shape[1]
    if k != k_b or m != m_a or n != n_b:
        raise ValueError(
            f"gemm shapes do not agree: op(A) is ({m_a}, {k}), op(B) is "
            f"({k_b}, {n_b}), C is ({m}, {n})")
    if m == 0 or n == 0:
        return
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating>alpha, &a[0, 0], a.shape[1],
             &b[0, 0], b.shape[1], <floating>beta, &c[0, 0], n)


def gemv_py(const floating[:, ::1] a, const floating[::1] x, floating[::1] y):
    """y := A . x, in place on y (A row-major, (len(y), len(x)))."""
    cdef int m = a.shape[0], n = a.shape[1]
    if x.shape[0] != n or y.shape[0] != m:
        raise ValueError(f"gemv shapes do not agree: A is ({m}, {n}), x has {x.shape[0]}, "
                         f"y has {y.shape[0]}")
    if m == 0:
        return
    if n == 0:
        y[:] = 0
        return
    with nogil:
        gemv(m, n, &a[0, 0], &x[0], &y[0])
