# The x86 MXCSR register, read and written from C (descend/_fpenv.pyx sets
# flush-to-zero for a block of user code; descend/_optim.pyx around the
# updates of optimizers with state). Where there is no MXCSR (not x86 with
# SSE2) reading gives 0 and writing does nothing.
cdef extern from *:
    """
    #if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
    #include <xmmintrin.h>
    #define DESCEND_HAVE_MXCSR 1
    static unsigned int descend_get_mxcsr(void) { return _mm_getcsr(); }
    static void descend_set_mxcsr(unsigned int value) { _mm_setcsr(value); }
    #else
    #define DESCEND_HAVE_MXCSR 0
    static unsigned int descend_get_mxcsr(void) { return 0; }
    static void descend_set_mxcsr(unsigned int value) { (void)value; }
    #endif
    /* flush-to-zero (bit 15) and denormals-are-zero (bit 6) */
    #define DESCEND_FLUSH_BITS 0x8040u
    """
    bint DESCEND_HAVE_MXCSR
    unsigned int DESCEND_FLUSH_BITS
    unsigned int descend_get_mxcsr() noexcept nogil
    void descend_set_mxcsr(unsigned int value) noexcept nogil
