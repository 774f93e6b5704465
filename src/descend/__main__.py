"""Command line: ``python -m descend demo``, ``info``, ``bench``,
``experiments`` and ``python -m descend --version``.

``demo`` trains a multilayer perceptron on a real dataset (the bundled UCI
digits by default, or MNIST) with a fixed seed, printing per-epoch loss, the
test accuracy and the training throughput.
"""
import argparse
import inspect
import os
import sys
import time

import numpy as np


DEMO_DATASETS = ["digits", "mnist", "breast_cancer"]


def _demo_config(dataset):
    """(hidden sizes, epochs, batch size, optimizer factory) per dataset."""
    from descend import optimizers, schedules
    if dataset == "mnist":
        # the rate decayed by 0.7 an epoch: test accuracy 0.981-0.983 over
        # seeds 0-3, against 0.975-0.981 at a constant 0.001 (which overfits
        # from the third epoch on)
        return (256, 128), 6, 64, lambda: optimizers.Adam(
            learning_rate=schedules.ExponentialDecay(0.001, decay_rate=0.7))
    if dataset == "breast_cancer":
        return (32,), 40, 16, lambda: optimizers.Adam(learning_rate=0.001)
    return (128,), 20, 32, lambda: optimizers.SGD(learning_rate=0.1, momentum=0.9)


def _describe(obj):
    """``Adam(learning_rate=ExponentialDecay(initial_learning_rate=0.001,
    decay_rate=0.7))``: an optimizer or schedule with its learning rate and the
    arguments that differ from their defaults (as scikit-learn prints
    estimators), a schedule written the same way instead of its config dict."""
    defaults = {}       # a subclass passes some arguments on to its base (**kwargs)
    for cls in reversed(type(obj).__mro__):
        if "__init__" in vars(cls):
            defaults.update((name, parameter.default) for name, parameter
                            in inspect.signature(cls.__init__).parameters.items())
    args = []
    for key, value in obj.get_config().items():
        if key in ("class", "name"):        # the type, written as the call's name
            continue
        if key == "learning_rate" and getattr(obj, "schedule", None) is not None:
            args.append(f"{key}={_describe(obj.schedule)}")
        elif key == "learning_rate" or defaults.get(key, inspect.Parameter.empty) != value:
            args.append(f"{key}={value!r}")
    return f"{type(obj).__name__}({', '.join(args)})"


def load_dataset(name, seed=0, data_home=None, dtype="float32"):
    """(X_train, X_test, y_train, y_test) of a named dataset."""
    from descend import datasets
    if name == "mnist":
        return datasets.load_mnist(data_home=data_home, dtype=dtype)
    if name == "breast_cancer":
        X, y = datasets.load_breast_cancer(dtype=dtype)
        X_train, X_test, y_train, y_test = datasets.train_test_split(
            X, y, test_size=0.25, seed=seed, stratify=True)
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        std[std == 0] = 1
        # standardise with the training statistics only
        return ((X_train - mean) / std).astype(dtype), ((X_test - mean) / std).astype(dtype), \
            y_train, y_test
    X, y = datasets.load_digits(dtype=dtype)
    return datasets.train_test_split(X, y, test_size=0.25, seed=seed, stratify=True)


def demo(args):
    """Train an MLP on args.dataset with a fixed seed; print per-epoch loss,
    test accuracy and throughput (samples per second). Returns 0; Ctrl-C
    raises KeyboardInterrupt (after evaluating the completed epochs, if any),
    which :func:`main` turns into exit code 130."""
    import descend as dn
    try:
        X_train, X_test, y_train, y_test = load_dataset(args.dataset, args.seed,
                                                        args.data_home, args.dtype)
    except (dn.datasets.DatasetNotFoundError, ValueError) as error:
        # the message says which files are missing and where to put them (or
        # what is wrong with --data-home or a file there)
        print(f"descend demo: {error}", file=sys.stderr)
        return 1
    hidden, epochs, batch_size, make_optimizer = _demo_config(args.dataset)
    epochs = epochs if args.epochs is None else args.epochs
    batch_size = batch_size if args.batch_size is None else args.batch_size
    n_classes = len(np.unique(y_train))
    layers = [dn.Dense(units, activation="relu") for units in hidden]
    layers.append(dn.Dense(n_classes))
    net = dn.Sequential(layers, input_dim=X_train.shape[1], dtype=args.dtype, seed=args.seed,
                        n_threads=args.n_threads)
    net.compile(loss="softmax_cross_entropy", optimizer=make_optimizer())
    print(f"descend {dn.__version__} demo: {args.dataset}, {len(X_train)} training and "
          f"{len(X_test)} test samples\n"
          f"  net {X_train.shape[1]}-{'-'.join(map(str, hidden))}-{n_classes} (relu), "
          f"{args.dtype}, seed={args.seed}, "
          f"{dn.effective_n_threads(args.n_threads)} thread(s)\n"
          f"  {_describe(net.optimizer)}, epochs={epochs}, batch_size={batch_size}")
    start = time.perf_counter()
    history = net.fit(X_train, y_train, epochs=epochs, batch_size=batch_size,
                      verbose=args.verbose)
    total = time.perf_counter() - start
    if history.interrupted and not history.epoch:
        raise KeyboardInterrupt     # Ctrl-C in the first epoch: nothing to evaluate
    scores = net.evaluate(X_test, y_test)
    seconds = np.array(history["seconds"])
    print(f"test accuracy: {scores['accuracy']:.4f}  test loss: {scores['loss']:.4f}")
    # samples over the median epoch's seconds (not the median of the epochs'
    # samples/s, which for an even count is neither middle epoch's)
    print(f"throughput: {len(X_train) / np.median(seconds):,.0f} samples/s, "
          f"{np.median(seconds):.3f} s/epoch (the median of {len(seconds)} "
          f"epoch{'s' if len(seconds) != 1 else ''}), {total:.2f} s for fit")
    if history.interrupted:
        # the completed epochs are evaluated (fit's Keras behaviour), but a
        # shell still learns that the run did not finish
        raise KeyboardInterrupt
    return 0


def info(args):
    """Print how descend was built and what it runs on (``dn.show_config``),
    as text or, with --json, as JSON. Returns 0."""
    from descend import plans
    from descend._config import config_info, format_config
    if args.refresh:
        plans.machine_profile(refresh=True)
    if args.json:        # figures as numbers (descend.plans.plans_data)
        import json
        print(json.dumps(config_info(data=True), indent=2, default=str))
    else:
        print(format_config(config_info()))
    return 0


def _int_at_least(minimum, what):
    """argparse type: an int >= minimum."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_seed = _int_at_least(0, "a non-negative integer")     # numpy seeds are >= 0


def _n_threads(text):
    """argparse type: an int in [1, MAX_THREADS]."""
    from descend._validation import MAX_THREADS
    value = _positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_THREADS} (8 per CPU), "
                                         f"got {value}")
    return value


def _directory(text):
    """argparse type: a directory path (it may not exist yet), not '' and not
    an existing file or under one; a leading ~ or ~name must name a home directory (the
    loaders' check, datasets._directory, at parsing rather than mid-run)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a directory, got ''")
    from descend.datasets import _directory as expanded, _file_in_the_way
    try:
        reason = _file_in_the_way(expanded(text, "the path"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if reason:
        raise argparse.ArgumentTypeError(f"expected a directory, got {text!r} {reason}")
    return text


def _output_file(text):
    """argparse type: a file to write (checked before a long run): not a
    directory, in a writable directory that exists."""
    if not text or os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected a file name, got {text!r}"
                                         + (" (a directory)" if text else ""))
    parent = os.path.dirname(text) or "."
    if not os.path.isdir(parent):
        raise argparse.ArgumentTypeError(f"expected a file in an existing directory, got "
                                         f"{text!r} ({parent!r} is not a directory)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"expected a file in a writable directory, got "
                                         f"{text!r} ({parent!r} is not writable)")
    return text


def _prog():
    """The command as the user typed it, for usage lines: the script's name
    (``descend``) or, under ``python -m``, the interpreter's name and ``-m
    descend`` (what argparse itself prints from Python 3.12 on)."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if script in ("__main__.py", "-m", "-c", ""):
        return f"{os.path.basename(sys.executable) or 'python'} -m descend"
    return script


def _per_dataset(field):
    """'20 for digits, 6 for mnist, ...': a demo default that depends on --dataset."""
    index = {"epochs": 1, "batch size": 2}[field]
    return ", ".join(f"{_demo_config(name)[index]} for {name}" for name in DEMO_DATASETS)


def build_parser(prog=None):
    """The argparse parser of ``python -m descend`` (demo, info, bench, experiments).

    ``prog`` names the command in usage lines (default: as typed, see
    :func:`_prog`); every option's help states its default."""
    import descend
    prog = prog or _prog()
    parser = argparse.ArgumentParser(prog=prog,
                                     description="descend: gradient descent and "
                                                 "backpropagation on CPU",
                                     epilog=f"'{prog} COMMAND --help' shows a command's "
                                            "options and their defaults.")
    parser.add_argument("--version", action="version",
                        version=f"descend {descend.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("info", help="how descend was built (compiler, OpenMP) and what it "
                                    "runs on (CPU features, BLAS/OpenMP threads)",
                       description="How descend was built and what it runs on "
                                   "(descend.show_config()).")
    p.add_argument("--json", action="store_true", help="print the report as JSON "
                                                       "(default: text)")
    p.add_argument("--refresh", action="store_true",
                   help="measure the machine profile (which chooses the plans) again "
                        "(default: use the cached one)")
    p.set_defaults(func=info)
    p = sub.add_parser("demo", help="train an MLP on a real dataset and report "
                                    "accuracy and throughput",
                       description="Train a multilayer perceptron on a real dataset with a "
                                   "fixed seed; print per-epoch loss, test accuracy and "
                                   "throughput.")
    p.add_argument("--dataset", choices=DEMO_DATASETS, default="digits",
                   help="bundled UCI digits (8x8) or breast cancer, or MNIST (28x28, "
                        "downloaded once) (default: %(default)s)")
    p.add_argument("--data-home", type=_directory, default=None,
                   help="directory with the MNIST .gz files (default: $DESCEND_DATA, "
                        "then ~/.cache/descend/mnist; downloaded if missing)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"passes over the training set (default: {_per_dataset('epochs')})")
    p.add_argument("--batch-size", type=_positive_int, default=None,
                   help=f"samples per gradient step (default: {_per_dataset('batch size')})")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="floating type of the data and the weights (default: %(default)s)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="seed of the weights, the shuffling and the split of digits "
                        "and breast_cancer (MNIST's split is fixed) (default: %(default)s)")
    p.add_argument("--n-threads", type=_n_threads, default=None,
                   help="OpenMP threads (default: all usable cores, respecting "
                        "OMP_NUM_THREADS)")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=2,
                   help="0 silent, 1 a progress bar (on a terminal) and a line per "
                        "epoch, 2 a line per epoch (default: %(default)s)")
    p.set_defaults(func=demo)
    from descend.benchmark import add_arguments as add_bench_arguments, bench
    p = sub.add_parser("bench", help="time a training epoch of descend against PyTorch, "
                                     "JAX, numpy and scikit-learn, side by side")
    add_bench_arguments(p).set_defaults(func=bench)
    try:
        from descend.experiments import add_parser as add_experiments_parser
    except ImportError:
        add_experiments_parser = None
    if add_experiments_parser is not None:
        add_experiments_parser(sub)
    return parser


def _check_data_env():
    """ValueError if DESCEND_DATA is no usable directory (a file, only
    whitespace, a ~name of no known user), checked as the loaders check it:
    every command that reads data would fail on it, bench and experiments
    after other work."""
    from descend.datasets import _data_dir, _not_a_file
    _not_a_file(_data_dir(None, "mnist"), None)


def main(argv=None, prog=None):
    """Entry point of ``python -m descend`` and the ``descend`` script.

    ``argv`` defaults to ``sys.argv[1:]``; ``prog`` to the command as typed."""
    from descend import plans
    from descend.datasets import _command_line_option
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)      # --help and --version print here
    except BrokenPipeError:                 # (Python < 3.11.4's argparse lets it out)
        return _reader_gone()
    try:
        plans.forced_from_env()     # a bad DESCEND_PLAN: a usage error, not a traceback mid-run
        plans.profiling_enabled()   # so is a DESCEND_PROFILE that is neither on nor off
        plans.cache_dir()           # and a DESCEND_CACHE_DIR of an unknown user's ~
        _check_data_env()           # and a DESCEND_DATA that is no directory
    except ValueError as error:
        parser.error(str(error))
    try:
        with _command_line_option("--data-home"):  # messages name the option, not the keyword
            status = args.func(args)
        sys.stdout.flush()      # a closed pipe raises here, not at the interpreter's exit
        return status
    except KeyboardInterrupt:
        # Ctrl-C: one line, not a traceback from wherever the interrupt landed;
        # 130 = 128 + SIGINT, what a shell reports for an interrupted command
        print(f"descend {args.command}: interrupted (Ctrl-C)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone():
    """The reader of stdout went away (`python -m descend info | head -3`): stop
    quietly, as Unix tools do. stdout goes to /dev/null so that the
    interpreter's final flush does not raise again (the Python docs' recipe,
    signal module); 141 = 128 + SIGPIPE, what a shell reports for a killed
    writer."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


if __name__ == "__main__":
    sys.exit(main())
