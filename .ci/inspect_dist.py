"""Check what the sdist and the wheels of descend hold (called by .ci/dist-check).

Exits non-zero, naming every problem, when the sdist lacks a source, stub,
test or licence file or holds a built one; when a wheel lacks a compiled
module, its .pyi stub, py.typed, the build record, the licences or the
metadata; when the wheel rebuilt from the sdist differs from the first (not
reproducible); or when the repaired wheel is too big, carries debug
information or has no manylinux tag.
"""
import argparse
import email.parser
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
problems = []
# Cython's utility code, compiled once and shared by the modules (setup.py's
# SHARED_UTILITY): built from a C file cythonize generates, so no .pyx, and
# no stub (it defines nothing of descend's).
SHARED_UTILITY = "_cyutility"

# Files of the wheel that two builds from one sdist may still write
# differently, with the cause; any other difference fails. Remove an entry
# once its cause is fixed. (None today: _dense's was a Cython loop, now unrolled.)
KNOWN_NONREPRODUCIBLE = {}


def check(condition, message):
    if not condition:
        problems.append(message)


def check_sdist(path):
    with tarfile.open(path) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    wanted = ["LICENSE", "README.md", "pyproject.toml", "setup.py", "MANIFEST.in"]
    wanted += [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("csrc/descend/*.p*"))]
    wanted += [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("tests/*.py"))]
    wanted += [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("LICENSES/*"))]
    wanted += ["src/descend/__init__.py", "src/descend/data/digits.csv.gz",
               "src/descend/py.typed"]
    wanted += [f"src/descend/{p.stem}.pyi" for p in sorted(ROOT.glob("csrc/descend/*.pyx"))]
    for name in wanted:
        check(name in names, f"sdist: {name} missing")
    built = [n for n in names if n.endswith((".so", ".pyd", ".c", ".o", "_build_info.json"))
             or n.startswith("build/")]
    check(not built, f"sdist: built files included: {built[:5]}")
    print(f"sdist {Path(path).name}: {len(names)} files, {Path(path).stat().st_size} bytes, "
          f"{sum(n.startswith('csrc/') for n in names)} in csrc/, "
          f"{sum(n.startswith('tests/') for n in names)} in tests/")


def read_wheel(path):
    with zipfile.ZipFile(path) as whl:
        return {info.filename: whl.read(info.filename) for info in whl.infolist()}


def check_wheel(path, label):
    files = read_wheel(path)
    name = Path(path).name
    check(not name.endswith("-none-any.whl"), f"{label}: pure-Python wheel {name}")
    kernels = [p.stem for p in ROOT.glob("csrc/descend/*.pyx")]
    modules = sorted(kernels + [SHARED_UTILITY])
    for module in modules:
        found = [f for f in files if f.startswith(f"descend/{module}.") and
                 f.endswith((".so", ".pyd"))]
        check(found, f"{label}: compiled module descend/{module} missing")
    for module in kernels:
        # its typed signatures (tests/test_stubs.py checks they match)
        check(f"descend/{module}.pyi" in files, f"{label}: stub descend/{module}.pyi missing")
    check("descend/py.typed" in files, f"{label}: descend/py.typed missing (PEP 561)")
    info = files.get("descend/_build_info.json")
    check(info is not None, f"{label}: descend/_build_info.json missing")
    if info is not None:
        record = json.loads(info)
        check(record["openmp"], f"{label}: built without OpenMP")
        check(sorted(record["extensions"]) == modules,
              f"{label}: build record lists {record['extensions']}, expected {modules}")
        check(not record["debug"] and "-g" not in record["compile_args"],
              f"{label}: debug build {record['compile_args']}")
    dist_info = next(f.split("/")[0] for f in files if f.endswith(".dist-info/METADATA"))
    for licence in ["LICENSE"] + [f"LICENSES/{p.name}" for p in ROOT.glob("LICENSES/*")]:
        check(f"{dist_info}/licenses/{licence}" in files, f"{label}: {licence} not in wheel")
    metadata = email.parser.Parser().parsestr(files[f"{dist_info}/METADATA"].decode())
    check(metadata["License-Expression"] == "BSD-3-Clause",
          f"{label}: License-Expression is {metadata['License-Expression']!r}")
    requires = metadata.get_all("Requires-Dist") or []
    for dependency in ("numpy", "scipy", "threadpoolctl"):
        check(any(r.startswith(dependency) and "extra ==" not in r for r in requires),
              f"{label}: {dependency} is not a required dependency")
    check(metadata.get_all("Project-URL"), f"{label}: no project URLs")
    check("descend/data/digits.csv.gz" in files, f"{label}: bundled digits data missing")
    return files


def debug_sections(data):
    """Names of the .debug* / .zdebug* sections of an ELF shared object."""
    with tempfile.NamedTemporaryFile(suffix=".so") as f:
        f.write(data)
        f.flush()
        out = subprocess.run(["readelf", "-S", "-W", f.name], capture_output=True,
                             text=True, check=True).stdout
    return sorted({word for word in out.split() if word.startswith((".debug", ".zdebug"))})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sdist", required=True)
    parser.add_argument("--wheel", required=True, help="built from the sdist by python -m build")
    parser.add_argument("--rebuilt", required=True, help="built again from the sdist by pip")
    parser.add_argument("--repaired", required=True, help="the wheel after auditwheel repair")
    parser.add_argument("--max-wheel-bytes", type=int, required=True)
    args = parser.parse_args()

    check_sdist(args.sdist)
    files = check_wheel(args.wheel, "wheel")
    rebuilt = check_wheel(args.rebuilt, "rebuilt wheel")
    digest = {p: hashlib.sha256(Path(p).read_bytes()).hexdigest()
              for p in (args.wheel, args.rebuilt)}
    if digest[args.wheel] != digest[args.rebuilt]:
        differing = sorted(f for f in set(files) | set(rebuilt) if files.get(f) != rebuilt.get(f))
        known = {f: cause for f in differing for prefix, cause in KNOWN_NONREPRODUCIBLE.items()
                 if f.startswith(prefix)}
        unexplained = [f for f in differing if f not in known and not f.endswith("/RECORD")]
        if unexplained:
            problems.append(f"not reproducible: the two builds from the sdist differ in "
                            f"{differing}")
        for name, cause in known.items():
            print(f"WARNING: not reproducible, known cause: {name}: {cause}")
    print(f"wheel built twice from the sdist: sha256 {digest[args.wheel][:16]}... "
          f"{'identical' if len(set(digest.values())) == 1 else 'DIFFERENT'}")

    repaired = check_wheel(args.repaired, "repaired wheel")
    size = Path(args.repaired).stat().st_size
    check("manylinux" in Path(args.repaired).name,
          f"repaired wheel has no manylinux tag: {Path(args.repaired).name}")
    check(size < args.max_wheel_bytes,
          f"repaired wheel is {size} bytes, over {args.max_wheel_bytes}")
    for name, data in sorted(repaired.items()):
        if ".so" in Path(name).name:
            sections = debug_sections(data)
            check(not sections, f"repaired wheel: {name} has debug sections {sections}")
            print(f"  {name}: {len(data)} bytes")
    print(f"repaired wheel {Path(args.repaired).name}: {size} bytes")

    for problem in problems:
        print(f"inspect_dist: FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
