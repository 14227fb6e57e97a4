// The core's FMA peak for one ISA: 16 independent chains acc = acc - acc * acc in registers.
// Enough chains to cover the FMA latency times the number of FMA pipes (4 cycles x 2
// pipes on the AMD and Intel cores of the last decade), so the loop runs at the pipes'
// throughput. With no constant operand the 16 accumulators are the only vector registers
// the loop needs (AVX2 has exactly 16; with acc * x + y the compiler spills to the stack).
// `vae-dist bench` times it and states every GEMM and the training step as a fraction of it.

public struct FMAPeakResult: Sendable {
    /// Floating-point operations done (an FMA is 2 per lane).
    public var flops: Double
    /// The sum of the accumulators: returned so the loop cannot be optimized away.
    public var checksum: Float
    public init(flops: Double, checksum: Float) { self.flops = flops; self.checksum = checksum }
}

/// V is the ISA's native vector: SIMD8<Float> (one ymm) for AVX2, SIMD16<Float> (one zmm)
/// for AVX-512. acc -> acc (1 - acc) (one vfnmadd) decays from (0, 1) to 0 like 1/n: no
/// value overflows, and none turns subnormal within 10^30 iterations.
@inlinable
public func fmaPeakLoop<ISA: ISATag, V: SIMD>(_: ISA.Type, _: V.Type, iterations: Int, seed: Float) -> FMAPeakResult
where V.Scalar == Float {
    // Distinct starting values (seed / 16 apart): identical chains could be merged into one.
    let step = seed / 16
    var a0 = V(repeating: step * 1), a1 = V(repeating: step * 2), a2 = V(repeating: step * 3), a3 = V(repeating: step * 4)
    var a4 = V(repeating: step * 5), a5 = V(repeating: step * 6), a6 = V(repeating: step * 7), a7 = V(repeating: step * 8)
    var a8 = V(repeating: step * 9), a9 = V(repeating: step * 10), a10 = V(repeating: step * 11), a11 = V(repeating: step * 12)
    var a12 = V(repeating: step * 13), a13 = V(repeating: step * 14), a14 = V(repeating: step * 15), a15 = V(repeating: step * 16)
    for _ in 0..<iterations {
        a0 = a0.addingProduct(negated(a0), a0); a1 = a1.addingProduct(negated(a1), a1); a2 = a2.addingProduct(negated(a2), a2); a3 = a3.addingProduct(negated(a3), a3)
        a4 = a4.addingProduct(negated(a4), a4); a5 = a5.addingProduct(negated(a5), a5); a6 = a6.addingProduct(negated(a6), a6); a7 = a7.addingProduct(negated(a7), a7)
        a8 = a8.addingProduct(negated(a8), a8); a9 = a9.addingProduct(negated(a9), a9); a10 = a10.addingProduct(negated(a10), a10); a11 = a11.addingProduct(negated(a11), a11)
        a12 = a12.addingProduct(negated(a12), a12); a13 = a13.addingProduct(negated(a13), a13); a14 = a14.addingProduct(negated(a14), a14); a15 = a15.addingProduct(negated(a15), a15)
    }
    let total = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11)) + ((a12 + a13) + (a14 + a15))
    return FMAPeakResult(flops: Double(iterations) * 16 * Double(V.scalarCount) * 2, checksum: total.sum())
}

/// -v as a sign-bit flip, which the compiler folds into the FMA (vfnmadd). Swift's prefix
/// minus on SIMD computes 0 - v (different for +0), an extra subtraction per FMA.
@inlinable @inline(__always)
func negated<V: SIMD>(_ v: V) -> V where V.Scalar == Float {
    unsafeBitCast(unsafeBitCast(v, to: V.MaskStorage.self) ^ V.MaskStorage(repeating: .min), to: V.self)
}
