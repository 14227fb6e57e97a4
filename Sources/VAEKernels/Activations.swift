// Bias and ReLU as forward/backward pairs over [rows, columns] row-major buffers, generic
// over the ISA tag so each per-ISA target compiles its own copy (KernelSet.swift).

/// out[r, c] += bias[c]; out's rows are `rowStride` apart (default `columns`; wider for a block
/// of columns of a wider matrix).
@inlinable
public func biasForward<ISA: ISATag>(_: ISA.Type, _ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int,
                                     rowStride: Int? = nil) {
    let stride = rowStride ?? columns
    let full = columns & ~15
    for r in 0..<rows {
        let row = out + r * stride
        var c = 0
        while c < full { store16(load16(row + c) + load16(bias + c), row + c); c += 16 }
        while c < columns { row[c] += bias[c]; c += 1 }
    }
}

/// dbias[c] += sum over rows of dout[r, c]; dout's rows are `rowStride` apart (default
/// `columns`; wider when summing a block of columns of a wider matrix).
@inlinable
public func biasBackward<ISA: ISATag>(_: ISA.Type, _ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, rows: Int, columns: Int,
                                      rowStride: Int? = nil) {
    let stride = rowStride ?? columns
    let full = columns & ~15
    var c = 0
    // 64 and then 32 columns at a time: each column's sum runs down the rows in order as before
    // (the same bits), but four or two independent chains share one pass over the rows.
    while c + 64 <= full {
        var a0 = load16(dbias + c), a1 = load16(dbias + c + 16), a2 = load16(dbias + c + 32), a3 = load16(dbias + c + 48)
        for r in 0..<rows {
            let row = dout + r * stride + c
            a0 += load16(row); a1 += load16(row + 16); a2 += load16(row + 32); a3 += load16(row + 48)
        }
        store16(a0, dbias + c); store16(a1, dbias + c + 16); store16(a2, dbias + c + 32); store16(a3, dbias + c + 48)
        c += 64
    }
    while c + 32 <= full {
        var a0 = load16(dbias + c), a1 = load16(dbias + c + 16)
        for r in 0..<rows {
            let row = dout + r * stride + c
            a0 += load16(row); a1 += load16(row + 16)
        }
        store16(a0, dbias + c); store16(a1, dbias + c + 16)
        c += 32
    }
    while c < full {
        var acc = load16(dbias + c)
        for r in 0..<rows { acc += load16(dout + r * stride + c) }
        store16(acc, dbias + c)
        c += 16
    }
    while c < columns {
        var acc = dbias[c]
        for r in 0..<rows { acc += dout[r * stride + c] }
        dbias[c] = acc
        c += 1
    }
}

/// out = max(out + bias, 0), in place: the bias and ReLU epilogue of a hidden layer; rows
/// `rowStride` apart as in biasForward.
@inlinable
public func biasReluForward<ISA: ISATag>(_: ISA.Type, _ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int,
                                         rowStride: Int? = nil) {
    let stride = rowStride ?? columns
    let full = columns & ~15
    let zero = SIMD16<Float>()
    for r in 0..<rows {
        let row = out + r * stride
        var c = 0
        while c < full { store16(vmax(load16(row + c) + load16(bias + c), zero), row + c); c += 16 }
        while c < columns { row[c] = max(row[c] + bias[c], 0); c += 1 }
    }
}

/// dinp = dout where out > 0, else 0 (in place on dout allowed). `out` is the ReLU output.
@inlinable
public func reluBackward<ISA: ISATag>(_: ISA.Type, _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ out: UnsafePointer<Float>, count: Int) {
    let full = count & ~15
    var i = 0
    let zero = SIMD16<Float>()
    while i < full {
        let d = load16(dout + i)
        store16(d.replacing(with: zero, where: load16(out + i) .<= zero), dinp + i)
        i += 16
    }
    while i < count { dinp[i] = out[i] > 0 ? dout[i] : 0; i += 1 }
}

// MARK: - References

public func biasReluForwardNaive(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int) {
    for r in 0..<rows { for c in 0..<columns { out[r * columns + c] = max(out[r * columns + c] + bias[c], 0) } }
}

public func biasBackwardNaive(_ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, rows: Int, columns: Int) {
    for c in 0..<columns {
        var acc = Double(dbias[c])
        for r in 0..<rows { acc += Double(dout[r * columns + c]) }
        dbias[c] = Float(acc)
    }
}

public func reluBackwardNaive(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ out: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { dinp[i] = out[i] > 0 ? dout[i] : 0 }
}
