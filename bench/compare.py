"""Side-by-side epoch times: descend, PyTorch, plain numpy, scikit-learn.

The task of the speed issue: MNIST, net 784-256-128-10 (ReLU), softmax
cross-entropy, plain SGD (learning rate 0.01, no momentum), one epoch over the
same batches in the same order for every contender, 2 threads. JAX runs the
epoch as one jitted lax.scan over the batches (compiled before timing).
The header names the CPU and the features descend's loops dispatch on. One run
prints a markdown table per dtype: seconds per epoch (median of the repeats)
and descend's speed-up over each, plus the FLOP floor: the epoch's
matrix-product FLOPs divided by the throughput of one large GEMM measured in
the same run.

Slow contenders (tiny batches) run on a prefix of the epoch and are scaled to
60000 samples; the table says so. PyTorch and scikit-learn are optional.
Each repeat of each (contender, dtype, batch size) runs in its own worker
process, so that one library's idle threads (PyTorch's OpenMP pool, say)
never compete with the next one's, and the contenders take turns, repeat by
repeat: on shared cores whose load comes and goes, a spike then costs one
repeat of one contender (the median drops it), not all of one contender's
repeats. The large GEMM is timed at every numpy turn and the fastest is the
table's (the lowest floor).

    python bench/compare.py --data-home ../shared/datasets/mnist
    python bench/compare.py --quick            # fewer samples, one repeat

On machines that set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (for old OpenBLAS
builds), unset both in this command only so numpy's BLAS runs its best
kernel: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py`.
"""
import argparse
import gc
import json
import os
import subprocess
import sys
import platform
import statistics
import time
import warnings

import numpy as np

import descend as dn

HIDDEN = (256, 128)
LEARNING_RATE = 0.01
N_THREADS = 2


def epoch_flops(batch_sizes_unused=None, n_samples=60000, n_in=784, n_out=10):
    """Matrix-product FLOPs of one epoch: forward X W, backward X^T dZ for
    every layer, and dZ W^T for all but the first layer (2 FLOPs per MAC)."""
    sizes = (n_in,) + HIDDEN + (n_out,)
    macs = 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        macs += a * b * (2 if i == 0 else 3)
    return 2 * macs * n_samples


def gemm_throughput(dtype, threads=N_THREADS, size=2048, repeats=5):
    """FLOP/s of a large square GEMM through numpy's BLAS on `threads` threads."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    a = rng.random((size, size)).astype(dtype)
    b = rng.random((size, size)).astype(dtype)
    with threadpool_limits(threads, user_api="blas"):
        a @ b
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    return 2 * size ** 3 / min(times)


# ---------------------------------------------------------------- contenders
def time_descend(X, y, batch_size, dtype, repeats):
    times = []
    for _ in range(repeats):
        net = dn.Sequential([dn.Dense(HIDDEN[0], activation="relu"),
                             dn.Dense(HIDDEN[1], activation="relu"), dn.Dense(10)],
                            input_dim=X.shape[1], dtype=dtype, seed=0, n_threads=N_THREADS)
        net.compile(loss="softmax_cross_entropy",
                    optimizer=dn.optimizers.SGD(learning_rate=LEARNING_RATE))
        history = net.fit(X, y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
        times.append(history["seconds"][0])
    # accuracy on (a part of) the training data after the epoch: a sanity check
    return statistics.median(times), net.evaluate(X[:10000], y[:10000])["accuracy"]


def time_torch(X, y, batch_size, dtype, repeats):
    import torch
    torch.set_num_threads(N_THREADS)
    torch_dtype = torch.float32 if dtype == "float32" else torch.float64
    Xt = torch.from_numpy(X).to(torch_dtype)
    yt = torch.from_numpy(y.astype(np.int64))
    times = []
    for _ in range(repeats):
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], HIDDEN[0]), torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN[0], HIDDEN[1]), torch.nn.ReLU(),
            torch.nn.Linear(HIDDEN[1], 10)).to(torch_dtype)
        optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        loss_fn = torch.nn.CrossEntropyLoss()
        start = time.perf_counter()
        for s in range(0, len(Xt), batch_size):
            xb, yb = Xt[s:s + batch_size], yt[s:s + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_jax(X, y, batch_size, dtype, repeats):
    """The same epoch in JAX: one jitted function, the batches as a lax.scan
    (a last, smaller batch by a second jitted step), compiled before timing."""
    import jax
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    sizes = (X.shape[1],) + HIDDEN + (10,)

    def loss_fn(params, xb, yb):
        a = xb
        for i, (W, b) in enumerate(params):
            a = a @ W + b
            if i < len(params) - 1:
                a = jax.nn.relu(a)
        logp = jax.nn.log_softmax(a)
        return -jnp.mean(jnp.take_along_axis(logp, yb[:, None], axis=1))

    def step(params, batch):
        grads = jax.grad(loss_fn)(params, *batch)
        return jax.tree_util.tree_map(lambda p, g: p - LEARNING_RATE * g, params, grads), None

    @jax.jit
    def epoch(params, Xb, yb):
        return jax.lax.scan(step, params, (Xb, yb))[0]

    last_step = jax.jit(lambda params, xb, yb: step(params, (xb, yb))[0])
    n_full = len(X) // batch_size * batch_size
    Xb = jnp.asarray(X[:n_full].reshape(-1, batch_size, X.shape[1]))
    yb = jnp.asarray(y[:n_full].astype(np.int32).reshape(-1, batch_size))
    rest = (jnp.asarray(X[n_full:]), jnp.asarray(y[n_full:].astype(np.int32)))
    rng = np.random.default_rng(0)

    def fresh():
        return [(jnp.asarray((rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(dtype)),
                 jnp.zeros(b, dtype)) for a, b in zip(sizes[:-1], sizes[1:])]

    def run(params):
        params = epoch(params, Xb, yb)
        if n_full < len(X):
            params = last_step(params, *rest)
        return jax.block_until_ready(params)

    run(fresh())        # compile (and warm up)
    times = []
    for _ in range(repeats):
        params = fresh()
        start = time.perf_counter()
        run(params)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_numpy(X, y, batch_size, dtype, repeats):
    """The same SGD step written with numpy arrays (BLAS on N_THREADS threads)."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    sizes = (X.shape[1],) + HIDDEN + (10,)
    times = []
    for _ in range(repeats):
        Ws = [(rng.standard_normal((a, b)) * np.sqrt(2 / a)).astype(dtype)
              for a, b in zip(sizes[:-1], sizes[1:])]
        bs = [np.zeros(b, dtype=dtype) for b in sizes[1:]]
        with threadpool_limits(N_THREADS, user_api="blas"):
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
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_sklearn(X, y, batch_size, dtype, repeats):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    times = []
    for _ in range(repeats):
        clf = MLPClassifier(hidden_layer_sizes=HIDDEN, solver="sgd", momentum=0.0,
                            learning_rate_init=LEARNING_RATE, batch_size=batch_size,
                            max_iter=1, shuffle=False, alpha=0.0, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = time.perf_counter()
            clf.fit(X, y)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(fn, X, y, batch_size, dtype, repeats, max_samples):
    """(seconds for a full epoch, scaled from a prefix of max_samples if given;
    whether it was scaled)."""
    if max_samples is None or max_samples >= len(X):
        return fn(X, y, batch_size, dtype, repeats), False
    n = max(batch_size, max_samples - max_samples % batch_size)
    gc.collect()
    seconds = fn(X[:n], y[:n], batch_size, dtype, repeats)
    return seconds * len(X) / n, True


def prefix_limit(name, batch_size):
    """Samples timed for slow (library, batch size) pairs; None: the whole epoch."""
    if name == "descend" or batch_size >= 32:
        return None
    if name == "JAX":
        return 12000
    return 3000 if batch_size == 1 or name == "scikit-learn" else 12000


CONTENDERS = {"descend": "time_descend", "PyTorch": "time_torch", "JAX": "time_jax",
              "numpy": "time_numpy", "scikit-learn": "time_sklearn"}


def worker(args):
    """Time one library on every (dtype, batch size); print JSON results."""
    X, y = load_data(args)
    fn = globals()[CONTENDERS[args.worker]]
    # warm up: thread pools, BLAS buffers, first-touch page faults
    fn(np.ascontiguousarray(X[:2048], dtype="float32"), y[:2048], 128, "float32", 1)
    results = {}
    for dtype in args.dtypes.split(","):
        Xd = np.ascontiguousarray(X, dtype=dtype)
        results[dtype] = {"peak": gemm_throughput(dtype)} if args.worker == "numpy" else {}
        for bs in map(int, args.batch_sizes.split(",")):
            if args.worker == "descend":
                seconds, acc = time_descend(Xd, y, bs, dtype, args.repeats)
                results[dtype][bs] = (seconds, False, acc)
            else:
                seconds, scaled = measure(fn, Xd, y, bs, dtype, args.repeats,
                                          prefix_limit(args.worker, bs))
                results[dtype][bs] = (seconds, scaled, None)
    print("RESULTS " + json.dumps(results))


def load_data(args):
    X, _, y, _ = dn.datasets.load_mnist(data_home=args.data_home)
    order = np.random.default_rng(0).permutation(len(X))   # one batch order for all
    X, y = X[order], y[order]
    if args.quick:
        X, y = X[:6000], y[:6000]
    return X, y


def run_worker(name, args, dtype, batch_size):
    command = [sys.executable, __file__, "--worker", name, "--dtypes", dtype,
               "--batch-sizes", str(batch_size), "--repeats", "1"]
    if args.data_home:
        command += ["--data-home", args.data_home]
    if args.quick:
        command.append("--quick")
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("RESULTS ")][-1]
    return json.loads(line[len("RESULTS "):])


def available(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--batch-sizes", default="1,8,32,128,1024")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="6000 samples, one repeat (a smoke run, not a measurement)")
    parser.add_argument("--skip", default="",
                        help="comma list of PyTorch,JAX,numpy,scikit-learn")
    parser.add_argument("--output", default=None, help="also write the tables here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 1
    if args.worker:
        return worker(args)

    skip = set(filter(None, args.skip.split(",")))
    modules = {"PyTorch": "torch", "JAX": "jax", "numpy": "threadpoolctl",
               "scikit-learn": "sklearn"}
    names = ["descend"] + [n for n, m in modules.items() if n not in skip and available(m)]
    results = {name: {} for name in names}
    # the machine profile descend's plans come from: measured once (here,
    # before any timing), then read by every worker
    from descend import plans
    plans.machine_profile()
    print(plans.describe(), flush=True)
    for dtype in args.dtypes.split(","):
        for bs in map(int, args.batch_sizes.split(",")):
            print(f"timing {dtype}, batch {bs}: {args.repeats} turns of "
                  f"{', '.join(names)} ...", flush=True)
            runs = {name: [] for name in names}
            for _ in range(args.repeats):
                for name in names:
                    table = results[name].setdefault(dtype, {})
                    measured = run_worker(name, args, dtype, bs)[dtype]
                    table["peak"] = max(table.get("peak", 0), measured.pop("peak", 0))
                    runs[name].append(measured[str(bs)])
            for name in names:
                seconds, scaled, accuracy = runs[name][0]
                results[name][dtype][bs] = (
                    statistics.median(run[0] for run in runs[name]), scaled, accuracy)
    n_samples = 6000 if args.quick else 60000

    cpu = plans.cpu_description()
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores, {cpu['model']} "
             f"(features descend dispatches on: {', '.join(cpu['features']) or 'none'}); "
             f"numpy {np.__version__}, descend {dn.__version__}"
             + (", torch " + __import__("torch").__version__ if "PyTorch" in names else "")
             + (", jax " + __import__("jax").__version__ if "JAX" in names else "")
             + (", scikit-learn " + __import__("sklearn").__version__
                if "scikit-learn" in names else ""),
             "",
             f"Task: {n_samples} MNIST samples, 784-{HIDDEN[0]}-{HIDDEN[1]}-10 ReLU, softmax "
             f"cross-entropy, SGD lr={LEARNING_RATE}, one epoch, {N_THREADS} threads, the "
             f"same batch order for all; median of {args.repeats} repeat(s). Seconds per "
             f"epoch; (xN) = descend's speed-up over it; * = timed on a prefix of the "
             "epoch and scaled. scikit-learn's MLPClassifier computes in float64 "
             "whatever the input dtype. JAX: the whole epoch jitted as one lax.scan "
             "(compiled before timing).", ""]
    for dtype in args.dtypes.split(","):
        peak = results["numpy"][dtype]["peak"] if "numpy" in names else gemm_throughput(dtype)
        floor = epoch_flops(n_samples=n_samples) / peak
        lines += [f"### {dtype} (one large GEMM, 2 threads: {peak / 1e9:.0f} GFLOP/s; "
                  f"FLOP floor {floor:.3f} s/epoch)", ""]
        header = ["batch", "descend s", "train acc"] + [n + " s" for n in names[1:]] \
            + ["descend / floor"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for bs in map(int, args.batch_sizes.split(",")):
            seconds, _, acc = results["descend"][dtype][bs]
            row = [str(bs), f"{seconds:.3f}", f"{acc:.3f}"]
            for name in names[1:]:
                other, scaled, _ = results[name][dtype][bs]
                row.append(f"{other:.3f}{'*' if scaled else ''} (x{other / seconds:.1f})")
            row.append(f"{seconds / floor:.2f}")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
