# Runtime CPU dispatch, shared by every module with hand-written hot loops.
#
# A wheel runs on any x86-64, so the build uses no -march flag: the baseline
# is SSE2. Each hot loop is compiled three times instead, portable C, AVX2 +
# FMA and AVX-512 (F), and the widest the CPU (and the OS, for the wide
# registers' state) supports is chosen at import, as BLAS libraries choose
# their kernels. GCC and Clang get the ISA per function from a target
# attribute and vectorize the loop for it; MSVC (which does not vectorize for
# an ISA it was not told to target) gets the portable loops, and the
# intrinsics of _sparse.pyx, which it compiles for any ISA anywhere.
#
# The build passes -ffp-contract=off (setup.py): no compiler fuses a * b + c
# into one FMA on its own, so the elementwise loops give the same bits in
# every version (vector lanes are independent, and sqrt and division are
# correctly rounded): a run reproduces on a CPU of the other kind. Loops
# that use FMA do it with intrinsics, in every wide version alike.
#
# Each module that cimports this file gets its own copy of the C below (it
# is all static): call simd_init() once at import, then dispatch on
# simd_level, or set it with simd_use() (the tests run every version).
cdef extern from *:
    r"""
    #ifndef DESCEND_SIMD_DEFINED
    #define DESCEND_SIMD_DEFINED
    #if (defined(__GNUC__) || defined(_MSC_VER)) && \
        (defined(__x86_64__) || defined(__i386__) || defined(_M_X64) || defined(_M_IX86))
    #define DESCEND_X86 1
    #include <immintrin.h>
    #else
    #define DESCEND_X86 0
    #endif
    #if defined(_MSC_VER)
    #define DESCEND_RESTRICT __restrict    /* MSVC's C has no C99 restrict before C11 mode */
    #define DESCEND_TARGET(isa)            /* MSVC: intrinsics of any ISA anywhere */
    #include <intrin.h>
    static int descend_ctz(unsigned x) { unsigned long i; _BitScanForward(&i, x); return (int)i; }
    static int descend_popcount(unsigned x) { return (int)__popcnt(x); }
    #else
    #define DESCEND_RESTRICT restrict
    #define DESCEND_TARGET(isa) __attribute__((target(isa)))
    #define descend_ctz(x) __builtin_ctz(x)
    #define descend_popcount(x) __builtin_popcount(x)
    #endif
    #include <math.h>

    enum { DESCEND_PORTABLE = 0, DESCEND_AVX2 = 1, DESCEND_AVX512 = 2 };

    /* ---- what the CPU (and the OS, for the wide registers' state) has */
    #if DESCEND_X86 && defined(_MSC_VER)
    static int descend_cpu_has(int isa) {
        int info[4];
        unsigned long long xcr0;
        __cpuid(info, 0);
        if (info[0] < 7) return 0;
        __cpuid(info, 1);
        if (!(info[2] & (1 << 27)) || !(info[2] & (1 << 12))) return 0;  /* OSXSAVE, FMA */
        xcr0 = _xgetbv(0);
        if ((xcr0 & 0x6) != 0x6) return 0;                  /* XMM and YMM state */
        __cpuidex(info, 7, 0);
        if (!(info[1] & (1 << 5))) return 0;                /* AVX2 */
        if (isa == DESCEND_AVX2) return 1;
        return (info[1] & (1 << 16)) && (xcr0 & 0xE6) == 0xE6;  /* AVX-512F, ZMM state */
    }
    #elif DESCEND_X86
    static int descend_cpu_has(int isa) {
        __builtin_cpu_init();
        if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
        return isa == DESCEND_AVX2 || __builtin_cpu_supports("avx512f");
    }
    #else
    static int descend_cpu_has(int isa) { (void)isa; return 0; }
    #endif

    /* the level the loops of this module dispatch on */
    static int descend_simd_level = DESCEND_PORTABLE;

    /* use the loops of `isa`, or the widest below it the CPU has; returns the one used */
    static int descend_simd_use(int isa) {
        descend_simd_level = DESCEND_PORTABLE;
        if (isa >= DESCEND_AVX512 && descend_cpu_has(DESCEND_AVX512))
            descend_simd_level = DESCEND_AVX512;
        else if (isa >= DESCEND_AVX2 && descend_cpu_has(DESCEND_AVX2))
            descend_simd_level = DESCEND_AVX2;
        return descend_simd_level;
    }

    /* Define NAME_portable, NAME_avx2 and NAME_avx512 from one body: BODY(ISA,
       ATTRIBUTE) is a macro that defines one function, named with ##ISA and
       preceded by ATTRIBUTE (empty for the portable one). */
    #define DESCEND_NO_ATTRIBUTE
    #if DESCEND_X86
    #define DESCEND_THREE_VERSIONS(BODY)                                        \
        BODY(portable, DESCEND_NO_ATTRIBUTE)                                    \
        BODY(avx2, DESCEND_TARGET("avx2,fma"))                                  \
        BODY(avx512, DESCEND_TARGET("avx512f"))
    #define DESCEND_PICK(name) (descend_simd_level == DESCEND_AVX512 ? name##_avx512 : \
                                descend_simd_level == DESCEND_AVX2 ? name##_avx2 : name##_portable)
    #else
    #define DESCEND_THREE_VERSIONS(BODY) BODY(portable, DESCEND_NO_ATTRIBUTE)
    #define DESCEND_PICK(name) name##_portable
    #endif
    #endif
    """
    int PORTABLE "DESCEND_PORTABLE"
    int AVX2 "DESCEND_AVX2"
    int AVX512 "DESCEND_AVX512"
    int cpu_has "descend_cpu_has"(int isa) noexcept nogil
    int simd_use "descend_simd_use"(int isa) noexcept nogil
    int simd_level "descend_simd_level"


cdef inline str use_isa_named(str name):
    """simd_use by name ("avx512", "avx2", "portable"): the name of the
    loops now in use (the widest the CPU has at or below the one asked for).
    For tests and benchmarks: not while a fit runs."""
    names = ("portable", "avx2", "avx512")
    if name not in names:
        raise ValueError(f"name must be one of {sorted(names)}, got {name!r}")
    return names[simd_use(names.index(name))]
