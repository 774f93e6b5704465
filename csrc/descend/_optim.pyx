# Parameter updates: one fused pass over each parameter array.
#
# w is a parameter array flattened to n elements, g its gradient, s1..s3 the
# optimizer's state arrays for it (same length; NULL where unused). The math
# is done in float64 per element and stored back in the array's dtype. The
# equations are documented in descend/optimizers.py, with their papers.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, pow, fabs

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
    """One update of w from g; step counts updates from 1 (for Adam)."""
    cdef int nt = threads_for(n, n_threads)
    if cfg.kind == SGD:
        _sgd(w, g, s1, n, learning_rate, cfg.momentum, cfg.nesterov,
             weight_decay, nt)
    elif cfg.kind == ADAGRAD:
        _adagrad(w, g, s1, n, learning_rate, cfg.epsilon, weight_decay, nt)
    elif cfg.kind == RMSPROP:
        _rmsprop(w, g, s1, s2, s3, n, learning_rate, cfg.rho, cfg.epsilon,
                 cfg.momentum, cfg.centered, weight_decay, nt)
    else:
        _adam(w, g, s1, s2, s3, n, learning_rate, cfg.beta1, cfg.beta2,
              cfg.epsilon, cfg.amsgrad, cfg.decoupled, weight_decay, step, nt)


cdef void _sgd(floating* w, const floating* g, floating* velocity, long n,
               double lr, double momentum, bint nesterov, double weight_decay,
               int nt) noexcept nogil:
    """d = g + wd w ; v = mu v + d ; w -= lr (d + mu v if nesterov else v)."""
    cdef long i
    cdef double d, v
    if momentum == 0:
        for i in prange(n, num_threads=nt, schedule="static"):
            w[i] = <floating>(w[i] - lr * (g[i] + weight_decay * w[i]))
        return
    for i in prange(n, num_threads=nt, schedule="static"):
        d = g[i] + weight_decay * w[i]
        v = momentum * velocity[i] + d
        velocity[i] = <floating>v
        if nesterov:
            w[i] = <floating>(w[i] - lr * (d + momentum * v))
        else:
            w[i] = <floating>(w[i] - lr * v)


cdef void _adagrad(floating* w, const floating* g, floating* sum_sq, long n,
                   double lr, double eps, double weight_decay,
                   int nt) noexcept nogil:
    """d = g + wd w ; G += d^2 ; w -= lr d / (sqrt(G) + eps)."""
    cdef long i
    cdef double d, acc
    for i in prange(n, num_threads=nt, schedule="static"):
        d = g[i] + weight_decay * w[i]
        acc = sum_sq[i] + d * d
        sum_sq[i] = <floating>acc
        w[i] = <floating>(w[i] - lr * d / (sqrt(acc) + eps))


cdef void _rmsprop(floating* w, const floating* g, floating* square_avg,
                   floating* grad_avg, floating* velocity, long n, double lr,
                   double rho, double eps, double momentum, bint centered,
                   double weight_decay, int nt) noexcept nogil:
    """d = g + wd w ; s = rho s + (1-rho) d^2 ; [c = rho c + (1-rho) d] ;
    r = sqrt(s [- c^2]) + eps ; v = mu v + d / r ; w -= lr v (w -= lr d/r if mu = 0)."""
    cdef long i
    cdef double d, s, c, r, v
    for i in prange(n, num_threads=nt, schedule="static"):
        d = g[i] + weight_decay * w[i]
        s = rho * square_avg[i] + (1 - rho) * d * d
        square_avg[i] = <floating>s
        if centered:
            c = rho * grad_avg[i] + (1 - rho) * d
            grad_avg[i] = <floating>c
            r = sqrt(s - c * c) + eps
        else:
            r = sqrt(s) + eps
        if momentum > 0:
            v = momentum * velocity[i] + d / r
            velocity[i] = <floating>v
            w[i] = <floating>(w[i] - lr * v)
        else:
            w[i] = <floating>(w[i] - lr * d / r)


cdef void _adam(floating* w, const floating* g, floating* exp_avg,
                floating* exp_avg_sq, floating* max_exp_avg_sq, long n,
                double lr, double beta1, double beta2, double eps,
                bint amsgrad, bint decoupled, double weight_decay, long step,
                int nt) noexcept nogil:
    """Adam (Kingma & Ba 2015, Algorithm 1) / AdamW (Loshchilov & Hutter 2019).

    Adam:  d = g + wd w.  AdamW: d = g and w -= lr wd w first (decoupled).
    m = b1 m + (1-b1) d ; v = b2 v + (1-b2) d^2 ; [vmax = max(vmax, v)]
    w -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """
    cdef long i
    cdef double d, m, v, wi
    cdef double bias_correction1 = 1 - pow(beta1, <double>step)
    cdef double bias_correction2 = 1 - pow(beta2, <double>step)
    for i in prange(n, num_threads=nt, schedule="static"):
        wi = w[i]
        if decoupled:
            d = g[i]
            wi = wi - lr * weight_decay * wi
        else:
            d = g[i] + weight_decay * wi
        m = beta1 * exp_avg[i] + (1 - beta1) * d
        v = beta2 * exp_avg_sq[i] + (1 - beta2) * d * d
        exp_avg[i] = <floating>m
        exp_avg_sq[i] = <floating>v
        if amsgrad:
            if v < max_exp_avg_sq[i]:
                v = max_exp_avg_sq[i]
            max_exp_avg_sq[i] = <floating>v
        w[i] = <floating>(wi - lr * (m / bias_correction1)
                          / (sqrt(v / bias_correction2) + eps))


cdef double add_penalty_gradient(const floating* w, floating* g, long n,
                                 double l1, double l2,
                                 int n_threads) noexcept nogil:
    """g += l1 sign(w) + 2 l2 w ; return l1 sum|w| + l2 sum w^2.

    L1 uses the subgradient sign(0) = 0 (not a proximal step).
    """
    cdef long i
    cdef double wi, penalty = 0.0, sign
    for i in prange(n, num_threads=threads_for(n, n_threads), schedule="static"):
        wi = w[i]
        sign = 1.0 if wi > 0 else (-1.0 if wi < 0 else 0.0)
        penalty += l1 * fabs(wi) + l2 * wi * wi
        g[i] = <floating>(g[i] + l1 * sign + 2 * l2 * wi)
    return penalty


cdef void soft_threshold(floating* w, long n, double threshold,
                         int n_threads) noexcept nogil:
    """w := sign(w) max(|w| - threshold, 0): the proximal step of threshold * |w|.

    Applied after an update with threshold = lr * l1, it is the L1 part of
    forward-backward splitting (FOBOS, Duchi & Singer 2009, eq. 3 with
    r(w) = l1 |w|): weights whose data gradient cannot hold them away from 0
    land on exactly 0, where a subgradient step would oscillate around it.
    """
    cdef long i
    cdef double wi
    for i in prange(n, num_threads=threads_for(n, n_threads), schedule="static"):
        wi = w[i]
        if wi > threshold:
            w[i] = <floating>(wi - threshold)
        elif wi < -threshold:
            w[i] = <floating>(wi + threshold)
        else:
            w[i] = 0


cdef double sum_squares(const floating* g, long n, int n_threads) noexcept nogil:
    """return sum g^2 (float64 accumulation)."""
    cdef long i
    cdef double total = 0.0
    for i in prange(n, num_threads=threads_for(n, n_threads), schedule="static"):
        total += <double>g[i] * g[i]
    return total


cdef void scale_and_clip(floating* g, long n, double scale, double clipvalue,
                         int n_threads) noexcept nogil:
    """g := clip(scale g, -clipvalue, clipvalue); clipvalue <= 0: no clip."""
    cdef long i
    cdef double v
    for i in prange(n, num_threads=threads_for(n, n_threads), schedule="static"):
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
