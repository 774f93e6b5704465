"""Experiments: measure what the classic "gradient descent vs backpropagation"
comparisons only describe.

Each experiment trains real networks with descend and fills a table with
measured numbers (mean ± std over seeds where runs are noisy), plus a plot::

    python -m descend experiments learning-rate --quick
    python -m descend experiments all --dataset mnist --data-home DIR --out results/

or from Python::

    from descend import experiments
    result = experiments.run("depth", quick=True)
    print(result.to_markdown())

Sizes: the default ("full") is the documented run; ``quick`` (``--quick``)
keeps each experiment under about a minute on digits; ``smoke`` is a
seconds-long size for the test suite only.
"""
import argparse
import importlib
import os
import re
import sys
import time
from pathlib import Path

from descend._validation import check_bool, check_output_directory, unwritable_directory
from descend.experiments._common import DATASETS, SIZES, Config, Result, Table, machine_markdown

# name -> module (in the order of the report)
EXPERIMENTS = {
    "gd-variants": "gd_variants",
    "learning-rate": "learning_rate",
    "batch-size": "batch_size",
    "activations": "activations",
    "depth": "depth",
    "regularization": "regularization",
    "optimizers": "optimizers",
    "complexity": "complexity",
    "backprop-vs-numerical": "backprop_numerical",
    "local-minima": "local_minima",
    "domains": "domains",
}

__all__ = ["EXPERIMENTS", "Config", "Result", "Table", "run", "run_all", "add_parser",
           "write_report"]


def _module(name):
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment must be one of {sorted(EXPERIMENTS)} or 'all', "
                         f"got {name!r}")
    return importlib.import_module(f"descend.experiments.{EXPERIMENTS[name]}")


def run(name, quick=False, dataset="digits", seeds=3, out=None, data_home=None,
        n_threads=1, size=None, verbose=False, echo=False):
    """Run one experiment (or "all") and return its Result (a list for "all").

    Parameters
    ----------
    name : str
        A key of ``EXPERIMENTS`` or "all".
    quick : bool
        The --quick size (a minute or two per experiment on digits, 2 cores).
    dataset : "digits", "mnist" or "breast_cancer"
    seeds : int >= 1
        Seeds 0 .. seeds-1 for the repeated cells.
    out : str, Path or None
        Directory for NAME.md and NAME.png; None writes nothing.
    data_home : str or None
        MNIST directory (default: $DESCEND_DATA, then ~/.cache/descend/mnist).
    n_threads : int
        Threads of descend's compiled loops (1: stable timings on a shared machine).
    size : "smoke", "quick", "full" or None
        Overrides `quick`; "smoke" is for the test suite.
    verbose : bool
        Log progress to stdout.
    echo : bool
        Print each table as markdown when it is done.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be one of {sorted(EXPERIMENTS)} or 'all', got {name!r}")
    quick, echo = check_bool(quick, "quick"), check_bool(echo, "echo")
    if size is None:
        size = "quick" if quick else "full"
    if out is not None:
        # checked before the run (which may take an hour), not when writing
        out = check_output_directory(out, "out")
    cfg = Config(size=size, dataset=dataset, seeds=seeds, data_home=data_home,
                 n_threads=n_threads, verbose=verbose)
    if name == "all":
        return run_all(cfg, out=out, echo=echo)
    return _run_one(name, cfg, out, echo)


def _run_one(name, cfg, out=None, echo=False):
    module = _module(name)
    machine = machine_markdown()   # before the run: the commit that was measured
    load_start = _load()
    start = time.perf_counter()
    result = module.run(cfg)
    result.seconds = time.perf_counter() - start
    result.config = cfg
    result.machine = machine
    load_end = _load()
    if load_start is not None and load_end is not None:
        result.load = (load_start, load_end)
    png = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        png = save_plot_for(result, out / f"{name}.png")
        (out / f"{name}.md").write_text(result.to_markdown(png.name if png else None) + "\n")
    if echo:
        print(result.to_markdown(png.name if png else None), flush=True)
        if out is not None:
            print(f"(written to {out / (name + '.md')}"
                  + (f" and {png})" if png else ")"), flush=True)
    return result


def _load():
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def save_plot_for(result, path):
    """Write the Result's plot as a PNG in out_dir (skipped, with a message, without matplotlib); return the path or None."""
    from descend.experiments._common import save_plot
    path = save_plot(result, path)
    result.plot_path = path
    if path is None and result.plot_message:
        print(result.plot_message, file=sys.stderr)
    return path


def run_all(cfg, out=None, echo=False):
    """Run every experiment in order with the same settings; return the list of Results."""
    results = []
    for name in EXPERIMENTS:
        results.append(_run_one(name, cfg, out, echo))
    if out is not None:
        write_report(results, Path(out) / "README.md")
    return results


def write_report(results, path, png_prefix="", intro=""):
    """All results in one markdown file, with the machine they ran on."""
    lines = ["# descend experiments", ""]
    if intro:
        lines += [intro, ""]
    machine = results[0].machine if results and results[0].machine else machine_markdown()
    lines += ["Machine (at the start of the first experiment):", "", machine, ""]
    total = sum(r.seconds for r in results)
    lines += [f"Wall time of the experiments (their sum, without loading and writing): {total:.0f} s.", ""]
    lines += ["| experiment | size | data | seeds | seconds | load average (start, end) |",
              "|---|---|---|---|---|---|"]
    for r in results:
        load = f"{r.load[0]:.1f}, {r.load[1]:.1f}" if r.load else "-"
        lines.append(f"| [{r.name}](#{_anchor(r.name + ': ' + r.title)}) | {r.config.size} | "
                     f"{r.datasets or r.config.dataset} | {r.config.seeds} "
                     f"| {r.seconds:.1f} | {load} |")
    lines.append("")
    for r in results:
        png = f"{png_prefix}{Path(r.plot_path).name}" if r.plot_path else None
        lines += [r.to_markdown(png), ""]
    Path(path).write_text("\n".join(lines))
    return path


def _anchor(heading):
    """GitHub's anchor for a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def add_parser(subparsers):
    """Register ``experiments`` on the CLI's subparsers."""
    p = subparsers.add_parser(
        "experiments", help="measure learning rate, batch size, activations, depth, "
                            "optimizers, ... (prints markdown tables, writes NAME.md/.png)",
        description="Run one experiment, or all; each prints a markdown table and writes "
                    "NAME.md and NAME.png (with matplotlib) into --out.")
    p.add_argument("name", choices=list(EXPERIMENTS) + ["all"], metavar="NAME",
                   help="one of: " + ", ".join(EXPERIMENTS) + ", all")
    from descend.__main__ import _directory, _n_threads, _positive_int
    p.add_argument("--quick", action="store_true",
                   help="small size: each experiment in a minute or two on digits "
                        "(default: the full size)")
    p.add_argument("--dataset", choices=list(DATASETS), default="digits",
                   help="data of the experiments that take one (default: %(default)s)")
    p.add_argument("--seeds", type=_positive_int, default=3,
                   help="seeds per repeated cell (mean ± std needs >= 3; "
                        "default: %(default)s)")
    p.add_argument("--out", type=_output_directory, default="descend-experiments",
                   help="output directory (default: ./%(default)s)")
    p.add_argument("--data-home", type=_directory, default=None,
                   help="directory with the MNIST .gz files (default: $DESCEND_DATA, "
                        "then ~/.cache/descend/mnist)")
    p.add_argument("--n-threads", type=_n_threads, default=1,
                   help="threads for descend's loops (default: %(default)s, for stable "
                        "timings)")
    p.add_argument("--size", choices=list(SIZES), default=None, help=argparse.SUPPRESS)
    p.add_argument("--verbose", action="store_true",
                   help="log each run as it starts (default: tables only)")
    p.set_defaults(func=_cli)
    return p


def _output_directory(text):
    """argparse type of --out: a directory that exists writable or can be made."""
    from descend.__main__ import _directory
    text = _directory(text)
    reason = unwritable_directory(text)
    if reason:
        raise argparse.ArgumentTypeError(f"expected a directory that can be created or "
                                         f"written, got {text!r} ({reason})")
    return text


def _cli(args):
    from descend.datasets import DatasetCorruptError, DatasetNotFoundError
    start = time.perf_counter()
    try:
        result = run(args.name, quick=args.quick, dataset=args.dataset, seeds=args.seeds,
                     out=args.out, data_home=args.data_home, n_threads=args.n_threads,
                     size=args.size, verbose=args.verbose, echo=True)
    except (DatasetNotFoundError, DatasetCorruptError) as error:
        # the message says which files are missing or corrupt, and where
        print(f"descend experiments: {error}", file=sys.stderr)
        return 1
    results = result if isinstance(result, list) else [result]
    print(f"\n{len(results)} experiment(s) in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{r.name} {r.seconds:.1f} s" for r in results), flush=True)
    return 0
