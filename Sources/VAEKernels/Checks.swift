// Cheap whole-buffer checks run by the training loop: are all values finite
// (before gradients are exchanged), and a checksum of the exact bits (to catch
// ranks whose parameters drifted apart).

/// True when no element is NaN or infinite: x * 0 is 0 for finite x and NaN otherwise.
public func allFinite(_ p: UnsafePointer<Float>, count: Int) -> Bool {
    var acc = SIMD16<Float>()
    let full = count & ~15
    var i = 0
    while i < full { acc += load16(p + i) * 0; i += 16 }
    var tail: Float = 0
    while i < count { tail += p[i] * 0; i += 1 }
    return acc.sum() == 0 && tail == 0
}

/// A 64-bit checksum of the exact bit patterns: equal buffers give equal sums, and
/// any change of one element changes it (each word is weighted by an odd number).
public func bitChecksum(_ p: UnsafePointer<Float>, count: Int) -> UInt64 {
    let words = UnsafeRawPointer(p).assumingMemoryBound(to: UInt32.self)
    var lanes = SIMD8<UInt64>()
    let weights = SIMD8<UInt64>(1, 3, 5, 7, 9, 11, 13, 15)
    var i = 0
    var block: UInt64 = 0
    while i + 8 <= count {
        var v = SIMD8<UInt64>()
        for j in 0..<8 { v[j] = UInt64(words[i + j]) }
        lanes = lanes &+ v &* (weights &+ SIMD8(repeating: block &* 16))
        block &+= 1
        i += 8
    }
    var sum = lanes.wrappedSum()
    while i < count { sum = sum &+ UInt64(words[i]) &* UInt64(2 * i + 1); i += 1 }
    return sum
}
