#ifndef VAE_DIST_CPNG_SHIM_H
#define VAE_DIST_CPNG_SHIM_H
// libpng reports an error by calling its error function, which must not return: libpng's way
// is a longjmp back to a setjmp the caller made. Swift cannot make a setjmp, so this shim does:
// vae_png_decode returns 0 or -1 with libpng's message, never crashes or exits on a bad file.
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    jmp_buf jump;
    const unsigned char *data;
    size_t size, position;
    char *message;
    size_t messageSize;
    unsigned char *image;       // [height, width, channels after the transforms]
    png_bytep *rows;
} vae_png_context;

static inline void vae_png_error(png_structp png, png_const_charp message) {
    vae_png_context *context = (vae_png_context *)png_get_error_ptr(png);
    snprintf(context->message, context->messageSize, "%s", message);
    longjmp(context->jump, 1);
}

static inline void vae_png_warning(png_structp png, png_const_charp message) { (void)png; (void)message; }

static inline void vae_png_read(png_structp png, png_bytep out, size_t count) {
    vae_png_context *context = (vae_png_context *)png_get_io_ptr(png);
    if (count > context->size - context->position) png_error(png, "the file ends early (truncated)");
    memcpy(out, context->data + context->position, count);
    context->position += count;
}

/// Decodes the PNG in `data` into `out` (height x width x channels bytes, HWC) where channels is
/// 1 for gray and gray + alpha, 3 for RGB, RGBA and palette images: palettes and bit depths
/// below 8 expanded, 16 bits scaled to 8 (png_set_scale_16: round(v / 257)), alpha composited
/// on black (v * a / 255, rounded). With `out` NULL only the header is read (the size and
/// channels). Returns 0, or -1 with `message` set.
static inline int vae_png_decode(const unsigned char *data, size_t size, unsigned char *out, size_t outCapacity,
                                 int *width, int *height, int *channels, char *message, size_t messageSize) {
    vae_png_context context;
    memset(&context, 0, sizeof context);
    context.data = data; context.size = size; context.message = message; context.messageSize = messageSize;
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        snprintf(message, messageSize, "not a PNG file (no PNG signature)");
        return -1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, vae_png_error, vae_png_warning);
    if (!png) { snprintf(message, messageSize, "out of memory"); return -1; }
    png_infop info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); snprintf(message, messageSize, "out of memory"); return -1; }
    if (setjmp(context.jump)) {
        free(context.image); free(context.rows);
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    png_set_read_fn(png, &context, vae_png_read);
    // Images up to 2^28 pixels (16384 x 16384); larger ones are refused before any allocation.
    png_set_user_limits(png, 1 << 16, 1 << 16);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int colorType = png_get_color_type(png, info);
    if ((unsigned long long)w * h > (1ull << 28)) png_error(png, "image larger than 2^28 pixels");
    *width = (int)w; *height = (int)h;
    *channels = (colorType & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    if (!out) { png_destroy_read_struct(&png, &info, NULL); return 0; }
    if (outCapacity < (size_t)w * h * (size_t)*channels) png_error(png, "output buffer too small");

    if (colorType == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (colorType == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (png_get_bit_depth(png, info) == 16) png_set_scale_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int stored = png_get_channels(png, info);     // 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA
    if (png_get_bit_depth(png, info) != 8 || stored < 1 || stored > 4) png_error(png, "unexpected format after expansion");
    context.image = (unsigned char *)malloc((size_t)w * h * stored);
    context.rows = (png_bytep *)malloc(sizeof(png_bytep) * h);
    if (!context.image || !context.rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h; y++) context.rows[y] = context.image + (size_t)y * w * stored;
    png_read_image(png, context.rows);
    png_read_end(png, NULL);

    int colour = stored >= 3 ? 3 : 1, alpha = stored == 2 || stored == 4;
    if (colour != *channels) png_error(png, "unexpected channel count after expansion");
    size_t pixels = (size_t)w * h;
    for (size_t p = 0; p < pixels; p++) {
        const unsigned char *in = context.image + p * stored;
        unsigned char *o = out + p * colour;
        unsigned a = alpha ? in[colour] : 255;
        for (int c = 0; c < colour; c++) o[c] = alpha ? (unsigned char)((in[c] * a + 127) / 255) : in[c];
    }
    free(context.image); free(context.rows);
    png_destroy_read_struct(&png, &info, NULL);
    return 0;
}
#endif
