"""The TensorBoard callback (re-exported as ``descend.callbacks.TensorBoard``).

Event files are written through tensorboardX, an optional extra
(``pip install "descend[tensorboard]"``), so that ``import descend`` never
needs it; the ``tensorboard`` package serves them.
"""
import itertools
import json
import math
import numbers
import os

import numpy as np

from numbers import Integral

from descend._validation import Interval, check_output_directory, error_message, validate
from descend.callbacks import Callback

# numbers the event files this process opens: tensorboardX names a file by the
# second it was opened and the host, so two fits within one second would
# otherwise write the same file, the second erasing the first
_FILE_NUMBERS = itertools.count()

_INSTALL_HINT = ('pip install "descend[tensorboard]" (tensorboardX, which writes them, and '
                 'tensorboard, which shows them)')


def _summary_writer_class():
    """tensorboardX's SummaryWriter, or an ImportError that says what to install."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as error:
        raise ImportError(f"descend.callbacks.TensorBoard writes TensorBoard event files "
                          f"with tensorboardX, which is not installed ({error}). Install "
                          f"the extra: {_INSTALL_HINT}") from None
    return SummaryWriter


class TensorBoard(Callback):
    """Write training curves for TensorBoard: ``tensorboard --logdir log_dir``.

    At the end of every epoch each number in the epoch's logs becomes a
    scalar named ``epoch_<key>`` at step = the epoch (counted over every fit
    since compile, so a second ``fit`` continues the curves): ``loss`` and the
    metrics (``accuracy``, or ``mse``/``mae``/``r2``), ``learning_rate``,
    ``seconds``, ``samples_per_second`` and ``grad_norm_<i>`` (with
    ``fit(gradient_norms=True)``) go to the run ``<log_dir>/train``, and the
    ``val_`` metrics, without their prefix, to ``<log_dir>/validation``, so
    that TensorBoard draws training and validation in one chart, as Keras
    does. The event files are flushed every epoch: the curves update live.

    Parameters
    ----------
    log_dir : str or os.PathLike, default "logs"
        Directory of the runs ``train`` and ``validation`` (created on the
        first write).
    update_freq : "epoch", default "epoch"
        When scalars are written. Only ``"epoch"`` so far: Keras' ``"batch"``
        and integer values (batch-level curves) are refused rather than
        silently ignored.
    histogram_freq : int >= 0, default 0
        Every ``histogram_freq`` epochs (0: never) write a histogram of each
        Dense layer's kernel and bias (tags ``<layer>/kernel``,
        ``<layer>/bias``, layers named by their ``name`` or ``dense_<i>``).
    gradient_data : (X, y) or None, default None
        With ``histogram_freq`` > 0: a sample (say, a few thousand training
        rows) on which the full-batch gradient is computed at each histogram
        epoch by backpropagation (``model.gradients``), written as histograms
        ``<layer>/kernel_gradient`` and ``<layer>/bias_gradient`` and as the
        scalars ``gradient_norm/<layer>`` (Frobenius norm of the kernel
        gradient): the per-layer picture of vanishing or exploding gradients.
    write_config : bool, default True
        At the start of training write, as text (tag ``config``), the model's
        summary and its configuration (architecture, loss, optimizer, fit
        parameters) as JSON.
    is_chief : bool or callable, default True
        Whether this process writes. In data-parallel training pass
        ``comm.rank == 0`` (or a function returning it, evaluated at the start
        of each fit) so that one process writes the curves; the others write
        nothing and create no file.

    Raises
    ------
    ImportError
        tensorboardX is not installed (the message says what to install).
    TypeError, ValueError
        A bad argument (its name, what was expected and what came).

    Attributes
    ----------
    log_dir : str
    writers : dict
        The open ``tensorboardX.SummaryWriter`` per run name during a fit.

    Examples
    --------
    >>> tb = dn.callbacks.TensorBoard("runs/mnist", histogram_freq=1)  # doctest: +SKIP
    >>> net.fit(X, y, epochs=10, validation_split=0.1, callbacks=[tb])  # doctest: +SKIP

    then ``tensorboard --logdir runs/mnist`` and open http://localhost:6006.

    Notes
    -----
    Follows ``keras.callbacks.TensorBoard`` (Keras 3): the same run
    directories, ``epoch_`` tags and meaning of ``histogram_freq``; Keras'
    ``write_graph`` becomes ``write_config`` (descend has no graph), and
    profiling and embeddings have no counterpart.
    """

    _parameter_constraints = {
        "log_dir": ["path"],
        "histogram_freq": [Interval(Integral, 0, None)],
        "gradient_data": [None, tuple, list],
        "write_config": ["boolean"],
        "is_chief": ["boolean", callable],
    }

    def __init__(self, log_dir="logs", update_freq="epoch", histogram_freq=0,
                 gradient_data=None, write_config=True, is_chief=True):
        super().__init__()
        owner = "TensorBoard"
        if not (isinstance(update_freq, str) and update_freq == "epoch"):
            raise ValueError(error_message(
                "update_freq", "'epoch' (batch-level curves are not written yet)",
                update_freq, owner))
        values = validate(self._parameter_constraints, {
            "log_dir": log_dir, "histogram_freq": histogram_freq,
            "gradient_data": gradient_data, "write_config": write_config,
            "is_chief": is_chief}, owner)
        if values["is_chief"] is not False:     # a rank that never writes needs no directory
            # checked before fit trains, not by tensorboardX at the first epoch's end
            check_output_directory(values["log_dir"], "log_dir", owner)
        if gradient_data is not None:
            X, y = _check_gradient_data(gradient_data, owner)
            if values["histogram_freq"] == 0:
                raise ValueError(f"{owner}: gradient_data is used at histogram epochs; "
                                 "set histogram_freq >= 1 as well")
            gradient_data = (X, y)
        self.log_dir = values["log_dir"]
        self.update_freq = update_freq
        self.histogram_freq = values["histogram_freq"]
        self.gradient_data = gradient_data
        self.write_config = values["write_config"]
        self.is_chief = values["is_chief"]
        self._writer_class = _summary_writer_class()
        self.writers = {}
        self._writing = False
        self._first_step = 0

    # ------------------------------------------------------------------ writers
    def _writer(self, run):
        """The SummaryWriter of ``<log_dir>/<run>``, opened on first use."""
        if run not in self.writers:
            # zero-padded: TensorBoard reads a run's files in name order
            suffix = f".{os.getpid()}.{next(_FILE_NUMBERS):06d}"
            self.writers[run] = self._writer_class(logdir=os.path.join(self.log_dir, run),
                                                   filename_suffix=suffix)
        return self.writers[run]

    def _close(self):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}

    # ------------------------------------------------------------------ hooks
    def on_train_begin(self, logs=None):
        self._close()        # a previous fit that ended without on_train_end
        chief = self.is_chief() if callable(self.is_chief) else self.is_chief
        self._writing = bool(chief)
        # steps continue over fits: epochs_trained counts every epoch since compile
        self._first_step = int(getattr(self.model, "epochs_trained", 0) or 0)
        self.check_gradient_data(self.model)
        if self._writing and self.write_config:
            self._writer("train").add_text("config", self._config_text(), self._first_step)
            self._writer("train").flush()

    def check_gradient_data(self, model, n_features=None, classes=None):
        """ValueError if gradient_data does not fit `model` (n_features and
        classes: the training data's, before the model is built), as
        model.gradients would raise at the histogram epochs, but before any
        epoch runs (fit gives back its state when this raises). A distributed
        fit calls it on every rank at start-up: the callback runs on rank 0."""
        if self.gradient_data is None:
            return
        if n_features is None:
            n_features = getattr(model, "n_features_in_", None)
        if n_features is not None and np.shape(self.gradient_data[0])[1] != n_features:
            raise ValueError(f"TensorBoard: gradient_data has "
                             f"{np.shape(self.gradient_data[0])[1]} features, the model "
                             f"{n_features}.")
        model._prepare(*self.gradient_data, "TensorBoard's gradient_data[0]",
                       "TensorBoard's gradient_data[1]", classes=classes, n_features=n_features)

    def on_epoch_end(self, epoch, logs=None):
        if not self._writing:
            return
        step = epoch     # fit's epochs continue over fits (epochs_trained), as in Keras
        for key, value in (logs or {}).items():
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                continue
            run, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            self._writer(run).add_scalar("epoch_" + name, float(value), step)
        if self.histogram_freq and (epoch + 1) % self.histogram_freq == 0:
            self._write_histograms(step)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        self._close()
        self._writing = False

    # ------------------------------------------------------------------ content
    def _layer_names(self):
        """(name, Dense layer) pairs: its ``name`` or ``dense_<i>``."""
        return [(layer.name or f"dense_{i}", layer)
                for i, layer in enumerate(self.model.dense_layers)]

    def _write_histograms(self, step):
        writer = self._writer("train")
        named = self._layer_names()
        for name, layer in named:
            writer.add_histogram(f"{name}/kernel", np.asarray(layer.kernel), step)
            if layer.bias is not None:
                writer.add_histogram(f"{name}/bias", np.asarray(layer.bias), step)
        if self.gradient_data is None:
            return
        grads = self.model.gradients(*self.gradient_data)
        for (name, _), (d_kernel, d_bias) in zip(named, grads):
            writer.add_histogram(f"{name}/kernel_gradient", np.asarray(d_kernel), step)
            if d_bias is not None:
                writer.add_histogram(f"{name}/bias_gradient", np.asarray(d_bias), step)
            norm = float(np.linalg.norm(d_kernel))
            if math.isfinite(norm):
                writer.add_scalar(f"gradient_norm/{name}", norm, step)

    def _config_text(self):
        """The model's summary and configuration as markdown (code blocks)."""
        model = self.model
        config = {"model": model.get_config()}
        loss = getattr(model, "loss_", None)
        if loss is not None:
            config["loss"] = getattr(loss, "name", repr(loss))
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and hasattr(optimizer, "get_config"):
            config["optimizer"] = optimizer.get_config()
        config["fit"] = dict(self.params)
        if hasattr(model, "summary"):
            lines = []
            model.summary(print_fn=lines.append)   # Keras' way to capture the table
            summary = "\n".join(lines)
        else:
            summary = repr(model)
        body = json.dumps(config, indent=2, default=str)
        return f"{_code_block(summary)}\n\n{_code_block(body)}"


def _check_gradient_data(gradient_data, owner):
    """(X, y) of a 2-tuple whose X is 2-D with one label per row."""
    if len(gradient_data) != 2:
        raise ValueError(error_message("gradient_data", "a pair (X, y)", gradient_data, owner))
    X, y = gradient_data
    if np.ndim(X) != 2 or np.ndim(y) == 0 or len(X) != len(y):
        raise ValueError(f"{owner}: gradient_data must be (X, y) with X of shape "
                         f"(n_samples, n_features) and n_samples labels, got X of shape "
                         f"{np.shape(X)} and y {_described(y)}")
    return X, y


def _described(y):
    """y as an error message shows it: its label count, or what it is."""
    return f"of {len(y)} labels" if np.ndim(y) else f"{y!r} ({type(y).__name__})"


def _code_block(text):
    """Text as a markdown code block (lines indented by four spaces), which
    TensorBoard's text plugin shows verbatim."""
    return "\n".join("    " + line for line in text.splitlines())
