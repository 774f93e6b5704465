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
That is done only where the file's bytes are the array's: a shared
mapping (modes "r", "r+", "w+") whose file is still the one the path
names. A copy-on-write memmap (mode "c") may hold changes this process
made that its file does not, and a file unlinked or replaced after it was
mapped is not the array's: those rows are read through the mapping (the
array's own memory, whose pages then count in resident memory).
The targets y are held in memory (one row of labels or targets per
sample: small next to X).
"""
import mmap
import os

import numpy as np

from descend._train import EpochRunner

CHUNK_BYTES = 32 << 20      # rows gathered at a time: about this many bytes of X
_FIND = object()            # LazyRows(file_rows=): look for a file reader


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

    def __init__(self, source, dtype, start=0, stop=None, name="X", file_rows=_FIND):
        self.source = source
        self.name = name            # the argument's name, for errors
        self.dtype = np.dtype(dtype)
        self.start = start
        self.stop = source.shape[0] if stop is None else stop
        # a slice takes its parent's reader: finding one reads /proc/self/maps
        self._file = _FileRows.of(source) if file_rows is _FIND else file_rows

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
                        self.start + max(start, stop), self.name, self._file)

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
        # None from the file reader: its file is no longer the mapped one
        raw = None if self._file is None else self._file.read(index)
        if raw is None:
            if isinstance(self.source, np.memmap):
                _check_mapped_size(self.source)
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
    would map (and count in this process's memory) most of the file.

    Only where the file's bytes are the array's. The mapping must be shared
    (modes "r", "r+", "w+": the file's page-cache pages themselves, which
    pread reads too); a copy-on-write one (mode "c") holds private copies
    of the pages this process changed, which its file never sees. And the
    path must still name the mapped file: each read opens it and compares
    its device and inode with those /proc/self/maps gives for the mapping
    (the inode cannot be reused while mapped); after an unlink or a
    replacement by rename, :meth:`read` returns None and the rows are read
    through the mapping."""

    def __init__(self, path, position, row_bytes, dtype, n_cols, identity):
        self.path, self.position, self.row_bytes = path, position, row_bytes
        self.dtype, self.n_cols, self.identity = dtype, n_cols, identity

    @classmethod
    def of(cls, source):
        """A reader for `source` if it is a C-ordered np.memmap of a file in a
        shared mapping, else None (its rows are then read through the mapping)."""
        if (not isinstance(source, np.memmap) or getattr(source, "_mmap", None) is None
                or source.filename is None or getattr(source, "mode", None) == "c"
                or source.strides != (source.shape[1] * source.itemsize, source.itemsize)
                or not hasattr(os, "preadv")):
            return None
        first = source.ctypes.data
        mapping = _mapping_at(first)
        if mapping is None:     # no /proc/self/maps (not Linux): the file is unverifiable
            return None
        start, end, permissions, offset, identity = mapping
        # "s": shared (a mode "c" array made by other means is "p", private);
        # all rows in this one mapping, so its file offset places them
        if permissions[3:4] != b"s" or first + source.shape[0] * source.strides[0] > end:
            return None
        return cls(source.filename, offset + first - start, source.strides[0],
                   source.dtype, source.shape[1], identity)

    def read(self, index):
        """Rows `index` (a slice with step 1, or an index array) as an ndarray,
        or None if the path no longer names the mapped file."""
        try:
            # once per chunk, no fd kept; O_NONBLOCK: a FIFO put at the path
            # must not block the open (it fails the identity check below)
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError:         # unlinked, or unreadable now: the mapping still is
            return None
        try:
            status = os.fstat(fd)
            if (status.st_dev, status.st_ino) != self.identity:
                return None
            return self._pread(fd, index)
        finally:
            os.close(fd)

    def _pread(self, fd, index):
        """Rows `index` read from the open file `fd`, in the order asked."""
        if isinstance(index, slice):
            rows = np.arange(index.start, index.stop)
        else:
            rows = np.asarray(index, dtype=np.intp)
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        out = np.empty((len(rows), self.n_cols), self.dtype)
        # runs of consecutive rows: one read each (a slice is one run)
        breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
        for first, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
            view = memoryview(out[first:stop]).cast("B")
            done = os.preadv(fd, [view], self.position + int(ordered[first]) * self.row_bytes)
            if done != len(view):
                raise OSError(f"short read from {self.path}: {done} of {len(view)} bytes")
        if np.all(order[:-1] < order[1:]):
            return out
        result = np.empty_like(out)
        result[order] = out
        return result


def _mapping_at(address):
    """(start, end, permissions, file offset, (device, inode)) of the mapping
    of this process that holds `address`, from /proc/self/maps; None where
    that file cannot be read or no mapping holds the address."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            for line in maps:
                span, permissions, offset, device, inode = line.split(maxsplit=5)[:5]
                start, end = (int(part, 16) for part in span.split(b"-"))
                if start <= address < end:
                    major, minor = (int(part, 16) for part in device.split(b":"))
                    return (start, end, permissions, int(offset, 16),
                            (os.makedev(major, minor), int(inode)))
    except (OSError, ValueError):
        return None
    return None


def _check_mapped_size(source):
    """OSError if the file of np.memmap `source` is now shorter than its
    mapping: touching a mapped page past the file's end kills the process
    (SIGBUS), and truncation drops even the copy-on-write pages. (A
    truncation between this check and the read still can.)"""
    handle = source._mmap
    if handle is None or source.offset is None:
        return
    try:
        size = handle.size()    # fstat of the mmap's own fd: the mapped file, not the path
        end = source.offset - source.offset % mmap.ALLOCATIONGRANULARITY + len(handle)
    except (OSError, ValueError):   # no fd kept (anonymous), or closed
        return
    if size < end:
        raise OSError(f"{source.filename} is {size} bytes, shorter than its mapping "
                      f"({end} bytes): truncated after it was mapped")


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
        # fewer rows than its shape says: h5py's IndexError, or (a memmap whose
        # file was truncated after it was opened) _FileRows' short read or
        # _check_mapped_size's refusal to touch pages past the file's end
        raise ValueError(f"{name} says it has shape {shape}, but reading its rows failed: "
                         f"{exc}") from None
    if bad:
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return rows
