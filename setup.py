"""Build the compiled kernels of descend.

Every ``csrc/descend/*.pyx`` becomes an extension module of the ``descend``
package (installed from ``src/descend``). OpenMP flags are chosen per compiler;
where the compiler has no OpenMP the build still succeeds, single-threaded,
with a warning. Set ``DESCEND_DEBUG=1`` to build with Cython's bounds,
wraparound and initialisation checks turned back on.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import warnings
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()
CSRC = Path("csrc")
DEBUG = os.environ.get("DESCEND_DEBUG", "0") not in ("", "0")

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }
    """
)


def openmp_flags(compiler):
    """(compile_args, link_args) enabling OpenMP for this compiler, or None."""
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    if sys.platform == "darwin":
        # Apple clang has no -fopenmp driver flag; it needs libomp (Homebrew).
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for compile_args, link_args in candidates:
        if _compiles(compiler, compile_args, link_args):
            return compile_args, link_args
    return None


def _compiles(compiler, compile_args, link_args):
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(OPENMP_TEST)
        objects = compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
        compiler.link_executable(objects, "omp_test", output_dir=tmp, extra_postargs=link_args)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExtWithOpenMP(build_ext):
    def build_extensions(self):
        flags = openmp_flags(self.compiler)
        if flags is None:
            warnings.warn(
                "descend: this compiler has no OpenMP support; building the "
                "kernels single-threaded (install libomp / use gcc for threads)."
            )
            compile_args, link_args = [], []
        else:
            compile_args, link_args = flags
        if self.compiler.compiler_type == "msvc":
            compile_args = compile_args + ["/O2"]
        else:
            # -fno-math-errno: sqrt etc. need not set errno, so loops that call
            # them vectorize (the Adam update ran 4x slower without it)
            compile_args = compile_args + ["-O3", "-fno-math-errno", "-Wno-unused-function",
                                           "-Wno-unreachable-code"]
        for ext in self.extensions:
            ext.extra_compile_args = compile_args + list(ext.extra_compile_args)
            ext.extra_link_args = link_args + list(ext.extra_link_args)
        super().build_extensions()


def extensions():
    exts = []
    for pyx in sorted((CSRC / "descend").glob("*.pyx")):
        exts.append(
            Extension(
                f"descend.{pyx.stem}",
                sources=[str(pyx)],
                include_dirs=[numpy.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
            )
        )
    return cythonize(
        exts,
        include_path=[str(CSRC)],
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": DEBUG,
            "initializedcheck": DEBUG,
            "cdivision": not DEBUG,
            "embedsignature": True,
        },
        build_dir="build/cython",
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExtWithOpenMP})
