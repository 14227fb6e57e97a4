// The 12 x 32 (AVX-512) and 6 x 16 (AVX2) tiles reading op(B) in place through row pointers:
// for a source whose panel rows are contiguous where they lie (GEMMPanelSource.panelRows: a
// convolution's patches, each row of a whole-pixel panel nr of one pixel's channels in the
// image; B itself, GEMMMatrix), gemm hands the tiles a list of the kc row addresses instead of
// copying the rows into a packed panel first. The tiles run the same FMAs on the same values in
// the same order as on the packed panel, so the bits are the same; only the copy is gone. Only
// for op(A) = A^T (weight gradients: dout^T · patches, dout^T · x), whose step of mr values is
// adjacent in A.

/// C[12, 32] (+)= A[kc, 12 adjacent, kStride apart] · B[kc rows at b[0 ..< kc], 32 each]: the
/// 12 x 32 tile's loop with each step's two B vectors loaded through the step's row pointer.
@inlinable @inline(never)
func microKernel12x32Rows<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, kStride: Int,
                                       b: UnsafePointer<UnsafePointer<Float>>,
                                       c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var c8 = V(), c9 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V()
    var c16 = V(), c17 = V(), c18 = V(), c19 = V(), c20 = V(), c21 = V(), c22 = V(), c23 = V()
    var pa = a
    var p = 0  // kc >= 1: gemm never calls with an empty K block
    repeat {
        let pb = UnsafeRawPointer(b[p])
        let b0 = pb.loadUnaligned(as: V.self), b1 = pb.loadUnaligned(fromByteOffset: 64, as: V.self)
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
        p &+= 1
    } while p < kc
    storeTile12x32(c, ldc: ldc, rows: rows, columns: columns, load: load,
                   (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15,
                    c16, c17, c18, c19, c20, c21, c22, c23))
}

/// The 4-row tail of microKernel12x32Rows: C[4, 32] (+)= Apanel[kc, 4] (packed) · B[kc rows at b].
@inlinable @inline(never)
func microKernel4x32Rows<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<UnsafePointer<Float>>,
                                      c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var pa = a
    var p = 0
    repeat {
        let pb = UnsafeRawPointer(b[p])
        let b0 = pb.loadUnaligned(as: V.self), b1 = pb.loadUnaligned(fromByteOffset: 64, as: V.self)
        var x = V(repeating: pa[0]); c0 = c0.addingProduct(x, b0); c1 = c1.addingProduct(x, b1)
        x = V(repeating: pa[1]); c2 = c2.addingProduct(x, b0); c3 = c3.addingProduct(x, b1)
        x = V(repeating: pa[2]); c4 = c4.addingProduct(x, b0); c5 = c5.addingProduct(x, b1)
        x = V(repeating: pa[3]); c6 = c6.addingProduct(x, b0); c7 = c7.addingProduct(x, b1)
        pa += 4
        p &+= 1
    } while p < kc
    storeTile4x32(c, ldc: ldc, rows: rows, columns: columns, load: load, (c0, c1, c2, c3, c4, c5, c6, c7))
}

/// Eight rows past the 12-row tiles (M = 32: 12 + 12 + 8), one tile instead of two 4-row ones:
/// C[8, 32] (+)= A[kc, 8 adjacent, kStride apart] (in place) · B[kc rows at b]. 16 accumulators.
@inlinable @inline(never)
func microKernel8x32Rows<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, kStride: Int,
                                      b: UnsafePointer<UnsafePointer<Float>>, c: UnsafeMutablePointer<Float>, ldc: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V(), c6 = V(), c7 = V()
    var c8 = V(), c9 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V()
    var pa = a
    var p = 0
    repeat {
        let pb = UnsafeRawPointer(b[p])
        let b0 = pb.loadUnaligned(as: V.self), b1 = pb.loadUnaligned(fromByteOffset: 64, as: V.self)
        var x = V(repeating: pa[0]); c0 = c0.addingProduct(x, b0); c1 = c1.addingProduct(x, b1)
        x = V(repeating: pa[1]); c2 = c2.addingProduct(x, b0); c3 = c3.addingProduct(x, b1)
        x = V(repeating: pa[2]); c4 = c4.addingProduct(x, b0); c5 = c5.addingProduct(x, b1)
        x = V(repeating: pa[3]); c6 = c6.addingProduct(x, b0); c7 = c7.addingProduct(x, b1)
        x = V(repeating: pa[4]); c8 = c8.addingProduct(x, b0); c9 = c9.addingProduct(x, b1)
        x = V(repeating: pa[5]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
        x = V(repeating: pa[6]); c12 = c12.addingProduct(x, b0); c13 = c13.addingProduct(x, b1)
        x = V(repeating: pa[7]); c14 = c14.addingProduct(x, b0); c15 = c15.addingProduct(x, b1)
        pa += kStride
        p &+= 1
    } while p < kc
    storeTileRow(c, ldc: ldc, 0, c0, c1, load: load); storeTileRow(c, ldc: ldc, 1, c2, c3, load: load)
    storeTileRow(c, ldc: ldc, 2, c4, c5, load: load); storeTileRow(c, ldc: ldc, 3, c6, c7, load: load)
    storeTileRow(c, ldc: ldc, 4, c8, c9, load: load); storeTileRow(c, ldc: ldc, 5, c10, c11, load: load)
    storeTileRow(c, ldc: ldc, 6, c12, c13, load: load); storeTileRow(c, ldc: ldc, 7, c14, c15, load: load)
}

/// The AVX2 tile's loop for op(A) = A^T with B's rows in place: C[6, 16] (+)= A[kc, 6 adjacent,
/// kStride apart] · B[kc rows at b[0 ..< kc], 16 each], the FMAs of microKernel6x16.
@inlinable @inline(never)
func microKernel6x16Rows<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, kStride: Int,
                                      b: UnsafePointer<UnsafePointer<Float>>,
                                      c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V()
    var pa = a
    var p = 0  // kc >= 1: gemm never calls with an empty K block
    repeat {
        let bv = UnsafeRawPointer(b[p]).loadUnaligned(as: V.self)
        c0 = c0.addingProduct(V(repeating: pa[0]), bv)
        c1 = c1.addingProduct(V(repeating: pa[1]), bv)
        c2 = c2.addingProduct(V(repeating: pa[2]), bv)
        c3 = c3.addingProduct(V(repeating: pa[3]), bv)
        c4 = c4.addingProduct(V(repeating: pa[4]), bv)
        c5 = c5.addingProduct(V(repeating: pa[5]), bv)
        pa += kStride
        p &+= 1
    } while p < kc
    storeTile6x16(c, ldc: ldc, rows: rows, columns: columns, load: load, (c0, c1, c2, c3, c4, c5))
}

/// The 4-row tail of microKernel6x16Rows: C[4, 16] (+)= Apanel[kc, 4] (packed) · B[kc rows at b].
@inlinable @inline(never)
func microKernel4x16Rows<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<UnsafePointer<Float>>,
                                      c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V()
    var pa = a
    var p = 0
    repeat {
        let bv = UnsafeRawPointer(b[p]).loadUnaligned(as: V.self)
        c0 = c0.addingProduct(V(repeating: pa[0]), bv)
        c1 = c1.addingProduct(V(repeating: pa[1]), bv)
        c2 = c2.addingProduct(V(repeating: pa[2]), bv)
        c3 = c3.addingProduct(V(repeating: pa[3]), bv)
        pa += 4
        p &+= 1
    } while p < kc
    storeTile4x16(c, ldc: ldc, rows: rows, columns: columns, load: load, (c0, c1, c2, c3))
}

/// gemmRowBlock for the 12 x 32 or 6 x 16 tile with op(A) = A^T and op(B)'s K block given as
/// row pointers, kc per panel of nr columns (`panels`): the same tiles over the same rows and
/// panels.
@inlinable @inline(__always)
func gemmRowBlockRows<ISA: ISATag>(_: ISA.Type, _ c: UnsafeMutablePointer<Float>, ldc: Int, _ a: UnsafePointer<Float>, lda: Int,
                                   packedA: UnsafeMutablePointer<Float>, panels: UnsafePointer<UnsafePointer<Float>>,
                                   rows ic: Int, mc: Int, columns jc: Int, nc: Int, depth pc: Int, kc: Int, load: Bool) {
    let tile = ISA.tile, mr = tile.mr, nr = tile.nr, wide = tile == .avx512x12x32
    // The tiles of gemmRowBlock (GEMMTile.rowTiles).
    var (fullRows, tailMR) = tile.rowTiles(mc)
    // Eight rows left on the 12 x 32 tile (taken as 4 + 4): one 8 x 32 tile reading A in place.
    let eight = wide && tailMR == 4 && mc - fullRows == 8
    if fullRows < mc && !eight {
        packA(packedA, a, lda: lda, transposed: true, row: ic + fullRows, column: pc, mc: mc - fullRows, kc: kc, mr: tailMR)
    }
    if tailMR != 4 { fullRows = mc }  // a partial full-height tile reads packedA below
    var jr = 0
    while jr < nc {
        let panel = panels + jr / nr * kc
        if eight {
            microKernel8x32Rows(ISA.self, kc: kc, a: a + pc * lda + (ic + fullRows), kStride: lda, b: panel,
                                c: c + (ic + fullRows) * ldc + (jc + jr), ldc: ldc, load: load)
        } else if tailMR == 4 {
            var ir = fullRows
            while ir < mc {
                let tailA = packedA + (ir - fullRows) * kc, tailC = c + (ic + ir) * ldc + (jc + jr), rows = min(4, mc - ir)
                if wide {
                    microKernel4x32Rows(ISA.self, kc: kc, a: tailA, b: panel, c: tailC, ldc: ldc, rows: rows, columns: nr,
                                        load: load)
                } else {
                    microKernel4x16Rows(ISA.self, kc: kc, a: tailA, b: panel, c: tailC, ldc: ldc, rows: rows, columns: nr,
                                        load: load)
                }
                ir += 4
            }
        }
        var ir = 0
        while ir < fullRows {
            let rows = min(mr, mc - ir)
            let whole = rows == mr
            let tileA = whole ? a + pc * lda + (ic + ir) : UnsafePointer(packedA), kStride = whole ? lda : mr
            let tileC = c + (ic + ir) * ldc + (jc + jr)
            if wide {
                microKernel12x32Rows(ISA.self, kc: kc, a: tileA, kStride: kStride, b: panel, c: tileC, ldc: ldc,
                                     rows: rows, columns: nr, load: load)
            } else {
                microKernel6x16Rows(ISA.self, kc: kc, a: tileA, kStride: kStride, b: panel, c: tileC, ldc: ldc,
                                    rows: rows, columns: nr, load: load)
            }
            ir += mr
        }
        jr += nr
    }
}
