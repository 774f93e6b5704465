"""Data-parallel training over MPI against threads, and the allreduce's cost.

    python bench/distributed.py --data-home ../shared/datasets/mnist [--epochs 3] [--json]

Needs ``pip install '.[mpi]'`` (mpi4py and mpich's mpiexec). On MNIST
(784-256-128-10, float32, SGD momentum 0.9, global batch 256 and 1024) it times
an epoch (median of `--epochs`, after one warm-up epoch) for:

* 1 process x 2 threads (the compiled loop, n_threads=2);
* 2 ranks x 1 thread (``mpiexec -n 2``, OMP_NUM_THREADS=1, fit(distributed=MPI())),
  with the allreduce inside the compiled loop, and through the step loop
  (``MPI._compiled_loop = False``: one return to Python a step);
* 1 process x 1 thread, compiled loop, and the same through the distributed
  step loop on one rank (``MPI(sharded=True)`` on a 1-rank communicator):
  their difference is the cost of leaving compiled code once per step;

and, under ``mpiexec -n 2``, MPI_Allreduce of float32 buffers from 8 B to
64 MB on this machine (shared memory: the loopback of one host): latency
(the smallest message) and bandwidth (bytes / time at the largest). It
prints the bytes each rank sends per step, and the cost model of
docs/distributed.md with these figures. Nothing is asserted: a timing tool.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BATCHES = (256, 1024)


def cpu_name():
    try:
        from descend._config import _cpu_model
        return _cpu_model()
    except Exception:       # the bench runs from an older tree too
        return platform.processor() or "unknown CPU"


def network(n_threads):
    import descend as dn
    net = dn.Sequential([dn.Dense(256, activation="relu"), dn.Dense(128, activation="relu"),
                         dn.Dense(10)], input_dim=784, dtype="float32", seed=0,
                        n_threads=n_threads)
    return net.compile(loss="softmax_cross_entropy",
                       optimizer=dn.optimizers.SGD(0.05, momentum=0.9))


def epoch_seconds(X, y, batch_size, epochs, n_threads, distributed=None):
    """Median seconds per epoch after a warm-up epoch, the median of the epochs'
    seconds inside MPI_Allreduce (``history["allreduce_seconds"]``: timed inside
    the compiled loop, or around the step loop's call), and the bytes summed
    per step (``net.distributed_stats_``; 0 without MPI)."""
    net = network(n_threads)
    net.fit(X, y, epochs=1, batch_size=batch_size, verbose=0, distributed=distributed)
    times, allreduce = [], []
    for _ in range(epochs):
        history = net.fit(X, y, epochs=1, batch_size=batch_size, verbose=0,
                          distributed=distributed)
        times.append(history["seconds"][0])
        allreduce.append(history.get("allreduce_seconds", [0.0])[0])
    stats = getattr(net, "distributed_stats_", None) or {"bytes_per_step": 0}
    return float(np.median(times)), float(np.median(allreduce)), stats["bytes_per_step"]


def allreduce_sweep(comm, repeats=20):
    """{bytes: median seconds} of MPI_Allreduce (sum) of float32 buffers."""
    from mpi4py import MPI
    found = {}
    for exponent in range(1, 25, 2):            # 2 .. 2^23 floats: 8 B .. 32 MB
        buffer = np.ones(2 ** exponent, np.float32)
        times = []
        for _ in range(repeats if buffer.nbytes < 1 << 22 else 5):
            comm.Barrier()
            start = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
            times.append(time.perf_counter() - start)
        found[buffer.nbytes] = float(np.median(times))
    return found


def worker(args):
    """Under mpiexec -n 2: the distributed epochs, then the allreduce sweep."""
    import descend as dn
    from mpi4py import MPI
    X, _, y, _ = dn.datasets.load_mnist(args.data_home, download=False)
    dist = dn.distributed.MPI()
    steps = dn.distributed.MPI()
    steps._compiled_loop = False
    found = {"epochs": {}, "step_loop": {}}
    for batch in BATCHES:
        found["epochs"][batch] = epoch_seconds(X, y, batch, args.epochs, 1, dist)
        found["step_loop"][batch] = epoch_seconds(X, y, batch, args.epochs, 1, steps)
    found["allreduce"] = allreduce_sweep(MPI.COMM_WORLD)
    if dist.is_root:
        print(json.dumps(found))


def single_process(args):
    import descend as dn
    from mpi4py import MPI
    X, _, y, _ = dn.datasets.load_mnist(args.data_home, download=False)
    one_rank = dn.distributed.MPI(MPI.COMM_SELF, sharded=True)    # the step loop, p = 1
    one_rank._compiled_loop = False
    found = {}
    for batch in BATCHES:
        found[batch] = {
            "threads_2": epoch_seconds(X, y, batch, args.epochs, 2)[0],
            "threads_1": epoch_seconds(X, y, batch, args.epochs, 1)[0],
            "step_loop_1": epoch_seconds(X, y, batch, args.epochs, 1, one_rank)[0],
        }
    return found, len(X)


def cost_model(parameter_bytes, latency, seconds_per_sample):
    """Batch per rank at which a ring allreduce stays under 10% of a step.

    Ring allreduce: each rank sends and receives 2 (p - 1) / p x S bytes in
    2 (p - 1) messages: T(p) = 2 (p - 1) / p x S / bandwidth + 2 (p - 1) x latency.
    A step on b samples per rank computes for b x seconds_per_sample; the
    communication is under 10% of the step when T <= (b t) / 9."""
    rows = []
    for gbit in (10, 100):
        bandwidth = gbit * 1e9 / 8
        for p in (2, 4, 8, 16, 32, 64):
            comm = 2 * (p - 1) / p * parameter_bytes / bandwidth + 2 * (p - 1) * latency
            rows.append({"gbit": gbit, "p": p, "allreduce_ms": comm * 1e3,
                         "batch_per_rank": int(np.ceil(9 * comm / seconds_per_sample))})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-home", default=os.environ.get("DESCEND_DATA"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    local, n = single_process(args)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    done = subprocess.run([mpiexec if os.path.exists(mpiexec) else "mpiexec", "-n", "2",
                           sys.executable, os.path.abspath(__file__), "--worker",
                           "--epochs", str(args.epochs), "--data-home", args.data_home or ""],
                          env=env, capture_output=True, text=True, check=True)
    ranks = json.loads(done.stdout.strip().splitlines()[-1])
    step_bytes = ranks["epochs"][str(BATCHES[0])][2]      # the compiled loop's buffer
    sweep = {int(k): v for k, v in ranks["allreduce"].items()}
    latency = sweep[min(sweep)]
    bandwidth = max(sweep) / sweep[max(sweep)]
    per_sample = local[1024]["threads_1"] / n
    report = {"cpu": cpu_name(), "samples": n, "local": local, "ranks_2x1": ranks["epochs"],
              "ranks_2x1_step_loop": ranks["step_loop"],
              "bytes_per_step": step_bytes,
              "bytes_sent_per_rank_per_step_ring_p2": step_bytes,
              "allreduce": sweep, "latency_s": latency, "bandwidth_Bps": bandwidth,
              "allreduce_model_step_s": sweep.get(1 << (step_bytes - 1).bit_length()),
              "cost_model": cost_model(step_bytes, latency, per_sample),
              "seconds_per_sample_1_thread": per_sample}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print_report(report)


def print_report(r):
    print(f"CPU: {r['cpu']}; MNIST {r['samples']} samples, 784-256-128-10 float32, "
          "SGD momentum 0.9")
    print("seconds per epoch; 'in allreduce': rank 0's seconds inside MPI_Allreduce per "
          "epoch (waiting for the other rank included)")
    print(f"{'global batch':>12} {'1p x 2t':>9} {'2r x 1t':>9} {'in allreduce':>13} "
          f"{'ratio':>6} {'2r x 1t steps':>14} {'in allreduce':>13} {'1p x 1t':>9} "
          f"{'step loop 1r':>12}")
    for batch in BATCHES:
        local = r["local"][batch]
        two, two_allreduce, _ = r["ranks_2x1"][str(batch)]
        steps, allreduce, _ = r["ranks_2x1_step_loop"][str(batch)]
        print(f"{batch:>12} {local['threads_2']:>8.2f}s {two:>8.2f}s "
              f"{two_allreduce:>12.2f}s {two / local['threads_2']:>6.2f} {steps:>13.2f}s "
              f"{allreduce:>12.2f}s {local['threads_1']:>8.2f}s "
              f"{local['step_loop_1']:>11.2f}s")
    print(f"bytes per step (the compiled loop's flat float32 buffer, "
          f"net.distributed_stats_): {r['bytes_per_step']:,}")
    print(f"allreduce on this host: latency {r['latency_s'] * 1e6:.1f} us (8 B), "
          f"bandwidth {r['bandwidth_Bps'] / 1e9:.2f} GB/s (32 MB)")
    for size, seconds in sorted(r["allreduce"].items()):
        print(f"  {size:>10,} B  {seconds * 1e6:>10.1f} us")
    print(f"cost model (ring, latency {r['latency_s'] * 1e6:.1f} us as measured here, "
          f"{r['seconds_per_sample_1_thread'] * 1e6:.1f} us of compute per sample):")
    for row in r["cost_model"]:
        print(f"  {row['gbit']:>3} Gbit/s p={row['p']:>2}: allreduce "
              f"{row['allreduce_ms']:.2f} ms, batch per rank >= {row['batch_per_rank']}")


if __name__ == "__main__":
    main()
