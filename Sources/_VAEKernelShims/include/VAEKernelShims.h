// Vector operations Swift's SIMD types lack a fast path for, and the CPU feature query.
#ifndef VAE_KERNEL_SHIMS_H
#define VAE_KERNEL_SHIMS_H

// SIMD16<Float>.squareRoot() is applied lane by lane through libm's sqrtf (with its errno
// check); clang's elementwise builtin lowers to one vsqrtps per vector of the target
// (8 floats with AVX2, 16 with AVX-512: static inline, so each importer compiles its own).
typedef float vae_float16 __attribute__((ext_vector_type(16)));  // imported as SIMD16<Float>

static inline vae_float16 vae_sqrt16(vae_float16 x) { return __builtin_elementwise_sqrt(x); }

// The registers the kernel dispatch reads: CPUID leaf 1 ECX (FMA, OSXSAVE, AVX), leaf 7
// EBX (AVX2, AVX-512 F/DQ/CD/BW/VL) and XCR0 (which register states the OS saves; AVX-512
// code needs the opmask and zmm states too). All zero on other architectures.
#if defined(__x86_64__)
#include <cpuid.h>
static inline void vae_cpu_registers(unsigned *leaf1ECX, unsigned *leaf7EBX, unsigned long long *xcr0) {
    unsigned a, b, c, d;
    *leaf1ECX = 0; *leaf7EBX = 0; *xcr0 = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    *leaf1ECX = c;
    if (__get_cpuid_max(0, 0) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        *leaf7EBX = b;
    }
    if (*leaf1ECX & (1u << 27)) {  // OSXSAVE: xgetbv is available
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        *xcr0 = ((unsigned long long)hi << 32) | lo;
    }
}
#else
static inline void vae_cpu_registers(unsigned *leaf1ECX, unsigned *leaf7EBX, unsigned long long *xcr0) {
    *leaf1ECX = 0; *leaf7EBX = 0; *xcr0 = 0;
}
#endif
/// CPUs in this process's affinity mask (sched_getaffinity), or 0 where unknown.
int vae_affinity_count(void);

#endif
