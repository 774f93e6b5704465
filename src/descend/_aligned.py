"""Arrays whose data start on a 64-byte boundary.

NumPy's allocator aligns data to 16 bytes. The hand-written loops (the
sparse first layer, bias and activation, the optimizer updates) load whole
vectors of 64 bytes (AVX-512) or 32 (AVX2); on 16-byte aligned rows most
of those loads straddle two cache lines, each such load costs two, and the
sparse first layer ran 25-35% slower than on the same data aligned (MNIST
rows, 784 -> 256, float32, one thread, Intel Xeon, Sapphire Rapids class:
forward 2.2-2.9 against 1.7-1.9 us per row, kernel gradient 1.9-2.7 against
1.4-1.6). So the arrays those loops read and write most (the parameters,
their gradients and optimizer state, and the training loop's batch
buffers) are allocated here. 64 bytes is a cache line on every x86-64 CPU
and an AVX-512 vector; rows of a 2-D array start on the boundary too when
a row's bytes are a multiple of 64 (for example 256 float32 columns).

Results never depend on alignment (the loops use unaligned loads, which
read the same values); only their speed does.
"""
import weakref

import numpy as np

ALIGNMENT = 64      # bytes

# realigned's copies, by the id of the array each copies (while it lives)
_copies = {}


def empty(shape, dtype):
    """An uninitialized C-contiguous array of `shape` and `dtype` whose data
    start on an ALIGNMENT-byte boundary (a view into a slightly larger
    buffer; an array of no elements has no data to align)."""
    dtype = np.dtype(dtype)
    shape = (shape,) if np.isscalar(shape) else tuple(shape)
    n_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(n_bytes + ALIGNMENT, np.uint8)
    start = -buffer.ctypes.data % ALIGNMENT
    return buffer[start:start + n_bytes].view(dtype).reshape(shape)


def full(shape, dtype, value):
    """As :func:`empty`, every element set to `value`."""
    array = empty(shape, dtype)
    array.fill(value)
    return array


def copy(array, dtype=None):
    """An aligned C-contiguous copy of `array` (in `dtype` if given)."""
    array = np.asarray(array)
    out = empty(array.shape, array.dtype if dtype is None else dtype)
    np.copyto(out, array, casting="unsafe" if dtype is not None else "no")
    return out


def realigned(array):
    """`array` itself if its data are aligned (and C-contiguous and
    writeable), else an aligned copy: for arrays that nothing refers to yet,
    such as unpickled ones (out-of-band pickle buffers may be read-only;
    in-band pickles give writeable arrays).

    While `array` lives, every call gives the same copy: an array that two
    objects of one pickle or deepcopy share (a kernel two layers share) is
    unpickled once, and stays one array when each of them realigns it."""
    if array.flags.c_contiguous and array.flags.writeable and is_aligned(array):
        return array
    key = id(array)
    if key not in _copies:
        # of the array's class (np.matrix, np.memmap), which pickle keeps
        _copies[key] = copy(array).view(type(array))
        # dropped as `array` dies, before its id can name another object
        weakref.finalize(array, _copies.pop, key, None)
    return _copies[key]


def shallow_copy(obj):
    """What copy.copy gives for `obj` (a new instance sharing its __dict__'s
    values), for classes whose __setstate__ realigns unpickled arrays: their
    __copy__, so that a shallow copy shares the arrays it would realign."""
    copied = type(obj).__new__(type(obj))
    copied.__dict__.update(obj.__dict__)
    return copied


def is_aligned(array):
    """Whether `array`'s data start on an ALIGNMENT-byte boundary."""
    return array.ctypes.data % ALIGNMENT == 0
