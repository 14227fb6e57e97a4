// The convolutions' naive references: direct loops from the definition, which the tests hold
// the im2col/GEMM/col2im passes of Convolution.swift (and the conv layers built on them) to.

/// out[n, oy, ox, o] = bias[o] + sum_{c, ky, kx} weight[o, ky, kx, c] * image[n, iy, ix, c]:
/// torch.nn.Conv2d on NHWC images (its weight with the channels last).
public func convolutionNaive(_ out: UnsafeMutablePointer<Float>, _ image: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                             _ bias: UnsafePointer<Float>?, _ g: ConvGeometry, outChannels: Int, batch: Int) {
    for n in 0..<batch {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                for o in 0..<outChannels {
                    var sum = bias?[o] ?? 0
                    forEachTap(g, oy: oy, ox: ox) { iy, ix, tap in
                        for c in 0..<g.inChannels {
                            sum += weight[(o * g.kernel * g.kernel + tap) * g.inChannels + c]
                                * image[((n * g.inHeight + iy) * g.inWidth + ix) * g.inChannels + c]
                        }
                    }
                    out[((n * g.outHeight + oy) * g.outWidth + ox) * outChannels + o] = sum
                }
            }
        }
    }
}

/// dimage = d(sum dout * convolution) / d(image), overwritten.
public func convolutionInputGradientNaive(_ dimage: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                                          _ weight: UnsafePointer<Float>, _ g: ConvGeometry, outChannels: Int, batch: Int) {
    dimage.update(repeating: 0, count: batch * g.imageSize)
    for n in 0..<batch {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                for o in 0..<outChannels {
                    let d = dout[((n * g.outHeight + oy) * g.outWidth + ox) * outChannels + o]
                    forEachTap(g, oy: oy, ox: ox) { iy, ix, tap in
                        for c in 0..<g.inChannels {
                            dimage[((n * g.inHeight + iy) * g.inWidth + ix) * g.inChannels + c]
                                += d * weight[(o * g.kernel * g.kernel + tap) * g.inChannels + c]
                        }
                    }
                }
            }
        }
    }
}

/// dweight [outChannels, k, k, inChannels] and dbias [outChannels] of sum dout * convolution, overwritten.
public func convolutionWeightGradientNaive(_ dweight: UnsafeMutablePointer<Float>, _ dbias: UnsafeMutablePointer<Float>?,
                                           _ dout: UnsafePointer<Float>, _ image: UnsafePointer<Float>, _ g: ConvGeometry,
                                           outChannels: Int, batch: Int) {
    dweight.update(repeating: 0, count: outChannels * g.patch)
    dbias?.update(repeating: 0, count: outChannels)
    for n in 0..<batch {
        for oy in 0..<g.outHeight {
            for ox in 0..<g.outWidth {
                for o in 0..<outChannels {
                    let d = dout[((n * g.outHeight + oy) * g.outWidth + ox) * outChannels + o]
                    dbias?[o] += d
                    forEachTap(g, oy: oy, ox: ox) { iy, ix, tap in
                        for c in 0..<g.inChannels {
                            dweight[(o * g.kernel * g.kernel + tap) * g.inChannels + c]
                                += d * image[((n * g.inHeight + iy) * g.inWidth + ix) * g.inChannels + c]
                        }
                    }
                }
            }
        }
    }
}

/// The taps of output position (oy, ox) that fall inside the image: (iy, ix, ky * k + kx).
@inline(__always)
func forEachTap(_ g: ConvGeometry, oy: Int, ox: Int, _ body: (Int, Int, Int) -> Void) {
    for ky in 0..<g.kernel {
        let iy = oy * g.stride - g.padding + ky
        if iy < 0 || iy >= g.inHeight { continue }
        for kx in 0..<g.kernel {
            let ix = ox * g.stride - g.padding + kx
            if ix < 0 || ix >= g.inWidth { continue }
            body(iy, ix, ky * g.kernel + kx)
        }
    }
}
