import Testing
import VAEKernels

/// The 16-bit conversions of --grad-compression against a reference built another way: the two
/// representable neighbours of x, computed in Double from their bits by hand, and the nearer
/// one taken (the even one on a tie).
@Suite struct SixteenBitTests {
    /// Every non-negative finite half value in increasing order, from its fields (not Float16),
    /// then 65536: where rounding goes to Inf (the next value after 65504 if the exponent went on).
    static let halfValues: [Double] = (0..<0x7C00).map { bits -> Double in
        let exponent = bits >> 10, mantissa = Double(bits & 0x3FF)
        return exponent == 0 ? mantissa * 0x1p-24 : (1 + mantissa / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
    } + [65536]

    static func referenceHalf(_ x: Float) -> UInt16 {
        let sign: UInt16 = x.sign == .minus ? 0x8000 : 0, a = Double(x.magnitude)
        var low = 0, high = halfValues.count - 1  // the last value <= a
        while low < high { let mid = (low + high + 1) / 2; if halfValues[mid] <= a { low = mid } else { high = mid - 1 } }
        if low == halfValues.count - 1 { return sign | 0x7C00 }
        let below = a - halfValues[low], above = halfValues[low + 1] - a
        let bits = below < above || (below == above && low % 2 == 0) ? low : low + 1
        return sign | UInt16(bits)  // index 0x7C00 is the Inf pattern
    }

    static func referenceBFloat16(_ x: Float) -> UInt16 {
        let truncated = x.bitPattern >> 16, sign: Double = x.sign == .minus ? -1 : 1
        let down = Double(Float(bitPattern: truncated << 16))
        let upBits = (truncated + 1) << 16
        // One past the largest finite magnitude: 2^128, which rounds to Inf.
        let up = upBits & 0x7FFF_FFFF == 0x7F80_0000 ? sign * 0x1p128 : Double(Float(bitPattern: upBits))
        let d = Double(x), below = (d - down).magnitude, above = (up - d).magnitude
        return UInt16(below < above || (below == above && truncated % 2 == 0) ? truncated : truncated + 1)
    }

    /// Bit patterns over the whole fp32 range (both signs, every exponent), then the hard cases.
    static let samples: [Float] = {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        var values: [Float] = (0..<200_000).compactMap { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: state >> 32))
            return x.isFinite ? x : nil
        }
        // Ties (a dropped half of exactly one half ulp) for bf16 and half, around 1 and near the limits.
        values += [Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x7F7F_FFFF),
                   Float(bitPattern: 0x7F7F_8000), Float(bitPattern: 0x7F7F_7FFF),
                   1 + 0x1p-11, 1 + 3 * 0x1p-11, 65504, 65519.99, 65520, 0x1p-24, 0x1p-25, 3 * 0x1p-26, 0x1p-14, 0, -0.0,
                   .leastNonzeroMagnitude, .greatestFiniteMagnitude, -1 - 0x1p-11]
        return values
    }()

    @Test func bfloat16RoundsToNearestEven() {
        var checked = 0
        for x in Self.samples {
            #expect(bfloat16Bits(x) == Self.referenceBFloat16(x), "bf16(\(x)) bits \(x.bitPattern)")
            checked += 1
        }
        #expect(checked == Self.samples.count && checked > 190_000)
        #expect(bfloat16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80 && bfloat16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82, "ties to even")
        #expect(bfloat16Bits(.greatestFiniteMagnitude) == 0x7F80, "past the largest bf16: Inf")
    }

    @Test func halfRoundsToNearestEven() {
        var checked = 0
        for x in Self.samples {
            #expect(halfBits(x) == Self.referenceHalf(x), "fp16(\(x))")
            checked += 1
        }
        #expect(checked == Self.samples.count && checked > 190_000)
        #expect(halfBits(1 + 0x1p-11) == 0x3C00 && halfBits(1 + 3 * 0x1p-11) == 0x3C02, "ties to even")
        #expect(halfBits(65519.99) == 0x7BFF && halfBits(65520) == 0x7C00 && halfBits(0x1p-25) == 0 && halfBits(3 * 0x1p-26) == 1)
    }

    @Test func nanAndInfinityAreKept() {
        // A NaN whose payload is only in the dropped bits would become Inf if merely truncated.
        for nan in [Float.nan, -Float.nan, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFC0_0001), .signalingNaN] {
            #expect(floatFromBFloat16(bfloat16Bits(nan)).isNaN)
            #expect(floatFromHalf(halfBits(nan)).isNaN)
        }
        for inf: Float in [.infinity, -.infinity] {
            #expect(floatFromBFloat16(bfloat16Bits(inf)) == inf && floatFromHalf(halfBits(inf)) == inf)
        }
        #expect(floatFromBFloat16(bfloat16Bits(-0.0)).sign == .minus && floatFromHalf(halfBits(-0.0)).sign == .minus)
    }

    /// Widening is exact, every 16-bit pattern (a representable value survives the round trip).
    @Test func wideningIsExactAndRoundTrips() {
        var checked = 0
        for bits in 0...UInt16.max {
            let b = floatFromBFloat16(bits), h = floatFromHalf(bits)
            if !b.isNaN { #expect(bfloat16Bits(b) == bits); #expect(Double(b) == Double(Float(bitPattern: UInt32(bits) << 16))) }
            if !h.isNaN {
                #expect(halfBits(h) == bits)
                #expect(Double(h.magnitude) == (bits & 0x7C00 == 0x7C00 ? .infinity : Self.halfValues[Int(bits & 0x7FFF)]))
            }
            checked += 1
        }
        #expect(checked == 65536)
    }

    /// The blocks are widened and added in fp32 in block order, as a loop in Float does.
    @Test(arguments: [SixteenBitFormat.bfloat16, .half], [1, 3, 4])
    func sumWidenedAddsInBlockOrder(format: SixteenBitFormat, blocks: Int) {
        let count = 7
        var values: [Float] = []
        for k in 0..<blocks * count {
            let step = Float(k % 5) * 0.3
            values.append(step - 0.5 + Float(k) * 1e-3)
        }
        var wire = [UInt16](repeating: 0, count: values.count), sum = [Float](repeating: 0, count: count)
        compress(values, count: values.count, into: &wire, format: format)
        sumWidened(wire, blocks: blocks, count: count, into: &sum, format: format)
        let widen = format == .half ? floatFromHalf : floatFromBFloat16
        for i in 0..<count {
            var expected = widen(wire[i])
            for b in 1..<blocks { expected += widen(wire[b * count + i]) }
            #expect(sum[i].bitPattern == expected.bitPattern)
            var exact = 0.0
            for b in 0..<blocks { exact += Double(values[b * count + i]) }
            let error: Double = abs(Double(sum[i]) - exact)
            #expect(error < Double(blocks) * 0.01)
        }
    }
}
