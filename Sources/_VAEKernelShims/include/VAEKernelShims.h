// Vector operations Swift's SIMD types lack a fast path for. SIMD16<Float>.squareRoot()
// is applied lane by lane through libm's sqrtf (with its errno check); clang's
// elementwise builtin lowers to one vsqrtps per 8 floats (or the target's equivalent).
#ifndef VAE_KERNEL_SHIMS_H
#define VAE_KERNEL_SHIMS_H

typedef float vae_float16 __attribute__((ext_vector_type(16)));  // imported as SIMD16<Float>

static inline vae_float16 vae_sqrt16(vae_float16 x) { return __builtin_elementwise_sqrt(x); }

/// CPUs in this process's affinity mask (sched_getaffinity), or 0 where unknown.
int vae_affinity_count(void);

#endif
