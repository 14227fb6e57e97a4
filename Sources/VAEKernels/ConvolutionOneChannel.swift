// col2im for the conv architecture's one-channel image (the decoder's last transposed
// convolution onto 64 x 64 x 1, kernel 4, stride 2, padding 1), the image row by row.
//
// col2imScatter adds each patch's kernel rows into the image, 4 floats each; at stride 2 the
// next patch's run overlaps the last one's by 2 floats, so each vector load waits on a store
// still in flight that it half covers (store-to-load forwarding fails). Here the runs that
// reach one image row are taken in order, and each pair of pixels (2 ox - 1, 2 ox) gets its two
// terms in registers: first from patch ox - 1 (taps 2 and 3), then from patch ox (taps 0 and 1),
// stored once. A pixel's terms keep the order of col2im (the patches' positions in row order:
// for one image row, all from one output row, by ox), each added in turn to the image's value:
// the same bits.

extension ConvGeometry {
    /// One channel, kernel 4, stride 2, padding 1, and an image twice the output's width: the
    /// geometry col2imOneChannelHalving serves.
    @inlinable public var isOneChannelHalving: Bool {
        inChannels == 1 && kernel == 4 && stride == 2 && padding == 1 && inWidth == 2 * outWidth && outWidth >= 2
    }
}

/// col2imScatter for a geometry with isOneChannelHalving: the image of each example in
/// `examples` zeroed, then its rows' terms added pixel pair by pixel pair (see above).
@inlinable
func col2imOneChannelHalving(_ image: UnsafeMutablePointer<Float>, _ cols: UnsafePointer<Float>, _ g: ConvGeometry,
                             examples: Range<Int>) {
    let wo = g.outWidth, w = g.inWidth
    for n in examples {
        let example = image + n * g.imageSize
        example.update(repeating: 0, count: g.imageSize)
        var patches = cols + (n - examples.lowerBound) * g.positions * 16
        for oy in 0..<g.outHeight {
            for ky in 0..<4 {
                let iy = oy * 2 - 1 + ky
                if iy < 0 || iy >= g.inHeight { continue }
                // Patch ox's run for this kernel row: taps p[ox * 16 + kx] at pixel 2 ox - 1 + kx.
                let r = example + iy * w, p = patches + ky * 4
                r[0] += p[1]  // pixel 0: patch 0 only (its tap 0 is the padding)
                var ox = 1
                while ox < wo {
                    let a = p + (ox - 1) * 16, b = p + ox * 16
                    r[2 * ox - 1] = (r[2 * ox - 1] + a[2]) + b[0]
                    r[2 * ox] = (r[2 * ox] + a[3]) + b[1]
                    ox += 1
                }
                r[w - 1] += p[(wo - 1) * 16 + 2]  // the last pixel: the last patch only (its tap 3 is the padding)
            }
            patches += wo * 16
        }
    }
}
