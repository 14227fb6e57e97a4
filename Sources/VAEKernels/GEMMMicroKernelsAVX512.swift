// The AVX-512 register tiles of the packed GEMM (GEMM.swift): 12 x 32 on zmm registers with
// its 4-row tail, and 12 x 16 on the ymm registers AVX-512VL gives; then the stores of a full
// tile straight from its registers. The tile enum and the AVX2 tiles are in
// GEMMMicroKernels.swift; as there, each tile is generic over the ISA tag only so that every
// per-ISA target compiles its own copy with its own -march.

/// The AVX-512 register tile: C[12, 32] (+)= Apanel[kc, 12]^T · Bpanel[kc, 32].
/// 24 SIMD16 accumulators (24 of the 32 zmm registers); per step two B vectors,
/// twelve broadcasts of A and 24 FMAs. SIMD16, never SIMD32: one SIMD16 is one zmm,
/// while SIMD32 values compile to no vector FMAs at all.
@inlinable @inline(never)
func microKernel12x32<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, rowStride rs: Int, kStride: Int,
                                   b: UnsafePointer<Float>,
                                   c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var c8 = V(), c9 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V()
    var c16 = V(), c17 = V(), c18 = V(), c19 = V(), c20 = V(), c21 = V(), c22 = V(), c23 = V()
    var pb = UnsafeRawPointer(b)
    if rs == 1 {
        // A packed, or op(A) = A^T: the twelve values of a step are adjacent.
        var pa = a
        var remaining = kc  // >= 1: gemm never calls with an empty K block
        repeat {
            let b0 = pb.load(as: V.self), b1 = (pb + 64).load(as: V.self)
            var x = V(repeating: pa[0]); c0 = c0.addingProduct(x, b0); c1 = c1.addingProduct(x, b1)
            x = V(repeating: pa[1]); c2 = c2.addingProduct(x, b0); c3 = c3.addingProduct(x, b1)
            x = V(repeating: pa[2]); c4 = c4.addingProduct(x, b0); c5 = c5.addingProduct(x, b1)
            x = V(repeating: pa[3]); c6 = c6.addingProduct(x, b0); c7 = c7.addingProduct(x, b1)
            x = V(repeating: pa[4]); c8 = c8.addingProduct(x, b0); c9 = c9.addingProduct(x, b1)
            x = V(repeating: pa[5]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V(repeating: pa[6]); c12 = c12.addingProduct(x, b0); c13 = c13.addingProduct(x, b1)
            x = V(repeating: pa[7]); c14 = c14.addingProduct(x, b0); c15 = c15.addingProduct(x, b1)
            x = V(repeating: pa[8]); c16 = c16.addingProduct(x, b0); c17 = c17.addingProduct(x, b1)
            x = V(repeating: pa[9]); c18 = c18.addingProduct(x, b0); c19 = c19.addingProduct(x, b1)
            x = V(repeating: pa[10]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V(repeating: pa[11]); c22 = c22.addingProduct(x, b0); c23 = c23.addingProduct(x, b1)
            pa += kStride
            pb += 128
            remaining &-= 1
        } while remaining > 0
    } else {
        // Rows of a row-major A (kStride 1): four row pointers three rows apart and one shared
        // index (12 separate pointers would not fit the general registers).
        let a0 = a, a3 = a + 3 * rs, a6 = a + 6 * rs, a9 = a + 9 * rs
        let r1 = rs, r2 = 2 * rs
        var p = 0
        repeat {
            let b0 = pb.load(as: V.self), b1 = (pb + 64).load(as: V.self)
            var x = V(repeating: a0[p]); c0 = c0.addingProduct(x, b0); c1 = c1.addingProduct(x, b1)
            x = V(repeating: a0[p + r1]); c2 = c2.addingProduct(x, b0); c3 = c3.addingProduct(x, b1)
            x = V(repeating: a0[p + r2]); c4 = c4.addingProduct(x, b0); c5 = c5.addingProduct(x, b1)
            x = V(repeating: a3[p]); c6 = c6.addingProduct(x, b0); c7 = c7.addingProduct(x, b1)
            x = V(repeating: a3[p + r1]); c8 = c8.addingProduct(x, b0); c9 = c9.addingProduct(x, b1)
            x = V(repeating: a3[p + r2]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V(repeating: a6[p]); c12 = c12.addingProduct(x, b0); c13 = c13.addingProduct(x, b1)
            x = V(repeating: a6[p + r1]); c14 = c14.addingProduct(x, b0); c15 = c15.addingProduct(x, b1)
            x = V(repeating: a6[p + r2]); c16 = c16.addingProduct(x, b0); c17 = c17.addingProduct(x, b1)
            x = V(repeating: a9[p]); c18 = c18.addingProduct(x, b0); c19 = c19.addingProduct(x, b1)
            x = V(repeating: a9[p + r1]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V(repeating: a9[p + r2]); c22 = c22.addingProduct(x, b0); c23 = c23.addingProduct(x, b1)
            p &+= 1
            pb += 128
        } while p < kc
    }
    storeTile12x32(c, ldc: ldc, rows: rows, columns: columns, load: load,
                   (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15,
                    c16, c17, c18, c19, c20, c21, c22, c23))
}

/// The 12 x 32 tile's 24 accumulators, row r in (2r, 2r + 1).
@usableFromInline typealias Tile12x32 = (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>,
                       SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>,
                       SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>,
                       SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)

/// Rows ..< rows, columns ..< columns of a 12 x 32 tile into C: stored, or added to C when `load`.
@inlinable @inline(__always)
func storeTile12x32(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool, _ tile: Tile12x32) {
    typealias V = SIMD16<Float>
    let (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15,
         c16, c17, c18, c19, c20, c21, c22, c23) = tile
    if rows == 12 && columns == 32 {
        // A full tile straight from the registers (through the tuple below, the 24 vectors
        // went to the stack and back first: about a tenth of this kernel's time at K = 32).
        storeTileRow(c, ldc: ldc, 0, c0, c1, load: load); storeTileRow(c, ldc: ldc, 1, c2, c3, load: load)
        storeTileRow(c, ldc: ldc, 2, c4, c5, load: load); storeTileRow(c, ldc: ldc, 3, c6, c7, load: load)
        storeTileRow(c, ldc: ldc, 4, c8, c9, load: load); storeTileRow(c, ldc: ldc, 5, c10, c11, load: load)
        storeTileRow(c, ldc: ldc, 6, c12, c13, load: load); storeTileRow(c, ldc: ldc, 7, c14, c15, load: load)
        storeTileRow(c, ldc: ldc, 8, c16, c17, load: load); storeTileRow(c, ldc: ldc, 9, c18, c19, load: load)
        storeTileRow(c, ldc: ldc, 10, c20, c21, load: load); storeTileRow(c, ldc: ldc, 11, c22, c23, load: load)
        return
    }
    if rows == 12 && columns == 16 {
        // Padded weights of 16 columns (a transposed convolution to one channel): the left halves.
        storeTileHalf(c, ldc: ldc, 0, c0, load: load); storeTileHalf(c, ldc: ldc, 1, c2, load: load)
        storeTileHalf(c, ldc: ldc, 2, c4, load: load); storeTileHalf(c, ldc: ldc, 3, c6, load: load)
        storeTileHalf(c, ldc: ldc, 4, c8, load: load); storeTileHalf(c, ldc: ldc, 5, c10, load: load)
        storeTileHalf(c, ldc: ldc, 6, c12, load: load); storeTileHalf(c, ldc: ldc, 7, c14, load: load)
        storeTileHalf(c, ldc: ldc, 8, c16, load: load); storeTileHalf(c, ldc: ldc, 9, c18, load: load)
        storeTileHalf(c, ldc: ldc, 10, c20, load: load); storeTileHalf(c, ldc: ldc, 11, c22, load: load)
        return
    }
    // Row r of the tile is (c[2r], c[2r + 1]): 32 consecutive floats in the tuple.
    withUnsafeBytes(of: tile) { raw in
        let t = raw.baseAddress!
        if columns == 32 {
            for r in 0..<rows {
                let row = UnsafeMutableRawPointer(c + r * ldc)
                var lo = t.loadUnaligned(fromByteOffset: r * 128, as: V.self)
                var hi = t.loadUnaligned(fromByteOffset: r * 128 + 64, as: V.self)
                if load {
                    lo += row.loadUnaligned(as: V.self)
                    hi += row.loadUnaligned(fromByteOffset: 64, as: V.self)
                }
                row.storeBytes(of: lo, as: V.self)
                row.storeBytes(of: hi, toByteOffset: 64, as: V.self)
            }
            return
        }
        let source = t.assumingMemoryBound(to: Float.self)
        for r in 0..<rows {
            let row = c + r * ldc
            let s = source + r * 32
            if load {
                for q in 0..<columns { row[q] += s[q] }
            } else {
                for q in 0..<columns { row[q] = s[q] }
            }
        }
    }
}

/// The 12 x 32 tile's tail: C[4, 32] (+)= Apanel[kc, 4]^T · Bpanel[kc, 32], A packed. Eight
/// SIMD16 accumulators, as many chains as two FMA pipes of 4-cycle latency need. For the rows
/// past a block's last full 12-row tile (64 rows: 5 x 12 + 4), which a padded 12-row tile would
/// compute three times over.
@inlinable @inline(never)
func microKernel4x32<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                  c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var pa = a
    var pb = UnsafeRawPointer(b)
    var remaining = kc  // >= 1: gemm never calls with an empty K block
    repeat {
        let b0 = pb.load(as: V.self), b1 = (pb + 64).load(as: V.self)
        var x = V(repeating: pa[0]); c0 = c0.addingProduct(x, b0); c1 = c1.addingProduct(x, b1)
        x = V(repeating: pa[1]); c2 = c2.addingProduct(x, b0); c3 = c3.addingProduct(x, b1)
        x = V(repeating: pa[2]); c4 = c4.addingProduct(x, b0); c5 = c5.addingProduct(x, b1)
        x = V(repeating: pa[3]); c6 = c6.addingProduct(x, b0); c7 = c7.addingProduct(x, b1)
        pa += 4
        pb += 128
        remaining &-= 1
    } while remaining > 0
    storeTile4x32(c, ldc: ldc, rows: rows, columns: columns, load: load, (c0, c1, c2, c3, c4, c5, c6, c7))
}

/// Rows ..< rows, columns ..< columns of a 4 x 32 tile (row r in (2r, 2r + 1)) into C: stored,
/// or added to C when `load`.
@inlinable @inline(__always)
func storeTile4x32(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool,
                   _ tile: (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>,
                            SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)) {
    typealias V = SIMD16<Float>
    let (c0, c1, c2, c3, c4, c5, c6, c7) = tile
    if rows == 4 && columns == 32 {
        storeTileRow(c, ldc: ldc, 0, c0, c1, load: load); storeTileRow(c, ldc: ldc, 1, c2, c3, load: load)
        storeTileRow(c, ldc: ldc, 2, c4, c5, load: load); storeTileRow(c, ldc: ldc, 3, c6, c7, load: load)
        return
    }
    withUnsafeBytes(of: tile) { raw in
        let t = raw.baseAddress!
        let source = t.assumingMemoryBound(to: Float.self)
        for r in 0..<rows {
            let row = c + r * ldc
            if columns == 32 {
                var lo = t.loadUnaligned(fromByteOffset: r * 128, as: V.self)
                var hi = t.loadUnaligned(fromByteOffset: r * 128 + 64, as: V.self)
                if load {
                    lo += UnsafeRawPointer(row).loadUnaligned(as: V.self)
                    hi += UnsafeRawPointer(row).loadUnaligned(fromByteOffset: 64, as: V.self)
                }
                UnsafeMutableRawPointer(row).storeBytes(of: lo, as: V.self)
                UnsafeMutableRawPointer(row).storeBytes(of: hi, toByteOffset: 64, as: V.self)
            } else if load {
                for q in 0..<columns { row[q] += source[r * 32 + q] }
            } else {
                for q in 0..<columns { row[q] = source[r * 32 + q] }
            }
        }
    }
}

/// The AVX-512VL ymm tile: C[12, 16] (+)= Apanel[kc, 12]^T · Bpanel[kc, 16]. 24 SIMD8
/// accumulators (24 of the 32 ymm registers AVX-512VL addresses); per step two B vectors,
/// twelve broadcasts of A and 24 ymm FMAs: the 12 x 32 tile's schedule at half the width.
@inlinable @inline(never)
func microKernel12x16<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, rowStride rs: Int, kStride: Int,
                                   b: UnsafePointer<Float>,
                                   c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD8<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var c8 = V(), c9 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V()
    var c16 = V(), c17 = V(), c18 = V(), c19 = V(), c20 = V(), c21 = V(), c22 = V(), c23 = V()
    var pb = UnsafeRawPointer(b)
    if rs == 1 {
        // A packed, or op(A) = A^T: the twelve values of a step are adjacent.
        var pa = a
        var remaining = kc  // >= 1: gemm never calls with an empty K block
        repeat {
            let b0 = pb.load(as: V.self), b1 = (pb + 32).load(as: V.self)
            var x = V(repeating: pa[0]); c0 = c0.addingProduct(x, b0); c1 = c1.addingProduct(x, b1)
            x = V(repeating: pa[1]); c2 = c2.addingProduct(x, b0); c3 = c3.addingProduct(x, b1)
            x = V(repeating: pa[2]); c4 = c4.addingProduct(x, b0); c5 = c5.addingProduct(x, b1)
            x = V(repeating: pa[3]); c6 = c6.addingProduct(x, b0); c7 = c7.addingProduct(x, b1)
            x = V(repeating: pa[4]); c8 = c8.addingProduct(x, b0); c9 = c9.addingProduct(x, b1)
            x = V(repeating: pa[5]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V(repeating: pa[6]); c12 = c12.addingProduct(x, b0); c13 = c13.addingProduct(x, b1)
            x = V(repeating: pa[7]); c14 = c14.addingProduct(x, b0); c15 = c15.addingProduct(x, b1)
            x = V(repeating: pa[8]); c16 = c16.addingProduct(x, b0); c17 = c17.addingProduct(x, b1)
            x = V(repeating: pa[9]); c18 = c18.addingProduct(x, b0); c19 = c19.addingProduct(x, b1)
            x = V(repeating: pa[10]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V(repeating: pa[11]); c22 = c22.addingProduct(x, b0); c23 = c23.addingProduct(x, b1)
            pa += kStride
            pb += 64
            remaining &-= 1
        } while remaining > 0
    } else {
        // Rows of a row-major A (kStride 1): four row pointers three rows apart and one shared index.
        let a0 = a, a3 = a + 3 * rs, a6 = a + 6 * rs, a9 = a + 9 * rs
        let r1 = rs, r2 = 2 * rs
        var p = 0
        repeat {
            let b0 = pb.load(as: V.self), b1 = (pb + 32).load(as: V.self)
            var x = V(repeating: a0[p]); c0 = c0.addingProduct(x, b0); c1 = c1.addingProduct(x, b1)
            x = V(repeating: a0[p + r1]); c2 = c2.addingProduct(x, b0); c3 = c3.addingProduct(x, b1)
            x = V(repeating: a0[p + r2]); c4 = c4.addingProduct(x, b0); c5 = c5.addingProduct(x, b1)
            x = V(repeating: a3[p]); c6 = c6.addingProduct(x, b0); c7 = c7.addingProduct(x, b1)
            x = V(repeating: a3[p + r1]); c8 = c8.addingProduct(x, b0); c9 = c9.addingProduct(x, b1)
            x = V(repeating: a3[p + r2]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = V(repeating: a6[p]); c12 = c12.addingProduct(x, b0); c13 = c13.addingProduct(x, b1)
            x = V(repeating: a6[p + r1]); c14 = c14.addingProduct(x, b0); c15 = c15.addingProduct(x, b1)
            x = V(repeating: a6[p + r2]); c16 = c16.addingProduct(x, b0); c17 = c17.addingProduct(x, b1)
            x = V(repeating: a9[p]); c18 = c18.addingProduct(x, b0); c19 = c19.addingProduct(x, b1)
            x = V(repeating: a9[p + r1]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = V(repeating: a9[p + r2]); c22 = c22.addingProduct(x, b0); c23 = c23.addingProduct(x, b1)
            p &+= 1
            pb += 64
        } while p < kc
    }
    if rows == 12 && columns == 16 {
        // A full tile straight from the registers, as the 12 x 32 tile does.
        storeTileRow(c, ldc: ldc, 0, c0, c1, load: load); storeTileRow(c, ldc: ldc, 1, c2, c3, load: load)
        storeTileRow(c, ldc: ldc, 2, c4, c5, load: load); storeTileRow(c, ldc: ldc, 3, c6, c7, load: load)
        storeTileRow(c, ldc: ldc, 4, c8, c9, load: load); storeTileRow(c, ldc: ldc, 5, c10, c11, load: load)
        storeTileRow(c, ldc: ldc, 6, c12, c13, load: load); storeTileRow(c, ldc: ldc, 7, c14, c15, load: load)
        storeTileRow(c, ldc: ldc, 8, c16, c17, load: load); storeTileRow(c, ldc: ldc, 9, c18, c19, load: load)
        storeTileRow(c, ldc: ldc, 10, c20, c21, load: load); storeTileRow(c, ldc: ldc, 11, c22, c23, load: load)
        return
    }
    // Row r of the tile is (c[2r], c[2r + 1]): 16 consecutive floats in this tuple.
    let tile = (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15,
                c16, c17, c18, c19, c20, c21, c22, c23)
    withUnsafeBytes(of: tile) { raw in
        let t = raw.baseAddress!
        if columns == 16 {
            for r in 0..<rows {
                let row = UnsafeMutableRawPointer(c + r * ldc)
                var lo = t.loadUnaligned(fromByteOffset: r * 64, as: V.self)
                var hi = t.loadUnaligned(fromByteOffset: r * 64 + 32, as: V.self)
                if load {
                    lo += row.loadUnaligned(as: V.self)
                    hi += row.loadUnaligned(fromByteOffset: 32, as: V.self)
                }
                row.storeBytes(of: lo, as: V.self)
                row.storeBytes(of: hi, toByteOffset: 32, as: V.self)
            }
            return
        }
        let source = t.assumingMemoryBound(to: Float.self)
        for r in 0..<rows {
            let row = c + r * ldc
            let s = source + r * 16
            if load {
                for q in 0..<columns { row[q] += s[q] }
            } else {
                for q in 0..<columns { row[q] = s[q] }
            }
        }
    }
}

/// Row r of a tile held as two vectors (lo, hi) into C: stored, or added to C's row when `load`.
@inlinable @inline(__always)
func storeTileRow<V: SIMD>(_ c: UnsafeMutablePointer<Float>, ldc: Int, _ r: Int, _ lo: V, _ hi: V, load: Bool)
    where V.Scalar == Float {
    let row = UnsafeMutableRawPointer(c + r * ldc)
    var lo = lo, hi = hi
    if load {
        lo += row.loadUnaligned(as: V.self)
        hi += row.loadUnaligned(fromByteOffset: MemoryLayout<V>.size, as: V.self)
    }
    row.storeBytes(of: lo, as: V.self)
    row.storeBytes(of: hi, toByteOffset: MemoryLayout<V>.size, as: V.self)
}

/// The first vector of row r of a tile into C: stored, or added to C's row when `load`.
@inlinable @inline(__always)
func storeTileHalf<V: SIMD>(_ c: UnsafeMutablePointer<Float>, ldc: Int, _ r: Int, _ lo: V, load: Bool) where V.Scalar == Float {
    let row = UnsafeMutableRawPointer(c + r * ldc)
    var lo = lo
    if load { lo += row.loadUnaligned(as: V.self) }
    row.storeBytes(of: lo, as: V.self)
}
