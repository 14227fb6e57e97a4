// Vectorized exp and log for SIMD16<Float>, so the per-pixel loss runs at SIMD
// speed instead of calling libm 2 x 784 times per example. Cephes single-precision
// polynomials (relative error ~1e-7 on the ranges used here). Generic over the ISA tag:
// the compiler does not always inline them, and a call must reach the caller's ISA's copy.

@inlinable @inline(__always)
public func vexp<ISA: ISATag>(_: ISA.Type, _ input: SIMD16<Float>) -> SIMD16<Float> {
    let x = vmin(vmax(input, SIMD16(repeating: -87.3)), SIMD16(repeating: 88.3))
    // exp(x) = 2^n * exp(r), n = round(x / ln 2), |r| <= ln 2 / 2. Adding 1.5 * 2^23
    // rounds x / ln 2 to an integer held in the low mantissa bits (no float->int conversion).
    let magic = SIMD16<Float>(repeating: 12_582_912)
    let shifted = x * 1.44269504088896341 + magic
    let n = shifted - magic
    var r = x - n * 0.693359375
    r = r + n * 2.12194440e-4
    let r2 = r * r
    var p = SIMD16<Float>(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    let y = p * r2 + r + 1
    let nBits: SIMD16<UInt32> = unsafeBitCast(shifted, to: SIMD16<UInt32>.self) &- 0x4B40_0000  // n as two's complement
    let scale: SIMD16<Float> = unsafeBitCast((nBits &+ 127) &<< 23, to: SIMD16<Float>.self)
    return y * scale
}

/// Natural log of positive normal floats.
@inlinable @inline(__always)
public func vlog<ISA: ISATag>(_: ISA.Type, _ input: SIMD16<Float>) -> SIMD16<Float> {
    let bits: SIMD16<UInt32> = unsafeBitCast(input, to: SIMD16<UInt32>.self)
    // input = m * 2^e with m in [0.5, 1)
    // The exponent field as a float, by the same magic-number trick in reverse.
    var e = unsafeBitCast(((bits &>> 23) & 0xff) | 0x4B00_0000, to: SIMD16<Float>.self) - (8_388_608 + 126)
    var m: SIMD16<Float> = unsafeBitCast((bits & 0x807f_ffff) | 0x3f00_0000, to: SIMD16<Float>.self)
    // Bring m into [sqrt(1/2), sqrt(2)) so the polynomial argument x = m - 1 stays small.
    let small = m .< 0.707106781186547524
    e = e.replacing(with: e - 1, where: small)
    m = m.replacing(with: m + m, where: small)
    let x = m - 1
    let z = x * x
    var y = SIMD16<Float>(repeating: 7.0376836292e-2)
    y = y * x - 1.1514610310e-1
    y = y * x + 1.1676998740e-1
    y = y * x - 1.2420140846e-1
    y = y * x + 1.4249322787e-1
    y = y * x - 1.6668057665e-1
    y = y * x + 2.0000714765e-1
    y = y * x - 2.4999993993e-1
    y = y * x + 3.3333331174e-1
    y = y * x * z
    y = y - e * 2.12194440e-4
    y = y - 0.5 * z
    return x + y + e * 0.693359375
}

/// out[i] = a[i] + b[i] (out may alias a or b).
public func vectorAdd(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    let full = count & ~15
    var i = 0
    while i < full { store16(load16(a + i) + load16(b + i), out + i); i += 16 }
    while i < count { out[i] = a[i] + b[i]; i += 1 }
}

/// Lane-wise max and min as compare + blend. (The standard library's pointwiseMax/Min
/// follow IEEE maximum/minimum NaN rules lane by lane and compile to scalar code.)
@inlinable @inline(__always)
public func vmax(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a.replacing(with: b, where: a .< b) }

@inlinable @inline(__always)
public func vmin(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a.replacing(with: b, where: b .< a) }

@inlinable @inline(__always)
public func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inlinable @inline(__always)
public func store16(_ v: SIMD16<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}
