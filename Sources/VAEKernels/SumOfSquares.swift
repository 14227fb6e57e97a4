// The global gradient norm's pieces: the sum of squares and the scaling that clips it.

/// Sum of squares of `count` floats, accumulated in Double (the global gradient norm squared).
public func sumOfSquares(_ values: UnsafePointer<Float>, count: Int) -> Double {
    // 8 Float lanes per block, each block's partial sum added in Double: exact enough for a
    // norm, and far cheaper than converting every element.
    var total = 0.0
    var i = 0
    while i + 8 <= count {
        let v = UnsafeRawPointer(values + i).loadUnaligned(as: SIMD8<Float>.self)
        total += Double((v * v).sum())
        i += 8
    }
    while i < count {
        total += Double(values[i] * values[i])
        i += 1
    }
    return total
}

/// values[i] *= factor.
public func vectorScale(_ values: UnsafeMutablePointer<Float>, by factor: Float, count: Int) {
    vectorScale(UnsafePointer(values), by: factor, count: count, into: values)
}

/// out[i] = values[i] * factor (out may be values).
public func vectorScale(_ values: UnsafePointer<Float>, by factor: Float, count: Int, into out: UnsafeMutablePointer<Float>) {
    for i in 0..<count { out[i] = values[i] * factor }
}
