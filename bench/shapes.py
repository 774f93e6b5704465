"""Epoch times over net shapes: descend against PyTorch, side by side.

A sweep over hidden widths, depths (hidden layers), batch sizes and inputs
(MNIST, or dense random inputs of 784 features), plain SGD or Adam, float32,
2 threads. Each cell runs descend and PyTorch in turns, each run in its own
process (as compare.py does), and prints seconds per epoch (median), the
speed-up over PyTorch and descend's fraction of the dense FLOP floor (the
epoch's matrix-product FLOPs over one large GEMM's throughput, timed in a
fresh process at every turn of every cell, as compare.py times it, the
fastest turn counting: one GEMM timed once at the start read half of
compare.py's rate in some runs, a floor no epoch could reach). The table
comes at the end, once the floor is known (progress goes to stderr); it
ends with the geometric mean of the speed-ups.

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


def floor_seconds(n_rows, width, depth, gemm_flops_per_second):
    """The dense FLOP floor of an epoch of the 784-width x depth-10 net
    (descend.benchmark.epoch_flops: the FLOPs compare.py's floor counts)."""
    from descend.benchmark import epoch_flops
    return epoch_flops(n_rows, 784, hidden=[width] * depth) / gemm_flops_per_second


def gemm_turn():
    """FLOP/s of one large float32 GEMM on N_THREADS threads, timed in a
    fresh process (descend.benchmark's worker, as compare.py times it)."""
    from descend.benchmark import _spawn
    found = _spawn({"contender": "gemm", "dtype": "float32", "n_threads": N_THREADS})
    if "error" in found:
        raise RuntimeError(f"the GEMM turn failed: {found['error']}")
    return found["flops_per_second"]


def run(cell):
    out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(cell)],
                         capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"{cell}: {out.stderr[-1500:]}")
    return float(lines[-1].split()[1])


def positive_int(text):
    """An argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text!r}")
    return value


def positive_ints(text):
    """An argparse type: comma-separated ints >= 1 (64,256)."""
    return [positive_int(item) for item in text.split(",")]


def names_among(*allowed):
    """An argparse type: comma-separated names among `allowed`."""
    def names(text):
        chosen = text.split(",")
        unknown = [name for name in chosen if name not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(f"expected names among {','.join(allowed)}, "
                                             f"got {text!r}")
        return chosen
    return names


def main(argv=None):
    # (the CLI's type, as bench/predict_compare.py: a --data-home or --scratch
    # naming a file is refused before the scratch directory is made)
    from descend.__main__ import _directory
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", type=_directory, default=None)
    # (checked before any work: a typo once ended a sweep after MNIST had loaded)
    parser.add_argument("--widths", type=positive_ints, default="64,256,1024,2048")
    parser.add_argument("--depths", type=positive_ints, default="2,6")
    parser.add_argument("--batch-sizes", type=positive_ints, default="32,256,1024")
    parser.add_argument("--inputs", type=names_among("mnist", "dense"), default="mnist,dense")
    parser.add_argument("--optimizers", type=names_among("sgd", "adam"), default="sgd,adam")
    parser.add_argument("--rows", type=positive_int, default=20000,
                        help="training rows per epoch")
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--scratch", type=_directory, default="/tmp/descend-shapes")
    args = parser.parse_args(argv)

    import descend as dn
    from descend import plans
    os.makedirs(args.scratch, exist_ok=True)
    X, _, y, _ = dn.datasets.load_mnist(data_home=args.data_home)   # a Split: X_train, X_test, y_train, y_test
    X, y = X[:args.rows].astype(np.float32), y[:args.rows].astype(np.int32)
    datasets = {"mnist": X, "dense": np.random.default_rng(0).random(X.shape,
                                                                    dtype=np.float32)}
    for name in args.inputs:
        np.save(os.path.join(args.scratch, f"{name}_X.npy"), datasets[name])
        np.save(os.path.join(args.scratch, f"{name}_y.npy"), y)
    plans.machine_profile()
    cpu = plans.cpu_description()
    cells, peak = [], 0.0
    for inputs, optimizer, width, depth, batch in itertools.product(
            args.inputs, args.optimizers,
            args.widths, args.depths,
            args.batch_sizes):
        cell = {"data": os.path.join(args.scratch, inputs), "width": width, "depth": depth,
                "batch": batch, "optimizer": optimizer}
        times = {"descend": [], "torch": []}
        for _ in range(args.repeats):
            for library in times:
                times[library].append(run({**cell, "library": library}))
            peak = max(peak, gemm_turn())
        ours, theirs = (statistics.median(times[k]) for k in ("descend", "torch"))
        cells.append((inputs, optimizer, width, depth, batch, ours, theirs))
        print(f"{inputs} {optimizer} {width}x{depth} batch {batch}: descend {ours:.3f} s, "
              f"PyTorch {theirs:.3f} s", file=sys.stderr, flush=True)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, {cpu['model']} (features: "
          f"{', '.join(cpu['features'])}); one large float32 GEMM on {N_THREADS} threads: "
          f"{peak / 1e9:.0f} GFLOP/s (the fastest of {len(cells) * args.repeats} turns). "
          f"{args.rows} rows, float32, {N_THREADS} threads, median of {args.repeats}.\n")
    print("| input | optimizer | width | depth | batch | descend s | PyTorch s | speed-up "
          "| descend / floor |")
    print("|---|---|---|---|---|---|---|---|---|")
    for inputs, optimizer, width, depth, batch, ours, theirs in cells:
        floor = floor_seconds(args.rows, width, depth, peak)
        print(f"| {inputs} | {optimizer} | {width} | {depth} | {batch} | {ours:.3f} | "
              f"{theirs:.3f} | x{theirs / ours:.2f} | {ours / floor:.2f} |")
    speedups = [theirs / ours for *_, ours, theirs in cells]
    print(f"\ngeometric mean speed-up over PyTorch: "
          f"x{math.exp(sum(map(math.log, speedups)) / len(speedups)):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
