from cython cimport floating

cdef enum Optimizer:
    SGD = 0
    ADAGRAD = 1
    RMSPROP = 2
    ADAM = 3

cdef struct OptimizerConfig:
    int kind
    double momentum       # SGD, RMSprop
    bint nesterov         # SGD
    double rho            # RMSprop: decay of the squared-gradient average
    bint centered         # RMSprop
    double beta1, beta2   # Adam
    bint amsgrad          # Adam
    bint decoupled        # Adam: decoupled weight decay (AdamW)
    double epsilon

cdef void optimizer_step(const OptimizerConfig* cfg, floating* w,
                         const floating* g, floating* s1, floating* s2,
                         floating* s3, long n, double learning_rate,
                         double weight_decay, long step,
                         int n_threads) noexcept nogil

cdef double add_penalty_gradient(const floating* w, floating* g, long n,
                                 double l1, double l2,
                                 int n_threads) noexcept nogil

cdef void soft_threshold(floating* w, long n, double threshold,
                         int n_threads) noexcept nogil

cdef double sum_squares(const floating* g, long n, int n_threads) noexcept nogil

cdef void scale_and_clip(floating* g, long n, double scale, double clipvalue,
                         int n_threads) noexcept nogil

cpdef OptimizerConfig make_config_py(dict config) except *

cdef double clip_scale(double bound, double norm_squared) noexcept nogil
