"""predict's compiled paths (module functions, so that Sequential stays small).

Each chunk of rows takes one of three plans (:func:`input_plan`), a
deterministic rule of its shape and of how many of its inputs are zero
(never of the thread count or of timings):

* ``"row_loops"``: one row, or fewer than GEMM_MIN_ROWS rows of sparse
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

The per-layer path (:func:`per_layer_output`, ``Sequential._output``) runs
the same kernels layer by layer under the same plan, then the loss's link:
the fused drivers give its bits (tests/test_predict_path.py). It reads
memmaps in chunks and raises the errors the fused drivers decline with
(they return None for anything they cannot run on). The row loops round
as a chain of FMAs in input order, BLAS as its kernels do, so the plans
differ in the last bits; none depends on the number of threads.
"""
import time

import numpy as np

from descend import _threads
from descend._dense import forward_rows_py
from descend._sparse import forward_rows_sparse_py, sparse_forward_py
from descend._train import TeamSize
from descend._validation import check_live_params
from descend.plans import DEFAULT_SPARSE_DENSITY

# Rows per chunk in predict/evaluate/gradients: bounds the activations' memory.
CHUNK_ROWS = 8192
# Fewer rows than this run the per-layer kernels on one thread.
PARALLEL_MIN_ROWS = 256   # one GEMM block (ROWS_PER_BLOCK in _dense.pyx)
# Inputs with at most DEFAULT_SPARSE_DENSITY (the fit's default break-even,
# where the row loop's forward and gradient cost what the GEMMs do) non-zero
# entries take the row loops in the first layer: its work falls with the
# density, a GEMM's does not; the forward alone gains more from skipping
# zeros (four rows share each load of the kernel).
# The density is counted on at most this many rows of a chunk.
DENSITY_SAMPLE_ROWS = 64
# Blocks of fewer rows than this run every layer through the row loops (no
# GEMM packing to amortise; one MNIST row, float32: ~6 us against ~18 us
# through sgemm, and no ~6 us for the BLAS thread limit).
GEMM_MIN_ROWS = 16
# The loss links the fused passes apply.
_LINK_CODES = {"identity": 0, "sigmoid": 1, "softmax": 2}


def input_plan(X):
    """The plan for the rows of the 2-D array X: "row_loops", "sparse_input"
    or "dense" (see the module docstring). One row always takes the row
    loops (a GEMM of one row is a matrix-vector product either way)."""
    n_rows, n_in = X.shape
    if n_rows == 1:
        return "row_loops"
    sample = X[:DENSITY_SAMPLE_ROWS]
    if np.count_nonzero(sample) > DEFAULT_SPARSE_DENSITY * sample.size:
        return "dense"
    return "row_loops" if n_rows < GEMM_MIN_ROWS else "sparse_input"


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
    check_live_params(net, training=False)
    link = net.loss_.link if net.loss_ is not None else "identity"
    last = len(dense) - 1
    arguments = (tuple([layer.kernel for layer in dense]), tuple([layer.bias for layer in dense]),
                 tuple([layer.kernel_activation_code(i == last, link)
                        for i, layer in enumerate(dense)]),
                 tuple([layer.alpha for layer in dense]), _LINK_CODES.get(link, -1))
    net.__dict__["_forward_arguments"] = (key, arguments)
    return arguments


def fused_forward(net, X, link=True):
    """The network's output for X through the fused drivers, after the loss's
    link (or the last layer's output with link=False), in chunks of
    CHUNK_ROWS rows; None where the per-layer path must run and raise: X not
    a C-contiguous 2-D ndarray of the network's dtype with n_in columns and
    at least one row, the network not built, or a non-finite input or output."""
    if (type(X) is not np.ndarray or X.ndim != 2 or X.shape[0] == 0
            or X.dtype != net.dtype or not X.flags.c_contiguous):
        return None
    arguments = forward_arguments(net)
    if arguments is None:
        return None
    layers, link_code = arguments[:4], (arguments[4] if link else 0)
    if X.shape[0] == 1:      # the lean path: no plan to look up, no BLAS
        return forward_rows_sparse_py(X, *layers, link_code, 1, GEMM_MIN_ROWS)
    chunks = []
    for start in range(0, len(X), CHUNK_ROWS):
        part = X[start:start + CHUNK_ROWS]
        plan = input_plan(part)
        if plan == "row_loops":
            chunks.append(forward_rows_sparse_py(part, *layers, link_code, 1, GEMM_MIN_ROWS))
        else:
            driver = forward_rows_sparse_py if plan == "sparse_input" else forward_rows_py
            omp, blas = net._threads_for(len(part))
            with _threads.blas_threads(blas):
                chunks.append(_forward_with_a_measured_team(net, part, driver, layers,
                                                            link_code, omp))
        if chunks[-1] is None:
            return None
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _forward_with_a_measured_team(net, part, driver, layers, link_code, n_threads):
    """A fused driver on all the threads or on one, whichever has been
    faster per row for this size of input (``_train.TeamSize``: on shared
    cores a team waits for a descheduled thread; measured under load,
    1000 MNIST rows took 25 ms on a team of 2 against 5 ms on one thread).
    The bits do not depend on the team: the blocks are the same."""
    if n_threads == 1:
        return _run(driver, part, layers, link_code, 1)
    key = (driver.__name__, len(part).bit_length(), str(part.dtype),
           tuple(kernel.shape for kernel in layers[0]))
    teams = net.__dict__.setdefault("_predict_teams", {})
    if key not in teams:
        teams[key] = TeamSize(n_threads, ("predict",) + key)
    team = teams[key]
    threads = team.choose()
    started = time.perf_counter()
    output = _run(driver, part, layers, link_code, threads)
    team.record(threads, (time.perf_counter() - started) / len(part))
    return output


def _run(driver, part, layers, link_code, n_threads):
    if driver is forward_rows_sparse_py:
        return driver(part, *layers, link_code, n_threads, GEMM_MIN_ROWS)
    return driver(part, *layers, link_code, n_threads)


def per_layer_output(net, X):
    """Last-layer output (before the link) for validated X (an array or a
    LazyRows), in chunks, layer by layer under each chunk's plan: the row
    loops (``_sparse.sparse_forward_py``) where the plan has them, the
    layers' ``forward`` (GEMMs in the fused drivers' blocks) elsewhere."""
    check_live_params(net, training=False)
    codes = net._activation_codes()
    chunks = []
    for start in range(0, len(X), CHUNK_ROWS):
        a = np.asarray(X[start:start + CHUNK_ROWS])   # (read a LazyRows' chunk)
        plan = input_plan(a)
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


def predict(net, X, link=True):
    """Sequential.predict (link=True) and the logits of predict_classes
    (link=False): the fused passes for C-contiguous in-memory input of the
    network's dtype (anything else converted or checked first), the
    per-layer path where they decline, which raises the error that made
    them decline."""
    if not (type(X) is np.ndarray and X.dtype == net.dtype and X.flags.c_contiguous):
        net._require_built()
        # converted once (or an error naming X); a memmap or h5py-style
        # array stays on disk, read in chunks by the per-layer path
        X = net._check_X(X, lazy=True)
    if type(X) is np.ndarray:
        output = fused_forward(net, X, link)
        if output is not None:
            return output
        # the per-layer path: raises the error that made the fused one decline
        net._require_built()
        X = net._check_X(X)
    output = per_layer_output(net, X)
    if link and net.loss_ is not None:
        output = net.loss_.apply_link(output, 1)
    return require_finite(output)
