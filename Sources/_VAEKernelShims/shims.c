// Most shims are header-only (include/VAEKernelShims.h); the ones that need _GNU_SOURCE
// declarations live here.
#define _GNU_SOURCE
#include "VAEKernelShims.h"
#if defined(__linux__)
#include <sched.h>
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
