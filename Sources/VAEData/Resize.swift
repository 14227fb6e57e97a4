// --image-size HxW: each image of an image folder is cut to the target's aspect ratio (a centre
// crop) and then reduced (or enlarged) by area averaging: output pixel (y, x) is the mean of the
// cropped source over the rectangle it covers, each source pixel weighted by the area of its
// overlap, rounded to the nearest byte (halves up). In integers: output row y covers
// [y * ch, (y + 1) * ch) and source row s covers [s * H, (s + 1) * H) on a line measured in
// 1/H of a source pixel (columns likewise with W), so every weight is an integer overlap, the
// total weight is ch * cw, and the result is exact: the same bytes as the naive reference and
// as numpy's `(2 * Wy @ image @ Wx.T + total) // (2 * total)`.

/// The centre crop of an h x w source to the aspect ratio of H x W: rows y0 ..< y0 + ch,
/// columns x0 ..< x0 + cw. The cut side is rounded to the nearest pixel, the offset floored.
public func centreCrop(sourceHeight h: Int, sourceWidth w: Int, height H: Int, width W: Int) -> (y0: Int, x0: Int, ch: Int, cw: Int) {
    if w * H > h * W {           // wider than the target: cut columns
        let cw = min(w, max(1, (2 * h * W + H) / (2 * H)))
        return (0, (w - cw) / 2, h, cw)
    }
    if w * H < h * W {           // taller: cut rows
        let ch = min(h, max(1, (2 * w * H + W) / (2 * W)))
        return ((h - ch) / 2, 0, ch, w)
    }
    return (0, 0, h, w)
}

/// The integer overlap of output cell `o` (of `n` cells over `m` source pixels) with source pixel `s`.
@inline(__always)
private func overlap(_ o: Int, _ s: Int, outputs n: Int, sources m: Int) -> Int {
    max(0, min((o + 1) * m, (s + 1) * n) - max(o * m, s * n))
}

/// out [H, W, C] from source [h, w, C] (HWC bytes): centre crop, then area averaging. Separable:
/// the columns of each cropped row are summed with their integer weights (no rounding), then the
/// rows; the one rounding is at the end.
public func resizeImage(_ out: UnsafeMutablePointer<UInt8>, height H: Int, width W: Int,
                        _ source: UnsafePointer<UInt8>, sourceHeight h: Int, sourceWidth w: Int, channels C: Int) {
    let (y0, x0, ch, cw) = centreCrop(sourceHeight: h, sourceWidth: w, height: H, width: W)
    let total = ch * cw
    // Horizontal pass: rows [ch, W, C] of column sums weighted by overlaps (in units of 1/W).
    var rows = [Int](repeating: 0, count: ch * W * C)
    rows.withUnsafeMutableBufferPointer { rowSums in
        let sums = rowSums.baseAddress!
        for x in 0..<W {
            let first = x * cw / W, last = min(cw - 1, ((x + 1) * cw - 1) / W)
            for sx in first...last {
                let weight = overlap(x, sx, outputs: W, sources: cw)
                for r in 0..<ch {
                    let pixel = source + ((y0 + r) * w + x0 + sx) * C
                    let sum = sums + (r * W + x) * C
                    for c in 0..<C { sum[c] += weight * Int(pixel[c]) }
                }
            }
        }
        // Vertical pass and the one rounding.
        for y in 0..<H {
            let first = y * ch / H, last = min(ch - 1, ((y + 1) * ch - 1) / H)
            for i in 0..<(W * C) {
                var sum = 0
                for r in first...last { sum += overlap(y, r, outputs: H, sources: ch) * sums[r * W * C + i] }
                out[y * W * C + i] = UInt8((2 * sum + total) / (2 * total))
            }
        }
    }
}

/// The reference: every output pixel sums every cropped source pixel times its overlap area.
public func resizeImageNaive(_ out: UnsafeMutablePointer<UInt8>, height H: Int, width W: Int,
                             _ source: UnsafePointer<UInt8>, sourceHeight h: Int, sourceWidth w: Int, channels C: Int) {
    let (y0, x0, ch, cw) = centreCrop(sourceHeight: h, sourceWidth: w, height: H, width: W)
    for y in 0..<H {
        for x in 0..<W {
            for c in 0..<C {
                var sum = 0, total = 0
                for r in 0..<ch {
                    for s in 0..<cw {
                        let area = overlap(y, r, outputs: H, sources: ch) * overlap(x, s, outputs: W, sources: cw)
                        sum += area * Int(source[((y0 + r) * w + x0 + s) * C + c])
                        total += area
                    }
                }
                out[(y * W + x) * C + c] = UInt8((2 * sum + total) / (2 * total))
            }
        }
    }
}
