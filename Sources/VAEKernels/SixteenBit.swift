// 16-bit floats for gradients on the wire (--grad-compression, VAETraining/CompressedReduction.swift):
// fp32 values rounded to bfloat16 or IEEE half, and back. Both conversions round to nearest,
// ties to even (as a hardware conversion in the default rounding mode does); NaN stays NaN and
// +-Inf stays +-Inf. Widening back to fp32 is exact.
//
//   bfloat16  the upper 16 bits of an fp32: sign, 8-bit exponent, 7 stored significand bits.
//             Same range as fp32; relative rounding error at most 2^-9.
//   half      sign, 5-bit exponent, 10 stored significand bits: relative error at most 2^-11 for
//             normal values (|x| >= 2^-14), values under 2^-24 round to 0, |x| >= 65520 to Inf.

/// The 16-bit format of a compressed gradient.
public enum SixteenBitFormat: Sendable {
    case bfloat16, half
}

/// fp32 -> bfloat16 bits, round to nearest even. Adding 0x7FFF plus the lowest kept bit to the
/// fp32 bits carries into the kept half exactly when the dropped half is above one half ulp, or
/// equal to it with an odd kept half; overflow of the largest finite values carries into the
/// exponent and gives Inf, as it should. NaN would carry to Inf or lose its payload: it is made
/// a quiet NaN (bit 6 of the kept significand) instead.
@inline(__always)
public func bfloat16Bits(_ x: Float) -> UInt16 {
    let bits = x.bitPattern
    if x.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
    return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
}

@inline(__always)
public func floatFromBFloat16(_ bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

/// fp32 -> IEEE half bits, round to nearest even (Swift's Float16 conversion: F16C's vcvtps2ph
/// where the build targets it, else compiler-rt's __truncsfhf2, both IEEE).
@inline(__always)
public func halfBits(_ x: Float) -> UInt16 { Float16(x).bitPattern }

@inline(__always)
public func floatFromHalf(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

/// out[i] = `format`(values[i]): the one rounding of each value.
public func compress(_ values: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<UInt16>, format: SixteenBitFormat) {
    switch format {
    case .bfloat16: for i in 0..<count { out[i] = bfloat16Bits(values[i]) }
    case .half: for i in 0..<count { out[i] = halfBits(values[i]) }
    }
}

/// out[i] = values[i] widened to fp32 (exact).
public func decompress(_ values: UnsafePointer<UInt16>, count: Int, into out: UnsafeMutablePointer<Float>, format: SixteenBitFormat) {
    switch format {
    case .bfloat16: for i in 0..<count { out[i] = floatFromBFloat16(values[i]) }
    case .half: for i in 0..<count { out[i] = floatFromHalf(values[i]) }
    }
}

/// The fp32 sum of `blocks` 16-bit blocks laid one after another [blocks, count], added in block
/// order: out[i] = ((b0[i] + b1[i]) + b2[i]) + ..., each term widened exactly, each addition
/// rounded in fp32. The order depends only on the block count, so it repeats bit for bit.
public func sumWidened(_ blocks: UnsafePointer<UInt16>, blocks n: Int, count: Int, into out: UnsafeMutablePointer<Float>,
                       format: SixteenBitFormat) {
    decompress(blocks, count: count, into: out, format: format)
    for b in 1..<max(n, 1) {
        let block = blocks + b * count
        switch format {
        case .bfloat16: for i in 0..<count { out[i] += floatFromBFloat16(block[i]) }
        case .half: for i in 0..<count { out[i] += floatFromHalf(block[i]) }
        }
    }
}

/// Whether every value is at most `limit` in magnitude (false for NaN and Inf).
public func allWithin(_ values: UnsafePointer<Float>, count: Int, limit: Float) -> Bool {
    var largest: Float = 0
    for i in 0..<count { largest = max(largest, abs(values[i])) }  // max(0, NaN) keeps 0: checked below
    return largest <= limit && allFinite(values, count: count)
}
