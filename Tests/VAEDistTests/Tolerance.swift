import Testing

/// |actual - expected| <= atol + rtol * |expected| elementwise; reports the worst element
/// at the caller's file and line.
func expectClose(_ actual: [Float], _ expected: [Float], rtol: Float = 1e-5, atol: Float = 1e-6,
                 _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.count, "\(what): count \(actual.count) != \(expected.count)", sourceLocation: sourceLocation)
    var worst = -1
    var worstExcess: Float = 0
    for i in 0..<min(actual.count, expected.count) {
        let excess = abs(actual[i] - expected[i]) - (atol + rtol * abs(expected[i]))
        if !(excess <= worstExcess) || !actual[i].isFinite { worst = i; worstExcess = excess.isNaN ? .infinity : excess }
    }
    if worst >= 0 {
        Issue.record("\(what): element \(worst) is \(actual[worst]), expected \(expected[worst]) (rtol \(rtol), atol \(atol))",
                     sourceLocation: sourceLocation)
    }
}

func expectClose(_ actual: Double, _ expected: Double, rtol: Double = 1e-6, atol: Double = 1e-9,
                 _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(abs(actual - expected) <= atol + rtol * abs(expected), "\(what): \(actual) vs expected \(expected)",
            sourceLocation: sourceLocation)
}

/// Deterministic pseudo-random floats in [-scale, scale).
func randomFloats(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
}
