"""Side-by-side inference timings: descend's ``predict`` and PyTorch's forward
pass of the same net (MNIST's 784-256-128-10 ReLU + softmax, the same
weights, ``torch.no_grad``), on MNIST test rows, in one run.

    PYTHONPATH=src python bench/predict_compare.py --data-home ../shared/datasets/mnist \
        [--rows 1 10 1000] [--threads 1 2]

Turns alternate between the two libraries (interleaved rounds, medians), so
that load from other processes falls on both; the load average is printed
with every line. Times are wall-clock per call, and for one thread also the
thread's CPU time (which the other tenants of a shared machine do not
inflate as much). Needs torch (bench extra) and MNIST: ``--data-home DIR``
holds its four ``.gz`` files (default: $DESCEND_DATA, then
~/.cache/descend/mnist; files missing there are downloaded), as for
compare.py and shapes.py. The options are checked before any work.
"""
import argparse
import os
import time

import numpy as np

import descend as dn


def nets(dtype, n_threads, torch):
    """(descend's predict, PyTorch's forward) of MNIST's net, the same weights."""
    net = dn.Sequential([dn.Dense(256, activation="relu"), dn.Dense(128, activation="relu"),
                         dn.Dense(10)], input_dim=784, dtype=dtype, seed=0, n_threads=n_threads)
    net.compile(loss="softmax_cross_entropy", optimizer="sgd")
    return net.predict, torch_forward_of(net, torch)


def torch_forward_of(net, torch):
    """PyTorch's forward pass (no_grad, softmax) of a descend network of Dense
    layers, ReLU between them, with its weights: X (ndarray) -> ndarray."""
    dense = net.dense_layers
    modules = []
    for layer in dense:
        linear = torch.nn.Linear(*layer.kernel.shape, dtype=getattr(torch, net.dtype.name))
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(layer.kernel.T.copy()))
            linear.bias.copy_(torch.from_numpy(layer.bias))
        modules += [linear, torch.nn.ReLU()]
    model = torch.nn.Sequential(*modules[:-1], torch.nn.Softmax(dim=1)).eval()

    def forward(X):
        with torch.no_grad():
            return model(torch.from_numpy(X)).numpy()
    return forward


def timed(f, X, calls):
    """(wall, thread CPU) seconds of each of `calls` calls."""
    wall, cpu = [], []
    for _ in range(calls):
        w, c = time.perf_counter(), time.thread_time()
        f(X)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    return wall, cpu


MNIST_TEST_ROWS = 10000     # the rows timed are MNIST's test rows


def mnist_test_rows(text):
    """argparse type: a number of rows in [1, MNIST_TEST_ROWS] (--rows 20000
    timed MNIST's 10000 test rows and printed them as 20000)."""
    from descend.__main__ import _positive_int
    value = _positive_int(text)
    if value > MNIST_TEST_ROWS:
        raise argparse.ArgumentTypeError(f"expected at most {MNIST_TEST_ROWS} (MNIST's test "
                                         f"rows), got {value}")
    return value


def main(argv=None):
    # (the types of `python -m descend bench`: a --data-home that names a
    # file, --rows 0 or --threads past descend's limit is refused before
    # torch loads and MNIST is read)
    from descend.__main__ import _directory, _n_threads, _positive_int
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", type=_directory, default=None,
                        help="directory with the MNIST .gz files (default: $DESCEND_DATA, "
                             "then ~/.cache/descend/mnist; missing files are downloaded)")
    parser.add_argument("--rows", type=mnist_test_rows, nargs="+", default=[1, 10, 1000])
    parser.add_argument("--threads", type=_n_threads, nargs="+", default=[1, 2])
    parser.add_argument("--dtypes", nargs="+", choices=["float32", "float64"],
                        default=["float32", "float64"])
    parser.add_argument("--rounds", type=_positive_int, default=7)
    args = parser.parse_args(argv)
    import torch
    X_all = dn.datasets.load_mnist(data_home=args.data_home).X_test[:max(args.rows)]
    cpu = dn.plans.cpu_description()
    print(f"CPU: {cpu['model']} (features: {', '.join(cpu['features'])}); "
          f"descend {dn.__version__}, torch {torch.__version__}")
    print("| dtype | threads | rows | descend us | PyTorch us | speed-up | descend CPU us "
          "| PyTorch CPU us | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dtype in args.dtypes:
        for n_threads in args.threads:
            torch.set_num_threads(n_threads)
            predict, forward = nets(dtype, n_threads, torch)
            for n_rows in args.rows:
                X = np.ascontiguousarray(X_all[:n_rows], dtype=dtype)
                np.testing.assert_allclose(predict(X), forward(X), atol=1e-5)
                calls = max(3, min(2000, int(20000 / n_rows)))
                times = {"descend": ([], []), "torch": ([], [])}
                for _ in range(args.rounds):
                    for name, f in (("descend", predict), ("torch", forward)):
                        f(X)
                        wall, cpu = timed(f, X, calls)
                        times[name][0].extend(wall)
                        times[name][1].extend(cpu)
                med = {k: [np.median(v[0]) * 1e6, np.median(v[1]) * 1e6]
                       for k, v in times.items()}
                cpu_cells = (f"{med['descend'][1]:.1f} | {med['torch'][1]:.1f}"
                             if n_threads == 1 else "- | -")
                print(f"| {dtype} | {n_threads} | {n_rows} | {med['descend'][0]:.1f} "
                      f"| {med['torch'][0]:.1f} | x{med['torch'][0] / med['descend'][0]:.2f} "
                      f"| {cpu_cells} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
