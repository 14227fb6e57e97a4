// The source commit this binary was built from. Launch/setup.sh writes build_commit.h (gitignored)
// with `git rev-parse HEAD` (plus "-dirty" when the tree has changes) before `swift build`; a
// build without setup.sh, or outside git, reports "unknown".
#ifndef VAE_BUILD_INFO_H
#define VAE_BUILD_INFO_H
const char *vae_dist_build_commit(void);
#endif
