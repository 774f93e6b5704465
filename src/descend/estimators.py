"""scikit-learn estimators trained by descend: MLPClassifier and MLPRegressor.

Drop-in counterparts of :class:`sklearn.neural_network.MLPClassifier` and
:class:`sklearn.neural_network.MLPRegressor`: the same parameter names and
meanings, the same fitted attributes, the same stopping rules (``tol``,
``n_iter_no_change``, ``early_stopping``, ``learning_rate="adaptive"``), but
every epoch runs in descend's compiled loop. They work in ``Pipeline``,
``GridSearchCV``, ``clone`` and pickle like any scikit-learn estimator.

scikit-learn is an optional extra (``pip install descend[sklearn]``); this
module imports it, and ``import descend`` imports this module only when
``descend.MLPClassifier`` or ``descend.MLPRegressor`` is first used.

How the objective maps to scikit-learn's
----------------------------------------
scikit-learn minimises, per mini-batch of B samples, its data loss S (log
loss summed over outputs, or half the squared error summed over outputs,
averaged over the samples) plus ``alpha / (2 B) * sum ||W||^2`` over the
kernels (not the biases). descend's losses average over outputs too (and
mean_squared_error has no 1/2), so its data loss is ``D = c * S`` with
``c = 1`` (softmax, binary), ``1 / k`` (k multi-label outputs) or ``2 / k``
(k regression outputs). The estimators therefore give every kernel the L2
penalty ``l2 = c * alpha / (2 B)`` (``descend.regularizers``: added to each
batch's mean loss), so that descend minimises exactly ``c`` times
scikit-learn's objective, and compensate the factor in the optimizer: SGD
uses ``learning_rate_init / c`` (identical steps), Adam ``epsilon * c``
(identical steps up to where epsilon is added, see below). ``loss_`` and
``loss_curve_`` are reported divided by ``c``: scikit-learn's scale (for a
single output exactly its ``loss_``). Differences that remain: the penalty
of a short last batch uses the full batch size B; descend's Adam adds
epsilon to ``sqrt(v_hat)`` (Kingma & Ba, Algorithm 1) where scikit-learn
adds it to ``sqrt(v)``; descend's SGD momentum is PyTorch's form, identical
to scikit-learn's for a constant learning rate; the initial weights are
drawn from descend's generator (same Glorot-uniform bounds), so numbers
differ from scikit-learn's run for run, not in distribution.
"""
import sys
import warnings
from numbers import Integral, Real

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import (check_classification_targets, type_of_target,
                                          unique_labels)
    from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("descend.MLPClassifier and descend.MLPRegressor need scikit-learn: "
                      "pip install 'descend[sklearn]'") from exc

from descend import _threads, distributed as _distributed, initializers, optimizers, reference
from descend._sample_weight import check_sample_weight, class_weights
from descend._validation import (Constraint, Interval, Options, check_storable_labels,
                                 outside_stacklevel, reject_masked, validate)
from descend.activations import ACTIVATIONS
from descend.callbacks import Callback
from descend.layers import Dense
from descend.model import DivergenceError, Sequential
from descend.regularizers import L1L2

__all__ = ["MLPClassifier", "MLPRegressor"]

_STOCHASTIC_SOLVERS = ("sgd", "adam")
_SOLVERS = _STOCHASTIC_SOLVERS + ("lbfgs",)
# scikit-learn's names, plus descend's other hidden activations
_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh",
                "relu": "relu"}
_ACTIVATIONS.update({name: name for name in ACTIVATIONS if name not in ("sigmoid",)})


class _LayerSizes(Constraint):
    """A sequence (not a string) of ints >= 1; empty: no hidden layer."""

    description = "a sequence of ints >= 1"

    def type_ok(self, value):
        return (not isinstance(value, (str, bytes)) and hasattr(value, "__iter__")
                and hasattr(value, "__len__"))

    def value_ok(self, value):
        return all(
            isinstance(s, Integral) and not isinstance(s, (bool, np.bool_)) and s >= 1
            for s in value)


def _check_weight_sizes(n_features, sizes, n_outputs, dtype):
    """ValueError naming hidden_layer_sizes for a weight matrix beyond any
    array's size (Dense's own message named its units=, an argument the
    estimator's user never wrote), before any layer is built."""
    fans = [n_features, *sizes, n_outputs]
    itemsize = np.dtype(dtype).itemsize
    for i, (n_in, n_out) in enumerate(zip(fans, fans[1:])):
        if n_in * n_out * itemsize > sys.maxsize:
            raise ValueError(
                f"hidden_layer_sizes={tuple(sizes)}: the weights of layer {i + 1} "
                f"({n_in}, {n_out}) in {np.dtype(dtype).name} would take "
                f"{n_in * n_out * itemsize:.3g} bytes, beyond any array's size "
                f"({sys.maxsize:.3g} bytes); choose smaller hidden layers")


class _BaseMLP(BaseEstimator):
    """Shared parameters, validation and training of the two estimators."""

    _stochastic_loss_scale = None   # set per fit (the factor c of the module docstring)

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, n_threads=None, distributed=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads
        self.distributed = distributed

    # ------------------------------------------------------------ parameters
    _parameter_constraints = {
        "hidden_layer_sizes": [Interval(Integral, 1, None), _LayerSizes()],
        "activation": [Options(*_ACTIVATIONS)],
        "solver": [Options(*_SOLVERS)],
        "alpha": [Interval(Real, 0, None)],
        "batch_size": [Options("auto"), Interval(Integral, 1, None)],
        "learning_rate": [Options("constant", "invscaling", "adaptive")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None)],
        "shuffle": ["boolean"],
        "random_state": [None, Interval(Integral, 0, 2**32 - 1), np.random.RandomState,
                         np.random.Generator],
        "tol": [Interval(Real, 0, None)],
        "verbose": ["boolean", Interval(Integral, None, None)],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None)],
        "max_fun": [Interval(Integral, 1, None)],
        "dtype": [None, "dtype"],
        "n_threads": ["n_threads", None],
        "distributed": [None, _distributed.MPI],
    }

    def _check_params(self):
        """The hidden layer sizes as a tuple, once every hyperparameter passed
        its entry of ``_parameter_constraints`` (TypeError / ValueError
        naming the first that did not)."""
        validate(self._parameter_constraints, self.get_params(deep=False), type(self).__name__)
        sizes = self.hidden_layer_sizes
        return (int(sizes),) if isinstance(sizes, Integral) else tuple(int(s) for s in sizes)

    # ------------------------------------------------------------ training
    def _make_random_state(self):
        """A RandomState from random_state (None: fresh entropy, never numpy's global)."""
        rs = self.random_state
        if rs is None:
            return np.random.RandomState(int(np.random.default_rng().integers(2**31 - 1)))
        if isinstance(rs, np.random.Generator):
            return np.random.RandomState(int(rs.integers(2**31 - 1)))
        return check_random_state(rs)

    def _seed(self):
        """An int seed for the network's Generator, drawn from random_state."""
        return int(self._random_state.randint(0, 2**31 - 1))

    def _fit(self, X, y, incremental=False, classes=None, sample_weight=None):
        """fit / partial_fit, one call at a time: two at once left n_features_in_
        of one with the net_ of the other. RuntimeError, before anything changes,
        if another thread is fitting. (The mark is in descend._threads' table:
        a lock attribute would have to be kept out of pickles and __init__.)"""
        with _threads.training(self, "partial_fit" if incremental else "fit",
                               kind="estimator"):
            return self._fit_alone(X, y, incremental, classes, sample_weight)

    def __getstate__(self):
        # pickle and copy.deepcopy of an estimator half way through a fit in
        # another thread would hold the new net_ with the old fitted attributes
        _threads.check_consistent_read(self, "pickle or copy.deepcopy")
        return super().__getstate__()

    def _fit_alone(self, X, y, incremental, classes, sample_weight):
        sizes = self._check_params()
        self._check_call(incremental)
        first_pass = not hasattr(self, "net_") or (not self.warm_start and not incremental)
        saved = dict(self.__dict__)
        try:
            # everything that can reject the input, before any state changes
            X, y, targets, weights, totals = self._validated(
                X, y, incremental, first_pass, classes, sample_weight, sizes)
            if not incremental or first_pass:
                self._random_state = self._make_random_state()
            n_outputs = self._n_outputs_for(targets)
            # (an epsilon too small for the dtype: left classes_ of a fit that never ran)
            net = self._build_net(X.shape[1], sizes, n_outputs, X.dtype) if first_pass else None
            # a warm start continues the network with the parameters as they are now
            # (as scikit-learn's new optimizer; set_params(learning_rate_init=...) was ignored)
            settings = (self._optimizer_settings(self._loss_scale(n_outputs), self.net_.dtype)
                        if not (first_pass or incremental) else {})
        except Exception:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise
        for name, value in settings.items():
            setattr(self.net_.optimizer, name, value)
        if settings:
            self._learning_rate = float(self.learning_rate_init)
        if first_pass:
            self.net_ = net
            self._network_params = {"hidden_layer_sizes": sizes, "activation": self.activation,
                                    "solver": self.solver}
            self.n_iter_ = 0
            self.t_ = 0
            self.n_outputs_ = n_outputs
            self.n_layers_ = len(sizes) + 2
            self.out_activation_ = self._out_activation()
            if self.solver in _STOCHASTIC_SOLVERS:
                self.loss_curve_ = []
            self._start_stopping_rule()
            self._learning_rate = float(self.learning_rate_init)
        elif not incremental and (getattr(self, "validation_scores_", None) is None) == bool(
                self.early_stopping):
            # a warm start after set_params(early_stopping=...): the other rule's
            # bookkeeping (was an AttributeError after the first epoch had trained)
            self._start_stopping_rule()
        scale = self._loss_scale(n_outputs)
        # a warm-start fit continues a network over several epochs: its state, for a
        # divergence after some of them moved it (partial_fit runs one epoch, which
        # fit rolls back itself: no copy on that per-batch path)
        kept = self.net_.state_dict() if not (first_pass or incremental) else None
        try:
            if self.solver == "lbfgs":
                self._fit_lbfgs(X, targets, scale, weights)
            else:
                self._fit_stochastic(X, y, targets, scale, incremental, weights, totals)
        except (ValueError, TypeError, FloatingPointError):
            # the network rejected the data before training, or training diverged
            # (DivergenceError, its epoch rolled back): leave everything as it was
            self.__dict__.clear()
            self.__dict__.update(saved)
            if kept is not None:
                self.net_.load_state_dict(kept)
            raise
        for layer in self.net_.dense_layers:
            layer._cache = None     # no training activations kept (or pickled)
        return self

    def _start_stopping_rule(self):
        """The bookkeeping of the stopping rule `early_stopping` chooses (the
        validation score, else the training loss), from its start."""
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None

    def _check_call(self, incremental):
        """Errors of the parameters for this call (fit or partial_fit)."""
        if incremental and self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic solvers "
                                 f"{list(_STOCHASTIC_SOLVERS)}, not solver={self.solver!r}")
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True")
        if self.solver == "lbfgs" and self.distributed is not None:
            raise ValueError("distributed training needs a stochastic solver ('adam' or "
                             "'sgd'), got solver='lbfgs'")
        if self.distributed is not None and self.random_state is None and \
                self.distributed.size > 1:
            # (was refused by the network's check, as ranks that "differ in seed")
            raise ValueError("random_state=None draws another seed on every rank; "
                             "distributed training needs the same int on every rank, "
                             "got random_state=None")

    def _validated(self, X, y, incremental, first_pass, classes, sample_weight, sizes):
        """(X, y, targets, weights, totals) of this call, checked: sets the
        classes on a first pass (the caller restores the estimator on error).
        totals: see :func:`_shard_weights` (MPI(sharded=True)), else None."""
        sharded = getattr(self.distributed, "sharded", False)
        outcome = targets = shard_weight = weights = None
        try:
            if sharded and self.early_stopping:
                raise ValueError("early_stopping=True is not supported with MPI(sharded=True) "
                                 "(each rank would hold out and score its own shard); pass "
                                 "the whole data on every rank (MPI(sharded=False))")
            if not first_pass:
                self._check_same_network(sizes)
            # before validate_data, whose np.asarray drops the mask
            reject_masked(X, "X")
            reject_masked(y, "y")
            X, y = self._validate_input(X, y, incremental, first_pass, classes)
            if not first_pass and X.dtype != self.net_.dtype:
                X = X.astype(self.net_.dtype)
            targets = self._encode_targets(y, X.dtype)
            # a shard's weights may all be zero (their sum over the ranks is checked)
            shard_weight = check_sample_weight(sample_weight, len(X), allow_all_zero=sharded)
            if not sharded:
                weights = self._sample_weights(shard_weight, targets, incremental)
        except Exception as exc:
            outcome = exc
        if sharded:     # collective calls: every rank takes part, failed or not
            weights, totals = _shard_weights(self, outcome, targets, shard_weight, incremental)
            return X, y, targets, weights, totals
        if outcome is not None:
            raise outcome
        return X, y, targets, weights, None

    def _check_same_network(self, sizes):
        """ValueError where warm_start or partial_fit would continue a network
        built with other hidden_layer_sizes, activation, solver or dtype than
        the parameters now say (set_params after a fit): it would train the
        old network and ignore the new values."""
        built = dict(getattr(self, "_network_params", None) or {})   # (older pickles: none)
        if self.dtype is not None:
            built["dtype"] = self.net_.dtype.name
        now = {"hidden_layer_sizes": sizes, "activation": self.activation,
               "solver": self.solver,
               "dtype": None if self.dtype is None else np.dtype(self.dtype).name}
        for name, value in built.items():
            if now[name] != value:
                raise ValueError(f"{name}={now[name]!r} differs from the fitted network's "
                                 f"{value!r}: warm_start=True and partial_fit continue the "
                                 "fitted network; to fit a new one, call fit with "
                                 "warm_start=False (or clone the estimator)")

    def _build_net(self, n_features, sizes, n_outputs, dtype):
        _check_weight_sizes(n_features, sizes, n_outputs, dtype)
        activation = _ACTIVATIONS[self.activation]
        # scikit-learn's Glorot-uniform bounds sqrt(f / (fan_in + fan_out)),
        # f = 2 for logistic hidden units, else 6; biases uniform in the same bounds
        factor = 2.0 if self.activation == "logistic" else 6.0
        units = list(sizes) + [n_outputs]
        layers, fan_in = [], n_features
        for i, n in enumerate(units):
            bound = float(np.sqrt(factor / (fan_in + n)))
            layers.append(Dense(
                n, activation=activation if i < len(sizes) else None,
                kernel_initializer=initializers.VarianceScaling(
                    scale=factor / 6.0, mode="fan_avg", distribution="uniform"),
                bias_initializer=initializers.RandomUniform(-bound, bound)))
            fan_in = n
        net = Sequential(layers, input_dim=n_features, dtype=dtype, seed=self._seed(),
                         n_threads=self.n_threads)
        net._regression_train_metrics = False   # loss_curve_ is all the loop needs
        settings = self._optimizer_settings(self._loss_scale(n_outputs), net.dtype)
        if self.solver == "sgd":
            optimizer = optimizers.SGD(**settings)
        elif self.solver == "adam":
            optimizer = optimizers.Adam(**settings)
        else:
            optimizer = "sgd"   # unused by lbfgs
        net.compile(loss=self._net_loss(n_outputs), optimizer=optimizer)
        return net

    def _optimizer_settings(self, scale, dtype):
        """The keywords of the "sgd" or "adam" optimizer (none for "lbfgs") from
        the parameters, for the loss scale `scale` (see the module docstring)."""
        if self.solver == "sgd":
            return {"learning_rate": self.learning_rate_init / scale,
                    "momentum": self.momentum,
                    "nesterov": bool(self.nesterovs_momentum and self.momentum > 0)}
        if self.solver != "adam":
            return {}
        tiny = float(np.finfo(dtype).tiny)
        if self.epsilon * scale < tiny:     # named as given, not as scaled
            raise ValueError(
                f"epsilon must be at least {tiny / scale:.7g} here (times the loss "
                f"scale {scale:g}, the smallest normal {np.dtype(dtype).name}: the "
                f"updates flush smaller numbers to zero), got {self.epsilon!r}")
        return {"learning_rate": self.learning_rate_init, "beta_1": self.beta_1,
                "beta_2": self.beta_2, "epsilon": self.epsilon * scale}

    def _sample_weights(self, sample_weight, targets, incremental, reduce=None):
        """The weight of each sample (sample_weight; class weights in the
        classifier). `reduce`: sums arrays over the ranks of a sharded fit."""
        return sample_weight

    def _set_penalty(self, batch_size, scale, mean_weight=1.0):
        """L2 on every kernel: c * alpha / (2 B) per batch (see the module
        docstring); with sample weights, c * alpha / (2 B mean(w)), scikit-learn's
        alpha / (2 sum_B(w)) exactly for full batches, on average for mini-batches
        (`mean_weight`: mean(w) over the training samples, every shard's)."""
        l2 = scale * self.alpha / (2.0 * batch_size * mean_weight)
        for layer in self.net_.dense_layers:
            layer.kernel_regularizer = L1L2(l2=l2) if l2 > 0 else None

    def _fit_stochastic(self, X, y, targets, scale, incremental, weights=None, totals=None):
        """`totals`: (samples, mean weight) of every rank's shard (a sharded
        fit), else None (this X's)."""
        net = self.net_
        if self.early_stopping:
            stratify = y if (isinstance(self, ClassifierMixin) and y.ndim == 1) else None
            arrays = (X, targets, y) if weights is None else (X, targets, y, weights)
            parts = train_test_split(*arrays, random_state=self._random_state,
                                     test_size=self.validation_fraction, stratify=stratify)
            X, X_val, targets, _, _, y_val = parts[:6]
            weights, weights_val = (None, None) if weights is None else parts[6:]
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            for part, rows in (("left for training", weights),
                               ("of the validation set", weights_val)):
                # all-zero validation weights: no score to stop on (was an error of
                # scikit-learn's scorer after the first epoch had changed the network)
                if rows is not None and not rows.sum() > 0:
                    raise ValueError(f"sample_weight: the weights {part} after the "
                                     "early-stopping split are all zero")
            validation = (X_val, y_val, weights_val)
        else:
            validation = None
        n, mean_weight = totals or (X.shape[0], 1.0 if weights is None else np.mean(weights))
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It "
                              "is going to be clipped", UserWarning, stacklevel=outside_stacklevel())
            batch_size = int(np.clip(self.batch_size, 1, n))
        self._set_penalty(batch_size, scale, float(mean_weight))
        loop = _SklearnLoop(self, scale, n, validation)
        net.optimizer.learning_rate = self._learning_rate / (
            scale if self.solver == "sgd" else 1.0)
        self.n_iter_ = 0    # as scikit-learn: epochs of this call
        epochs = 1 if incremental else self.max_iter
        net.fit(X, targets, epochs=epochs, batch_size=batch_size, shuffle=bool(self.shuffle),
                verbose=0, callbacks=[loop], sample_weight=weights,
                distributed=self.distributed)
        if self.early_stopping and loop.best_weights is not None:
            net.set_weights(loop.best_weights)
        if not incremental and not loop.stopped and self.n_iter_ >= self.max_iter:
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                          "reached and the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=outside_stacklevel())

    def _fit_lbfgs(self, X, targets, scale, weights=None):
        from scipy.optimize import minimize

        net = self.net_
        self._set_penalty(X.shape[0], scale, 1.0 if weights is None else float(np.mean(weights)))
        X, net_targets, labels, classes = net._prepare(X, targets)
        if net.loss_.is_classifier and net.classes_ is None:
            net.classes_ = classes
        params = net._params()
        start = np.concatenate([p.ravel() for p in params]).astype(np.float64)

        def unpack(theta):
            offset = 0
            for p in params:
                p[...] = theta[offset:offset + p.size].reshape(p.shape)
                offset += p.size

        def loss_and_gradient(theta):
            unpack(theta)
            loss, grads = reference.loss_and_grads(net, X, net_targets, labels,
                                                   weights=weights)
            flat = np.concatenate([g.ravel() for pair in grads for g in pair
                                   if g is not None]).astype(np.float64)
            return loss / scale, flat / scale

        result = minimize(loss_and_gradient, start, method="L-BFGS-B", jac=True,
                          options={"maxfun": self.max_fun, "maxiter": self.max_iter,
                                   "gtol": self.tol})
        if not np.all(np.isfinite(result.x)):
            unpack(start)
            raise DivergenceError("L-BFGS produced non-finite weights; the weights before "
                                  "this fit were kept (scale the input features)")
        unpack(result.x)
        self.n_iter_ = int(result.nit)
        self.loss_ = float(result.fun)
        if result.status != 0:
            warnings.warn(f"lbfgs failed to converge after {result.nit} iteration(s) "
                          f"(status={result.status}): {result.message}. Increase max_iter "
                          "or max_fun, or scale the data.", ConvergenceWarning, stacklevel=outside_stacklevel())

    # ------------------------------------------------------------ prediction
    def _output(self, X):
        """The network's output (after the loss's link) for validated X."""
        check_is_fitted(self)
        reject_masked(X, "X")
        X = validate_data(self, X, reset=False, dtype=self.net_.dtype)
        return self.net_.predict(X)

    @property
    def coefs_(self):
        """Kernels of the layers, (n_in, n_out) each: the network's live arrays."""
        check_is_fitted(self)
        return [layer.kernel for layer in self.net_.dense_layers]

    @property
    def intercepts_(self):
        """Biases of the layers, (n_out,) each: the network's live arrays."""
        check_is_fitted(self)
        return [layer.bias for layer in self.net_.dense_layers]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags


def _shard_weights(estimator, outcome, targets, sample_weight, incremental):
    """(weights, (samples, mean weight)) of a fit over MPI(sharded=True): this
    rank's weights (class weights from every shard's class counts) and the
    totals over every rank's shard, which the batch size "auto", the L2
    penalty and ``t_`` of the one-process fit on all the data use.

    `outcome`: this rank's validation error or None. Every rank calls this
    (it makes collective calls): the errors of any rank are raised on all
    of them (``distributed.agree``) before the first sum.

    Raises
    ------
    ValueError
        Another rank's validation error (named), shards of other classes,
        or weights that are zero on every shard.
    """
    summary = None
    if outcome is None:
        classes = getattr(estimator, "classes_", None)
        summary = {"classes": None if classes is None else np.asarray(classes).tolist(),
                   "multilabel": getattr(estimator, "_multilabel", None)}
    dist = estimator.distributed
    everyone = _distributed.agree(dist, outcome, summary)
    for rank, theirs in enumerate(everyone):
        if theirs != everyone[0]:
            raise ValueError(f"distributed fit: rank {rank}'s shard has the classes "
                             f"{theirs['classes']}, rank 0's {everyone[0]['classes']}; with "
                             "MPI(sharded=True) every shard needs the same classes")
    weights = estimator._sample_weights(sample_weight, targets, incremental,
                                        reduce=dist.allreduce)
    sums = dist.allreduce(np.array([len(targets), len(targets) if weights is None
                                    else np.sum(weights)], np.float64))
    if not sums[1] > 0:
        name = ("sample_weight" if getattr(estimator, "class_weight", None) is None
                else "sample_weight times class_weight")
        raise ValueError(f"{name}: the weights of every rank's shard are all zero; at "
                         "least one sample needs a positive weight")
    return weights, (int(sums[0]), sums[1] / sums[0])


class _SklearnLoop(Callback):
    """scikit-learn's per-epoch bookkeeping, run inside descend's fit.

    After every epoch: loss_curve_, n_iter_, t_, the no-improvement count
    (training loss or validation score), the invscaling / adaptive learning
    rate of solver='sgd', and the stop.
    """

    def __init__(self, estimator, scale, n_samples, validation):
        super().__init__()
        self.estimator = estimator
        self.scale = scale
        self.n_samples = n_samples
        self.validation = validation
        self.best_weights = None
        self.stopped = False

    def on_epoch_end(self, epoch, logs=None):
        est, net = self.estimator, self.model
        loss = float(logs["loss"]) / self.scale
        est.n_iter_ += 1
        est.t_ += self.n_samples
        est.loss_ = loss
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        if self.validation is not None:
            score = est._validation_score(*self.validation)
            est.validation_scores_.append(score)
            if est.verbose:
                print(f"Validation score: {score:f}")
            if score < est.best_validation_score_ + est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                self.best_weights = net.get_weights()
        else:
            if loss > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            if loss < est.best_loss_:
                est.best_loss_ = loss
        sgd = est.solver == "sgd"
        if sgd and est.learning_rate == "invscaling":
            est._learning_rate = est.learning_rate_init / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            message = (f"{what} did not improve more than tol={est.tol:f} for "
                       f"{est.n_iter_no_change} consecutive epochs.")
            if sgd and est.learning_rate == "adaptive" and est._learning_rate > 1e-6:
                est._learning_rate /= 5.0
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{message} Setting learning rate to {est._learning_rate:f}")
            else:
                if est.verbose:
                    print(f"{message} Stopping.")
                self.stopped = True
                net.stop_training = True
        if sgd:
            net.optimizer.learning_rate = est._learning_rate / self.scale


def _check_declared(found, declared, name):
    """ValueError naming the labels of y (`found`, sorted unique) that are not
    in `declared` (the classes of partial_fit, named `name`)."""
    unknown = np.setdiff1d(found, declared)
    if unknown.size:
        raise ValueError(f"y has labels not declared in {name} {declared.tolist()}: "
                         f"{unknown.tolist()}")


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by descend (scikit-learn API).

    The parameters are scikit-learn's
    (:class:`sklearn.neural_network.MLPClassifier`), plus `dtype` and
    `n_threads` and `distributed`; see the module docstring for how the objective and the
    optimizers map. Binary problems get one logistic output unit,
    multiclass ones a softmax, multi-label (a 0/1 indicator matrix y) one
    logistic unit per label.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Units of each hidden layer.
    activation : {"relu", "tanh", "logistic", "identity"}, default "relu"
        Hidden activation (descend's "leaky_relu", "elu", "gelu",
        "softplus" are accepted too).
    solver : {"adam", "sgd", "lbfgs"}, default "adam"
        "lbfgs" runs scipy's L-BFGS-B on descend's full-batch loss and
        backpropagated gradient.
    alpha : float >= 0, default 1e-4
        L2 penalty, with scikit-learn's scaling ``alpha / (2 B) ||W||^2``.
    batch_size : int or "auto", default "auto"
        "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        Schedule of solver="sgd" (as scikit-learn, ignored otherwise).
    learning_rate_init : float > 0, default 1e-3
    power_t : float > 0, default 0.5
        Exponent of "invscaling": ``learning_rate_init / (t + 1) ** power_t``
        with t the number of samples seen.
    max_iter : int >= 1, default 200
        Epochs (stochastic solvers) or L-BFGS iterations.
    shuffle : bool, default True
    random_state : int, RandomState, Generator or None
        Seeds descend's network Generator (initial weights, shuffling) and
        the early-stopping split. Not None with `distributed` over several
        ranks (each would draw its own seed).
    tol : float >= 0, default 1e-4
    verbose : bool or int, default False
        Print the loss of every iteration.
    warm_start : bool, default False
        Continue from the fitted network on the next fit.
    momentum : float in [0, 1), default 0.9
    nesterovs_momentum : bool, default True
    early_stopping : bool, default False
        Hold out `validation_fraction` (stratified) and stop when the
        validation accuracy stops improving; keeps the best weights.
    validation_fraction : float in (0, 1), default 0.1
    beta_1, beta_2 : float in [0, 1), default 0.9, 0.999
    epsilon : float > 0, default 1e-8
    n_iter_no_change : int >= 1, default 10
    max_fun : int >= 1, default 15000
        Maximum loss evaluations of solver="lbfgs".
    dtype : None, "float32" or "float64", default None
        Computation dtype; None keeps float32 input as float32 and uses
        float64 for anything else.
    n_threads : int or None, default None
        Threads of descend's compiled loops (None: all usable cores).
    class_weight : dict {label: weight}, "balanced" or None, default None
        Multiplies the weight of each sample of a class (labels not named
        weigh 1; a key that is not a label is a ValueError). "balanced":
        ``n_samples / (n_classes * np.bincount(y))``, scikit-learn's
        ``compute_class_weight`` (with sample_weight, its weighted form),
        computed at every fit (with ``MPI(sharded=True)``, from every
        shard's class counts). Not for multi-label y, nor "balanced" with
        partial_fit.
    distributed : descend.distributed.MPI or None, default None
        Data-parallel training over MPI ranks (solvers "adam" and "sgd"):
        passed to ``Sequential.fit(distributed=...)``; run under ``mpiexec``.
        With ``MPI(sharded=True)`` each rank passes its shard and the fit
        is the one-process fit of all the shards (batch size "auto", class
        weights and the penalty's mean weight from every shard; not with
        early_stopping).

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        Class labels (strings kept), in the order of predict_proba's columns.
    n_features_in_ : int
    feature_names_in_ : ndarray of str (only when X had string column names)
    loss_ : float
        Objective of the last epoch, in scikit-learn's scale.
    loss_curve_ : list of float
        ``loss_`` of every epoch (stochastic solvers).
    best_loss_ : float or None
    validation_scores_ : list of float or None
        Validation accuracy of every epoch (early_stopping).
    best_validation_score_ : float or None
    n_iter_ : int
        Epochs (or L-BFGS iterations) run.
    t_ : int
        Training samples seen.
    n_outputs_ : int
        Output units (1 for binary problems).
    n_layers_ : int
    out_activation_ : {"logistic", "softmax"}
    coefs_, intercepts_ : list of ndarray
        The network's live kernels (n_in, n_out) and biases (n_out,).
    net_ : descend.Sequential
        The trained network.

    Raises
    ------
    ValueError
        From fit/partial_fit/predict: invalid hyperparameters (named),
        bad input (NaN/inf, empty, wrong feature count, X/y length
        mismatch), a single class, continuous targets, labels not declared
        in partial_fit's classes. A call that raises leaves the estimator
        as it was.

    Examples
    --------
    >>> import descend as dn
    >>> X, y = dn.datasets.load_digits()          # float32 in [0, 1]
    >>> clf = dn.MLPClassifier(hidden_layer_sizes=(64,), max_iter=50, tol=1e-2,
    ...                        random_state=0)    # converges in 39 epochs
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
    >>> clf.predict_proba(X[:2]).dtype
    dtype('float32')
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype=None, n_threads=None, distributed=None, class_weight=None):
        super().__init__(
            hidden_layer_sizes, activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, dtype=dtype, n_threads=n_threads, distributed=distributed)
        self.class_weight = class_weight

    _parameter_constraints = {**_BaseMLP._parameter_constraints,
                              "class_weight": [None, dict, Options("balanced")]}

    def fit(self, X, y, sample_weight=None):
        """Fit the network to X (n_samples, n_features) and labels y.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,) or (n_samples, n_labels)
            Labels of any sortable type (strings kept in ``classes_``) or a
            0/1 indicator matrix (multi-label).
        sample_weight : array-like, shape (n_samples,), or None
            Non-negative weights (zeros allowed, not all): each batch's loss
            is ``sum_i w_i l_i / sum_i w_i``, so integer weights equal
            repeated samples (scikit-learn's convention; the L2 penalty is
            ``alpha / (2 B mean(w)) ||W||^2``, scikit-learn's
            ``alpha / (2 sum_B(w))`` exactly for full batches). Multiplied
            by the class weights of `class_weight`.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            As listed in the class docstring, and sample_weight of the wrong
            shape, negative, NaN, infinite or all zero (named).
        RuntimeError
            Another thread is fitting this estimator (fit or partial_fit):
            raised before anything changes; fit a clone in each thread.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda est: est.solver in _STOCHASTIC_SOLVERS)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), keeping the network and optimizer state.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
        y : array-like, shape (n_samples,) or (n_samples, n_labels)
        classes : array-like, shape (n_classes,), or None
            All labels of the stream: required on the first call (except
            for multi-label y), optional afterwards (then equal to
            ``classes_``). Labels may appear in later calls only if
            declared here.
        sample_weight : array-like, shape (n_samples,), or None
            As in `fit`.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            No classes on the first call, classes differing from an
            earlier call, y holding labels not in ``classes`` or
            ``classes_`` (named; on the first call too), or
            class_weight="balanced" (a stream's class frequencies are not
            known from one chunk; give a dict).
        RuntimeError
            Another thread is fitting this estimator (as in `fit`).
        """
        return self._fit(X, y, incremental=True, classes=classes,
                         sample_weight=sample_weight)

    def _sample_weights(self, sample_weight, targets, incremental, reduce=None):
        """sample_weight times the class weights of `class_weight`; "balanced"
        from the class counts of every rank's shard, summed by `reduce`
        (a sharded fit; then a shard's weights may all be zero)."""
        if self.class_weight is None:
            return sample_weight
        if self._multilabel:
            raise ValueError("class_weight needs one class per sample; it is not supported "
                             "with multi-label y (give sample_weight instead)")
        if incremental and isinstance(self.class_weight, str):
            raise ValueError('class_weight="balanced" is not supported by partial_fit (the '
                             "class frequencies of a stream are not known from one chunk); "
                             "give a dict {class: weight}")
        per_class = class_weights(self.class_weight, targets, len(self.classes_),
                                  sample_weight, labels=self.classes_, reduce=reduce)
        weights = per_class[targets]
        weights = weights if sample_weight is None else sample_weight * weights
        return check_sample_weight(weights, len(weights), "sample_weight times class_weight",
                                   allow_all_zero=reduce is not None)

    def _validate_input(self, X, y, incremental, reset, classes):
        dtype = (np.float64, np.float32) if self.dtype is None else np.dtype(self.dtype)
        if not reset:
            dtype = self.net_.dtype
        X, y = validate_data(self, X, y, multi_output=True, dtype=dtype, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.dtype.kind == "O":     # before unique_labels makes classes_ a str array
            check_storable_labels(y.ravel().tolist(), "y")
        if classes is not None:
            check_storable_labels(np.asarray(classes, dtype=object).ravel().tolist(), "classes")
        check_classification_targets(y)
        y_type = type_of_target(y)
        if y_type == "multiclass-multioutput":
            raise ValueError("y of several multiclass outputs (multiclass-multioutput) is not "
                             "supported; give 1-D labels or a 0/1 indicator matrix")
        multilabel = y_type == "multilabel-indicator"
        if multilabel and not np.isin(y, (0, 1)).all():
            raise ValueError(f"a 2-D y must be a 0/1 indicator matrix (multi-label), got "
                             f"values {np.unique(y)[:10].tolist()}")
        found = np.arange(y.shape[1]) if multilabel else unique_labels(y)
        if incremental and classes is not None and not multilabel:
            declared = unique_labels(classes)
            if hasattr(self, "classes_") and not reset and not np.array_equal(
                    declared, self.classes_):
                raise ValueError(f"classes={declared.tolist()} is not the same as on the "
                                 f"last call to partial_fit, was: {self.classes_.tolist()}")
            if reset:
                # as later calls check y against classes_: integer labels were
                # taken as positions in classes (y in {0, 1, 2}, classes=[7, 8, 9])
                _check_declared(found, declared, "classes")
        elif incremental and reset and not multilabel:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        else:
            declared = None
        if reset:
            if multilabel:
                new_classes = found
            else:
                new_classes = declared if declared is not None else found
                if len(new_classes) < 2:
                    raise ValueError(f"{type(self).__name__} needs samples of at least two "
                                     f"classes, but y has only one class: "
                                     f"{np.asarray(new_classes).tolist()}")
            self.classes_ = new_classes
            self._multilabel = multilabel
            self._label_dtype = y.dtype
        else:
            if multilabel != self._multilabel or (
                    multilabel and y.shape[1] != len(self.classes_)):
                raise ValueError(f"y has the form {y_type!r} with shape {y.shape}, but the "
                                 f"estimator was fitted on "
                                 f"{'multi-label' if self._multilabel else 'label'} targets "
                                 f"with classes {self.classes_.tolist()}")
            if not multilabel:
                if self.warm_start and not incremental and set(found.tolist()) != set(
                        self.classes_.tolist()):
                    raise ValueError(f"warm_start can only be used where `y` has the same "
                                     f"classes as in the previous call to fit. Previously "
                                     f"got {self.classes_.tolist()}, `y` has "
                                     f"{found.tolist()}")
                _check_declared(found, self.classes_, "classes_")
        return X, y

    def _encode_targets(self, y, dtype):
        if self._multilabel:
            return np.ascontiguousarray(y, dtype=dtype)
        ids = np.searchsorted(self.classes_, y)
        return ids.astype(np.int64)

    def _n_outputs_for(self, targets):
        if self._multilabel:
            return targets.shape[1]
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def _net_loss(self, n_outputs):
        return ("binary_cross_entropy" if (self._multilabel or len(self.classes_) == 2)
                else "softmax_cross_entropy")

    def _loss_scale(self, n_outputs):
        return 1.0 / n_outputs if self._multilabel else 1.0

    def _out_activation(self):
        return "logistic" if (self._multilabel or len(self.classes_) == 2) else "softmax"

    def _validation_score(self, X, y, sample_weight=None):
        return float(accuracy_score(y, self._predict_output(self.net_.predict(X)),
                                    sample_weight=sample_weight))

    def _predict_output(self, proba):
        if self._multilabel:
            return (proba > 0.5).astype(self._label_dtype)
        if proba.shape[1] == 1:
            return self.classes_[(proba[:, 0] > 0.5).astype(np.intp)]
        return self.classes_[np.argmax(proba, axis=1)]

    def predict(self, X):
        """Predicted labels, shape (n_samples,) (or the 0/1 matrix for multi-label).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before fit.
        ValueError
            NaN/inf, a wrong number of features, or empty X.
        """
        return self._predict_output(self._output(X))

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), the network's dtype.

        Columns follow ``classes_``; rows sum to 1 (binary and multiclass).
        For multi-label y: the probability of each label, (n_samples, n_labels).
        """
        proba = self._output(X)
        if proba.shape[1] == 1 and not self._multilabel:
            return np.hstack([1 - proba, proba])
        return proba

    def predict_log_proba(self, X):
        """Logarithm of predict_proba (-inf where a probability is 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by descend (scikit-learn API).

    Minimises the squared error (identity output, one unit per target)
    with the parameters of :class:`sklearn.neural_network.MLPRegressor`
    plus `dtype`, `n_threads` and `distributed`; see :class:`MLPClassifier` for their
    meaning and the module docstring for the objective's scaling.
    ``early_stopping`` monitors the validation R^2. Fitted attributes as
    MLPClassifier's except ``classes_``; ``out_activation_`` is "identity".

    Examples
    --------
    >>> import numpy as np, descend as dn
    >>> X = np.random.default_rng(0).normal(size=(200, 3))
    >>> y = X @ [1.0, -2.0, 0.5]
    >>> reg = dn.MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, tol=1e-3,
    ...                       random_state=0)    # converges in 266 epochs
    >>> reg.fit(X, y).score(X, y) > 0.9
    True
    """

    def fit(self, X, y, sample_weight=None):
        """Fit to X (n_samples, n_features) and real targets y, (n,) or (n, k).

        sample_weight: (n_samples,) non-negative weights or None, as in
        :meth:`MLPClassifier.fit` (the weighted mean squared error). Returns self.
        RuntimeError, before anything changes, if another thread is fitting this
        estimator (fit or partial_fit).
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @available_if(lambda est: est.solver in _STOCHASTIC_SOLVERS)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), keeping the network and optimizer state. Returns self.
        RuntimeError, before anything changes, if another thread is fitting this
        estimator (fit or partial_fit)."""
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _validate_input(self, X, y, incremental, reset, classes):
        dtype = (np.float64, np.float32) if self.dtype is None else np.dtype(self.dtype)
        if not reset:
            dtype = self.net_.dtype
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=dtype,
                             reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        n_targets = 1 if y.ndim == 1 else y.shape[1]
        if not reset and n_targets != self.n_outputs_:
            raise ValueError(f"y has {n_targets} target(s), but the estimator was fitted on "
                             f"{self.n_outputs_}")
        return X, y

    def _encode_targets(self, y, dtype):
        return np.ascontiguousarray(y.reshape(len(y), -1), dtype=dtype)

    def _n_outputs_for(self, targets):
        return targets.shape[1]

    def _net_loss(self, n_outputs):
        return "mean_squared_error"

    def _loss_scale(self, n_outputs):
        return 2.0 / n_outputs

    def _out_activation(self):
        return "identity"

    def _validation_score(self, X, y, sample_weight=None):
        return float(r2_score(y, self._predict_output(self.net_.predict(X)),
                              sample_weight=sample_weight))

    def _predict_output(self, output):
        return output.ravel() if output.shape[1] == 1 else output

    def predict(self, X):
        """Predictions, shape (n_samples,) for one target, else (n_samples, n_targets).

        The network's dtype (float32 input to a dtype=None model stays float32).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before fit.
        ValueError
            NaN/inf, a wrong number of features, or empty X.
        """
        return self._predict_output(self._output(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
