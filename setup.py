"""Build the compiled kernels of descend.

Every ``csrc/descend/*.pyx`` becomes an extension module of the ``descend``
package (installed from ``src/descend``). The metadata lives in
pyproject.toml; this file only says how to compile.

OpenMP is probed per compiler (gcc/clang ``-fopenmp``, Apple clang with
libomp, MSVC ``/openmp``). Without it the build still succeeds, single
threaded, and says so in a box on stderr; ``DESCEND_REQUIRE_OPENMP=1`` turns
that into an error (release wheels are built with it).

Release builds (anything but ``build_ext --inplace``) recompile every module
(nothing stale is reused from build/) and carry no debug information. Each
build writes ``descend/_build_info.json`` (compiler, flags, OpenMP, the list
of compiled modules), which ``import descend`` and ``python -m descend info``
read.

Environment variables:
    DESCEND_DEBUG=1            Cython's bounds/wraparound/initialisation checks
                               on, and -g kept.
    DESCEND_REQUIRE_OPENMP=1   fail the build when OpenMP is not available.
    DESCEND_LIBOMP_PREFIX=DIR  macOS: where libomp lives (DIR/include/omp.h,
                               DIR/lib/libomp.dylib); Homebrew's and conda's
                               are found without it.
"""
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from pathlib import Path

import numpy
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CSRC = Path("csrc")
DEBUG = os.environ.get("DESCEND_DEBUG", "0") not in ("", "0")
REQUIRE_OPENMP = os.environ.get("DESCEND_REQUIRE_OPENMP", "0") not in ("", "0")
BUILD_INFO = "_build_info.json"

# Compiles and links only where the OpenMP header, the pragma and the runtime
# all work (never run: the target may be another architecture).
OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int team = 0;
        #pragma omp parallel reduction(+:team)
        team += 1;
        return (team >= 1 && omp_get_max_threads() >= 1) ? 0 : 1;
    }
    """
)

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
}


def libomp_prefixes():
    """Directories that may hold Apple clang's libomp (include/ and lib/)."""
    prefixes = [os.environ.get("DESCEND_LIBOMP_PREFIX"), os.environ.get("CONDA_PREFIX")]
    if shutil.which("brew"):
        try:
            prefixes.append(subprocess.run(["brew", "--prefix", "libomp"], capture_output=True,
                                           text=True, timeout=60).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    prefixes += ["/opt/homebrew/opt/libomp", "/usr/local/opt/libomp"]
    return [p for p in dict.fromkeys(prefixes)
            if p and os.path.exists(os.path.join(p, "include", "omp.h"))]


def openmp_candidates(compiler):
    """(compile_args, link_args) to try, best first, for this compiler."""
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        # Apple clang has no -fopenmp driver flag: the preprocessor flag plus
        # libomp, from DESCEND_LIBOMP_PREFIX / conda / Homebrew, or from paths
        # the user put in CPPFLAGS/LDFLAGS; then a clang or gcc that has it.
        found = [(["-Xpreprocessor", "-fopenmp", f"-I{prefix}/include"],
                  [f"-L{prefix}/lib", "-lomp", f"-Wl,-rpath,{prefix}/lib"])
                 for prefix in libomp_prefixes()]
        return found + [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]),
                        (["-fopenmp"], ["-fopenmp"])]
    return [(["-fopenmp"], ["-fopenmp"])]


def openmp_flags(compiler):
    """(compile_args, link_args) enabling OpenMP for this compiler, or None."""
    for compile_args, link_args in openmp_candidates(compiler):
        if _compiles(compiler, compile_args, link_args):
            return compile_args, link_args
    return None


def _compiles(compiler, compile_args, link_args):
    """True when OPENMP_TEST compiles and links with these flags."""
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(OPENMP_TEST)
        objects = compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
        compiler.link_executable(objects, "omp_test", output_dir=tmp,
                                 extra_postargs=link_args)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def boxed(lines):
    """The lines framed in '*' so that they stand out in a build log."""
    width = max(len(line) for line in lines)
    rule = "*" * (width + 4)
    return "\n".join([rule] + [f"* {line.ljust(width)} *" for line in lines] + [rule])


NO_OPENMP_MESSAGE = [
    "descend: this C compiler has no working OpenMP.",
    "The kernels are being built SINGLE-THREADED: training uses one core.",
    "",
    "To get the multi-threaded build:",
    "  Linux:   gcc (libgomp comes with it) or clang with libomp-dev",
    "  macOS:   brew install libomp  (or set DESCEND_LIBOMP_PREFIX)",
    "  Windows: MSVC (Visual Studio Build Tools), which has /openmp",
    "or install a wheel:  pip install --only-binary descend descend",
    "Set DESCEND_REQUIRE_OPENMP=1 to make this an error.",
]


def compiler_description(compiler):
    """A short, path-free name and version of the C compiler."""
    if compiler.compiler_type == "msvc":
        return f"msvc (Python built with {platform.python_compiler()})"
    command = compiler.compiler_so[0]
    try:
        version = subprocess.run([command, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        version = os.path.basename(command)
    return version


class BuildExt(build_ext):
    """build_ext that cythonizes, chooses OpenMP/optimisation flags, never
    reuses stale objects outside --inplace, and records how it built."""

    def finalize_options(self):
        super().finalize_options()
        if not self.inplace:
            self.force = True           # a wheel is built from scratch
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self):
        from Cython.Build import cythonize
        # one cythonize pass over all modules (in processes, not the compile
        # threads: the Cython compiler is not thread-safe); the C files go to
        # build_temp, out of the source tree
        cythonized = cythonize(self.extensions, force=bool(self.force), quiet=not self.verbose,
                               include_path=[str(CSRC)], compiler_directives=CYTHON_DIRECTIVES,
                               build_dir=os.path.join(self.build_temp, "cython"),
                               nthreads=self.parallel if self.parallel > 1 else 0)
        sources = {ext.name: ext.sources for ext in cythonized}
        for ext in self.extensions:
            ext.sources = sources[ext.name]
        super().run()    # setuptools builds in build_lib, then copies if --inplace
        if self.inplace:
            shutil.copyfile(self.built_info, self.build_info_path())

    def build_extensions(self):
        flags = openmp_flags(self.compiler)
        if flags is None:
            if REQUIRE_OPENMP:
                raise RuntimeError("\n" + boxed(NO_OPENMP_MESSAGE[:2] + [
                    "DESCEND_REQUIRE_OPENMP is set, so the build stops here."]))
            print("\n" + boxed(NO_OPENMP_MESSAGE) + "\n", file=sys.stderr, flush=True)
            openmp_compile, openmp_link = [], []
        else:
            openmp_compile, openmp_link = flags
        if self.compiler.compiler_type == "msvc":
            optimise = ["/O2"]
        else:
            # -fno-math-errno: sqrt etc. need not set errno, so loops that call
            # them vectorize (the Adam update ran 4x slower without it).
            # -g0: Python's CFLAGS carry -g; debug info was 80% of the wheel.
            optimise = ["-O3", "-fno-math-errno", "-Wno-unused-function",
                        "-Wno-unreachable-code"] + ([] if DEBUG else ["-g0"])
        for ext in self.extensions:
            ext.extra_compile_args = openmp_compile + optimise + list(ext.extra_compile_args)
            ext.extra_link_args = openmp_link + list(ext.extra_link_args)
        super().build_extensions()
        self.write_build_info(openmp=flags is not None, compile_args=openmp_compile + optimise,
                              link_args=openmp_link)

    def build_info_path(self):
        package_dir = os.path.dirname(self.get_ext_fullpath(self.extensions[0].name))
        return os.path.join(package_dir, BUILD_INFO)

    def write_build_info(self, openmp, compile_args, link_args):
        """Write descend/_build_info.json next to the compiled modules."""
        import Cython
        info = {
            "extensions": sorted(ext.name.rpartition(".")[2] for ext in self.extensions),
            "openmp": openmp,
            "compiler": compiler_description(self.compiler),
            "compiler_type": self.compiler.compiler_type,
            "compile_args": compile_args,
            "link_args": link_args,
            "debug": DEBUG,
            "cython": Cython.__version__,
            "numpy": numpy.__version__,
            "python": platform.python_version(),
            "platform": sysconfig.get_platform(),
        }
        self.built_info = self.build_info_path()
        os.makedirs(os.path.dirname(self.built_info), exist_ok=True)
        with open(self.built_info, "w") as f:
            json.dump(info, f, indent=1, sort_keys=True)
            f.write("\n")

    def get_outputs(self):
        return super().get_outputs() + [self.build_info_path()]


def accept_spdx_license_on_old_setuptools():
    """Let setuptools < 77 read pyproject.toml's SPDX `license` string.

    Wheels and sdists are built in isolation with setuptools >= 77
    (build-system.requires), which understands `license = "BSD-3-Clause"`
    and `license-files`. An older setuptools, as in a developer environment
    running `python setup.py build_ext --inplace`, rejects the string; there it
    is read as the older `{text = ...}` table instead.
    """
    import setuptools
    if int(setuptools.__version__.split(".")[0]) >= 77:
        return
    from setuptools.config import pyprojecttoml
    load_file = pyprojecttoml.load_file

    def load_file_with_legacy_license(filepath):
        config = load_file(filepath)
        project = config.get("project", {})
        if isinstance(project.get("license"), str):
            project["license"] = {"text": project["license"]}
        project.pop("license-files", None)
        return config

    pyprojecttoml.load_file = load_file_with_legacy_license


def extensions():
    return [
        Extension(
            f"descend.{pyx.stem}",
            sources=[str(pyx)],
            include_dirs=[numpy.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")],
        )
        for pyx in sorted((CSRC / "descend").glob("*.pyx"))
    ]


accept_spdx_license_on_old_setuptools()
setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
