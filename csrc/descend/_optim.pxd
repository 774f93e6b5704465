from cython cimport floating

from descend._contract cimport (OptimizerConfig, OptimizerKind, SGD, ADAGRAD, RMSPROP,
                               ADAM)

cdef void optimizer_step(const OptimizerConfig* cfg, floating* w,
                         const floating* g, floating* s1, floating* s2,
                         floating* s3, long n, double learning_rate,
                         double weight_decay, long step,
                         int n_threads) noexcept nogil

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
