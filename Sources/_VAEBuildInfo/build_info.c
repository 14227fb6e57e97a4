#include "VAEBuildInfo.h"
#if __has_include("build_commit.h")
#include "build_commit.h"
#endif
#ifndef VAE_DIST_COMMIT
#define VAE_DIST_COMMIT "unknown"
#endif

const char *vae_dist_build_commit(void) { return VAE_DIST_COMMIT; }
