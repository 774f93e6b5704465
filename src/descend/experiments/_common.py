"""Shared machinery of the experiments: configuration, data, timed training
runs with divergence detection, statistics, markdown tables and plots.

Nothing here loops over samples: every training step is ``Sequential.fit``
(the compiled epoch loop) and every evaluation ``Sequential.evaluate``.
"""
import dataclasses
import math
import os
import platform
import subprocess
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np

from descend._validation import check, check_bool, check_int, check_n_threads

SIZES = ("smoke", "quick", "full")
DATASETS = ("digits", "mnist", "breast_cancer")

# Convergence targets per dataset: training loss (mean cross-entropy over the
# training samples, measured after the epoch with the weights of its end) and
# test accuracy.
TARGET_LOSS = {"digits": 0.2, "mnist": 0.2, "breast_cancer": 0.1}
TARGET_ACCURACY = {"digits": 0.95, "mnist": 0.95, "breast_cancer": 0.95}

# A run "exploded" when its training loss exceeds EXPLOSION_FACTOR times the
# loss at initialization after any epoch (training stops there), or ends above
# FINAL_EXPLOSION_FACTOR times it, without becoming NaN (softmax cross-entropy
# is computed in a stable form, so huge logits give a huge but finite loss).
EXPLOSION_FACTOR = 10.0
FINAL_EXPLOSION_FACTOR = 3.0


@dataclasses.dataclass
class Config:
    """How an experiment runs.

    size : "smoke" (tests only, seconds), "quick" (the CLI's --quick, under a
        minute on digits) or "full" (the documented run).
    dataset : "digits", "mnist" or "breast_cancer".
    seeds : number of seeds (0, 1, ..., seeds - 1) of the repeated cells.
    n_threads : threads of descend's compiled loops (and BLAS); 1 by default
        so that timings are stable on a shared machine.
    """
    size: str = "full"
    dataset: str = "digits"
    seeds: int = 3
    data_home: object = None
    n_threads: int = 1
    dtype: str = "float32"
    verbose: bool = False

    def __post_init__(self):
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {self.size!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        self.seeds = check_int(self.seeds, "seeds", minimum=1)     # TypeError for 2.5, True
        self.verbose = check_bool(self.verbose, "verbose")       # was: any truthy value
        # a data_home that cannot hold MNIST: refused now, not when an experiment
        # first reaches for MNIST (hours into `all`)
        self.data_home = check(self.data_home, "data_home", [None, "path"])
        if self.data_home is not None and os.path.isfile(self.data_home):
            raise ValueError(f"data_home must be a directory, got {self.data_home!r} (a file)")
        self.n_threads = check_n_threads(self.n_threads)

    def pick(self, smoke, quick, full):
        """The value for this size."""
        return {"smoke": smoke, "quick": quick, "full": full}[self.size]

    def log(self, message):
        if self.verbose:
            print(f"  [{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ----------------------------------------------------------------------------- results
class Table:
    """A markdown table: a title, column names, rows of cells (strings)."""

    def __init__(self, title, columns, rows=None, notes=None):
        self.title = title
        self.columns = list(columns)
        self.rows = [list(r) for r in rows or []]
        self.notes = list(notes or [])

    def add(self, *cells):
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.columns)} "
                             f"columns: {cells!r}")
        self.rows.append([str(c) for c in cells])

    @property
    def shape(self):
        return (len(self.rows), len(self.columns))

    def column(self, name):
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def to_markdown(self):
        lines = []
        if self.title:
            lines += [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
        for note in self.notes:
            lines += ["", note]
        return "\n".join(lines)


@dataclasses.dataclass
class Result:
    """What one experiment measured."""
    name: str
    title: str
    question: str
    setup: list
    tables: list
    findings: list = dataclasses.field(default_factory=list)
    plot: object = None          # callable(fig) drawing into a matplotlib Figure
    data: dict = dataclasses.field(default_factory=dict)   # raw numbers, for tests
    seconds: float = 0.0
    config: Config = None
    plot_path: object = None
    plot_message: str = ""
    figsize: tuple = (8, 3.6)
    datasets: str = None         # what the experiment used, if not cfg.dataset
    net: str = None              # the network(s) trained, for the plot's title
    load: tuple = None           # 1-minute load average at start and end
    machine: str = None          # machine_markdown() taken before the run

    @property
    def table(self):
        return self.tables[0]

    def plot_title(self):
        """The figure's title: the experiment, the data and the net it trained."""
        data = self.datasets or (self.config.dataset if self.config is not None else None)
        return f"{self.name}: " + ", ".join(part for part in (data, self.net) if part)

    def to_markdown(self, png_name=None, heading="##"):
        cfg = self.config
        # titles already start with the experiment's name
        title = (self.title if self.title.startswith(self.name + ":")
                 else f"{self.name}: {self.title}")
        lines = [f"{heading} {title}", "", self.question, ""]
        if cfg is not None:
            load = (f"; load average {self.load[0]:.1f} at start, {self.load[1]:.1f} at end"
                    if self.load else "")
            lines.append(f"- run: size={cfg.size}, data={self.datasets or cfg.dataset}, "
                         f"seeds={cfg.seeds} (0..{cfg.seeds - 1}), n_threads={cfg.n_threads}, "
                         f"dtype={cfg.dtype}; wall time {self.seconds:.1f} s{load}")
        lines += [f"- {line}" for line in self.setup]
        lines.append("")
        for table in self.tables:
            lines += [table.to_markdown(), ""]
        if png_name:
            lines += [f"![{self.name}]({png_name})", ""]
        elif self.plot_message:
            lines += [f"_{self.plot_message}_", ""]
        if self.findings:
            lines += ["Findings:", ""] + [f"- {f}" for f in self.findings] + [""]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- numbers
def mean_std(values):
    """(mean, sample standard deviation with ddof=1) of the values; std 0 for one value."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], float)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def fmt(value, digits=3):
    """A number to `digits` significant digits: 1,230,000 / 45.6 / 0.0123 / 4.5e-06."""
    if value is None:
        return "-"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{int(value):,}" if abs(value) >= 10000 else str(int(value))
    value = float(value)
    if not np.isfinite(value):
        return "nan" if np.isnan(value) else ("inf" if value > 0 else "-inf")
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    if magnitude >= digits - 1 and magnitude < 15:
        return f"{round(value, digits - 1 - magnitude):,.0f}"
    if magnitude >= -4:
        return f"{value:.{max(digits - 1 - magnitude, 0)}f}"
    return f"{value:.{max(digits - 1, 0)}e}"


def fmt_pm(values, digits=3, scale=1.0, missing="-", count=True):
    """'mean ± std' over the finite values; with `count`, notes how many are
    missing as '(k/n runs)'."""
    values = list(values)
    finite = [v * scale for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return missing
    if len(values) == 1:
        return fmt(finite[0], digits)
    m, s = mean_std(finite)
    if s <= 1e-9 * abs(m):
        s = 0.0   # equal values up to rounding
    text = f"{fmt(m, digits)} ± {fmt(s, 2)}"
    if count and len(finite) < len(values):
        text += f" ({len(finite)}/{len(values)} runs)"
    return text


def reached_cell(to_target, n_runs):
    """'mean ± std' of the epochs (or seconds) to a target over the runs that reached it,
    'not reached' if none did, and '(k/n reached)' appended when only some of the n did."""
    reached = sum(e is not None for e in to_target)
    note = f" ({reached}/{n_runs} reached)" if 0 < reached < n_runs else ""
    return fmt_pm(to_target, 3, missing="not reached", count=False) + note


def fit_exponent(x, y):
    """Least-squares slope of log(y) against log(x): y ~ c x^slope."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2:
        return float("nan")
    slope, _ = np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)
    return float(slope)


def best_time(fn, repeats=3, min_seconds=0.0):
    """Smallest wall time of fn() over `repeats` calls (at least one)."""
    best = float("inf")
    start_all = time.perf_counter()
    i = 0
    while i < repeats or time.perf_counter() - start_all < min_seconds:
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
        i += 1
        if i >= 100 * max(repeats, 1):
            break
    return best


# ----------------------------------------------------------------------------- data
_MNIST = {}


def load_mnist(data_home=None, download=True):
    """MNIST as datasets.Split (X_train, X_test, y_train, y_test) from cfg's data home,
    float32 in [0, 1]."""
    from descend import datasets
    key = str(datasets.get_mnist_dir(data_home))
    if key not in _MNIST:
        _MNIST[key] = datasets.load_mnist(data_home=data_home, download=download)
    return _MNIST[key]


def mnist_available(data_home=None):
    """True when the four MNIST files (.gz or uncompressed) can be found
    without downloading."""
    from descend import datasets
    directory = datasets.get_mnist_dir(data_home)
    return all(datasets._mnist_path(directory, name) for name in datasets.MNIST_FILES)


def subsample(X, y, n, seed=0):
    """A stratified random subset of n rows (all rows if n is None or >= len)."""
    if n is None or n >= len(X):
        return X, y
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per_class = [np.flatnonzero(y == c) for c in classes]
    take = []
    for idx in per_class:
        k = max(1, int(round(n * len(idx) / len(y))))
        take.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    take = rng.permutation(np.concatenate(take))[:n]
    return np.ascontiguousarray(X[take]), y[take]


def standard_data(cfg):
    """The data most experiments share: (X_train, X_test, y_train, y_test,
    n_classes). MNIST is subsampled to 1,000 / 5,000 / 10,000 training samples
    (smoke / quick / full) and, in smoke runs, 1,000 test samples; the other
    datasets are used whole except 600 training samples in smoke runs."""
    mnist = cfg.dataset == "mnist"
    n_train = cfg.pick(600 if not mnist else 1000, 5000 if mnist else None,
                       10000 if mnist else None)
    X, X_test, y, y_test = load_data(cfg.dataset, cfg, n_train=n_train,
                                     n_test=cfg.pick(1000, None, None) if mnist else None)
    return X, X_test, y, y_test, len(np.unique(y))


def load_data(dataset, cfg, n_train=None, n_test=None, seed=0):
    """(X_train, X_test, y_train, y_test) of a dataset, optionally subsampled.

    digits and breast_cancer: a stratified 75/25 split (seed 0); breast_cancer
    is standardized with the training statistics. MNIST: the standard
    60000/10000 split. n_train / n_test take stratified random subsets.
    """
    from descend import datasets
    dtype = cfg.dtype
    if dataset == "mnist":
        X_train, X_test, y_train, y_test = load_mnist(cfg.data_home)
        X_train, X_test = X_train.astype(dtype, copy=False), X_test.astype(dtype, copy=False)
    elif dataset == "breast_cancer":
        X, y = datasets.load_breast_cancer(dtype="float64")
        X_train, X_test, y_train, y_test = datasets.train_test_split(
            X, y, test_size=0.25, seed=0, stratify=True)
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        std[std == 0] = 1.0
        X_train = ((X_train - mean) / std).astype(dtype)
        X_test = ((X_test - mean) / std).astype(dtype)
    elif dataset == "digits":
        X, y = datasets.load_digits(dtype=dtype)
        X_train, X_test, y_train, y_test = datasets.train_test_split(
            X, y, test_size=0.25, seed=0, stratify=True)
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    X_train, y_train = subsample(X_train, y_train, n_train, seed)
    X_test, y_test = subsample(X_test, y_test, n_test, seed + 1)
    return X_train, X_test, y_train, y_test


def describe_data(dataset, X_train, X_test):
    """One line naming the dataset and the train/test sizes and feature count used."""
    return (f"data: {dataset}, {len(X_train)} training and {len(X_test)} test samples, "
            f"{X_train.shape[1]} features")


# ----------------------------------------------------------------------------- training
def make_net(n_in, hidden, n_out, activation="relu", seed=0, cfg=None, kernel_initializer=None,
             dropout=0.0, kernel_regularizer=None):
    """Sequential MLP n_in - hidden... - n_out with logits out."""
    import descend as dn
    layers = []
    for units in hidden:
        if dropout > 0 and layers:
            layers.append(dn.Dropout(dropout))
        layers.append(dn.Dense(units, activation=activation,
                               kernel_initializer=kernel_initializer,
                               kernel_regularizer=kernel_regularizer))
    if dropout > 0 and hidden:
        layers.append(dn.Dropout(dropout))
    layers.append(dn.Dense(n_out, kernel_initializer=(
        kernel_initializer if kernel_initializer is not None else "glorot_uniform"),
        kernel_regularizer=kernel_regularizer))
    return dn.Sequential(layers, input_dim=n_in, dtype=cfg.dtype if cfg else "float32",
                         seed=seed, n_threads=cfg.n_threads if cfg else 1)


@dataclasses.dataclass
class Run:
    """Per-epoch record of one training run.

    seconds[e]: wall time of epoch e inside fit (the compiled loop only;
    evaluation excluded). train_loss / train_accuracy: on the evaluation
    subset of the training data with the weights at the end of epoch e.
    status: "ok", "diverged (NaN/inf)" or "diverged (loss exploded)".
    """
    initial_loss: float
    seconds: list
    train_loss: list
    train_accuracy: list
    test_loss: list
    test_accuracy: list
    status: str = "ok"
    diverged_epoch: int = None
    updates_per_epoch: int = 0

    @property
    def diverged(self):
        return self.status != "ok"

    @property
    def epochs(self):
        return len(self.seconds)

    def first_epoch(self, key, target, above=False):
        """1-based epoch at which metric `key` first reached `target`, or None."""
        for e, v in enumerate(getattr(self, key)):
            if v is not None and np.isfinite(v) and (v >= target if above else v <= target):
                return e + 1
        return None

    def seconds_to(self, epoch):
        return None if epoch is None else float(np.sum(self.seconds[:epoch]))

    @property
    def final(self):
        return {"train_loss": self.train_loss[-1] if self.train_loss else self.initial_loss,
                "train_accuracy": self.train_accuracy[-1] if self.train_accuracy else None,
                "test_loss": self.test_loss[-1] if self.test_loss else None,
                "test_accuracy": self.test_accuracy[-1] if self.test_accuracy else None}


def fit(net, X, y, **kwargs):
    """``net.fit(X, y, **kwargs)`` that lets Ctrl-C stop the experiment.

    fit ends on Ctrl-C with the completed epochs (history.interrupted), as a
    Keras user expects of one fit; an experiment must not go on to fill its
    cells with networks trained for part of their epochs, so the interrupt is
    raised again here. Returns the History."""
    history = net.fit(X, y, **kwargs)
    if history.interrupted:
        raise KeyboardInterrupt
    return history


def train(net, optimizer, X, y, X_test, y_test, epochs, batch_size, eval_rows=5000,
          stop=None, callbacks=(), loss="softmax_cross_entropy", test_every_epoch=False):
    """Fit `net` epoch by epoch, evaluating after each epoch; catch divergence.

    After every epoch the training loss and accuracy are measured on the first
    `eval_rows` training samples (all of them if fewer) with the weights of
    the epoch's end; the test set is evaluated after every epoch if
    `test_every_epoch`, else once at the end. Evaluation is not timed.

    stop : callable(run) -> bool, checked after each epoch (e.g. target reached).
    Returns a Run.
    """
    import descend as dn
    from descend.callbacks import Callback

    net.compile(loss=loss, optimizer=optimizer)
    X_eval, y_eval = X[:eval_rows], y[:eval_rows]
    initial = net.evaluate(X_eval, y_eval)["loss"]
    n = len(X)
    bs = n if batch_size is None else min(batch_size, n)
    run = Run(initial_loss=initial, seconds=[], train_loss=[], train_accuracy=[],
              test_loss=[], test_accuracy=[], updates_per_epoch=-(-n // bs))

    class Tracker(Callback):
        def on_epoch_end(self, epoch, logs=None):
            scores = self.model.evaluate(X_eval, y_eval)
            run.seconds.append(logs["seconds"])
            run.train_loss.append(scores["loss"])
            run.train_accuracy.append(scores.get("accuracy"))
            if test_every_epoch:
                test = self.model.evaluate(X_test, y_test)
                run.test_loss.append(test["loss"])
                run.test_accuracy.append(test.get("accuracy"))
            if not np.isfinite(scores["loss"]):
                run.status, run.diverged_epoch = "diverged (NaN/inf)", epoch + 1
                self.model.stop_training = True
            elif scores["loss"] > EXPLOSION_FACTOR * max(initial, 1e-12):
                run.status, run.diverged_epoch = "diverged (loss exploded)", epoch + 1
                self.model.stop_training = True
            elif stop is not None and stop(run):
                self.model.stop_training = True

    try:
        fit(net, X, y, epochs=epochs, batch_size=batch_size, verbose=0,
            callbacks=[Tracker(), *callbacks])
    except dn.DivergenceError:
        run.status = "diverged (NaN/inf)"
        run.diverged_epoch = len(run.seconds) + 1
    except FloatingPointError:
        run.status = "diverged (NaN/inf)"
        run.diverged_epoch = len(run.seconds) + 1
    if (run.status == "ok" and run.train_loss
            and run.train_loss[-1] > FINAL_EXPLOSION_FACTOR * max(initial, 1e-12)):
        run.status, run.diverged_epoch = "diverged (loss exploded)", len(run.train_loss)
    if not test_every_epoch and run.seconds:
        try:
            test = net.evaluate(X_test, y_test)
        except FloatingPointError:
            test = {"loss": float("nan"), "accuracy": float("nan")}
        run.test_loss.append(test["loss"])
        run.test_accuracy.append(test.get("accuracy"))
    return run


# ----------------------------------------------------------------------------- plots
def save_plot(result, path):
    """Draw result.plot into a PNG at path (matplotlib, Agg, no pyplot state).

    Returns the path, or None (with result.plot_message set) without matplotlib.
    """
    if result.plot is None:
        return None
    try:
        fig = draw_plot(result)
    except ImportError:
        result.plot_message = ("plot skipped: matplotlib is not installed "
                               "(pip install descend[plot])")
        return None
    with warnings.catch_warnings():
        # matplotlib warns when placing a loc="best" legend took long, which
        # depends on the machine's load, not on the plot: not the user's concern
        warnings.filterwarnings("ignore", message="Creating legend with loc=",
                                category=UserWarning)
        fig.savefig(path, dpi=90)
    return path


def draw_plot(result):
    """result.plot drawn into a new matplotlib Figure, titled with the
    experiment, its data and its net. Raises ImportError without matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=result.figsize, dpi=90)
    FigureCanvasAgg(fig)
    result.plot(fig)
    # wrapped to the figure's width (about 12 characters an inch at this size)
    fig.suptitle(textwrap.fill(result.plot_title(), int(result.figsize[0] * 12)), fontsize=10)
    fig.tight_layout()
    return fig


def reference_line(ax, value, label, vertical=False):
    """A grey dashed line at ``value`` (a target, a threshold), named in the legend."""
    draw = ax.axvline if vertical else ax.axhline
    return draw(value, color="grey", lw=0.8, ls="--", label=label)


def marker_legend(ax, entries, **legend_kwargs):
    """A legend for the axes' labelled lines plus what each marker means:
    ``entries`` are (marker, color, meaning)."""
    from matplotlib.lines import Line2D
    handles, labels = ax.get_legend_handles_labels()
    for marker, color, meaning in entries:
        handles.append(Line2D([], [], ls="", marker=marker, color=color))
        labels.append(meaning)
    return ax.legend(handles, labels, **legend_kwargs)


def machine_info():
    """Where the numbers were measured: CPU, cores, library versions, commit."""
    import numpy
    import scipy
    import descend
    from descend._config import _cpu_model
    cpu = _cpu_model()
    commit = "unknown"
    try:
        root = Path(descend.__file__).resolve().parents[2]
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip() \
            or "unknown"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
        if commit != "unknown" and dirty:
            commit += f" (plus uncommitted changes to {', '.join(dirty)})"
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import threadpoolctl
        blas = ", ".join(sorted({f"{i['internal_api']} {i.get('version')}"
                                 for i in threadpoolctl.threadpool_info()
                                 if i["user_api"] == "blas"}))
    except ImportError:
        blas = "unknown (threadpoolctl not installed)"
    return {"cpu": cpu, "nproc": os.cpu_count(), "python": platform.python_version(),
            "numpy": numpy.__version__, "scipy": scipy.__version__, "blas": blas,
            "descend": descend.__version__, "commit": commit,
            "openmp": descend.openmp_enabled(), "platform": platform.platform()}


def machine_markdown():
    """Markdown lines describing the machine: CPU, cores, numpy/scipy/descend versions, commit."""
    info = machine_info()
    return (f"- CPU: {info['cpu']}, nproc = {info['nproc']} ({info['platform']})\n"
            f"- Python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, "
            f"BLAS: {info['blas']}\n"
            f"- descend {info['descend']} at commit {info['commit']}, "
            f"OpenMP {'enabled' if info['openmp'] else 'disabled'}")

