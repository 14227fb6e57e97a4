#ifndef VAE_DIST_CZLIB_SHIM_H
#define VAE_DIST_CZLIB_SHIM_H
#include <zlib.h>
// inflateInit2 is a macro over inflateInit2_ with the header's version and struct size.
static inline int vae_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);  // 32: detect gzip or zlib header automatically
}
// Raw deflate (no header): the members of a zip file (.npz).
static inline int vae_inflate_init_raw(z_stream *stream) {
    return inflateInit2(stream, -15);
}
#endif
