// Convolution as GEMM (im2col): images are held NHWC (an example's pixels row by row, a
// pixel's channels adjacent), so a stride-2 convolution's output [batch * Ho * Wo, Cout] is
//   cols [batch * Ho * Wo, k * k * Cin] · weight [Cout, k * k * Cin]^T + bias
// with a row of `cols` holding one output position's patch in the order (ky, kx, channel): the
// weight is torch.nn.Conv2d's [Cout, Cin, kh, kw] with its channels moved last (checkpoints
// store torch's order, TensorSpec.channelsLast). The gradient with respect to the
// input is dcols = dout · weight, added back into the image (col2im); the gradient with respect
// to the weight is dout^T · cols. A transposed convolution (torch.nn.ConvTranspose2d, weight
// [Cin, Cout, kh, kw]) is the adjoint of the convolution with the two image shapes swapped: its
// forward is col2im(input · weight), its input gradient im2col(dout) · weight^T.
//
// im2col and col2im only move numbers (col2im adds each image element's contributions in one
// fixed order), so any cut of their rows between threads gives the same bits.

/// The geometry of one stride-2 convolution, per example: image [inHeight, inWidth, inChannels]
/// -> [outHeight, outWidth] positions, each a patch of inChannels x kernel x kernel values.
public struct ConvGeometry: Sendable, Equatable {
    public let inHeight: Int, inWidth: Int, inChannels: Int
    public let outHeight: Int, outWidth: Int
    public let kernel: Int, stride: Int, padding: Int

    public init(inHeight: Int, inWidth: Int, inChannels: Int, kernel: Int, stride: Int, padding: Int) {
        self.inHeight = inHeight
        self.inWidth = inWidth
        self.inChannels = inChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        outHeight = (inHeight + 2 * padding - kernel) / stride + 1
        outWidth = (inWidth + 2 * padding - kernel) / stride + 1
    }

    /// Values in one patch: a row of cols, a column of the weight matrix.
    public var patch: Int { inChannels * kernel * kernel }
    /// Output positions of one example: rows of cols per example.
    public var positions: Int { outHeight * outWidth }
    /// Floats of one input image.
    public var imageSize: Int { inHeight * inWidth * inChannels }
    /// Whether col2im gathers each pixel's terms (16 channels or more: a pixel fills a vector),
    /// rather than adding each patch into the zeroed image.
    public var col2imGathers: Bool { inChannels >= 16 }
}

/// cols[row, (ky * k + kx) * C + c] = image[n, oy * s - p + ky, ox * s - p + kx, c] (0 outside
/// the image) for the rows `rows` of the patch matrix, `cols` pointing at the first of them, row
/// = (n * outHeight + oy) * outWidth + ox: for each
/// ky, the k adjacent pixels of one image row are one contiguous run of k * C floats. The rows
/// go by spans of one output row (one n and oy), the position stepped rather than divided out
/// of each row, and runs wholly inside the image copied without clipping.
@inlinable
public func im2col(_ cols: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>, _ g: ConvGeometry, rows: Range<Int>) {
    if rows.isEmpty { return }
    let cols = cols - rows.lowerBound * g.patch  // cols points at the first of `rows`
    let k = g.kernel, c = g.inChannels, run = k * c, patch = g.patch
    var n = rows.lowerBound / g.positions, position = rows.lowerBound % g.positions
    var oy = position / g.outWidth, ox = position % g.outWidth
    var row = rows.lowerBound
    while row < rows.upperBound {
        let span = min(g.outWidth - ox, rows.upperBound - row)
        // The span's positions inside ..< end have all k taps inside the image row: one run
        // each, copied in a loop free of bounds (a one-channel patch's run is 4 floats, where
        // per-position checks cost more than the copy); the few others are clipped.
        let ixStart = ox * g.stride - g.padding
        let inside = min(span, ixStart >= 0 ? 0 : (-ixStart + g.stride - 1) / g.stride)
        let end = max(inside, min(span, g.inWidth - k - ixStart < 0 ? 0 : (g.inWidth - k - ixStart) / g.stride + 1))
        for ky in 0..<k {
            let dst = cols + row * patch + ky * run
            let iy = oy * g.stride - g.padding + ky
            if iy < 0 || iy >= g.inHeight {
                for j in 0..<span { fillZero(dst + j * patch, count: run) }
                continue
            }
            let source = image + (n * g.inHeight + iy) * g.inWidth * c
            copyRuns(dst + inside * patch, patch, source + (ixStart + inside * g.stride) * c, g.stride * c,
                     runs: end - inside, count: run)
            func clipped(_ j: Int) {
                let ix0 = ixStart + j * g.stride, out = dst + j * patch
                let first = max(0, -ix0), last = min(k, g.inWidth - ix0)  // the kx inside the image
                if first >= last { fillZero(out, count: run); return }
                if first > 0 { fillZero(out, count: first * c) }
                copyRun(out + first * c, source + (ix0 + first) * c, count: (last - first) * c)
                if last < k { fillZero(out + last * c, count: (k - last) * c) }
            }
            for j in 0..<inside { clipped(j) }
            for j in end..<span { clipped(j) }
        }
        row += span
        ox += span
        if ox == g.outWidth {
            ox = 0
            oy += 1
            if oy == g.outHeight { oy = 0; n += 1 }
        }
    }
}

/// op(B) = im2col(image) [examples * positions, patch], never stored: `pack` copies each
/// panel's values straight from the image (zeros outside it), the same values packing the
/// stored im2col would give, so a GEMM over it has the same bits. A panel whose nr columns lie
/// within one pixel's channels (inChannels a multiple of nr) is one contiguous copy per row.
public struct GEMMPatches: GEMMPanelSource {
    public let image: UnsafePointer<Float>, geometry: ConvGeometry
    /// op(B) column j is patch column firstColumn + j.
    public let firstColumn: Int

    @inlinable public init(image: UnsafePointer<Float>, geometry: ConvGeometry, firstColumn: Int = 0) {
        self.image = image
        self.geometry = geometry
        self.firstColumn = firstColumn
    }

    /// The patch columns from `column` on.
    @inlinable public func fromColumn(_ column: Int) -> GEMMPatches {
        GEMMPatches(image: image, geometry: geometry, firstColumn: firstColumn + column)
    }

    /// The rows i in inside ..< end of a span of one output row whose first tap column is ix0:
    /// those with 0 <= ix0 + i * stride < inWidth.
    @inlinable @inline(__always)
    func inImage(ix0: Int, span: Int) -> (inside: Int, end: Int) {
        let g = geometry
        let inside = min(span, ix0 >= 0 ? 0 : (-ix0 + g.stride - 1) / g.stride)
        let end = max(inside, min(span, ix0 >= g.inWidth ? 0 : (g.inWidth - ix0 + g.stride - 1) / g.stride))
        return (inside, end)
    }

    /// A whole-pixel panel's rows in the image: each row's nr channels of one pixel, or `zero`
    /// outside the image; by spans of one output row, as `pack` copies them.
    @inlinable
    public func panelRows(_ rows: UnsafeMutablePointer<UnsafePointer<Float>>, zero: UnsafePointer<Float>,
                          row: Int, column: Int, kc: Int, nr: Int) -> Bool {
        let g = geometry, c = g.inChannels, run = g.kernel * c, q0 = column + firstColumn
        let ky = q0 / run, kx = (q0 % run) / c, channel = q0 % c
        if channel + nr > c { return false }
        var n = row / g.positions, oy = row % g.positions / g.outWidth, ox = row % g.positions % g.outWidth
        var p = 0
        while p < kc {
            let span = min(g.outWidth - ox, kc - p), out = rows + p
            let iy = oy * g.stride - g.padding + ky, ix0 = ox * g.stride - g.padding + kx
            if iy < 0 || iy >= g.inHeight {
                out.update(repeating: zero, count: span)
            } else {
                let (inside, end) = inImage(ix0: ix0, span: span)
                out.update(repeating: zero, count: inside)
                var src = image + ((n * g.inHeight + iy) * g.inWidth + ix0 + inside * g.stride) * c + channel
                for i in inside..<end {
                    out[i] = src
                    src += g.stride * c
                }
                (out + end).update(repeating: zero, count: span - end)
            }
            p += span
            ox += span
            if ox == g.outWidth {
                ox = 0
                oy += 1
                if oy == g.outHeight { oy = 0; n += 1 }
            }
        }
        return true
    }

    @inlinable
    public func pack(_ dst: UnsafeMutablePointer<Float>, row: Int, column: Int, kc: Int, nc: Int, nr: Int) {
        let g = geometry, c = g.inChannels, k = g.kernel, run = k * c, column = column + firstColumn
        let n0 = row / g.positions, position0 = row % g.positions
        let oy0 = position0 / g.outWidth, ox0 = position0 % g.outWidth
        // Panel by panel: a panel's tap (ky, kx) and first channel are the same in every row.
        var j = 0
        while j < nc {
            let out = dst + j * kc, q0 = column + j, columns = min(nr, nc - j)
            let ky = q0 / run, kx = (q0 % run) / c, channel = q0 % c
            var n = n0, oy = oy0, ox = ox0
            if columns == nr && channel + nr <= c {
                // The panel's rows by spans of one output row: the image row and the positions
                // inside the image found once per span, then one copy per row.
                var p = 0
                while p < kc {
                    let span = min(g.outWidth - ox, kc - p), out = out + p * nr
                    let iy = oy * g.stride - g.padding + ky, ix0 = ox * g.stride - g.padding + kx
                    if iy < 0 || iy >= g.inHeight {
                        fillZero(out, count: span * nr)
                    } else {
                        let (inside, end) = inImage(ix0: ix0, span: span)
                        if inside > 0 { fillZero(out, count: inside * nr) }
                        var src = image + ((n * g.inHeight + iy) * g.inWidth + ix0 + inside * g.stride) * c + channel
                        for i in inside..<end {
                            copyRun(out + i * nr, src, count: nr)
                            src += g.stride * c
                        }
                        if end < span { fillZero(out + end * nr, count: (span - end) * nr) }
                    }
                    p += span
                    ox += span
                    if ox == g.outWidth {
                        ox = 0
                        oy += 1
                        if oy == g.outHeight { oy = 0; n += 1 }
                    }
                }
                j += nr
                continue
            }
            // A partial panel, or one whose columns span pixels: value by value.
            for p in 0..<kc {
                for q in 0..<nr {
                    var value: Float = 0
                    if q < columns {
                        let col = q0 + q, ky = col / run, kx = (col % run) / c, channel = col % c
                        let iy = oy * g.stride - g.padding + ky, ix = ox * g.stride - g.padding + kx
                        if iy >= 0 && iy < g.inHeight && ix >= 0 && ix < g.inWidth {
                            value = image[((n * g.inHeight + iy) * g.inWidth + ix) * c + channel]
                        }
                    }
                    out[p * nr + q] = value
                }
                ox += 1
                if ox == g.outWidth {
                    ox = 0
                    oy += 1
                    if oy == g.outHeight { oy = 0; n += 1 }
                }
            }
            j += nr
        }
    }
}

/// image[n] = sum over the patches that hold each element of cols (the adjoint of im2col), for
/// the examples `examples`, `cols` pointing at the first of their patches: overwritten, each
/// element 0 plus its terms in row order (the patches' positions in order). With 16 channels or
/// more, gathered (col2imGather); with fewer, a pixel's channels fill less than a vector, and
/// each patch's kernel rows are added into the zeroed image instead (col2imScatter, runs of
/// k * C floats). Both add each element's terms in the same order, from 0: the same bits.
@inlinable
public func col2im(_ image: UnsafeMutablePointer<Float>, _ cols: UnsafePointer<Float>, _ g: ConvGeometry, examples: Range<Int>) {
    if !g.col2imGathers {
        col2imScatter(image, cols, g, examples: examples)
    } else {
        col2imGather(image, cols, g, examples: examples)
    }
}

/// col2im by pixels: each pixel adds its (at most ceil(k / s)^2) terms in registers and is
/// stored once, so the image is neither zeroed first nor read back once per term. Each image
/// row is whole when `afterRow` gets it (its address and index n * inHeight + iy): an epilogue
/// (bias, ReLU, a mask) can run while the row is in L1.
@inlinable
public func col2imGather(_ image: UnsafeMutablePointer<Float>, _ cols: UnsafePointer<Float>, _ g: ConvGeometry,
                         examples: Range<Int>, afterRow: (UnsafeMutablePointer<Float>, Int) -> Void = { _, _ in }) {
    let k = g.kernel, s = g.stride, c = g.inChannels, patch = g.patch
    for n in examples {
        let base = cols + (n - examples.lowerBound) * g.positions * patch
        for iy in 0..<g.inHeight {
            // The output rows whose patches hold image row iy: iy + padding = oy * s + ky, 0 <= ky < k.
            let t = iy + g.padding
            let oyFirst = t - k + 1 <= 0 ? 0 : (t - k + s) / s, oyLast = min(g.outHeight - 1, t / s)
            var dst = image + (n * g.inHeight + iy) * g.inWidth * c
            for ix in 0..<g.inWidth {
                let u = ix + g.padding
                let oxFirst = u - k + 1 <= 0 ? 0 : (u - k + s) / s, oxLast = min(g.outWidth - 1, u / s)
                var ch = 0
                while ch + 16 <= c {
                    var sum = SIMD16<Float>(repeating: 0)
                    gatherTerms(base, g, oyFirst, oyLast, t, oxFirst, oxLast, u, ch) { sum += UnsafeRawPointer($0).loadUnaligned(as: SIMD16<Float>.self) }
                    UnsafeMutableRawPointer(dst + ch).storeBytes(of: sum, as: SIMD16<Float>.self)
                    ch += 16
                }
                while ch + 4 <= c {
                    var sum = SIMD4<Float>(repeating: 0)
                    gatherTerms(base, g, oyFirst, oyLast, t, oxFirst, oxLast, u, ch) { sum += UnsafeRawPointer($0).loadUnaligned(as: SIMD4<Float>.self) }
                    UnsafeMutableRawPointer(dst + ch).storeBytes(of: sum, as: SIMD4<Float>.self)
                    ch += 4
                }
                while ch < c {
                    var sum: Float = 0
                    gatherTerms(base, g, oyFirst, oyLast, t, oxFirst, oxLast, u, ch) { sum += $0.pointee }
                    dst[ch] = sum
                    ch += 1
                }
                dst += c
            }
            afterRow(dst - g.inWidth * c, n * g.inHeight + iy)
        }
    }
}

/// col2im by patches: the image zeroed, then each patch's kernel rows added into it, the
/// patches in row order.
@inlinable
public func col2imScatter(_ image: UnsafeMutablePointer<Float>, _ cols: UnsafePointer<Float>, _ g: ConvGeometry, examples: Range<Int>) {
    if g.isScatteredHalving { return col2imHalving(image, cols, g, examples: examples) }
    let k = g.kernel, c = g.inChannels, run = k * c, patch = g.patch
    for n in examples {
        (image + n * g.imageSize).update(repeating: 0, count: g.imageSize)
        var src = cols + (n - examples.lowerBound) * g.positions * patch
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                defer { src += patch }
                let ix0 = ox * g.stride - g.padding
                let first = max(0, -ix0), last = min(k, g.inWidth - ix0)
                if first >= last { continue }
                let count = (last - first) * c
                for ky in 0..<k {
                    let iy = oy * g.stride - g.padding + ky
                    if iy < 0 || iy >= g.inHeight { continue }
                    let dst = image + ((n * g.inHeight + iy) * g.inWidth + ix0 + first) * c
                    addRun(dst, src + ky * run + first * c, count: count)
                }
            }
        }
    }
}

/// dst[i] += src[i] for i in 0 ..< count (16 lanes at a time, then 4, then one by one).
@inlinable @inline(__always)
func addRun(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        let a = UnsafeRawPointer(dst + i).loadUnaligned(as: SIMD16<Float>.self)
        let b = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(dst + i).storeBytes(of: a + b, as: SIMD16<Float>.self)
        i += 16
    }
    while i + 4 <= count {
        let a = UnsafeRawPointer(dst + i).loadUnaligned(as: SIMD4<Float>.self)
        let b = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD4<Float>.self)
        UnsafeMutableRawPointer(dst + i).storeBytes(of: a + b, as: SIMD4<Float>.self)
        i += 4
    }
    while i < count { dst[i] += src[i]; i += 1 }
}

/// Calls `add` with the address of channel `ch` of each term of one pixel (t = iy + padding,
/// u = ix + padding) in the patches from `base`: the positions oyFirst...oyLast, oxFirst...oxLast
/// in row order, each at its tap (ky, kx) = (t - oy * s, u - ox * s).
@inlinable @inline(__always)
func gatherTerms(_ base: UnsafePointer<Float>, _ g: ConvGeometry, _ oyFirst: Int, _ oyLast: Int, _ t: Int,
                 _ oxFirst: Int, _ oxLast: Int, _ u: Int, _ ch: Int, _ add: (UnsafePointer<Float>) -> Void) {
    let k = g.kernel, s = g.stride, c = g.inChannels, patch = g.patch
    var oy = oyFirst
    while oy <= oyLast {
        let row = base + oy * g.outWidth * patch + (t - oy * s) * k * c + ch
        var ox = oxFirst
        while ox <= oxLast {
            add(row + ox * patch + (u - ox * s) * c)
            ox += 1
        }
        oy += 1
    }
}

/// dst[i] = src[i] for i in 0 ..< count, in vector moves: a patch's runs are 4 to a few hundred
/// floats, where a call to memmove costs as much as the copy.
@inlinable @inline(__always)
func copyRun(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 16 <= count {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self),
                                                    as: SIMD16<Float>.self)
        i += 16
    }
    while i + 4 <= count {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD4<Float>.self),
                                                    as: SIMD4<Float>.self)
        i += 4
    }
    while i < count { dst[i] = src[i]; i += 1 }
}

/// copyRun for `runs` runs of `count` floats, the i-th from src + i * srcStride to dst + i *
/// dstStride; runs of 4 floats (one-channel patches) one vector move each.
@inlinable @inline(__always)
func copyRuns(_ dst: UnsafeMutablePointer<Float>, _ dstStride: Int, _ src: UnsafePointer<Float>, _ srcStride: Int,
              runs: Int, count: Int) {
    var d = dst, s = src
    if count == 4 {
        for _ in 0..<runs {
            UnsafeMutableRawPointer(d).storeBytes(of: UnsafeRawPointer(s).loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
            d += dstStride
            s += srcStride
        }
        return
    }
    for _ in 0..<runs {
        copyRun(d, s, count: count)
        d += dstStride
        s += srcStride
    }
}

/// dst[i] = 0 for i in 0 ..< count (short runs without a call to memset).
@inlinable @inline(__always)
func fillZero(_ dst: UnsafeMutablePointer<Float>, count: Int) {
    if count > 32 { dst.update(repeating: 0, count: count); return }
    for i in 0..<count { dst[i] = 0 }
}
