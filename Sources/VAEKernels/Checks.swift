// Cheap whole-buffer checks run by the training loop: are all values finite
// (before gradients are exchanged), and a checksum of the exact bits (to catch
// ranks whose parameters drifted apart).

/// True when no element is NaN or infinite: x * 0 is 0 for finite x and NaN otherwise.
public func allFinite(_ p: UnsafePointer<Float>, count: Int) -> Bool {
    // x * 0 is 0 for every finite x and NaN for NaN and +-inf; four independent sums.
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var i = 0
    while i + 64 <= count {
        a0 += load16(p + i) * 0; a1 += load16(p + i + 16) * 0
        a2 += load16(p + i + 32) * 0; a3 += load16(p + i + 48) * 0
        i += 64
    }
    while i + 16 <= count { a0 += load16(p + i) * 0; i += 16 }
    var tail: Float = 0
    while i < count { tail += p[i] * 0; i += 1 }
    return ((a0 + a1) + (a2 + a3)).sum() == 0 && tail == 0
}

extension KernelThreads {
    /// allFinite over blocks of the buffer on the threads (a 2.6 MB gradient is checked every
    /// step, between two parallel regions: done on one thread, the others would fall asleep).
    public func allFinite(_ p: UnsafePointer<Float>, count: Int) -> Bool {
        withUnsafeTemporaryAllocation(of: Bool.self, capacity: self.count) { flags in
            flags.initialize(repeating: true)
            forEachRange(count, alignment: 64, minimum: 65_536, FiniteCheck(p: p, flags: flags.baseAddress!))
            return flags.allSatisfy { $0 }
        }
    }
}

struct FiniteCheck: RangeWork {
    let p: UnsafePointer<Float>
    let flags: UnsafeMutablePointer<Bool>

    func run(_ range: Range<Int>, thread: Int) {
        if !allFinite(p + range.lowerBound, count: range.count) { flags[thread] = false }
    }
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
