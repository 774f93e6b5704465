"""Do two ways of measuring the machine profile choose the same plans?

Measures the profile (``descend.plans.measure_profile``) repeatedly, each
time in a fresh process, in turns between source trees (e.g. main's and a
branch's), then works out from every profile the decisions it leads to on
the default shapes: fit's plan (``plans.plan_for``: sparse first layer,
sample and kernel-row blocks, by columns) and predict's thresholds
(``_inference.thresholds_from_profile``: sparse first layer for MNIST-like
and dense inputs, rows from which GEMMs run the hidden layers), over the
sweep of bench/shapes.py (widths 64, 256, 1024, 2048, depths 2 and 6,
MNIST-like and dense inputs of 784 features) and the MNIST net
784-256-128-10, batch 1, 8, 32, 128, 256 and 1024, float32 and float64,
on the cores of this machine. The decisions are worked out with the rules
of the tree the script runs from, so that only the measurement differs.
(The optimizer does not enter the rules: SGD and Adam share every cell.)

    PYTHONPATH=src python bench/profile_decisions.py measure --repeats 10 \\
        --tree old=/path/to/main/src --tree new=src --out profiles.json
    PYTHONPATH=src python bench/profile_decisions.py compare profiles.json [more.json ...]

compare prints, per tree, how long a profile took (median, range) and every
cell whose decision differs between the trees' most frequent ones, or that
did not come out the same in all the repeats of a tree.
"""
import argparse
import collections
import itertools
import json
import os
import statistics
import subprocess
import sys
import time

WIDTHS = (64, 256, 1024, 2048)
DEPTHS = (2, 6)
BATCHES = (1, 8, 32, 128, 256, 1024)
DTYPES = ("float32", "float64")
# the fraction of MNIST's training inputs that are non-zero (19.1%), and dense inputs
DENSITIES = {"mnist": 0.191, "dense": 1.0}

MEASURE = ("import json, time; from descend import plans; started = time.perf_counter(); "
           "p = plans.measure_profile(); p['wall'] = time.perf_counter() - started; "
           "print(json.dumps(p))")


def net_shapes():
    """{name: ((n_in, n_out), ...)} of the sweep's nets and MNIST's."""
    nets = {"mnist 784-256-128-10": ((784, 256), (256, 128), (128, 10))}
    for width, depth in itertools.product(WIDTHS, DEPTHS):
        sizes = [784] + [width] * depth + [10]
        nets[f"{width}x{depth}"] = tuple(zip(sizes[:-1], sizes[1:]))
    return nets


def decisions(profile, cores):
    """{cell name: decision} of one profile (see the module docstring)."""
    from descend import _inference, plans
    out = {}
    for (name, shapes), dtype in itertools.product(net_shapes().items(), DTYPES):
        for (inputs, density), batch in itertools.product(DENSITIES.items(), BATCHES):
            workload = plans.Workload(shapes, dtype, batch, density, cores)
            plan = plans.plan_for(workload, profile).as_dict()
            plan.pop("source")
            out[f"fit {name} {dtype} {inputs} batch {batch}"] = json.dumps(plan, sort_keys=True)
        limits = _inference.thresholds_from_profile(profile, shapes, dtype)
        out[f"predict {name} {dtype}"] = json.dumps({
            "sparse first layer": {inputs: density <= limits.sparse_density
                                   for inputs, density in DENSITIES.items()},
            "gemm_min_rows": limits.gemm_min_rows}, sort_keys=True)
    return out


def measure(trees, repeats, out):
    """Profiles of each tree, `repeats` each, in turns, each in a fresh process."""
    results = {name: [] for name, _ in trees}
    for turn in range(repeats):
        for name, path in trees:
            env = dict(os.environ, PYTHONPATH=path, DESCEND_PROFILE="1")
            text = subprocess.run([sys.executable, "-c", MEASURE], env=env, check=True,
                                  capture_output=True, text=True).stdout
            profile = json.loads(text)
            profile["uptime"] = os.getloadavg()[0]
            results[name].append(profile)
            print(f"turn {turn} {name}: {profile['wall']:.3f} s (load {profile['uptime']:.2f})",
                  flush=True)
    with open(out, "w") as f:
        json.dump(results, f)


def compare(paths):
    """Print each tree's profile times and the cells whose decisions differ,
    over the profiles of every file in `paths` (pooled by tree name)."""
    results = collections.defaultdict(list)
    for path in paths:
        with open(path) as f:
            for name, profiles in json.load(f).items():
                results[name] += profiles
    counts, made_by = {}, {}
    for name, profiles in results.items():
        walls = [p["wall"] for p in profiles]
        print(f"{name}: {len(profiles)} profiles, {statistics.median(walls):.3f} s median "
              f"({min(walls):.3f}-{max(walls):.3f}), load {min(p['uptime'] for p in profiles):.2f}"
              f"-{max(p['uptime'] for p in profiles):.2f}")
        counts[name] = collections.defaultdict(collections.Counter)
        made_by[name] = [decisions(profile, profile["cores"]) for profile in profiles]
        for made in made_by[name]:
            for cell, decision in made.items():
                counts[name][cell][decision] += 1
    for name in counts:
        unstable = sum(len(c) > 1 for c in counts[name].values())
        # each profile's cells off the tree's most frequent decision
        off = [sum(decision != counts[name][cell].most_common(1)[0][0]
                   for cell, decision in made.items()) for made in made_by[name]]
        print(f"{name}: {unstable} of {len(counts[name])} cells without one decision in "
              f"every repeat; cells off the most frequent decision, per profile: {off}")
    names = list(counts)
    cells = list(counts[names[0]])
    differ = tied = 0
    for cell in cells:
        modes = [counts[name][cell].most_common(1)[0][0] for name in names]
        unstable = [name for name in names if len(counts[name][cell]) > 1]
        if len(set(modes)) > 1 or unstable:
            differ += len(set(modes)) > 1
            # a tie for the most frequent decision: a coin flip in that tree
            tied += len(set(modes)) > 1 and any(
                len(c) > 1 and c.most_common(2)[0][1] == c.most_common(2)[1][1]
                for c in (counts[name][cell] for name in names))
            print(f"{cell}:")
            for name in names:
                for decision, n in counts[name][cell].most_common():
                    print(f"    {name} x{n}: {decision}")
    print(f"{len(cells)} cells; {differ} with another most frequent decision between "
          f"{' and '.join(names)} ({tied} of them tied for the most frequent in a tree)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--tree", action="append", required=True,
                   help="name=PYTHONPATH of a source tree (repeat for each)")
    m.add_argument("--repeats", type=int, default=10)
    m.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("profiles", nargs="+", help="files written by measure")
    args = parser.parse_args(argv)
    if args.command == "measure":
        trees = [tuple(t.split("=", 1)) for t in args.tree]
        measure(trees, args.repeats, args.out)
    else:
        compare(args.profiles)


if __name__ == "__main__":
    main()
