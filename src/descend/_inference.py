"""predict's compiled paths (module functions, so that Sequential stays small).

Each chunk of rows takes one of three plans (:func:`input_plan`), a
deterministic rule of its shape, of how many of its inputs are zero and of
two thresholds per network and machine (:func:`thresholds`; never of the
thread count or of timings taken during the call):

* ``"row_loops"``: one row, or fewer than ``gemm_min_rows`` rows of sparse
  input (MNIST-like). Every layer through the row loops of ``_sparse``
  (each layer's input compressed to its non-zero entries; four rows at a
  time on AVX-512), on the calling thread, with no BLAS call, hence no
  BLAS thread limit to set (threadpoolctl) either: the lean path of a
  one-sample predict. A GEMM packs the whole kernel for each call, which a
  few rows do not repay.
* ``"sparse_input"``: more rows of sparse input. The first layer through
  the row loops (MNIST: 19% of the first layer's work), the other layers
  through single-threaded GEMMs, in blocks of 256 rows spread over the
  threads in one parallel region (``_sparse.forward_rows_sparse_py``).
* ``"dense"``: anything else. Every layer through single-threaded GEMMs in
  the same blocks (``_dense.forward_rows_py``).

The thresholds (input density of the sparse first layer, rows from which
GEMMs run the hidden layers) follow from ``descend.plans``' machine profile,
measured once per machine, persisted and reported (``python -m descend
info``, section "predict"), or are the defaults with DESCEND_PROFILE=0.
They are plan fields (``plans.PREDICT_FIELDS``: ``predict_sparse_density``,
``predict_gemm_min_rows``): pinned by ``net.plan`` or DESCEND_PLAN as the
fit's fields are, recorded in ``net.plan_`` and saved with the network, so
that another machine reproduces a network's predictions bit for bit.

The per-layer path (:func:`per_layer_output`, ``Sequential._output``) runs
the same kernels layer by layer under the same plan, then the loss's link:
the fused drivers give its bits (tests/test_predict_path.py). It reads
memmaps in chunks and raises the errors the fused drivers decline with
(they return None for anything they cannot run on). The row loops round
as a chain of FMAs in input order, BLAS as its kernels do, so the plans
differ in the last bits; none depends on the number of threads.
"""
import dataclasses
import math
import os
import statistics
import time

import numpy as np

from descend import _aligned, _threads, plans
from descend._config import register_section
from descend._dense import forward_rows_py
from descend._sparse import forward_rows_sparse_py, sparse_forward_py
from descend._train import TeamSize
from descend._validation import check_int, check_live_params, check_verbose

# Rows per chunk in predict/evaluate/gradients: bounds the activations' memory.
CHUNK_ROWS = 8192
# Fewer rows than this run the per-layer kernels on one thread.
PARALLEL_MIN_ROWS = 256   # one GEMM block (ROWS_PER_BLOCK in _dense.pyx)
# The input density is counted on at most this many rows of a chunk (a
# sample, so that the count costs a small share of the forward pass).
DENSITY_SAMPLE_ROWS = 64
# The loss links the fused passes apply.
_LINK_CODES = {"identity": 0, "sigmoid": 1, "softmax": 2}


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Where predict's plans change, for one network on this machine.

    sparse_density: inputs with at most this fraction of non-zero entries
    take the row loops in the first layer (their work falls with the
    density, a GEMM's does not); gemm_min_rows: fewer rows than this run
    every layer through the row loops (no GEMM packing to amortise, no BLAS
    thread limit to set); source: "profile" (descend.plans' machine
    profile), "defaults", or for pinned fields "forced" (both) or
    "forced+profile", "forced+defaults" (one: plans.part_source)."""
    sparse_density: float
    gemm_min_rows: int
    source: str


# Without a profile (DESCEND_PROFILE=0): the fit's default density for the
# sparse first layer (35% non-zero), and 16 rows (measured on the Intel Xeon
# of issue 13: one MNIST row, float32, ~6 us through the row loops against
# ~18 us through sgemm and ~6 us for the BLAS thread limit).
DEFAULTS = Thresholds(plans.DEFAULT_SPARSE_DENSITY, 16, "defaults")
# gemm_min_rows when GEMMs never beat the row loops (every block row loops)
NEVER = 2**31 - 1


def input_plan(X, limits=DEFAULTS):
    """The plan for the rows of the 2-D array X: "row_loops", "sparse_input"
    or "dense" (see the module docstring), under the Thresholds `limits`.
    One row always takes the row loops (a GEMM of one row is a
    matrix-vector product either way)."""
    n_rows, n_in = X.shape
    if n_rows == 1:
        return "row_loops"
    sample = X[:DENSITY_SAMPLE_ROWS]
    # counted on the bits as unsigned integers: numpy counts those ~4x faster
    # than floats (a -0.0 then counts as non-zero: an estimate either way)
    if np.count_nonzero(sample.view(f"u{sample.itemsize}")) > limits.sparse_density * sample.size:
        return "dense"
    return "row_loops" if n_rows < limits.gemm_min_rows else "sparse_input"


_thresholds = {}


def thresholds(net, layer_shapes, dtype):
    """The Thresholds of predict on `net`, whose kernels have the shapes
    ((n_in, n_out), ...) and the dtype (see :func:`predict_plan`);
    remembered for the "predict" section of ``dn.show_config()``."""
    limits = predict_plan(net, layer_shapes, dtype)
    _last[:] = [(layer_shapes, str(dtype), limits)]
    return limits


_last = []


def predict_plan(net, layer_shapes, dtype):
    """The Thresholds predict uses for `net` (kernels of the shapes
    ((n_in, n_out), ...) and the dtype), recorded in ``net.plan_``
    (``plans.PREDICT_FIELDS``, saved with the network, its "source" updated:
    ``plans.recorded_source``): the fields pinned by DESCEND_PLAN and then
    by ``net.plan`` (source "forced", or "forced+profile" for one), the others
    from the machine profile (:func:`thresholds_from_profile`, worked out
    once per process: a refreshed profile counts from the next), or
    DEFAULTS when profiling is off. With both pinned, no profile is read
    (nor measured).

    Raises
    ------
    ValueError
        ``net.plan`` or DESCEND_PLAN invalid (naming the field), or
        DESCEND_PROFILE neither on nor off.
    """
    pinned = pinned_fields(net)
    limits = DEFAULTS
    if len(pinned) < len(plans.PREDICT_FIELDS):
        key = (layer_shapes, str(dtype), plans.profiling_enabled())
        if key not in _thresholds:
            profile = plans.machine_profile() if key[2] else None
            _thresholds[key] = thresholds_from_profile(profile, layer_shapes, str(dtype))
        limits = _thresholds[key]
    if pinned:
        limits = Thresholds(pinned.get("predict_sparse_density", limits.sparse_density),
                            pinned.get("predict_gemm_min_rows", limits.gemm_min_rows),
                            plans.part_source(pinned, plans.PREDICT_FIELDS, limits.source))
    used = net.plan_ or {}
    recorded = {**used, "predict_sparse_density": limits.sparse_density,
                "predict_gemm_min_rows": limits.gemm_min_rows,
                "source": plans.recorded_source(plans.fit_source(used), limits.source)}
    if recorded != used:
        net.plan_ = recorded
    return limits


def pinned_fields(net):
    """predict's fields pinned by DESCEND_PLAN and then by ``net.plan``;
    ValueError naming either where it is invalid."""
    pinned = {**plans.forced_from_env(), **{k: v for k, v in (
        plans.check_plan(net.plan, "plan") or {}).items() if v is not None}}
    return {k: v for k, v in pinned.items() if k in plans.PREDICT_FIELDS}


def thresholds_from_profile(profile, layer_shapes, dtype):
    """The Thresholds the profile's figures give (DEFAULTS without them).

    sparse_density: the default (35%) unless the profile's break-even (the
    density at which the first layer's forward costs the same through the
    row loops and through GEMMs, both timed on image-like inputs, 20%
    non-zero: the ``predict`` figures) says the other path is faster by the
    fit's margin (``plans.sparse_density_threshold``).
    gemm_min_rows: the fewest rows, among the block sizes the profile timed
    GEMMs at, from which on the hidden layers run through GEMMs at every
    larger block size measured too; NEVER if not at the largest (and with
    no hidden layer). At each block size the default holds (GEMMs from
    DEFAULTS.gemm_min_rows rows, the row loops below) unless the profile
    estimates the other path faster by the fit's margin
    (``plans.beats_default``): the row loops timed on ReLU-like inputs,
    half zeros, against the kernel nearest in size; the BLAS thread limit,
    ~1 us a call, is left out."""
    figures = (profile or {}).get("predict", {}).get(dtype)
    if not figures:
        return DEFAULTS
    # the default density held unless the profile's break-even moves it by
    # the margin, as fit's; (above 1: every input runs sparse, as at 1)
    sparse_density = min(plans.sparse_density_threshold(figures["sparse_break_even"]), 1.0)
    hidden = layer_shapes[1:]
    if not hidden:
        return Thresholds(sparse_density, NEVER, "profile")
    loop_rates = {int(w): rate for w, rate in figures["row_loop_gflops"].items()}

    def loop_rate(n_in, n_out):
        return loop_rates[min(loop_rates, key=lambda w: abs(math.log(w * w / (n_in * n_out))))]
    loops = sum(2 * n_in * n_out / loop_rate(n_in, n_out) for n_in, n_out in hidden)
    gemm_min_rows = NEVER
    for rows in sorted((int(r) for r in next(iter(profile["gemm"][dtype].values()))),
                       reverse=True):
        gemms = sum(2 * n_in * n_out / plans._interpolated_rate(profile, dtype, rows, n_in, n_out)
                    for n_in, n_out in hidden)
        if rows >= DEFAULTS.gemm_min_rows:      # the default: GEMMs
            gemm = not plans.beats_default(loops, gemms)
        else:                                   # the default: row loops
            gemm = plans.beats_default(gemms, loops)
        if not gemm:
            break
        gemm_min_rows = rows
    return Thresholds(sparse_density, gemm_min_rows, "profile")


# ---- the profile's predict figures (descend.plans.measure_profile) ----

# Hidden layers the row loops are timed on: width -> rows (a few ms each)
PROFILE_HIDDEN = {256: 256, 1024: 32}


def profile_runs(rng, probe):
    """{name: run}: what the machine profile times for predict, one thread:
    the first layer's forward (784 -> 256) on `probe` (image-like rows,
    plans.SPARSE_PROBE_DENSITY non-zero) through the row loops and through
    GEMMs, and a width x width hidden layer through the row loops on
    ReLU-like inputs (half zeros) for each width of PROFILE_HIDDEN."""
    def layer(x, w, driver):
        if driver is forward_rows_sparse_py:
            return lambda: driver(x, (w,), (None,), (0,), (0.0,), 0, 1, NEVER)
        return lambda: driver(x, (w,), (None,), (0,), (0.0,), 0, 1)
    dtype = probe.dtype
    # kernels aligned as a network's are (descend._aligned)
    w = _aligned.copy((rng.random((probe.shape[1], 256), dtype=dtype) - 0.5) / 14)
    runs = {"first_row_loops": layer(probe, w, forward_rows_sparse_py),
            "first_gemm": layer(probe, w, forward_rows_py)}
    for width, rows in PROFILE_HIDDEN.items():
        h = np.maximum(rng.random((rows, width), dtype=dtype) - 0.5, 0)
        w = _aligned.copy((rng.random((width, width), dtype=dtype) - 0.5) / math.sqrt(width))
        runs[f"row_loops_{width}"] = layer(h, w, forward_rows_sparse_py)
    return runs


def profile_figures(seconds, probe_density):
    """The profile's "predict" figures for one dtype, from the `seconds`
    ({name: [seconds per round]}) of profile_runs' runs: the first layer's
    break-even density (the probe's density times the median of the rounds'
    GEMM / row loops time ratios: the row loops' time grows with the
    density) and the row loops' GFLOP/s (dense-equivalent) per width."""
    ratio = statistics.median(g / r for g, r in zip(seconds["first_gemm"],
                                                      seconds["first_row_loops"]))
    return {"sparse_break_even": probe_density * ratio,
            "row_loop_gflops": {str(width): 2 * rows * width * width / 1e9
                                / statistics.median(seconds[f"row_loops_{width}"])
                                for width, rows in PROFILE_HIDDEN.items()}}


def figures_are_valid(figures):
    """Whether a stored profile's "predict" figures (one dtype) are usable."""
    try:
        rates = figures["row_loop_gflops"]
        return (plans.is_finite_number(figures["sparse_break_even"]) and isinstance(rates, dict)
                and bool(rates)
                and all(plans.is_size_key(w) and plans.is_finite_number(r)
                        for w, r in rates.items()))
    except (KeyError, TypeError, AttributeError):
        return False


def predict_data():
    """The "predict" section as data (``python -m descend info --json``,
    ``dn.show_config(mode="dicts")``): ``profiling`` (bool: False, the
    thresholds are the defaults); the profile's figures,
    ``sparse_break_even_density`` ({dtype: fraction of non-zero inputs
    below which the first layer's row loops beat a GEMM, forward only})
    and ``row_loop_gflops`` ({dtype: {kernel width: GFLOP/s}}, ReLU-like
    inputs); ``last_predict``: None, or the thresholds of the last predict
    in this process, ``{"dtype", "layer_shapes": [[n_in, n_out], ...],
    "sparse_density", "gemm_min_rows" (2147483647: never), "source"}``."""
    profile = plans.machine_profile()
    figures = (profile or {}).get("predict") or {}
    section = {"profiling": profile is not None,
               "sparse_break_even_density": {dtype: float(f["sparse_break_even"])
                                             for dtype, f in figures.items()},
               "row_loop_gflops": {dtype: {w: float(rate)
                                           for w, rate in f["row_loop_gflops"].items()}
                                   for dtype, f in figures.items()},
               "last_predict": None}
    if _last:
        shapes, dtype, limits = _last[0]
        section["last_predict"] = {"dtype": dtype,
                                   "layer_shapes": [list(shape) for shape in shapes],
                                   "sparse_density": float(limits.sparse_density),
                                   "gemm_min_rows": int(limits.gemm_min_rows),
                                   "source": limits.source}
    return section


def predict_section():
    """The "predict" section of ``dn.show_config()`` as text (the figures
    of predict_data): the profile's figures for predict and the thresholds
    of the last predict in this process."""
    data = predict_data()
    section = {}
    if not data["profiling"]:
        section["thresholds"] = "defaults (DESCEND_PROFILE=0)"
    for dtype, break_even in data["sparse_break_even_density"].items():
        section[f"{dtype} sparse first layer faster below"] = \
            f"{break_even:.0%} non-zero inputs (forward only)"
        section[f"{dtype} row loops GFLOP/s, ReLU-like inputs"] = ", ".join(
            f"{w}x{w} kernel {rate:.0f}" for w, rate in data["row_loop_gflops"][dtype].items())
    last = data["last_predict"]
    if last is not None:
        rows = "never" if last["gemm_min_rows"] == NEVER else f"from {last['gemm_min_rows']} rows"
        shapes = [tuple(shape) for shape in last["layer_shapes"]]
        section["last predict"] = (
            f"{last['dtype']}, layers {shapes}: sparse first layer up to "
            f"{last['sparse_density']:.0%} non-zero inputs, GEMMs for the hidden layers "
            f"{rows} ({last['source']})")
    return section


register_section("predict", predict_section, data=predict_data)


def require_finite(output):
    """`output`, or FloatingPointError where it holds NaN or inf (never returned)."""
    if not np.isfinite(output).all():
        raise FloatingPointError("the network's output is NaN or infinite for this X; "
                                 "the weights may have diverged")
    return output


def forward_arguments(net):
    """(kernels, biases, activation codes, alphas, loss link code) of a built
    network, for the fused passes; None if a layer is not built. Cached on
    the network, and rebuilt when a layer, a parameter array, an activation
    or the loss is replaced (writes into the arrays need nothing: the
    compiled passes read them where they are)."""
    dense = net.dense_layers      # Dropout is the identity at inference
    # what the arguments are built from, compared by identity (the cache
    # holds them, so that no id is reused while it lives)
    key = [net.loss_]
    for layer in dense:
        key += (layer, layer.kernel, layer.bias, layer.activation, layer.alpha)
    cached = net.__dict__.get("_forward_arguments")
    if (cached is not None and len(cached[0]) == len(key)
            and all(old is new for old, new in zip(cached[0], key))):
        return cached[1]
    if not dense or any(layer.kernel is None for layer in dense):
        return None
    # a replaced kernel, bias or activation: the error fit gives, not the kernels'
    # ("ndarray is not C-contiguous", "Buffer dtype mismatch", KeyError); only
    # here, where the cache is rebuilt, so the one-row path pays nothing for it
    net._check_structure()
    check_live_params(net, training=False)
    link = net.loss_.link if net.loss_ is not None else "identity"
    last = len(dense) - 1
    arguments = (tuple([layer.kernel for layer in dense]), tuple([layer.bias for layer in dense]),
                 tuple([layer.kernel_activation_code(i == last, link)
                        for i, layer in enumerate(dense)]),
                 tuple([layer.alpha for layer in dense]), _LINK_CODES.get(link, -1))
    net.__dict__["_forward_arguments"] = (key, arguments)
    return arguments


def fused_forward(net, X, link=True, chunk_rows=None):
    """The network's output for X through the fused drivers, after the loss's
    link (or the last layer's output with link=False), in chunks of
    `chunk_rows` rows (None: CHUNK_ROWS); None where the per-layer path must
    run and raise: X not a C-contiguous 2-D ndarray of the network's dtype
    with n_in columns and at least one row, the network not built, or a
    non-finite input or output."""
    if (type(X) is not np.ndarray or X.ndim != 2 or X.shape[0] == 0
            or X.dtype != net.dtype or not X.flags.c_contiguous):
        return None
    arguments = forward_arguments(net)
    if arguments is None:
        return None
    layers, link_code = arguments[:4], (arguments[4] if link else 0)
    if X.shape[0] == 1:      # the lean path: no plan to look up, no BLAS
        if net.plan is not None or os.environ.get("DESCEND_PLAN"):
            pinned_fields(net)   # (but a bad one is an error here as on more rows)
        return forward_rows_sparse_py(X, *layers, link_code, 1, NEVER)
    limits = thresholds(net, tuple([kernel.shape for kernel in layers[0]]), X.dtype)
    chunks = []
    chunk_rows = chunk_rows or CHUNK_ROWS
    for start in range(0, len(X), chunk_rows):
        part = X[start:start + chunk_rows]
        plan = input_plan(part, limits)
        if plan == "row_loops" and len(part) < PARALLEL_MIN_ROWS:    # one thread, no BLAS
            chunks.append(forward_rows_sparse_py(part, *layers, link_code, 1, NEVER))
        else:
            driver = forward_rows_py if plan == "dense" else forward_rows_sparse_py
            omp, blas = net._threads_for(len(part))
            with _threads.blas_threads(blas):
                chunks.append(_forward_with_a_measured_team(net, part, driver, layers,
                                                            link_code, omp, limits))
        if chunks[-1] is None:
            return None
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _forward_with_a_measured_team(net, part, driver, layers, link_code, n_threads, limits):
    """A fused driver on all the threads or on one, whichever has been
    faster per row for this size of input (``_train.TeamSize``: on shared
    cores a team waits for a descheduled thread; measured under load,
    1000 MNIST rows took 25 ms on a team of 2 against 5 ms on one thread).
    The bits do not depend on the team: the blocks are the same."""
    if n_threads == 1:
        return _run(driver, part, layers, link_code, 1, limits)
    key = (driver.__name__, len(part).bit_length(), str(part.dtype),
           tuple(kernel.shape for kernel in layers[0]))
    teams = net.__dict__.setdefault("_predict_teams", {})
    if key not in teams:
        teams[key] = TeamSize(n_threads, ("predict",) + key)
    team = teams[key]
    threads = team.choose()
    started = time.perf_counter()
    output = _run(driver, part, layers, link_code, threads, limits)
    team.record(threads, (time.perf_counter() - started) / len(part))
    return output


def _run(driver, part, layers, link_code, n_threads, limits):
    if driver is forward_rows_sparse_py:
        return driver(part, *layers, link_code, n_threads, limits.gemm_min_rows)
    return driver(part, *layers, link_code, n_threads)


def per_layer_output(net, X, chunk_rows=None):
    """Last-layer output (before the link) for validated X (an array or a
    LazyRows), in chunks of `chunk_rows` rows (None: CHUNK_ROWS), layer by
    layer under each chunk's plan: the row loops
    (``_sparse.sparse_forward_py``) where the plan has them, the layers'
    ``forward`` (GEMMs in the fused drivers' blocks) elsewhere."""
    net._check_structure()
    check_live_params(net, training=False)
    codes = net._activation_codes()
    limits = thresholds(net, tuple([layer.kernel.shape for layer in net.dense_layers]),
                        net.dtype)
    chunks = []
    chunk_rows = chunk_rows or CHUNK_ROWS
    for start in range(0, len(X), chunk_rows):
        a = np.asarray(X[start:start + chunk_rows])   # (read a LazyRows' chunk)
        plan = input_plan(a, limits)
        omp, blas = net._threads_for(len(a))
        with _threads.blas_threads(blas):
            for i, (layer, code) in enumerate(zip(net.dense_layers, codes)):
                if plan == "row_loops" or (plan == "sparse_input" and i == 0):
                    z = np.empty((len(a), layer.units), a.dtype)
                    sparse_forward_py(a, layer.kernel, layer.bias, z, z, code, layer.alpha)
                    a = z
                else:     # (Dropout is the identity at inference)
                    a = layer.forward(a, code, omp, keep_for_backward=False)
        chunks.append(a)
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def predict(net, X, link=True, chunk_rows=None):
    """Sequential.predict (link=True) and the logits of predict_classes
    (link=False): the fused passes for C-contiguous in-memory input of the
    network's dtype (anything else converted or checked first), the
    per-layer path where they decline, which raises the error that made
    them decline; `chunk_rows` rows at a time (None: CHUNK_ROWS)."""
    if not (type(X) is np.ndarray and X.dtype == net.dtype and X.flags.c_contiguous):
        net._require_built()
        # converted once (or an error naming X); a memmap or h5py-style
        # array stays on disk, read in chunks by the per-layer path
        X = net._check_X(X, lazy=True)
    if type(X) is np.ndarray:
        output = fused_forward(net, X, link, chunk_rows)
        if output is not None:
            return output
        # the per-layer path: raises the error that made the fused one decline
        net._require_built()
        X = net._check_X(X)
    output = per_layer_output(net, X, chunk_rows)
    if link and net.loss_ is not None:
        output = net.loss_.apply_link(output, 1)
    return require_finite(output)


def predict_with_options(net, X, batch_size, verbose):
    """Sequential.predict with Keras's batch_size and verbose (the defaults,
    None and 0, go straight to `predict`: the one-row path's cost)."""
    if batch_size is None and type(verbose) is int and verbose == 0:
        return predict(net, X)
    chunk_rows, verbose = check_keras_options(batch_size, verbose)
    started = time.perf_counter()
    output = predict(net, X, chunk_rows=chunk_rows)
    if verbose:
        report("predict", len(output), time.perf_counter() - started)
    return output


def check_keras_options(batch_size, verbose):
    """predict's and evaluate's Keras keywords, checked before any work:
    (rows a chunk, verbose). batch_size None is CHUNK_ROWS."""
    chunk_rows = CHUNK_ROWS if batch_size is None else check_int(batch_size, "batch_size",
                                                                 minimum=1)
    return chunk_rows, check_verbose(verbose)


def report(what, n_samples, seconds, scores=()):
    """The line verbose predict and evaluate print, in fit's epoch-line style:
    ``evaluate  loss 0.0712  accuracy 0.9781  10,000 samples  0.05s  ...``."""
    parts = [what] + [f"{key} {value:.4f}" for key, value in dict(scores).items()]
    parts += [f"{n_samples:,} samples", f"{seconds:.2f}s"]
    if seconds > 0:
        parts.append(f"{n_samples / seconds:,.0f} samples/s")
    print("  ".join(parts), flush=True)
