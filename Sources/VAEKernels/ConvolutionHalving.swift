// col2im onto a few channels at stride 2 (the decoder's last transposed convolution onto a
// 64 x 64 image of 1 or 3 channels: kernel 4, stride 2, padding 1), the image row by row.
//
// col2imScatter adds each patch's kernel rows into the image, 4 pixels (4 C floats) each; at
// stride 2 the next patch's run overlaps the last one's by 2 pixels, so each vector load waits
// on a store still in flight that it half covers (store-to-load forwarding fails). Here the
// runs that reach one image row are taken in order, and each pair of pixels (2 ox - 1, 2 ox)
// gets its two terms in registers: first from patch ox - 1 (taps 2 and 3), then from patch ox
// (taps 0 and 1), stored once. A pixel's terms keep the order of col2im (the patches' positions
// in row order: for one image row, all from one output row, by ox), each added in turn to the
// image's value: the same bits.

extension ConvGeometry {
    /// Fewer than 16 channels (where col2im scatters), kernel 4, stride 2, padding 1, and an
    /// image twice the output's width: the geometry col2imHalving serves.
    @inlinable public var isScatteredHalving: Bool {
        !col2imGathers && kernel == 4 && stride == 2 && padding == 1 && inWidth == 2 * outWidth && outWidth >= 2
    }
}

/// col2imScatter for a geometry with isScatteredHalving: the image of each example in
/// `examples` zeroed, then its rows' terms added pixel pair by pixel pair (see above).
@inlinable
func col2imHalving(_ image: UnsafeMutablePointer<Float>, _ cols: UnsafePointer<Float>, _ g: ConvGeometry,
                   examples: Range<Int>) {
    let c = g.inChannels, wo = g.outWidth, w = g.inWidth, patch = g.patch, run = 4 * c, pair = 2 * c
    for n in examples {
        let example = image + n * g.imageSize
        example.update(repeating: 0, count: g.imageSize)
        var patches = cols + (n - examples.lowerBound) * g.positions * patch
        for oy in 0..<g.outHeight {
            for ky in 0..<4 {
                let iy = oy * 2 - 1 + ky
                if iy < 0 || iy >= g.inHeight { continue }
                // Patch ox's run for this kernel row: tap kx's channels at p[ox * patch + kx * c]
                // go to pixel 2 ox - 1 + kx.
                let r = example + iy * w * c, p = patches + ky * run
                for e in 0..<c { r[e] += p[c + e] }  // pixel 0: patch 0 only (its tap 0 is the padding)
                var ox = 1
                if c == 1 {  // grey images: the pair's two floats unrolled
                    while ox < wo {
                        let a = p + (ox - 1) * 16 + 2, b = p + ox * 16, q = r + 2 * ox - 1
                        q[0] = (q[0] + a[0]) + b[0]
                        q[1] = (q[1] + a[1]) + b[1]
                        ox += 1
                    }
                }
                while ox < wo {
                    let a = p + (ox - 1) * patch + pair, b = p + ox * patch, q = r + (2 * ox - 1) * c
                    for e in 0..<pair { q[e] = (q[e] + a[e]) + b[e] }
                    ox += 1
                }
                // The last pixel: the last patch only (its tap 3 is the padding).
                let last = r + (w - 1) * c, a = p + (wo - 1) * patch + pair
                for e in 0..<c { last[e] += a[e] }
            }
            patches += wo * patch
        }
    }
}
