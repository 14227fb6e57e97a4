#ifndef VAE_DIST_CJPEG_SHIM_H
#define VAE_DIST_CJPEG_SHIM_H
// libjpeg reports a fatal error through error_exit, which by default prints and calls exit();
// this shim's error_exit longjmps back instead, and vae_jpeg_decode returns -1 with libjpeg's
// message. A warning (libjpeg's "Premature end of JPEG file" for a truncated file, corrupt data
// it would fill with gray) is an error here too: a damaged image is refused, not trained on.
#include <stdio.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <stdlib.h>
#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr manager;  // first: libjpeg's pointer to it is a pointer to this
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int warned;
} vae_jpeg_error;

static inline void vae_jpeg_error_exit(j_common_ptr info) {
    vae_jpeg_error *error = (vae_jpeg_error *)info->err;
    (*info->err->format_message)(info, error->message);
    longjmp(error->jump, 1);
}

static inline void vae_jpeg_emit_message(j_common_ptr info, int level) {
    vae_jpeg_error *error = (vae_jpeg_error *)info->err;
    if (level < 0 && !error->warned) {   // a warning (level >= 0: trace messages, ignored)
        (*info->err->format_message)(info, error->message);
        error->warned = 1;
    }
}

/// Decodes the baseline or progressive JPEG in `data` into `out` (height x width x channels, HWC):
/// channels 1 for a gray JPEG, 3 (RGB) for YCbCr and RGB; CMYK is refused. With `out` NULL only
/// the header is read. Returns 0, or -1 with `message` set.
static inline int vae_jpeg_decode(const unsigned char *data, size_t size, unsigned char *out, size_t outCapacity,
                                  int *width, int *height, int *channels, char *message, size_t messageSize) {
    struct jpeg_decompress_struct info;
    vae_jpeg_error error;
    memset(&error, 0, sizeof error);
    info.err = jpeg_std_error(&error.manager);
    error.manager.error_exit = vae_jpeg_error_exit;
    error.manager.emit_message = vae_jpeg_emit_message;
    if (setjmp(error.jump)) {
        snprintf(message, messageSize, "%s", error.message);
        jpeg_destroy_decompress(&info);
        return -1;
    }
    jpeg_create_decompress(&info);
    jpeg_mem_src(&info, data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    if (info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK) {
        snprintf(error.message, sizeof error.message, "a CMYK JPEG; save it as RGB or gray");
        longjmp(error.jump, 1);
    }
    if ((unsigned long long)info.image_width * info.image_height > (1ull << 28)) {
        snprintf(error.message, sizeof error.message, "image larger than 2^28 pixels");
        longjmp(error.jump, 1);
    }
    *width = (int)info.image_width; *height = (int)info.image_height;
    *channels = info.num_components == 1 ? 1 : 3;
    if (!out) { jpeg_destroy_decompress(&info); return 0; }
    info.out_color_space = *channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&info);
    size_t stride = (size_t)info.output_width * info.output_components;
    if (info.output_components != *channels || outCapacity < stride * info.output_height) {
        snprintf(error.message, sizeof error.message, "unexpected output format");
        longjmp(error.jump, 1);
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = out + stride * info.output_scanline;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    if (error.warned) {
        snprintf(message, messageSize, "%s", error.message);
        jpeg_destroy_decompress(&info);
        return -1;
    }
    jpeg_destroy_decompress(&info);
    return 0;
}
#endif
