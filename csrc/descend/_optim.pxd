from cython cimport floating

from descend._contract cimport (OptimizerConfig, OptimizerKind, SGD, ADAGRAD, RMSPROP,
                               ADAM)

cdef void optimizer_step(const OptimizerConfig* cfg, floating* w,
                         const floating* g, floating* s1, floating* s2,
                         floating* s3, long n, double learning_rate,
                         double weight_decay, long step,
                         int n_threads) noexcept nogil

# A float64 sum in 8 lanes (see _optim.pyx); lanes_total gives its value.
# In C here: every module that cimports the sums needs the type.
cdef extern from *:
    r"""
    #ifndef DESCEND_LANES_DEFINED
    #define DESCEND_LANES_DEFINED
    typedef struct { double lane[8]; } descend_lanes;

    static double descend_lanes_total(const descend_lanes *sums) {
        const double *s = sums->lane;
        return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
    #endif
    """
    ctypedef struct Lanes "descend_lanes":
        double lane[8]
    double lanes_total "descend_lanes_total"(const Lanes* sums) noexcept nogil

cdef void clear_lanes(Lanes* sums) noexcept nogil

cdef void add_penalty_lanes(const floating* w, floating* g, long n, long first,
                            double l1, double l2, Lanes* sums) noexcept nogil

cdef void sum_squares_lanes(const floating* x, long n, long first, Lanes* sums) noexcept nogil

cdef void sum_abs_lanes(const floating* x, long n, long first, Lanes* sums) noexcept nogil

cdef double add_penalty_gradient(const floating* w, floating* g, long n,
                                 double l1, double l2,
                                 int n_threads, double total=*) noexcept nogil

cdef void soft_threshold(floating* w, long n, double threshold,
                         int n_threads) noexcept nogil

cdef double sum_squares(const floating* g, long n, int n_threads,
                        double total=*) noexcept nogil

cdef void scale_and_clip(floating* g, long n, double scale, double clipvalue,
                         int n_threads) noexcept nogil

cpdef OptimizerConfig make_config_py(dict config) except *

cdef double clip_scale(double bound, double norm_squared) noexcept nogil
