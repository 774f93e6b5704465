"""Backward-compatible home of ``Sequential``: the model now lives in
:mod:`descend.model`, its training in :mod:`descend.training` and the
per-layer driver in :mod:`descend.reference`. Importing from here keeps
working.
"""
from descend.model import CHUNK_ROWS, PARALLEL_MIN_ROWS, Sequential, _r2  # noqa: F401
from descend.layers import dropout as _dropout  # noqa: F401
from descend.reference import check_dropout_args as _check_dropout_args  # noqa: F401
from descend.training import (DivergenceError, History, _format_logs,  # noqa: F401
                              _progress_bar, _TqdmBar)

__all__ = ["Sequential", "DivergenceError", "History"]
