"""Side-by-side epoch times: descend, PyTorch, JAX, numpy, scikit-learn.

A thin wrapper over ``descend.benchmark``, the one implementation, which an
installed wheel runs as ``python -m descend bench``; see its docstring for
the method. The options are the same:

    python bench/compare.py --data-home ../shared/datasets/mnist
    python bench/compare.py --quick            # 6000 samples, one turn
    python bench/compare.py --json > run.json  # for scripts

On machines that set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (for old OpenBLAS
builds), unset both in this command only so numpy's BLAS runs its best
kernel: `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py`.
"""
import sys

from descend.benchmark import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
