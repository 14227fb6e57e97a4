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

/// Equal arrays, a failure reported by the first difference. (`#expect(a == b)` on large arrays
/// describes a failure by diffing them element by element, which took over 10 minutes for a
/// model's parameters.)
func expectIdentical<T: Equatable>(_ actual: [T], _ expected: [T], _ what: String = "",
                                   sourceLocation: SourceLocation = #_sourceLocation) {
    let first = zip(actual, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset
    if actual.count != expected.count || first != nil {
        let at = first ?? min(actual.count, expected.count)
        let values = first.map { ": \(actual[$0]) vs \(expected[$0])" } ?? ""
        Issue.record("\(what): differ at element \(at) (counts \(actual.count) and \(expected.count))\(values)",
                     sourceLocation: sourceLocation)
    }
}

/// Bit-identical floats (NaN equal to the same NaN), reported by the first difference.
func expectIdentical(_ actual: [Float], _ expected: [Float], _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
    expectIdentical(actual.map(\.bitPattern), expected.map(\.bitPattern), what, sourceLocation: sourceLocation)
}

/// Deterministic pseudo-random floats in [-scale, scale).
func randomFloats(_ count: Int, seed: UInt64, scale: Float = 1) -> [Float] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
}

@Suite struct ToleranceTests {
    /// The helpers fail where they should (a helper that never records an issue would pass every test).
    @Test func helpersRecordDifferences() {
        withKnownIssue { expectIdentical([1, 2, 3], [1, 2, 4], "values") }
        withKnownIssue { expectIdentical([1, 2], [1, 2, 3], "counts") }
        withKnownIssue { expectIdentical([Float(0)], [-Float(0)], "bits of 0 and -0") }
        withKnownIssue { expectClose([1, 2], [1, 2.1], rtol: 1e-3, atol: 0, "values") }
        expectIdentical([Float.nan, 1], [Float.nan, 1], "the same NaN")
        expectClose([1, 2], [1, 2.0001], rtol: 1e-3, atol: 0, "within rtol")
    }
}
