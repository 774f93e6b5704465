"""The API reference (docs/, Sphinx + numpydoc) builds without a warning.

Skipped when Sphinx or numpydoc is missing (both are in the ``test`` extra) or
when the tests run without the source tree's docs/ folder.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_api_reference_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx", reason="Sphinx is not installed (pip install '.[test]')")
    pytest.importorskip("numpydoc", reason="numpydoc is not installed (pip install '.[test]')")
    if not (DOCS / "conf.py").is_file():
        pytest.skip(f"no Sphinx project at {DOCS}")
    # a fresh environment (-E) and warnings as errors (-W), in a child process so
    # that autodoc imports descend as the tests do (installed, or PYTHONPATH=src)
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
         str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert result.returncode == 0, (f"sphinx exited with {result.returncode}\n"
                                    + result.stdout[-3000:] + result.stderr[-3000:])
    assert (tmp_path / "html" / "api" / "callbacks.html").is_file()
    page = (tmp_path / "html" / "api" / "callbacks.html").read_text(encoding="utf-8")
    assert "ReduceLROnPlateau" in page and "Examples" in page
