"""Epoch times over net shapes: descend against PyTorch, side by side.

A sweep over hidden widths, depths (hidden layers), batch sizes and inputs
(MNIST, or dense random inputs of 784 features), plain SGD or Adam, float32,
2 threads. Each cell runs descend and PyTorch in turns, each run in its own
process (as compare.py does), and prints seconds per epoch (median), the
speed-up over PyTorch and descend's fraction of the dense FLOP floor (the
epoch's matrix-product FLOPs over one large GEMM's throughput, measured in
the same run). It ends with the geometric mean of the speed-ups.

    python bench/shapes.py --data-home ../shared/datasets/mnist
    python bench/shapes.py --widths 256,1024 --depths 2 --batch-sizes 64,256 \\
        --inputs mnist --rows 10000            # a smaller sweep
"""
import argparse
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

N_THREADS = 2
LEARNING_RATE = 0.01

WORKER = r"""
import json, sys, time
import numpy as np
cell = json.loads(sys.argv[1])
X = np.load(cell["data"] + "_X.npy"); y = np.load(cell["data"] + "_y.npy")
sizes = [X.shape[1]] + [cell["width"]] * cell["depth"] + [10]
if cell["library"] == "descend":
    import descend as dn
    def fit(X, y):
        net = dn.Sequential([dn.Dense(w, activation="relu") for w in sizes[1:-1]] + [dn.Dense(10)],
                            input_dim=X.shape[1], dtype="float32", seed=0, n_threads=2)
        opt = (dn.optimizers.SGD(learning_rate=0.01) if cell["optimizer"] == "sgd"
               else dn.optimizers.Adam(learning_rate=0.001))
        net.compile(loss="softmax_cross_entropy", optimizer=opt)
        return net.fit(X, y, epochs=1, batch_size=cell["batch"], shuffle=False,
                       verbose=0)["seconds"][0]
else:
    import torch
    torch.set_num_threads(2)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    def fit(Xt, yt):
        torch.manual_seed(0)
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
        opt = (torch.optim.SGD(model.parameters(), lr=0.01) if cell["optimizer"] == "sgd"
               else torch.optim.Adam(model.parameters(), lr=0.001))
        loss_fn = torch.nn.CrossEntropyLoss()
        start = time.perf_counter()
        for s in range(0, len(Xt), cell["batch"]):
            opt.zero_grad()
            loss_fn(model(Xt[s:s + cell["batch"]]), yt[s:s + cell["batch"]]).backward()
            opt.step()
        return time.perf_counter() - start
    X, y = Xt, yt
fit(X[:512], y[:512])
print("RESULT", fit(X, y))
"""


def epoch_flops(n_rows, sizes):
    """Dense matrix-product FLOPs of an epoch: X W and X^T dZ for every layer,
    dZ W^T for all but the first (2 FLOPs per multiply-add)."""
    macs = sum(a * b * (2 if i == 0 else 3) for i, (a, b) in enumerate(zip(sizes[:-1],
                                                                           sizes[1:])))
    return 2 * macs * n_rows


def gemm_throughput(size=2048, repeats=5):
    """float32 FLOP/s of one large square GEMM on N_THREADS threads."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    a, b = (rng.random((size, size), dtype=np.float32) for _ in range(2))
    with threadpool_limits(N_THREADS, user_api="blas"):
        a @ b
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def run(cell):
    out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(cell)],
                         capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{cell}: {out.stderr[-1500:]}")
    return float(lines[-1].split()[1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=None)
    parser.add_argument("--widths", default="64,256,1024,2048")
    parser.add_argument("--depths", default="2,6")
    parser.add_argument("--batch-sizes", default="32,256,1024")
    parser.add_argument("--inputs", default="mnist,dense")
    parser.add_argument("--optimizers", default="sgd,adam")
    parser.add_argument("--rows", type=int, default=20000, help="training rows per epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scratch", default="/tmp/descend-shapes")
    args = parser.parse_args(argv)

    import descend as dn
    from descend import plans
    os.makedirs(args.scratch, exist_ok=True)
    X, _, y, _ = dn.datasets.load_mnist(data_home=args.data_home)   # a Split: X_train, X_test, y_train, y_test
    X, y = X[:args.rows].astype(np.float32), y[:args.rows].astype(np.int32)
    datasets = {"mnist": X, "dense": np.random.default_rng(0).random(X.shape,
                                                                    dtype=np.float32)}
    for name in args.inputs.split(","):
        np.save(os.path.join(args.scratch, f"{name}_X.npy"), datasets[name])
        np.save(os.path.join(args.scratch, f"{name}_y.npy"), y)
    plans.machine_profile()
    peak = gemm_throughput()
    cpu = plans.cpu_description()
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {cpu['model']} (features: "
          f"{', '.join(cpu['features'])}); one large float32 GEMM on {N_THREADS} threads: "
          f"{peak / 1e9:.0f} GFLOP/s. {args.rows} rows, float32, {N_THREADS} threads, "
          f"median of {args.repeats}.\n")
    print("| input | optimizer | width | depth | batch | descend s | PyTorch s | speed-up "
          "| descend / floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    speedups = []
    for inputs, optimizer, width, depth, batch in itertools.product(
            args.inputs.split(","), args.optimizers.split(","),
            map(int, args.widths.split(",")), map(int, args.depths.split(",")),
            map(int, args.batch_sizes.split(","))):
        cell = {"data": os.path.join(args.scratch, inputs), "width": width, "depth": depth,
                "batch": batch, "optimizer": optimizer}
        times = {"descend": [], "torch": []}
        for _ in range(args.repeats):
            for library in times:
                times[library].append(run({**cell, "library": library}))
        ours, theirs = (statistics.median(times[k]) for k in ("descend", "torch"))
        floor = epoch_flops(args.rows, [784] + [width] * depth + [10]) / peak
        speedups.append(theirs / ours)
        print(f"| {inputs} | {optimizer} | {width} | {depth} | {batch} | {ours:.3f} | "
              f"{theirs:.3f} | x{theirs / ours:.2f} | {ours / floor:.2f} |", flush=True)
    print(f"\ngeometric mean speed-up over PyTorch: "
          f"x{math.exp(sum(map(math.log, speedups)) / len(speedups)):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
