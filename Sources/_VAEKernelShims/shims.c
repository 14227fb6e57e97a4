// Most shims are header-only (include/VAEKernelShims.h); the ones that need _GNU_SOURCE
// declarations live here.
#define _GNU_SOURCE
#include "VAEKernelShims.h"
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__x86_64__)
#include <stdio.h>
#include <stdlib.h>
#endif

int vae_affinity_count(void) {
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
    return CPU_COUNT(&set);
#else
    return 0;
#endif
}

#if defined(__x86_64__)
// Every Swift target but this one is compiled for x86-64-v3 (AVX2 + FMA; Package.swift), so on an
// older CPU the first vector instruction would kill the process with SIGILL. This file alone is
// compiled for the baseline, and its constructor runs before any of that code: on a CPU (or OS)
// without AVX2, FMA and saved ymm state it refuses with one line and exit code 1.
__attribute__((constructor)) static void vae_require_x86_64_v3(void) {
    unsigned leaf1ECX, leaf7EBX;
    unsigned long long xcr0;
    vae_cpu_registers(&leaf1ECX, &leaf7EBX, &xcr0);
    int fma = (leaf1ECX >> 12) & 1, avx = (leaf1ECX >> 28) & 1, avx2 = (leaf7EBX >> 5) & 1;
    int ymmSaved = (xcr0 & 6) == 6;  // XCR0 bits 1 (xmm) and 2 (ymm)
    if (fma && avx && avx2 && ymmSaved) return;
    fprintf(stderr, "vae-dist: error: this CPU lacks %s, which this build requires (x86-64-v3: AVX2 + FMA,"
                    " every x86 server CPU since 2013); run it on such a CPU\n",
            !avx2 ? "AVX2" : !fma ? "FMA" : !avx ? "AVX" : "the operating system's support for AVX registers");
    exit(1);
}
#endif
