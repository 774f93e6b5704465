"""Data larger than memory: X as an np.memmap or an h5py/zarr-style array.

``fit``, ``predict`` and ``evaluate`` accept an X that is not in memory: an
``np.memmap`` or any object with ``shape`` (2-D), a numeric ``dtype`` and
indexing by slices and by increasing index arrays (h5py ``Dataset``, zarr
``Array``). Such an X is wrapped in :class:`LazyRows` by ``check_X`` and
never copied whole: it is checked (finite values) in chunks once, and
training gathers the rows of each run of batches into a fixed buffer
(:class:`ChunkedTrainer`), so the memory used is the buffer's, about
``CHUNK_BYTES``, whatever the size of X.

An np.memmap's rows are read from its file with ``pread`` rather than
through the mapping (see :class:`_FileRows`), so the pages read never
count in this process's resident memory (they stay in the page cache).
The targets y are held in memory (one row of labels or targets per
sample: small next to X).
"""
import mmap
import os

import numpy as np

from descend._train import EpochRunner

CHUNK_BYTES = 32 << 20      # rows gathered at a time: about this many bytes of X


def is_lazy(X):
    """Whether X is to be read in chunks: an np.memmap, or a 2-D array-like
    with a numeric dtype that is not an ndarray (h5py, zarr)."""
    if isinstance(X, np.memmap):
        return X.ndim == 2
    if isinstance(X, np.ndarray) or not all(hasattr(X, a) for a in
                                             ("shape", "dtype", "__getitem__")):
        return False
    try:
        import scipy.sparse
        if scipy.sparse.issparse(X):
            return False
        return len(X.shape) == 2 and np.dtype(X.dtype).kind in "biuf"
    except TypeError:       # a dtype numpy does not know (torch, ...)
        return False


class LazyRows:
    """Rows [start, stop) of a lazily read 2-D array, read as `dtype`.

    Supports ``len``, ``shape``, ``dtype``, slicing (another LazyRows),
    :meth:`take` (rows by index, as a C-contiguous ndarray), :meth:`blocks`
    and ``np.asarray`` (reads the rows: only for small slices)."""

    def __init__(self, source, dtype, start=0, stop=None, name="X"):
        self.source = source
        self.name = name            # the argument's name, for errors
        self.dtype = np.dtype(dtype)
        self.start = start
        self.stop = source.shape[0] if stop is None else stop
        self._file = _FileRows.of(source)

    @property
    def shape(self):
        return (self.stop - self.start, self.source.shape[1])

    @property
    def ndim(self):
        return 2

    def __len__(self):
        return self.stop - self.start

    @property
    def chunk_rows(self):
        """Rows per chunk: about CHUNK_BYTES of X (at least one row)."""
        row_bytes = max(1, self.shape[1] * max(self.dtype.itemsize,
                                               np.dtype(self.source.dtype).itemsize))
        return max(1, CHUNK_BYTES // row_bytes)

    def __getitem__(self, key):
        if isinstance(key, (np.ndarray, list)):
            return self.take(key)
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("LazyRows supports contiguous slices and index arrays")
        start, stop, _ = key.indices(len(self))
        return LazyRows(self.source, self.dtype, self.start + start,
                        self.start + max(start, stop), self.name)

    def __array__(self, dtype=None, copy=None):
        block = self._read(slice(self.start, self.stop))
        return block if dtype is None else block.astype(dtype, copy=False)

    def take(self, rows):
        """X[rows] (indices into these rows, any order) as a C-contiguous array."""
        rows = np.asarray(rows, dtype=np.intp) + self.start
        if isinstance(self.source, np.memmap):
            return self._read(rows)
        # h5py needs increasing, unique indices: read those, then reorder
        unique, inverse = np.unique(rows, return_inverse=True)
        return self._read(unique)[inverse]

    def blocks(self, rows=None):
        """(first row, ndarray of rows) over all rows, CHUNK_BYTES at a time."""
        rows = rows or self.chunk_rows
        for first in range(0, len(self), rows):
            yield first, self._read(slice(self.start + first,
                                          min(self.start + first + rows, self.stop)))

    def _read(self, index):
        if self._file is not None:
            raw = self._file.read(index)
        else:
            raw = np.asarray(self.source[index])
        # an array-like whose rows are not what its shape and dtype say would
        # be broadcast into the buffers, or strings parsed: never silently
        n_rows = index.stop - index.start if isinstance(index, slice) else len(index)
        if raw.shape != (n_rows, self.source.shape[1]) or raw.dtype.kind not in "biuf":
            raise ValueError(f"{self.name} says it has shape {tuple(self.source.shape)} and "
                             f"dtype {self.source.dtype}, but {n_rows} of its rows came back "
                             f"with shape {raw.shape} and dtype {raw.dtype}")
        with np.errstate(over="ignore"):    # float32 overflow: inf, which check_X reports
            return np.ascontiguousarray(raw, dtype=self.dtype)


class _FileRows:
    """Rows of a C-ordered np.memmap read from its file with pread, not
    through the mapping: a page fault on a mapping maps the neighbouring
    cached pages too (fault-around), so gathering random rows through it
    would map (and count in this process's memory) most of the file."""

    def __init__(self, path, position, row_bytes, dtype, n_cols):
        self.path, self.position, self.row_bytes = path, position, row_bytes
        self.dtype, self.n_cols = dtype, n_cols

    @classmethod
    def of(cls, source):
        """A reader for `source` if it is a C-ordered np.memmap of a file, else None."""
        handle = getattr(source, "_mmap", None)
        if (not isinstance(source, np.memmap) or handle is None or source.filename is None
                or source.strides != (source.shape[1] * source.itemsize, source.itemsize)
                or not hasattr(os, "preadv")):
            return None
        # file position of source[0, 0]: the mapping starts at the granularity below
        # np.memmap's offset, and source may be a view into it
        start = source.offset - source.offset % mmap.ALLOCATIONGRANULARITY
        mapped = np.frombuffer(handle, dtype=np.uint8)
        position = start + source.ctypes.data - mapped.ctypes.data
        return cls(source.filename, position, source.strides[0], source.dtype,
                   source.shape[1])

    def read(self, index):
        """Rows `index` (a slice with step 1, or an index array) as an ndarray."""
        if isinstance(index, slice):
            rows = np.arange(index.start, index.stop)
        else:
            rows = np.asarray(index, dtype=np.intp)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        out = np.empty((len(rows), self.n_cols), self.dtype)
        # runs of consecutive rows: one read each (a slice is one run)
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        with open(self.path, "rb", buffering=0) as f:     # once per chunk: no fd kept
            for first, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
                view = memoryview(out[first:stop]).cast("B")
                done = os.preadv(f.fileno(), [view],
                                 self.position + int(ordered[first]) * self.row_bytes)
                if done != len(view):
                    raise OSError(f"short read from {self.path}: {done} of {len(view)} "
                                  "bytes")
        if np.all(order[:-1] < order[1:]):
            return out
        result = np.empty_like(out)
        result[order] = out
        return result





class ChunkedTrainer:
    """Mixin for descend.training.Trainer: the epoch's batches run a chunk at
    a time over a buffer holding the gathered rows of a LazyRows X.

    Each chunk holds a whole number of batches, so the batches, their order
    and the updates are those of the in-memory fit; dropout masks are drawn
    per chunk (a seed per chunk), so with dropout the run differs from the
    in-memory one as another seed would."""

    def make_runner(self, X, targets, labels, *args, **kwargs):
        batch_size = self.config.batch_size
        rows = max(batch_size, X.chunk_rows // batch_size * batch_size)
        rows = min(rows, -(-len(X) // batch_size) * batch_size, max(len(X), batch_size))
        self.chunk = rows
        first = np.arange(min(rows, len(X)))
        # the buffer starts with X's first rows: the plan sees the data's density
        self.x_buffer = np.zeros((rows, X.shape[1]), X.dtype)
        self.x_buffer[:len(first)] = X.take(first)
        self.t_buffer = None if targets is None else np.zeros((rows,) + targets.shape[1:],
                                                              targets.dtype)
        self.l_buffer = None if labels is None else np.zeros(rows, labels.dtype)
        # the runner reads the weights of the buffer's rows: refilled per chunk
        weights = kwargs.pop("sample_weight", None)
        self.w_buffer = None if weights is None else np.zeros(rows, np.float64)
        if weights is not None:
            self.w_buffer[:len(first)] = weights[first]
        return EpochRunner(self.x_buffer, self.t_buffer, self.l_buffer, *args,
                           sample_weight=self.w_buffer, **kwargs)

    def train_epoch(self, order, epoch_seed, progress, progress_every):
        config, optimizer = self.config, self.model.optimizer
        sums = ("loss_sum", "penalty_sum", "n_correct", "weight_sum")
        total = {"loss_sum": 0.0, "penalty_sum": 0.0, "n_batches": 0, "n_correct": 0,
                 "weight_sum": 0.0, "step": optimizer.iterations, "finite": True,
                 "n_samples": 0}
        for first in range(0, len(order), self.chunk):
            rows = order[first:first + self.chunk]
            m = len(rows)
            self.x_buffer[:m] = config.X.take(rows)
            if self.t_buffer is not None:
                self.t_buffer[:m] = config.targets[rows]
            if self.l_buffer is not None:
                self.l_buffer[:m] = config.labels[rows]
            if self.w_buffer is not None:
                self.w_buffer[:m] = config.weights[rows]
            seed = epoch_seed if first == 0 else int(np.random.SeedSequence(
                [epoch_seed, first]).generate_state(1, np.uint64)[0])
            # the loop goes on from the earlier chunks' sums, batch by batch:
            # the bits of the in-memory fit's sums
            result = super().train_epoch(np.arange(m, dtype=np.intp), seed,
                                         _shifted(progress, total["n_batches"]),
                                         progress_every, tuple(total[key] for key in sums),
                                         total["n_batches"])
            total.update((key, result[key]) for key in sums)
            total["n_batches"] += result["n_batches"]
            total["n_samples"] += result["n_samples"]
            total["step"] = optimizer.iterations = result["step"]
            if not result["finite"]:
                total["finite"] = False
                break
        return total


def _shifted(progress, batches_before):
    """The progress callback of a chunk: its batches counted from the epoch's
    start (the running loss already covers the earlier chunks)."""
    if progress is None:
        return None

    def report(batches, running_loss):
        progress(batches_before + batches, running_loss)
    return report


def check_lazy_X(X, dtype, name, n_features):
    """A LazyRows over X after the checks of check_X, reading X once in chunks."""
    from descend._validation import all_finite
    shape = tuple(X.shape)
    if not all(isinstance(size, (int, np.integer)) for size in shape):
        raise TypeError(f"{name}.shape must be two ints, got {X.shape!r}")
    if min(shape) < 0:
        raise ValueError(f"{name}.shape must be two ints >= 0, got {X.shape!r}")
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 samples (shape {shape})")
    if shape[1] == 0:
        raise ValueError(f"{name} has 0 features (shape {shape})")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(
            f"{name} has {shape[1]} features, but the network expects {n_features}")
    rows = LazyRows(X, dtype, name=name)
    scanned = rows
    part = getattr(X, "scan_part", None)    # (rank, size): a rank checks its share only
    if part is not None:
        scanned = rows[len(rows) * part[0] // part[1]:len(rows) * (part[0] + 1) // part[1]]
    bad = 0
    try:
        for _, block in scanned.blocks():
            if not all_finite(block):
                bad += int(block.size - np.count_nonzero(np.isfinite(block)))
    except (IndexError, OSError) as exc:
        # fewer rows than its shape says: h5py's IndexError, or _FileRows' short
        # read of a memmap whose file was truncated after it was opened
        raise ValueError(f"{name} says it has shape {shape}, but reading its rows failed: "
                         f"{exc}") from None
    if bad:
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return rows
