"""Settings assigned after construction are checked as the constructor checks
them, by compile, fit, partial_fit, apply_gradients and predict, before
anything changes (was: beta_1=1.5, amsgrad="yes", weight_decay=-1,
use_bias="yes" or a Dropout rate of 1.5 trained on silently; momentum=nan
read "changed during fit (nan -> nan)"; a regularizer given as a string
was an AttributeError)."""
import numpy as np
import pytest

import descend as dn
from descend import optimizers as O

X = np.random.default_rng(0).random((24, 5)).astype(np.float32)
y = np.arange(24) % 3

# (optimizer, setting, value assigned, error, message)
OPTIMIZER_CASES = [
    (O.Adam, "beta_1", 1.5, ValueError, r"optimizer\.beta_1 must be a finite float in \[0, 1\), "
                                        r"got 1\.5"),
    (O.Adam, "beta_2", float("nan"), ValueError, r"optimizer\.beta_2 must be .*got nan"),
    (O.Adam, "amsgrad", "yes", TypeError, r"optimizer\.amsgrad must be a bool, got 'yes'"),
    (O.AdamW, "weight_decay", -1.0, ValueError, r"optimizer\.weight_decay must be a finite "
                                                r"float >= 0, got -1\.0"),
    (O.SGD, "momentum", float("nan"), ValueError, r"optimizer\.momentum must be .*got nan"),
    (O.SGD, "momentum", 1.0, ValueError, r"optimizer\.momentum must be .*\[0, 1\), got 1\.0"),
    (O.SGD, "nesterov", 1, TypeError, r"optimizer\.nesterov must be a bool, got 1"),
    (O.RMSprop, "rho", -0.1, ValueError, r"optimizer\.rho must be .*got -0\.1"),
    (O.RMSprop, "centered", None, TypeError, r"optimizer\.centered must be a bool"),
    (O.Adagrad, "initial_accumulator_value", -1.0, ValueError,
     r"optimizer\.initial_accumulator_value must be .*>= 0"),
    (O.Adagrad, "epsilon", 0.0, ValueError, r"optimizer\.epsilon must be a finite float > 0"),
    (O.Adam, "clipnorm", -1.0, ValueError, r"optimizer\.clipnorm must be None or a finite "
                                           r"float > 0, got -1\.0"),
    (O.Adam, "decay_bias", "no", TypeError, r"optimizer\.decay_bias must be a bool"),
]


def fitted(optimizer):
    net = dn.Sequential([dn.Dense(4, activation="relu"), dn.Dropout(0.25), dn.Dense(3)],
                        input_dim=5, seed=0)
    net.compile(loss="softmax_cross_entropy", optimizer=optimizer)
    net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    return net


def unchanged(net):
    """A check that net's weights, optimizer state and history stay as now."""
    weights = [w.copy() for w in net.get_weights()]
    state = net.optimizer.get_state()
    epochs = net.epochs_trained

    def check():
        assert all(np.array_equal(a, b) for a, b in zip(weights, net.get_weights()))
        assert net.optimizer.iterations == state["iterations"]
        assert net.epochs_trained == epochs
    return check


@pytest.mark.parametrize("cls, setting, value, error, message", OPTIMIZER_CASES,
                         ids=[f"{c.__name__}-{s}-{v}" for c, s, v, _, _ in OPTIMIZER_CASES])
def test_an_assigned_hyperparameter_is_checked_by_fit_and_partial_fit(cls, setting, value,
                                                                      error, message):
    optimizer = cls(momentum=0.5) if cls is O.SGD else cls()
    net = fitted(optimizer)
    still = unchanged(net)
    setattr(optimizer, setting, value)
    with pytest.raises(error, match=message):
        net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    with pytest.raises(error, match=message):
        net.partial_fit(X, y, batch_size=8)
    with pytest.raises(error, match=message):
        net.compile(loss="softmax_cross_entropy", optimizer=optimizer)
    still()


def test_apply_gradients_checks_an_assigned_hyperparameter_before_any_update():
    optimizer = O.Adam(learning_rate=0.1)
    w = np.array([1.0, 2.0])
    optimizer.beta_1 = 1.0      # m would never move: every step 0
    with pytest.raises(ValueError, match=r"optimizer\.beta_1 must be"):
        optimizer.apply_gradients([w], [np.array([0.5, -1.0])])
    assert optimizer.iterations == 0 and w.tolist() == [1.0, 2.0]


def test_settings_valid_alone_but_not_together_are_checked_by_fit():
    optimizer = O.SGD(momentum=0.5, nesterov=True)
    net = fitted(optimizer)
    optimizer.momentum = 0.0
    with pytest.raises(ValueError, match=r"optimizer\.nesterov=True requires "
                                         r"optimizer\.momentum > 0"):
        net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    optimizer.momentum, optimizer.clipnorm, optimizer.clipvalue = 0.5, 1.0, 1.0
    with pytest.raises(ValueError, match=r"at most one of .*got \['optimizer\.clipnorm', "
                                         r"'optimizer\.clipvalue'\]"):
        net.fit(X, y, epochs=1, batch_size=8, verbose=0)


def test_a_valid_assignment_between_fits_is_used_by_the_next_fit():
    # the checks convert as the constructor does: an int momentum is a float
    optimizer = O.SGD(learning_rate=0.1)
    net = fitted(optimizer)
    optimizer.momentum = 0        # an int: accepted, as SGD(momentum=0) accepts it
    net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    assert type(optimizer.momentum) is float
    optimizer.momentum = 0.9
    net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    assert len(optimizer.state[0]) == 1      # the velocity, now that momentum > 0


# (layer index, setting, value assigned, error, message)
LAYER_CASES = [
    (0, "use_bias", "yes", TypeError, r"layers\[0\]\.use_bias must be a bool, got 'yes'"),
    (0, "kernel_regularizer", "l2", TypeError,
     r"layers\[0\]\.kernel_regularizer must be None or an L1L2 .*got 'l2'"),
    (2, "bias_regularizer", 0.01, TypeError, r"layers\[2\]\.bias_regularizer must be"),
    (0, "alpha", float("nan"), ValueError, r"layers\[0\]\.alpha must be a finite float, got nan"),
    (1, "rate", 1.5, ValueError, r"layers\[1\]\.rate must be a finite float in \[0, 1\), "
                                 r"got 1\.5"),
    (0, "activation", "Relu", ValueError, r"layers\[0\]\.activation must be one of .*'relu'"),
    (2, "units", 3.0, TypeError, r"layers\[2\]\.units must be an int >= 1, got 3\.0"),
]


@pytest.mark.parametrize("index, setting, value, error, message", LAYER_CASES,
                         ids=[f"{i}-{s}" for i, s, _, _, _ in LAYER_CASES])
def test_an_assigned_layer_setting_is_checked_by_fit_and_predict(index, setting, value,
                                                                 error, message):
    net = fitted("adam")
    still = unchanged(net)
    setattr(net.layers[index], setting, value)
    with pytest.raises(error, match=message):
        net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    with pytest.raises(error, match=message):
        net.predict(X[:1])
    still()


def test_an_unbuilt_network_checks_its_layers_before_building():
    net = dn.Sequential([dn.Dense(4), dn.Dense(3)], seed=0)     # built by its first fit
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    net.layers[0].units = 0
    with pytest.raises(ValueError, match=r"layers\[0\]\.units must be an int >= 1, got 0"):
        net.fit(X, y, epochs=1, batch_size=8, verbose=0)
    assert not net.built
