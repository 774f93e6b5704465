# Parameter updates: one fused pass over each parameter array.
#
# w is a parameter array flattened to n elements, g its gradient, s1..s3 the
# optimizer's state arrays for it (same length; NULL where unused). SGD's
# update is done in float64 per element; Adagrad, RMSprop and Adam compute
# in the array's dtype (float32 arrays: float32 math and sqrtf, as PyTorch
# does), so that their square roots and divisions vectorize at full width:
# in float64 they cost an Adam epoch about twice a plain-SGD one. The
# constants of a step (bias corrections) are computed once, in float64. The
# equations are documented in descend/optimizers.py, with their papers.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, pow
from libc.string cimport memset

from descend._simd cimport AVX512, simd_use, use_isa_named
from descend._fpenv cimport DESCEND_FLUSH_BITS, descend_get_mxcsr, descend_set_mxcsr

# Below this many elements a parameter array is updated on one thread: the
# fork/join of an OpenMP region costs more than the update itself.
cdef long PARALLEL_MIN_ELEMENTS = 32768


cdef inline int threads_for(long n, int n_threads) noexcept nogil:
    return n_threads if n >= PARALLEL_MIN_ELEMENTS else 1


cdef void optimizer_step(const OptimizerConfig* cfg, floating* w,
                         const floating* g, floating* s1, floating* s2,
                         floating* s3, long n, double learning_rate,
                         double weight_decay, long step,
                         int n_threads) noexcept nogil:
    """One update of w from g; step counts updates from 1 (for Adam).
    One span per thread; one thread opens no parallel region (a region
    costs ~0.6 us even for one thread, and the fused epoch calls this from
    inside its team for every block of every parameter array)."""
    cdef int nt = threads_for(n, n_threads), part
    cdef long lo, hi
    if nt == 1:
        _update_span(cfg, w, g, s1, s2, s3, 0, n, learning_rate, weight_decay, step)
        return
    for part in prange(nt, num_threads=nt, schedule="static"):
        lo, hi = _span_start(n, part, nt), _span_start(n, part + 1, nt)
        _update_span(cfg, w, g, s1, s2, s3, lo, hi, learning_rate, weight_decay, step)


cdef inline void _update_span(const OptimizerConfig* cfg, floating* w, const floating* g,
                              floating* s1, floating* s2, floating* s3, long lo, long hi,
                              double learning_rate, double weight_decay,
                              long step) noexcept nogil:
    """The optimizer's update of elements [lo, hi) (s1..s3 may be NULL); an
    optimizer with state runs it with subnormals flushed (FTZ/DAZ, see below)."""
    cdef bint has_state = cfg.kind != SGD or cfg.momentum != 0
    cdef unsigned int saved = 0
    if has_state:
        saved = descend_get_mxcsr()
        descend_set_mxcsr(saved | DESCEND_FLUSH_BITS)
    _update_kind(cfg, w, g, s1, s2, s3, lo, hi, learning_rate, weight_decay, step)
    if has_state:
        descend_set_mxcsr(saved)


cdef inline void _update_kind(const OptimizerConfig* cfg, floating* w, const floating* g,
                              floating* s1, floating* s2, floating* s3, long lo, long hi,
                              double learning_rate, double weight_decay,
                              long step) noexcept nogil:
    w, g = w + lo, g + lo
    s1 = s1 + lo if s1 != NULL else NULL
    s2 = s2 + lo if s2 != NULL else NULL
    s3 = s3 + lo if s3 != NULL else NULL
    if cfg.kind == SGD:
        _sgd(w, g, s1, hi - lo, learning_rate, cfg.momentum, cfg.nesterov, weight_decay)
    elif cfg.kind == ADAGRAD:
        _adagrad(w, g, s1, hi - lo, learning_rate, cfg.epsilon, weight_decay)
    elif cfg.kind == RMSPROP:
        _rmsprop(w, g, s1, s2, s3, hi - lo, learning_rate, cfg.rho, cfg.epsilon,
                 cfg.momentum, cfg.centered, weight_decay)
    else:
        _adam(w, g, s1, s2, s3, hi - lo, learning_rate, cfg.beta1, cfg.beta2,
              cfg.epsilon, cfg.amsgrad, cfg.decoupled, weight_decay, step)


# Optimizer state that decays (Adam's and RMSprop's moving averages, momentum's
# velocity) passes through the subnormal range on ordinary data: an MNIST
# pixel that is rarely on leaves its kernel row's first moment decaying by
# beta1 = 0.9 a step, subnormal within ~800 steps of its last non-zero
# gradient, and each arithmetic operation on a subnormal takes a microcode
# assist on x86 (an Adam epoch of 784-256-128-10 at batch 128, one thread,
# grew from 0.59 to 0.85 s over six epochs; 0.55 s flat with FTZ/DAZ). So the
# updates of optimizers with state run with x86's flush-to-zero and
# denormals-are-zero bits set, and the caller's bits restored after, as
# TensorFlow and XLA run their CPU kernels: results differ from IEEE only
# where a state or update value is below 1.2e-38 (float32) or 2.2e-308
# (float64), far below a weight's rounding. Plain SGD, which keeps no state,
# stays IEEE. Elsewhere than x86 nothing changes (descend/_fpenv.pxd).


# The update loops, in C so that each is compiled in three versions (portable,
# AVX2, AVX-512; descend/_simd.pxd): elementwise, so every version and every
# split over threads gives the same bits. The arithmetic is written in the
# order of the equations in the docstrings below (SGD in float64, the others
# in the array's type T).
cdef extern from *:
    r"""
    #define DESCEND_SGD(T, S, ISA, ATTRIBUTE)                                   \
        ATTRIBUTE static void descend_sgd_##S##_##ISA(                          \
                T *DESCEND_RESTRICT w, const T *DESCEND_RESTRICT g,             \
                T *DESCEND_RESTRICT velocity, long n, double lr, double momentum, \
                int nesterov, double weight_decay) {                            \
            long i;                                                             \
            if (momentum == 0) {                                                \
                for (i = 0; i < n; i++)                                         \
                    w[i] = (T)(w[i] - lr * (g[i] + weight_decay * w[i]));       \
                return;                                                         \
            }                                                                   \
            for (i = 0; i < n; i++) {                                           \
                double d = g[i] + weight_decay * w[i];                          \
                double v = momentum * velocity[i] + d;                          \
                velocity[i] = (T)v;                                             \
                w[i] = (T)(w[i] - lr * (nesterov ? d + momentum * v : v));      \
            }                                                                   \
        }
    #define DESCEND_ADAGRAD(T, S, ISA, ATTRIBUTE)                               \
        ATTRIBUTE static void descend_adagrad_##S##_##ISA(                      \
                T *DESCEND_RESTRICT w, const T *DESCEND_RESTRICT g,             \
                T *DESCEND_RESTRICT sum_sq, long n, T lr, T eps, T wd) {        \
            long i;                                                             \
            for (i = 0; i < n; i++) {                                           \
                T d = g[i] + wd * w[i];                                         \
                T acc = sum_sq[i] + d * d;                                      \
                sum_sq[i] = acc;                                                \
                w[i] = w[i] - lr * d / (DESCEND_SQRT_##S(acc) + eps);           \
            }                                                                   \
        }
    #define DESCEND_RMSPROP(T, S, ISA, ATTRIBUTE)                               \
        ATTRIBUTE static void descend_rmsprop_##S##_##ISA(                      \
                T *DESCEND_RESTRICT w, const T *DESCEND_RESTRICT g,             \
                T *DESCEND_RESTRICT square_avg, T *DESCEND_RESTRICT grad_avg,   \
                T *DESCEND_RESTRICT velocity, long n, T lr, T rho, T keep, T eps, \
                T mu, int centered, T wd) {                                     \
            long i;                                                             \
            for (i = 0; i < n; i++) {                                           \
                T d = g[i] + wd * w[i], s, c, r, v;                             \
                s = rho * square_avg[i] + keep * d * d;                         \
                square_avg[i] = s;                                              \
                if (centered) {                                                 \
                    c = rho * grad_avg[i] + keep * d;                           \
                    grad_avg[i] = c;                                            \
                    r = DESCEND_SQRT_##S(s - c * c) + eps;                      \
                } else {                                                        \
                    r = DESCEND_SQRT_##S(s) + eps;                              \
                }                                                               \
                if (mu > 0) {                                                   \
                    v = mu * velocity[i] + d / r;                               \
                    velocity[i] = v;                                            \
                    w[i] = w[i] - lr * v;                                       \
                } else {                                                        \
                    w[i] = w[i] - lr * d / r;                                   \
                }                                                               \
            }                                                                   \
        }
    #define DESCEND_ADAM(T, S, ISA, ATTRIBUTE)                                  \
        ATTRIBUTE static void descend_adam_##S##_##ISA(                         \
                T *DESCEND_RESTRICT w, const T *DESCEND_RESTRICT g,             \
                T *DESCEND_RESTRICT exp_avg, T *DESCEND_RESTRICT exp_avg_sq,    \
                T *DESCEND_RESTRICT max_exp_avg_sq, long n, T lr, T b1, T b2,   \
                T keep1, T keep2, T inv_bc1, T inv_root_bc2, T eps,             \
                int amsgrad, int decoupled, T wd) {                             \
            long i;                                                             \
            for (i = 0; i < n; i++) {                                           \
                T wi = w[i], d, m, v;                                           \
                if (decoupled) {                                                \
                    d = g[i];                                                   \
                    wi = wi - lr * wd * wi;                                     \
                } else {                                                        \
                    d = g[i] + wd * wi;                                         \
                }                                                               \
                m = b1 * exp_avg[i] + keep1 * d;                                \
                v = b2 * exp_avg_sq[i] + keep2 * d * d;                         \
                exp_avg[i] = m;                                                 \
                exp_avg_sq[i] = v;                                              \
                if (amsgrad) {                                                  \
                    if (v < max_exp_avg_sq[i]) v = max_exp_avg_sq[i];           \
                    max_exp_avg_sq[i] = v;                                      \
                }                                                               \
                w[i] = wi - lr * (m * inv_bc1)                                  \
                    / (DESCEND_SQRT_##S(v) * inv_root_bc2 + eps);               \
            }                                                                   \
        }
    #define DESCEND_SQRT_f sqrtf
    #define DESCEND_SQRT_d sqrt
    #define DESCEND_UPDATES(ISA, ATTRIBUTE)                                     \
        DESCEND_SGD(float, f, ISA, ATTRIBUTE) DESCEND_SGD(double, d, ISA, ATTRIBUTE) \
        DESCEND_ADAGRAD(float, f, ISA, ATTRIBUTE) DESCEND_ADAGRAD(double, d, ISA, ATTRIBUTE) \
        DESCEND_RMSPROP(float, f, ISA, ATTRIBUTE) DESCEND_RMSPROP(double, d, ISA, ATTRIBUTE) \
        DESCEND_ADAM(float, f, ISA, ATTRIBUTE) DESCEND_ADAM(double, d, ISA, ATTRIBUTE)
    DESCEND_THREE_VERSIONS(DESCEND_UPDATES)
    #define descend_sgd_f DESCEND_PICK(descend_sgd_f)
    #define descend_sgd_d DESCEND_PICK(descend_sgd_d)
    #define descend_adagrad_f DESCEND_PICK(descend_adagrad_f)
    #define descend_adagrad_d DESCEND_PICK(descend_adagrad_d)
    #define descend_rmsprop_f DESCEND_PICK(descend_rmsprop_f)
    #define descend_rmsprop_d DESCEND_PICK(descend_rmsprop_d)
    #define descend_adam_f DESCEND_PICK(descend_adam_f)
    #define descend_adam_d DESCEND_PICK(descend_adam_d)
    """
    void sgd_f "descend_sgd_f"(float* w, const float* g, float* velocity, long n, double lr,
                               double momentum, int nesterov, double weight_decay) noexcept nogil
    void sgd_d "descend_sgd_d"(double* w, const double* g, double* velocity, long n,
                               double lr, double momentum, int nesterov,
                               double weight_decay) noexcept nogil
    void adagrad_f "descend_adagrad_f"(float* w, const float* g, float* sum_sq, long n,
                                       float lr, float eps, float wd) noexcept nogil
    void adagrad_d "descend_adagrad_d"(double* w, const double* g, double* sum_sq, long n,
                                       double lr, double eps, double wd) noexcept nogil
    void rmsprop_f "descend_rmsprop_f"(float* w, const float* g, float* square_avg,
                                       float* grad_avg, float* velocity, long n, float lr,
                                       float rho, float keep, float eps, float mu,
                                       int centered, float wd) noexcept nogil
    void rmsprop_d "descend_rmsprop_d"(double* w, const double* g, double* square_avg,
                                       double* grad_avg, double* velocity, long n, double lr,
                                       double rho, double keep, double eps, double mu,
                                       int centered, double wd) noexcept nogil
    void adam_f "descend_adam_f"(float* w, const float* g, float* exp_avg, float* exp_avg_sq,
                                 float* max_exp_avg_sq, long n, float lr, float b1, float b2,
                                 float keep1, float keep2, float inv_bc1,
                                 float inv_root_bc2, float eps, int amsgrad,
                                 int decoupled, float wd) noexcept nogil
    void adam_d "descend_adam_d"(double* w, const double* g, double* exp_avg,
                                 double* exp_avg_sq, double* max_exp_avg_sq, long n,
                                 double lr, double b1, double b2, double keep1, double keep2,
                                 double inv_bc1, double inv_root_bc2,
                                 double eps, int amsgrad, int decoupled,
                                 double wd) noexcept nogil

# The penalties' loops and the sums of squares, in C for the same reason.
# A sum over a flat array is taken in 8 lanes: element i (its index in the
# whole array, `first` + its index in the span) adds to lane i % 8, and the
# lanes are combined in one fixed order at the end (lanes_total, _optim.pxd).
# So the additions are independent and vectorize (8 doubles: one AVX-512
# register, two AVX2 ones), every version gives the same bits, and rows
# added one call after another (a padded copy's rows) give the bits of one
# call over them all, as the sum in element order they replace did. That
# sum was a chain of dependent additions, and the penalty's loop branched on
# each weight's sign: 7 ns a weight, which made an Adam epoch with an L2
# penalty on MNIST 4x as long (AMD EPYC, Zen 4). GCC and Clang get the
# lanes as two vectors of 4 doubles (their vector extension: the loop over
# lanes is not vectorized on its own). Not one of 8: the AVX2 and SSE2
# versions have no register that wide, and GCC kept such a vector on the
# stack, 3x slower than scalar code (AMD EPYC Zen 4, AVX2 loops forced).
# Other compilers get the same sums lane by lane.
cdef extern from *:
    r"""
    #if defined(__GNUC__)
    typedef double descend_v4d __attribute__((vector_size(32)));
    typedef long long descend_v4l __attribute__((vector_size(32)));
    /* v := x[0..4) as doubles, x of type T */
    #define DESCEND_LOAD4(T, v, x) {                                              \
            typedef T descend_raw4 __attribute__((vector_size(4 * sizeof(T))));   \
            descend_raw4 raw_;                                                    \
            memcpy(&raw_, (x), sizeof raw_);                                      \
            v = __builtin_convertvector(raw_, descend_v4d);                       \
        }
    /* |v| lane by lane: the sign bit cleared, as fabs */
    #define DESCEND_ABS4(v) ((descend_v4d)((descend_v4l)(v) & 0x7fffffffffffffffLL))
    #endif

    /* sums += TERM(x[i]) for i in [0, n), x[i] in lane (first + i) % 8:
       TERM_1 of one double, TERM_4 of four (descend_v4d) */
    #if defined(__GNUC__)
    #define DESCEND_LANE_SUM(T, x, n, first, sums, TERM_1, TERM_4) {              \
            long i_ = 0;                                                          \
            descend_v4d acc_[2], v_;                                              \
            double *lane_ = (sums)->lane;                                         \
            for (; i_ < (n) && ((first) + i_) % 8 != 0; i_++)                     \
                lane_[((first) + i_) % 8] += TERM_1((double)(x)[i_]);             \
            memcpy(acc_, lane_, sizeof acc_);                                     \
            for (; i_ + 8 <= (n); i_ += 8) {                                      \
                DESCEND_LOAD4(T, v_, (x) + i_)                                    \
                acc_[0] += TERM_4(v_);                                            \
                DESCEND_LOAD4(T, v_, (x) + i_ + 4)                                \
                acc_[1] += TERM_4(v_);                                            \
            }                                                                     \
            memcpy(lane_, acc_, sizeof acc_);                                     \
            for (; i_ < (n); i_++)                                                \
                lane_[((first) + i_) % 8] += TERM_1((double)(x)[i_]);             \
        }
    #else
    #define DESCEND_LANE_SUM(T, x, n, first, sums, TERM_1, TERM_4) {              \
            long i_;                                                              \
            for (i_ = 0; i_ < (n); i_++)                                          \
                (sums)->lane[((first) + i_) % 8] += TERM_1((double)(x)[i_]);      \
        }
    #endif
    #define DESCEND_PENALTY_1(wi) (l1 * fabs(wi) + l2 * (wi) * (wi))
    #define DESCEND_PENALTY_4(v) (l1 * DESCEND_ABS4(v) + l2 * (v) * (v))
    #define DESCEND_SQUARE(x) ((x) * (x))
    #define DESCEND_ABS_1(x) fabs(x)
    #define DESCEND_SUMS(T, S, ISA, ATTRIBUTE)                                    \
        /* g += l1 sign(w) + 2 l2 w (sign(0) = 0); sums += l1 |w| + l2 w^2 */     \
        ATTRIBUTE static void descend_penalty_##S##_##ISA(                        \
                const T *DESCEND_RESTRICT w, T *DESCEND_RESTRICT g, long n,       \
                long first, double l1, double l2, descend_lanes *sums) {          \
            long i;                                                               \
            for (i = 0; i < n; i++) {                                             \
                double wi = w[i];                                                 \
                double sign = (double)(wi > 0) - (double)(wi < 0);                \
                g[i] = (T)(g[i] + l1 * sign + 2 * l2 * wi);                       \
            }                                                                     \
            DESCEND_LANE_SUM(T, w, n, first, sums, DESCEND_PENALTY_1, DESCEND_PENALTY_4) \
        }                                                                         \
        ATTRIBUTE static void descend_sum_squares_##S##_##ISA(                    \
                const T *DESCEND_RESTRICT x, long n, long first, descend_lanes *sums) { \
            DESCEND_LANE_SUM(T, x, n, first, sums, DESCEND_SQUARE, DESCEND_SQUARE) \
        }                                                                         \
        ATTRIBUTE static void descend_sum_abs_##S##_##ISA(                        \
                const T *DESCEND_RESTRICT x, long n, long first, descend_lanes *sums) { \
            DESCEND_LANE_SUM(T, x, n, first, sums, DESCEND_ABS_1, DESCEND_ABS4)    \
        }                                                                         \
        /* w := w - clip(w, -t, t): sign(w) max(|w| - t, 0), without a branch */ \
        ATTRIBUTE static void descend_shrink_##S##_##ISA(                         \
                T *DESCEND_RESTRICT w, long n, double t) {                        \
            long i;                                                               \
            for (i = 0; i < n; i++) {                                             \
                double wi = w[i];                                                 \
                w[i] = (T)(wi - (wi > t ? t : (wi < -t ? -t : wi)));              \
            }                                                                     \
        }
    #define DESCEND_ALL_SUMS(ISA, ATTRIBUTE)                                      \
        DESCEND_SUMS(float, f, ISA, ATTRIBUTE) DESCEND_SUMS(double, d, ISA, ATTRIBUTE)
    DESCEND_THREE_VERSIONS(DESCEND_ALL_SUMS)
    #define descend_penalty_f DESCEND_PICK(descend_penalty_f)
    #define descend_penalty_d DESCEND_PICK(descend_penalty_d)
    #define descend_sum_squares_f DESCEND_PICK(descend_sum_squares_f)
    #define descend_sum_squares_d DESCEND_PICK(descend_sum_squares_d)
    #define descend_sum_abs_f DESCEND_PICK(descend_sum_abs_f)
    #define descend_sum_abs_d DESCEND_PICK(descend_sum_abs_d)
    #define descend_shrink_f DESCEND_PICK(descend_shrink_f)
    #define descend_shrink_d DESCEND_PICK(descend_shrink_d)
    """
    void penalty_f "descend_penalty_f"(const float* w, float* g, long n, long first,
                                       double l1, double l2, Lanes* sums) noexcept nogil
    void penalty_d "descend_penalty_d"(const double* w, double* g, long n, long first,
                                       double l1, double l2, Lanes* sums) noexcept nogil
    void sum_squares_f "descend_sum_squares_f"(const float* x, long n, long first,
                                               Lanes* sums) noexcept nogil
    void sum_squares_d "descend_sum_squares_d"(const double* x, long n, long first,
                                               Lanes* sums) noexcept nogil
    void sum_abs_f "descend_sum_abs_f"(const float* x, long n, long first,
                                       Lanes* sums) noexcept nogil
    void sum_abs_d "descend_sum_abs_d"(const double* x, long n, long first,
                                       Lanes* sums) noexcept nogil
    void shrink_f "descend_shrink_f"(float* w, long n, double t) noexcept nogil
    void shrink_d "descend_shrink_d"(double* w, long n, double t) noexcept nogil

simd_use(AVX512)


def _use_isa(str name):
    """Run the update loops of `name` ("avx512", "avx2", "portable"), or the
    widest below it this CPU has; returns the name of the loops now in use.
    For tests and benchmarks: not while a fit runs."""
    return use_isa_named(name)


cdef inline long _span_start(long n, int part, int parts) noexcept nogil:
    """Where part `part` of `parts` equal spans of [0, n) starts (part `parts`:
    n). A prange body assigns its span's ends from it: variables a body
    assigns are private to each thread, while ones written through a pointer
    (a former _span(n, part, nt, &lo, &hi)) stayed shared, and a thread could
    update another's span (tests/test_kernels.py's threaded-equals-serial
    failed in ~1 of 1000 runs, ~3% with the flushed updates' timing)."""
    return n * part // parts


cdef inline void _sgd(floating* w, const floating* g, floating* velocity, long n,
                      double lr, double momentum, bint nesterov,
                      double weight_decay) noexcept nogil:
    """d = g + wd w ; v = mu v + d ; w -= lr (d + mu v if nesterov else v)."""
    if floating is float:
        sgd_f(w, g, velocity, n, lr, momentum, nesterov, weight_decay)
    else:
        sgd_d(w, g, velocity, n, lr, momentum, nesterov, weight_decay)


cdef inline void _adagrad(floating* w, const floating* g, floating* sum_sq, long n,
                          double lr, double eps, double weight_decay) noexcept nogil:
    """d = g + wd w ; G += d^2 ; w -= lr d / (sqrt(G) + eps)."""
    if floating is float:
        adagrad_f(w, g, sum_sq, n, <float>lr, <float>eps, <float>weight_decay)
    else:
        adagrad_d(w, g, sum_sq, n, lr, eps, weight_decay)


cdef inline void _rmsprop(floating* w, const floating* g, floating* square_avg,
                          floating* grad_avg, floating* velocity, long n, double lr,
                          double rho, double eps, double momentum, bint centered,
                          double weight_decay) noexcept nogil:
    """d = g + wd w ; s = rho s + (1-rho) d^2 ; [c = rho c + (1-rho) d] ;
    r = sqrt(s [- c^2]) + eps ; v = mu v + d / r ; w -= lr v (w -= lr d/r if mu = 0)."""
    grad_avg = grad_avg if centered else NULL
    velocity = velocity if momentum > 0 else NULL
    if floating is float:
        rmsprop_f(w, g, square_avg, grad_avg, velocity, n, <float>lr, <float>rho,
                  <float>(1 - rho), <float>eps, <float>momentum, centered,
                  <float>weight_decay)
    else:
        rmsprop_d(w, g, square_avg, grad_avg, velocity, n, lr, rho, 1 - rho, eps,
                  momentum, centered, weight_decay)


cdef inline void _adam(floating* w, const floating* g, floating* exp_avg,
                       floating* exp_avg_sq, floating* max_exp_avg_sq, long n,
                       double lr, double beta1, double beta2, double eps,
                       bint amsgrad, bint decoupled, double weight_decay,
                       long step) noexcept nogil:
    """Adam (Kingma & Ba 2015, Algorithm 1) / AdamW (Loshchilov & Hutter 2019).

    Adam:  d = g + wd w.  AdamW: d = g and w -= lr wd w first (decoupled).
    m = b1 m + (1-b1) d ; v = b2 v + (1-b2) d^2 ; [vmax = max(vmax, v)]
    w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

    computed with the bias corrections folded into two scalars, as PyTorch
    folds them: w -= (lr (m inv_bc1)) / (sqrt(v) inv_root_bc2 + eps),
    inv_bc1 = 1 / (1 - b1^t), inv_root_bc2 = 1 / sqrt(1 - b2^t). One division
    and one square root an element instead of three divisions and a square
    root, which bound the loop on arrays that fit in L2 (about 20% less time
    an element, float32, on an AMD EPYC, Zen 4). The products go in the
    textbook's order, lr m_hat before the division: PyTorch's step_size = lr
    inv_bc1 overflows float32 for a large lr with beta_1 near 1 (a zero m then
    gave NaN), and m_hat / denominator first overflows for a tiny lr over a
    tiny denominator (m_hat / eps), where lr m_hat / eps is finite.
    """
    cdef double inv_bc1 = 1 / (1 - pow(beta1, <double>step))
    cdef double inv_root_bc2 = 1 / sqrt(1 - pow(beta2, <double>step))
    if floating is float:
        adam_f(w, g, exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else NULL, n, <float>lr,
               <float>beta1, <float>beta2, <float>(1 - beta1), <float>(1 - beta2),
               <float>inv_bc1, <float>inv_root_bc2, <float>eps, amsgrad,
               decoupled, <float>weight_decay)
    else:
        adam_d(w, g, exp_avg, exp_avg_sq, max_exp_avg_sq if amsgrad else NULL, n, lr, beta1,
               beta2, 1 - beta1, 1 - beta2, inv_bc1, inv_root_bc2, eps, amsgrad,
               decoupled, weight_decay)


# The elementwise helpers below run in one span per thread; one thread (the
# fused epoch calls them from inside its team, and any array below
# PARALLEL_MIN_ELEMENTS) opens no parallel region. A span's sum is taken in
# lanes (above) from its own first element; a team's spans add up in any order.

cdef void clear_lanes(Lanes* sums) noexcept nogil:
    memset(sums, 0, sizeof(Lanes))


cdef void add_penalty_lanes(const floating* w, floating* g, long n, long first,
                            double l1, double l2, Lanes* sums) noexcept nogil:
    """g += l1 sign(w) + 2 l2 w ; sums += l1 |w| + l2 w^2, element i of w being
    element first + i of its array (its lane). L1 uses the subgradient
    sign(0) = 0 (not a proximal step)."""
    if floating is float:
        penalty_f(w, g, n, first, l1, l2, sums)
    else:
        penalty_d(w, g, n, first, l1, l2, sums)


cdef void sum_squares_lanes(const floating* x, long n, long first, Lanes* sums) noexcept nogil:
    """sums += x^2 (float64), x[0] being element `first` of its array."""
    if floating is float:
        sum_squares_f(x, n, first, sums)
    else:
        sum_squares_d(x, n, first, sums)


cdef void sum_abs_lanes(const floating* x, long n, long first, Lanes* sums) noexcept nogil:
    """sums += |x| (float64), x[0] being element `first` of its array."""
    if floating is float:
        sum_abs_f(x, n, first, sums)
    else:
        sum_abs_d(x, n, first, sums)


cdef double add_penalty_gradient(const floating* w, floating* g, long n,
                                 double l1, double l2,
                                 int n_threads, double total=0.0) noexcept nogil:
    """g += l1 sign(w) + 2 l2 w ; return total + l1 sum|w| + l2 sum w^2 (the
    sum in lanes: add_penalty_lanes on the whole array, or on each thread's span)."""
    cdef int nt = threads_for(n, n_threads), part
    cdef long lo, hi
    cdef double penalty = total
    cdef Lanes sums
    if nt == 1:
        clear_lanes(&sums)
        add_penalty_lanes(w, g, n, 0, l1, l2, &sums)
        return total + lanes_total(&sums)
    for part in prange(nt, num_threads=nt, schedule="static"):
        lo, hi = _span_start(n, part, nt), _span_start(n, part + 1, nt)
        penalty += _span_penalty(w, g, lo, hi, l1, l2)
    return penalty


cdef inline double _span_penalty(const floating* w, floating* g, long lo, long hi,
                                 double l1, double l2) noexcept nogil:
    cdef Lanes sums
    clear_lanes(&sums)
    add_penalty_lanes(w + lo, g + lo, hi - lo, lo, l1, l2, &sums)
    return lanes_total(&sums)


cdef void soft_threshold(floating* w, long n, double threshold,
                         int n_threads) noexcept nogil:
    """w := sign(w) max(|w| - threshold, 0): the proximal step of threshold * |w|.

    Applied after an update with threshold = lr * l1, it is the L1 part of
    forward-backward splitting (FOBOS, Duchi & Singer 2009, eq. 3 with
    r(w) = l1 |w|): weights whose data gradient cannot hold them away from 0
    land on exactly 0, where a subgradient step would oscillate around it.
    """
    cdef int nt = threads_for(n, n_threads), part
    cdef long lo, hi
    if nt == 1:
        _shrink(w, n, threshold)
        return
    for part in prange(nt, num_threads=nt, schedule="static"):
        lo, hi = _span_start(n, part, nt), _span_start(n, part + 1, nt)
        _shrink(w + lo, hi - lo, threshold)


cdef inline void _shrink(floating* w, long n, double threshold) noexcept nogil:
    if floating is float:
        shrink_f(w, n, threshold)
    else:
        shrink_d(w, n, threshold)


cdef double sum_squares(const floating* g, long n, int n_threads,
                        double total=0.0) noexcept nogil:
    """return total + sum g^2 (float64, in lanes: sum_squares_lanes on the
    whole array, or on each thread's span)."""
    cdef int nt = threads_for(n, n_threads), part
    cdef long lo, hi
    cdef double sums = total
    if nt == 1:
        return total + _span_squares(g, 0, n)
    for part in prange(nt, num_threads=nt, schedule="static"):
        lo, hi = _span_start(n, part, nt), _span_start(n, part + 1, nt)
        sums += _span_squares(g, lo, hi)
    return sums


cdef inline double _span_squares(const floating* g, long lo, long hi) noexcept nogil:
    cdef Lanes sums
    clear_lanes(&sums)
    sum_squares_lanes(g + lo, hi - lo, lo, &sums)
    return lanes_total(&sums)


cdef void scale_and_clip(floating* g, long n, double scale, double clipvalue,
                         int n_threads) noexcept nogil:
    """g := clip(scale g, -clipvalue, clipvalue); clipvalue <= 0: no clip."""
    cdef int nt = threads_for(n, n_threads), part
    cdef long lo, hi
    if nt == 1:
        _scale_and_clip_span(g, 0, n, scale, clipvalue)
        return
    for part in prange(nt, num_threads=nt, schedule="static"):
        lo, hi = _span_start(n, part, nt), _span_start(n, part + 1, nt)
        _scale_and_clip_span(g, lo, hi, scale, clipvalue)


cdef inline void _scale_and_clip_span(floating* g, long lo, long hi, double scale,
                                      double clipvalue) noexcept nogil:
    cdef long i
    cdef double v
    for i in range(lo, hi):
        v = scale * g[i]
        if clipvalue > 0:
            if v > clipvalue:
                v = clipvalue
            elif v < -clipvalue:
                v = -clipvalue
        g[i] = <floating>v


# ---- memoryview twins ------------------------------------------------------

def optimizer_step_py(dict config, floating[::1] w, const floating[::1] g,
                      floating[::1] s1, floating[::1] s2, floating[::1] s3,
                      double learning_rate, double weight_decay, long step,
                      int n_threads):
    """Update w in place. config keys: kind, momentum, nesterov, rho,
    centered, beta1, beta2, amsgrad, decoupled, epsilon."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    if g is None or w is None:
        raise ValueError("w and g are required")
    needed = required_state(config)
    for name, array in zip(("s1", "s2", "s3"), (s1, s2, s3)):
        if name in needed and array is None:
            raise ValueError(f"this optimizer needs state array {name}, got None")
    cdef OptimizerConfig cfg = make_config_py(config)
    cdef long n = w.shape[0]
    for name, array in (("g", g), ("s1", s1), ("s2", s2), ("s3", s3)):
        if array is not None and array.shape[0] != n:
            raise ValueError(f"{name} has {array.shape[0]} elements, w has {n}")
    if n == 0:
        return
    with nogil:
        optimizer_step(&cfg, &w[0], &g[0],
                       &s1[0] if s1 is not None else NULL,
                       &s2[0] if s2 is not None else NULL,
                       &s3[0] if s3 is not None else NULL,
                       n, learning_rate, weight_decay, step, n_threads)


def required_state(dict config):
    """Names of the state arrays (s1, s2, s3) the update reads for this config."""
    kind = config.get("kind")
    if kind == SGD:
        return {"s1"} if config.get("momentum", 0.0) != 0 else set()
    if kind == ADAGRAD:
        return {"s1"}
    if kind == RMSPROP:
        return ({"s1"} | ({"s2"} if config.get("centered", False) else set())
                | ({"s3"} if config.get("momentum", 0.0) > 0 else set()))
    return {"s1", "s2"} | ({"s3"} if config.get("amsgrad", False) else set())


cpdef OptimizerConfig make_config_py(dict config) except *:
    """The C struct of an optimizer's settings, from its config dict."""
    if config.get("kind") not in (SGD, ADAGRAD, RMSPROP, ADAM):
        raise ValueError(f"optimizer kind must be 0..3, got {config.get('kind')!r}")
    cdef OptimizerConfig cfg
    cfg.kind = config["kind"]
    cfg.momentum = config.get("momentum", 0.0)
    cfg.nesterov = config.get("nesterov", False)
    cfg.rho = config.get("rho", 0.9)
    cfg.centered = config.get("centered", False)
    cfg.beta1 = config.get("beta1", 0.9)
    cfg.beta2 = config.get("beta2", 0.999)
    cfg.amsgrad = config.get("amsgrad", False)
    cfg.decoupled = config.get("decoupled", False)
    cfg.epsilon = config.get("epsilon", 1e-8)
    return cfg


def add_penalty_gradient_py(const floating[::1] w, floating[::1] g,
                            double l1, double l2, int n_threads):
    """g += l1 sign(w) + 2 l2 w in place; returns l1 sum|w| + l2 sum w^2."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    if g.shape[0] != w.shape[0]:
        raise ValueError(f"g has {g.shape[0]} elements, w has {w.shape[0]}")
    if w.shape[0] == 0:
        return 0.0
    return add_penalty_gradient(&w[0], &g[0], w.shape[0], l1, l2, n_threads)


def sum_squares_py(const floating[::1] g, int n_threads):
    """sum of squares of g (float64)."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    if g.shape[0] == 0:
        return 0.0
    return sum_squares(&g[0], g.shape[0], n_threads)


def scale_and_clip_py(floating[::1] g, double scale, double clipvalue, int n_threads):
    """g := clip(scale g, -clipvalue, clipvalue) in place (no clip if clipvalue <= 0)."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    if g.shape[0] == 0:
        return
    scale_and_clip(&g[0], g.shape[0], scale, clipvalue, n_threads)


def soft_threshold_py(floating[::1] w, double threshold, int n_threads):
    """w := sign(w) max(|w| - threshold, 0) in place (threshold >= 0)."""
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    if not threshold >= 0:
        raise ValueError(f"threshold must be >= 0, got {threshold}")
    if w.shape[0] == 0:
        return
    soft_threshold(&w[0], w.shape[0], threshold, n_threads)


cdef double clip_scale(double bound, double norm_squared) noexcept nogil:
    """min(1, bound / (||g|| + 1e-6)) for ||g||^2 = norm_squared: the factor that
    clips a gradient (or all of them, global_clipnorm) to norm <= bound; the
    1e-6 keeps a zero gradient finite, as torch.nn.utils.clip_grad_norm_."""
    cdef double scale = bound / (sqrt(norm_squared) + 1e-6)
    return scale if scale < 1 else 1.0


def clip_scale_py(double bound, double norm_squared):
    """clip_scale's twin (Optimizer.apply_gradients calls it)."""
    if not bound > 0 or not norm_squared >= 0:
        raise ValueError(f"bound must be > 0 and norm_squared >= 0, got {bound}, "
                         f"{norm_squared}")
    return clip_scale(bound, norm_squared)
