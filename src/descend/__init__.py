"""descend: gradient descent and backpropagation for multilayer perceptrons,
compiled (Cython + OpenMP + BLAS) for the CPU.

>>> import descend as dn
>>> X, y = dn.datasets.load_digits()
>>> net = dn.Sequential([dn.Dense(64, activation="relu"), dn.Dense(10)], seed=0)
>>> net.compile(loss="softmax_cross_entropy", optimizer=dn.optimizers.SGD(0.1))
Sequential([Dense(64, activation='relu'), Dense(10, activation='identity')], input_dim=None)
>>> history = net.fit(X, y, epochs=1, batch_size=32, verbose=0)
>>> history["loss"][0] < 2.3          # below log(10): better than chance
True
"""
from descend._config import check_build, show_config

check_build()   # a clear ImportError when the compiled kernels are missing

from descend import (activations, callbacks, datasets, distributed, initializers, losses,
                     optimizers, regularizers, schedules)
from descend._openmp import effective_n_threads, openmp_enabled
from descend._threads import ForkedAfterThreadsWarning
from descend.gradcheck import check_gradients, numerical_gradients
from descend.layers import Dense, Dropout
from descend.model import DivergenceError, History, Sequential
from descend.io import load
from descend import plans as _plans  # noqa: F401  (adds its show_config section)
from descend.plans import ProfileCacheWarning
from descend.subnormals import flush_subnormals

__version__ = "0.1.0"

__all__ = ["Sequential", "Dense", "Dropout", "History", "DivergenceError",
           "check_gradients", "numerical_gradients", "activations", "callbacks",
           "datasets", "distributed", "initializers", "losses", "optimizers", "regularizers",
           "schedules", "effective_n_threads", "openmp_enabled", "show_config",
           "__version__", "load", "flush_subnormals", "ForkedAfterThreadsWarning",
           "ProfileCacheWarning"]


def __getattr__(name):
    # scikit-learn is an optional extra: the estimators import it on first use
    if name in ("MLPClassifier", "MLPRegressor"):
        from descend import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'descend' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"MLPClassifier", "MLPRegressor"})
