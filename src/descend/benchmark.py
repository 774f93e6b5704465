"""Side-by-side epoch times: descend against PyTorch, JAX, numpy and scikit-learn.

``python -m descend bench`` (also ``descend bench``; ``bench/compare.py`` in a
source checkout is a thin wrapper over this module) times one training epoch
of the same task in every library that is installed; missing libraries are
named and skipped. The task: a 784-256-128-10 ReLU network (the input width
follows the data), softmax cross-entropy, plain SGD with learning rate 0.01
and no momentum, one epoch over the same batches in the same order for every
contender, ``--n-threads`` threads.

The data: MNIST when its four ``.gz`` files are found (``--data-home``, else
``$DESCEND_DATA``, else ``~/.cache/descend/mnist``; nothing is downloaded);
otherwise synthetic data of MNIST's shape and sparsity (60000 x 784 in
[0, 1], 19% non-zeros, ten classes), or the bundled digits with
``--data digits``.

Method (the numbers are only as good as it):

* Every repeat of every (contender, dtype, batch size) runs in a fresh worker
  process, so that one library's idle threads (PyTorch's OpenMP pool, say)
  never compete with the next one's. The contenders take turns, repeat by
  repeat: on shared cores whose load comes and goes, a spike then costs one
  repeat of one contender, which the median drops.
* The table gives medians, and descend's speed-up over each contender
  (its seconds / descend's seconds) measured in the same run.
* Slow contenders at tiny batches run on a prefix of the epoch and are
  scaled to the full epoch (marked ``*``).
* The dense FLOP floor: the epoch's matrix-product FLOPs (forward X W,
  backward X^T dZ for every layer, dZ W^T for all but the first; 2 FLOPs per
  multiply-add) divided by the throughput of one large square GEMM through
  numpy's BLAS on the same threads, timed at every turn in the same run (the
  fastest turn, i.e. the lowest floor, is reported).
* JAX jits the whole epoch as one ``lax.scan`` over the batches (plus one
  step for a short last batch); compilation happens before the clock starts.
  XLA sizes its own thread pool from the cores (one thread with
  ``--n-threads 1``).
  PyTorch runs its usual eager loop. numpy is the same step written with
  numpy arrays. scikit-learn is ``MLPClassifier(solver="sgd")`` with one
  iteration.

On machines that set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (for old OpenBLAS
builds), unset both for the benchmark command only so that numpy's BLAS runs
its best kernel.
"""
import argparse
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HIDDEN = (256, 128)
N_CLASSES = 10
LEARNING_RATE = 0.01
BATCH_SIZES = (1, 8, 32, 128, 1024)
QUICK_BATCH_SIZES = (8, 128, 1024)
QUICK_SAMPLES = 6000
GEMM_SIZE = 2048
SCHEMA = "descend.bench/1"

# contender name -> (distribution whose presence it needs, import name)
CONTENDERS = {
    "descend": ("descend", "descend"),
    "PyTorch": ("torch", "torch"),
    "JAX": ("jax", "jax"),
    "numpy": ("numpy", "numpy"),
    "scikit-learn": ("scikit-learn", "sklearn"),
}


# ------------------------------------------------------------------ the task
def epoch_flops(n_samples, n_in, hidden=HIDDEN, n_out=N_CLASSES):
    """Matrix-product FLOPs of one epoch: X W forward and X^T dZ backward for
    every layer, dZ W^T for all but the first (2 FLOPs per multiply-add)."""
    sizes = (n_in,) + tuple(hidden) + (n_out,)
    macs = sum(a * b * (2 if i == 0 else 3)
               for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))
    return 2 * macs * n_samples


def synthetic_mnist(n_samples=60000, n_features=784, density=0.19, seed=0):
    """Data of MNIST's shape and sparsity: ten classes, each a fixed set of
    "ink" pixels (``density`` of the features) of which every sample keeps
    90% and gains as many random others, with intensities in [0.3, 1].

    Returns X (n_samples, n_features) float32 and y (n_samples,) int64.
    """
    rng = np.random.default_rng(seed)
    n_ink = int(round(density * n_features))
    templates = np.array([rng.choice(n_features, n_ink, replace=False)
                          for _ in range(N_CLASSES)])
    y = rng.integers(0, N_CLASSES, n_samples)
    X = np.zeros((n_samples, n_features), dtype=np.float32)
    rows = np.arange(n_samples)[:, None]
    kept = templates[y][:, rng.permutation(n_ink)[:int(0.9 * n_ink)]]
    extra = rng.integers(0, n_features, (n_samples, n_ink - kept.shape[1]))
    ink = np.concatenate([kept, extra], axis=1)
    X[rows, ink] = rng.uniform(0.3, 1.0, ink.shape).astype(np.float32)
    return X, y


def mnist_dir(data_home):
    """The directory holding MNIST's four files (.gz or uncompressed), or None
    if it is not found."""
    from descend import datasets
    directory = datasets.get_mnist_dir(data_home)
    if all(datasets._mnist_path(directory, name) for name in datasets.MNIST_FILES):
        return directory
    return None


def load_task_data(data="auto", data_home=None, quick=False):
    """(X float32, y int64, description) of the task's training data, in the
    batch order every contender uses (one fixed permutation).

    ``data`` is "auto" (MNIST if found, else synthetic), "mnist" (a
    DatasetNotFoundError if not found), "synthetic" or "digits".
    """
    from descend import datasets
    found = mnist_dir(data_home) if data in ("auto", "mnist") else None
    if found is not None:
        mnist = datasets.load_mnist(data_home=found, download=False)
        X, y = mnist.X_train, mnist.y_train
        name, source = "mnist", f"MNIST ({found})"
    elif data == "mnist":
        datasets.load_mnist(data_home=data_home, download=False)   # raises, naming the files
        raise AssertionError("unreachable")
    elif data == "digits":
        X, y = datasets.load_digits()
        name, source = "digits", "bundled UCI digits"
    else:
        X, y = synthetic_mnist()
        where = datasets.get_mnist_dir(data_home)
        name = "synthetic"
        source = ("synthetic data of MNIST's shape" if data == "synthetic" else
                  f"synthetic data of MNIST's shape (MNIST not found in {where})")
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order], y[order].astype(np.int64)
    if quick:
        X, y = X[:QUICK_SAMPLES], y[:QUICK_SAMPLES]
    return X, y, {"name": name, "source": source, "n_samples": int(len(X)),
                  "n_features": int(X.shape[1]), "density": float(np.mean(X != 0))}


# ----------------------------------------------------------------- contenders
# Each takes float arrays X (n, d) of the dtype, int64 labels y, and returns
# the seconds of one epoch (descend: and the training accuracy after it).
def _he_normal_weights(sizes, dtype, seed=0):
    """Weights (He normal) and zero biases for the contenders without an initializer."""
    rng = np.random.default_rng(seed)
    return ([(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(dtype)
             for a, b in zip(sizes[:-1], sizes[1:])],
            [np.zeros(b, dtype=dtype) for b in sizes[1:]])


def time_descend(X, y, batch_size, dtype, n_threads):
    """descend's fit for one epoch, no shuffling: (seconds of the compiled epoch
    as History records it, training accuracy on up to 10000 rows after it)."""
    import descend as dn
    net = dn.Sequential([dn.Dense(HIDDEN[0], activation="relu"),
                         dn.Dense(HIDDEN[1], activation="relu"), dn.Dense(N_CLASSES)],
                        input_dim=X.shape[1], dtype=dtype, seed=0, n_threads=n_threads)
    net.compile(loss="softmax_cross_entropy",
                optimizer=dn.optimizers.SGD(learning_rate=LEARNING_RATE))
    history = net.fit(X, y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    # accuracy on (a part of) the training data after the epoch: a sanity check
    return history["seconds"][0], net.evaluate(X[:10000], y[:10000])["accuracy"]


def time_torch(X, y, batch_size, dtype, n_threads):
    """PyTorch's eager loop: zero_grad, forward, CrossEntropyLoss, backward, SGD step."""
    import torch
    torch.set_num_threads(n_threads)
    torch_dtype = torch.float32 if dtype == "float32" else torch.float64
    Xt, yt = torch.from_numpy(X).to(torch_dtype), torch.from_numpy(y)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(X.shape[1], HIDDEN[0]), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN[0], HIDDEN[1]), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN[1], N_CLASSES)).to(torch_dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
    loss_fn = torch.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for s in range(0, len(Xt), batch_size):
        xb, yb = Xt[s:s + batch_size], yt[s:s + batch_size]
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def time_jax(X, y, batch_size, dtype, n_threads):
    """The epoch as one jitted lax.scan over the full batches, then one jitted
    step on the short last batch; both compiled before the clock starts.
    XLA sizes its CPU thread pool from the cores; n_threads=1 turns it off."""
    if n_threads == 1 and "jax" not in sys.modules:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_"
                                   "eigen=false intra_op_parallelism_threads=1").strip()
    import jax
    import jax.numpy as jnp
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    Ws, bs = _he_normal_weights((X.shape[1],) + HIDDEN + (N_CLASSES,), dtype)
    params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(Ws, bs)]

    def loss(params, xb, yb):
        h = xb
        for W, b in params[:-1]:
            h = jax.nn.relu(h @ W + b)
        logits = h @ params[-1][0] + params[-1][1]
        log_p = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(log_p, yb[:, None], axis=1))

    def step(params, batch):
        grads = jax.grad(loss)(params, *batch)
        return jax.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g, params, grads), None

    def epoch(params, Xb, yb):
        return jax.lax.scan(step, params, (Xb, yb))[0]

    n_full = len(X) // batch_size
    Xb = jnp.asarray(X[:n_full * batch_size].reshape(n_full, batch_size, -1))
    yb = jnp.asarray(y[:n_full * batch_size].reshape(n_full, batch_size))
    rest = (jnp.asarray(X[n_full * batch_size:]), jnp.asarray(y[n_full * batch_size:]))
    run_epoch = jax.jit(epoch).lower(params, Xb, yb).compile()
    last_step = (jax.jit(lambda p, xb, yb: step(p, (xb, yb))[0]).lower(params, *rest).compile()
                 if len(rest[0]) else None)
    jax.block_until_ready((Xb, yb, rest))
    start = time.perf_counter()
    params = run_epoch(params, Xb, yb)
    if last_step is not None:
        params = last_step(params, *rest)
    jax.block_until_ready(params)
    return time.perf_counter() - start


def time_numpy(X, y, batch_size, dtype, n_threads):
    """The same SGD step written with numpy arrays (BLAS on n_threads threads)."""
    Ws, bs = _he_normal_weights((X.shape[1],) + HIDDEN + (N_CLASSES,), dtype)
    with _blas_limit(n_threads):
        start = time.perf_counter()
        for s in range(0, len(X), batch_size):
            xb, yb = X[s:s + batch_size], y[s:s + batch_size]
            acts = [xb]
            for i, (W, b) in enumerate(zip(Ws, bs)):
                z = acts[-1] @ W + b
                acts.append(np.maximum(z, 0) if i < len(Ws) - 1 else z)
            logits = acts[-1]
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            p[np.arange(len(yb)), yb] -= 1
            dz = p / len(yb)
            for i in range(len(Ws) - 1, -1, -1):
                dW = acts[i].T @ dz
                db = dz.sum(axis=0)
                if i > 0:
                    dz = (dz @ Ws[i].T) * (acts[i] > 0)
                Ws[i] -= LEARNING_RATE * dW
                bs[i] -= LEARNING_RATE * db
        return time.perf_counter() - start


def time_sklearn(X, y, batch_size, dtype, n_threads):
    """scikit-learn's MLPClassifier(solver="sgd"), one iteration over the data."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=HIDDEN, solver="sgd", momentum=0.0,
                        learning_rate_init=LEARNING_RATE, batch_size=batch_size,
                        max_iter=1, shuffle=False, alpha=0.0, random_state=0)
    with warnings.catch_warnings(), _blas_limit(n_threads):
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        clf.fit(X, y)
        return time.perf_counter() - start


TIMERS = {"descend": time_descend, "PyTorch": time_torch, "JAX": time_jax,
          "numpy": time_numpy, "scikit-learn": time_sklearn}


def _blas_limit(n_threads):
    """threadpoolctl's BLAS limit, or a no-op context without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(n_threads, user_api="blas")


def gemm_throughput(dtype, n_threads, size=GEMM_SIZE, repeats=5):
    """FLOP/s of a large square GEMM through numpy's BLAS on n_threads threads
    (the best of ``repeats`` after one warm-up)."""
    rng = np.random.default_rng(0)
    a = rng.random((size, size)).astype(dtype)
    b = rng.random((size, size)).astype(dtype)
    with _blas_limit(n_threads):
        a @ b
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(times)


def prefix_limit(name, batch_size, n_samples):
    """Samples timed for a slow (contender, batch size) pair; None: the whole epoch."""
    if name == "descend" or batch_size >= 32:
        return None
    limit = 3000 if batch_size == 1 or name == "scikit-learn" else 12000
    return None if limit >= n_samples else limit


# -------------------------------------------------------------------- workers
def run_worker(spec):
    """In a fresh process: time one (contender, dtype, batch size) once, or the
    GEMM; return a JSON-ready dict."""
    if spec["contender"] == "gemm":
        return {"flops_per_second": gemm_throughput(spec["dtype"], spec["n_threads"])}
    X = np.load(spec["X"])
    y = np.load(spec["y"])
    timer = TIMERS[spec["contender"]]
    batch_size, dtype, n_threads = spec["batch_size"], spec["dtype"], spec["n_threads"]
    if spec["contender"] != "JAX":    # JAX compiles (and so warms up) before its clock
        # warm up: thread pools, BLAS buffers, first-touch page faults
        timer(np.ascontiguousarray(X[:2048], dtype=dtype), y[:2048], 128, dtype, n_threads)
    limit = prefix_limit(spec["contender"], batch_size, len(X))
    n = len(X) if limit is None else max(batch_size, limit - limit % batch_size)
    Xd = np.ascontiguousarray(X[:n], dtype=dtype)
    gc.collect()
    measured = timer(Xd, y[:n], batch_size, dtype, n_threads)
    seconds, accuracy = measured if isinstance(measured, tuple) else (measured, None)
    return {"seconds": seconds * len(X) / n, "samples_timed": int(n),
            "scaled": n < len(X), "train_accuracy": accuracy}


def _spawn(spec):
    """Run one worker in a fresh interpreter; its result dict, or {"error": ...}."""
    command = [sys.executable, "-m", "descend.benchmark", "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"worker exited with {done.returncode}: {tail}"}
    return json.loads(lines[-1][len("RESULT "):])


# ---------------------------------------------------------------- the machine
def machine_description(n_threads):
    """The report's "machine": CPU model and features (as ``dn.show_config``
    reports them), the row loops descend dispatched, architecture, CPUs, Python."""
    from descend import _config, _sparse
    return {"cpu": _config._cpu_model(), "features": _config._cpu_features(),
            "descend_simd_loops": _sparse.ISA,
            "architecture": platform.machine(), "logical_cpus": os.cpu_count(),
            "n_threads": n_threads, "python": platform.python_version(),
            "platform": platform.platform()}


def installed_contenders(wanted):
    """({name: version} of the installed contenders among `wanted`,
    {name: why skipped} of the others), without importing them."""
    found, skipped = {}, {}
    for name in wanted:
        distribution, module = CONTENDERS[name]
        if importlib.util.find_spec(module) is None:
            skipped[name] = f"not installed (import {module})"
            continue
        try:
            found[name] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[name] = getattr(__import__(module), "__version__", "unknown")
    return found, skipped


# ------------------------------------------------------------------ the run
def _checked_list(values, name, specs, what, allow_none=False):
    """values as a list, each checked against specs (messages name ``name[i]``);
    a TypeError unless a non-str sequence, a ValueError if empty."""
    from descend._validation import check, error_message
    if values is None and allow_none:
        return None
    expected = f"a non-empty list or tuple of {what}" + (" or None" if allow_none else "")
    if not isinstance(values, (list, tuple)):
        raise TypeError(error_message(name, expected, values, "run_benchmark"))
    if not values:
        raise ValueError(error_message(name, expected, values, "run_benchmark"))
    checked = [check(value, f"{name}[{i}]", specs, "run_benchmark")
               for i, value in enumerate(values)]
    if len(set(checked)) < len(checked):   # a cell timed and printed twice
        raise ValueError(error_message(name, f"{expected}, each once", values,
                                       "run_benchmark"))
    return checked


def _checked_arguments(contenders, batch_sizes, dtypes, n_threads, repeats, quick, data,
                       data_home, log):
    """run_benchmark's arguments but `log`, checked (before any data is loaded)
    and converted; ValueError/TypeError naming the first bad one."""
    from numbers import Integral

    from descend._validation import Interval, Options, check, check_bool, check_n_threads
    owner = "run_benchmark"
    check(log, "log", [callable, None], owner)
    if isinstance(contenders, (list, tuple)) and not contenders:
        contenders = ["descend"]        # descend alone (it is always timed)
    return (_checked_list(contenders, "contenders", [Options(*CONTENDERS)],
                          "contender names", allow_none=True),
            _checked_list(batch_sizes, "batch_sizes", [Interval(Integral, 1)],
                          "positive ints", allow_none=True),
            _checked_list(dtypes, "dtypes", [Options("float32", "float64")],
                          "'float32' / 'float64'"),
            check_n_threads(n_threads, owner=owner),
            check(repeats, "repeats", [Interval(Integral, 1)], owner),
            check_bool(quick, "quick", owner=owner),
            check(data, "data", [Options("auto", "mnist", "synthetic", "digits")], owner),
            check(data_home, "data_home", ["path", None], owner))


def run_benchmark(contenders=None, batch_sizes=None, dtypes=("float32", "float64"),
                  n_threads=None, repeats=3, quick=False, data="auto", data_home=None,
                  log=None):
    """Time every installed contender, turn by turn; return the report dict.

    Parameters
    ----------
    contenders : list of str or None
        Names from ``CONTENDERS`` (default: all); those not installed are
        skipped and named in ``report["skipped"]``.
    batch_sizes : list of int or None
        Default (1, 8, 32, 128, 1024); with ``quick`` (8, 128, 1024).
    dtypes : sequence of {"float32", "float64"}
    n_threads : int or None
        Threads for every contender (None: descend's default, all usable cores).
    repeats : int
        Turns per (dtype, batch size); the report gives each run and the median.
    quick : bool
        6000 samples (a smoke run, not a measurement).
    data, data_home :
        See :func:`load_task_data`.
    log : callable or None
        Called with one progress line per turn.

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type or value (an unknown contender or
        dtype, a batch size or repeats below 1, ...), naming it, before any
        data is loaded or timed.

    Returns
    -------
    dict
        JSON-ready; see ``python -m descend bench --help``: schema, descend
        version, machine, versions, task, contenders, skipped, floors (per
        dtype: GEMM FLOP/s, epoch FLOPs, floor seconds) and results (one row
        per dtype, batch size and contender: seconds, runs, speed-up, ...).
    """
    from descend import __version__, effective_n_threads
    contenders, batch_sizes, dtypes, n_threads, repeats, quick, data, data_home = \
        _checked_arguments(contenders, batch_sizes, dtypes, n_threads, repeats, quick, data,
                           data_home, log)
    n_threads = effective_n_threads(n_threads)
    batch_sizes = batch_sizes or list(QUICK_BATCH_SIZES if quick else BATCH_SIZES)
    wanted = list(CONTENDERS) if contenders is None else contenders
    if "descend" not in wanted:
        wanted.insert(0, "descend")     # every speed-up is relative to descend
    versions, skipped = installed_contenders(wanted)
    names = [name for name in wanted if name in versions]
    X, y, task_data = load_task_data(data, data_home, quick)
    flops = epoch_flops(len(X), X.shape[1])
    gemm = {dtype: [] for dtype in dtypes}
    runs = {}
    with tempfile.TemporaryDirectory(prefix="descend-bench-") as tmp:
        paths = {"X": os.path.join(tmp, "X.npy"), "y": os.path.join(tmp, "y.npy")}
        np.save(paths["X"], X)
        np.save(paths["y"], y)
        for dtype in dtypes:
            for batch_size in batch_sizes:
                for turn in range(repeats):
                    if log:
                        log(f"{dtype}, batch {batch_size}, turn {turn + 1}/{repeats}: "
                            + ", ".join(names))
                    base = dict(paths, dtype=dtype, batch_size=batch_size, n_threads=n_threads)
                    for name in names:
                        runs.setdefault((dtype, batch_size, name), []).append(
                            _spawn(dict(base, contender=name)))
                    found = _spawn(dict(base, contender="gemm"))
                    if "error" not in found:
                        gemm[dtype].append(found["flops_per_second"])
    floors = {}
    for dtype in dtypes:
        peak = max(gemm[dtype]) if gemm[dtype] else None
        floors[dtype] = {"gemm_flops_per_second": peak, "gemm_size": GEMM_SIZE,
                         "epoch_flops": flops,
                         "seconds": flops / peak if peak else None}
    return {
        "schema": SCHEMA,
        "descend_version": __version__,
        "machine": machine_description(n_threads),
        "versions": dict(versions, numpy=np.__version__),
        "task": dict(task_data, hidden=list(HIDDEN), n_classes=N_CLASSES, activation="relu",
                     loss="softmax_cross_entropy", optimizer="SGD",
                     learning_rate=LEARNING_RATE, momentum=0.0, epochs=1,
                     n_threads=n_threads, repeats=repeats, quick=quick,
                     dtypes=list(dtypes), batch_sizes=batch_sizes),
        "contenders": names,
        "skipped": skipped,
        "floors": floors,
        "results": _result_rows(runs, dtypes, batch_sizes, names, floors),
    }


def _result_rows(runs, dtypes, batch_sizes, names, floors):
    """One row per (dtype, batch size, contender): the median over the turns,
    every turn's seconds, descend's speed-up over it, its ratio to the floor."""
    rows = []
    for dtype in dtypes:
        for batch_size in batch_sizes:
            medians = {}
            for name in names:
                done = [r for r in runs[(dtype, batch_size, name)] if "error" not in r]
                row = {"dtype": dtype, "batch_size": batch_size, "contender": name,
                       "seconds": None, "runs": [r["seconds"] for r in done],
                       "scaled": bool(done and done[0]["scaled"]),
                       "samples_timed": done[0]["samples_timed"] if done else None,
                       "train_accuracy": None, "speedup": None, "over_floor": None,
                       "errors": [r["error"] for r in runs[(dtype, batch_size, name)]
                                  if "error" in r]}
                if done:
                    row["seconds"] = medians[name] = statistics.median(row["runs"])
                    accuracies = [r["train_accuracy"] for r in done
                                  if r["train_accuracy"] is not None]
                    if accuracies:
                        row["train_accuracy"] = statistics.median(accuracies)
                    if floors[dtype]["seconds"]:
                        row["over_floor"] = row["seconds"] / floors[dtype]["seconds"]
                rows.append(row)
            for row in rows[-len(names):]:
                if row["seconds"] and medians.get("descend"):
                    row["speedup"] = row["seconds"] / medians["descend"]
    return rows


# ----------------------------------------------------------------- the table
def format_markdown(report):
    """The report as markdown: the machine, the task, one table per dtype."""
    machine, task = report["machine"], report["task"]
    versions = ", ".join(f"{name} {version}" for name, version in report["versions"].items())
    lines = [f"Machine: {machine['cpu']} ({machine['architecture']}, "
             f"{machine['logical_cpus']} logical CPUs); features: "
             f"{' '.join(machine['features']) or 'none detected'}",
             f"Versions: Python {machine['python']}, {versions}", ""]
    if report["skipped"]:
        lines += ["Skipped: " + "; ".join(f"{name}: {why}"
                                          for name, why in report["skipped"].items()), ""]
    sizes = "-".join(map(str, [task["n_features"]] + task["hidden"] + [task["n_classes"]]))
    lines += [f"Task: {task['n_samples']} samples of {task['source']}, {sizes} ReLU, softmax "
              f"cross-entropy, SGD lr={task['learning_rate']}, one epoch, "
              f"{task['n_threads']} thread(s), the same batch order for all; median of "
              f"{task['repeats']} turn(s), each in a fresh process. Seconds per epoch; "
              "(xN) = descend's speed-up over it; * = timed on a prefix of the epoch and "
              "scaled; descend / floor = descend's time over the dense FLOP floor. "
              "scikit-learn's MLPClassifier may compute in float64 whatever the input "
              "dtype.", ""]
    others = [name for name in report["contenders"] if name != "descend"]
    for dtype in task["dtypes"]:
        floor = report["floors"][dtype]
        if floor["seconds"]:
            lines += [f"### {dtype} (one {floor['gemm_size']}x{floor['gemm_size']} GEMM, "
                      f"{task['n_threads']} thread(s): "
                      f"{floor['gemm_flops_per_second'] / 1e9:.0f} GFLOP/s; "
                      f"FLOP floor {floor['seconds']:.3f} s/epoch)", ""]
        else:
            lines += [f"### {dtype} (the GEMM could not be timed: no floor)", ""]
        header = ["batch", "descend s", "train acc"] + [f"{name} s" for name in others] \
            + ["descend / floor"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for batch_size in task["batch_sizes"]:
            cells = {row["contender"]: row for row in report["results"]
                     if row["dtype"] == dtype and row["batch_size"] == batch_size}
            mine = cells["descend"]
            row = [str(batch_size), _seconds(mine),
                   "-" if mine["train_accuracy"] is None else f"{mine['train_accuracy']:.3f}"]
            for name in others:
                cell = cells[name]
                speedup = f" (x{cell['speedup']:.1f})" if cell["speedup"] else ""
                row.append(_seconds(cell) + speedup)
            row.append("-" if mine["over_floor"] is None else f"{mine['over_floor']:.2f}")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    errors = [f"- {row['contender']}, {row['dtype']}, batch {row['batch_size']}: {error}"
              for row in report["results"] for error in row["errors"]]
    if errors:
        lines += ["Failed runs:"] + errors + [""]
    return "\n".join(lines)


def _seconds(cell):
    if cell["seconds"] is None:
        return "failed"
    return f"{cell['seconds']:.3f}{'*' if cell['scaled'] else ''}"


# ------------------------------------------------------------ command line
def _comma_list(text):
    """The items of a comma-separated list, stripped; [] if any item is empty
    or repeated ('8,' or '1,,2' is a typo, not a shorter list; '8,8' would
    time one cell twice and print it twice)."""
    values = [part.strip() for part in text.split(",")]
    return [] if "" in values or len(set(values)) < len(values) else values


def _positive_int_list(text):
    try:
        values = [int(part) for part in _comma_list(text)]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of positive integers, each once, got {text!r}")
    return values


def _dtype_list(text):
    values = _comma_list(text)
    if not values or any(value not in ("float32", "float64") for value in values):
        raise argparse.ArgumentTypeError(
            f"expected float32, float64 or float32,float64, got {text!r}")
    return values


def _contender_list(text):
    values = _comma_list(text)
    unknown = [value for value in values if value not in CONTENDERS]
    if not values or unknown:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(CONTENDERS)}, each once, "
            f"got {text!r}")
    return values


def _skip_list(text):
    """argparse type of --skip: contenders other than descend (always timed)."""
    values = _contender_list(text)
    if "descend" in values:
        raise argparse.ArgumentTypeError("descend is always timed (every speed-up is "
                                         f"relative to it), got {text!r}")
    return values


def add_arguments(parser):
    """Add the bench options to an argparse parser (``python -m descend bench``)."""
    from descend.__main__ import _directory, _n_threads, _output_file, _positive_int
    if parser.description is None:
        parser.description = __doc__.split("\n\n")[0]
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_SAMPLES} samples, one turn, float32, batch sizes "
                             f"{','.join(map(str, QUICK_BATCH_SIZES))} unless given "
                             "(under a minute; a smoke run, not a measurement; default: the full run)")
    parser.add_argument("--batch-sizes", type=_positive_int_list, default=None,
                        help="comma list (default: " + ",".join(map(str, BATCH_SIZES)) + ")")
    parser.add_argument("--dtype", "--dtypes", dest="dtypes", type=_dtype_list, default=None,
                        help="float32, float64 or float32,float64 (default: both; "
                             "--quick: float32)")
    parser.add_argument("--n-threads", type=_n_threads, default=None,
                        help="threads for every contender (default: all usable cores)")
    parser.add_argument("--repeats", type=_positive_int, default=None,
                        help="turns per cell; the median is reported (default: 3, "
                             "--quick 1)")
    parser.add_argument("--contenders", type=_contender_list, default=None,
                        help="comma list of " + ", ".join(CONTENDERS) + " (default: all "
                             "installed; descend is always timed)")
    parser.add_argument("--skip", type=_skip_list, default=[],
                        help="comma list of contenders not to time, descend excepted "
                             "(default: none)")
    parser.add_argument("--data", choices=["auto", "mnist", "synthetic", "digits"],
                        default="auto",
                        help="auto: MNIST if found, else synthetic data of MNIST's shape "
                             "(default: %(default)s)")
    parser.add_argument("--data-home", type=_directory, default=None,
                        help="directory with the MNIST .gz files (default: $DESCEND_DATA, "
                             "then ~/.cache/descend/mnist; never downloaded)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON instead of the markdown tables "
                             "(default: markdown)")
    parser.add_argument("--output", type=_output_file, default=None,
                        help="also write the markdown tables to this file "
                             "(default: print only)")
    return parser


def bench(args):
    """Run the benchmark from parsed arguments; print the table or JSON. Returns 0 or 1."""
    from descend.datasets import DatasetCorruptError, DatasetNotFoundError
    contenders = [name for name in (args.contenders or CONTENDERS) if name not in args.skip]
    try:
        report = run_benchmark(
            contenders=contenders, batch_sizes=args.batch_sizes,
            dtypes=args.dtypes or (["float32"] if args.quick else ["float32", "float64"]),
            n_threads=args.n_threads, repeats=args.repeats or (1 if args.quick else 3),
            quick=args.quick, data=args.data, data_home=args.data_home,
            log=lambda line: print("timing " + line, file=sys.stderr, flush=True))
    except (DatasetNotFoundError, DatasetCorruptError) as error:
        # which files are missing or corrupt, and where
        print(f"descend bench: {error}", file=sys.stderr)
        return 1
    text = format_markdown(report)
    print(json.dumps(report, indent=2) if args.json else text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


def main(argv=None):
    """``bench/compare.py``: the same options as ``python -m descend bench``."""
    parser = argparse.ArgumentParser(prog="bench/compare.py",
                                     description=__doc__.split("\n\n")[0])
    args = add_arguments(parser).parse_args(argv)
    return bench(args)


if __name__ == "__main__":
    # a worker: python -m descend.benchmark --worker '{"contender": ...}'
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print("RESULT " + json.dumps(run_worker(json.loads(sys.argv[2]))), flush=True)
        sys.exit(0)
    sys.exit(main(sys.argv[1:]))
