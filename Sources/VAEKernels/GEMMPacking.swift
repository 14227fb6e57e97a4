// Packing for the GEMM (GEMM.swift): where op(B) comes from (`GEMMPanelSource`: a matrix in
// memory here, a convolution's patches in Convolution.swift), and the copies of B and of A's
// partial row panels into the zero-padded panels the micro-kernels stream through.

/// Where gemm's op(B) [K, N] comes from: it is read only through `pack`, which copies
/// op(B)[row ..< row + kc, column ..< column + nc] into panels of nr columns (panel p holds
/// [kc, nr] contiguously, columns past N zero).
public protocol GEMMPanelSource {
    func pack(_ dst: UnsafeMutablePointer<Float>, row: Int, column: Int, kc: Int, nc: Int, nr: Int)
    /// Those panels where they are already packed (GEMMPackedB), for gemm to read in place;
    /// nil (the default) where they must be packed.
    func packedPanels(row: Int, column: Int, kc: Int, nc: Int, nr: Int) -> UnsafePointer<Float>?
    /// Whether gemm must take the full tile's panels whatever N is (false, the default: a narrow
    /// N takes the narrow tile).
    var wholePanels: Bool { get }
    /// The panel of nr columns from `column`, rows `row` ..< row + kc, as the address of each
    /// row's nr contiguous values where they lie in place (`zero`, nr zeros, for a row of
    /// zeros), for the 12 x 32 and 6 x 16 tiles to read without packing (GEMMRowPointers.swift);
    /// false (the default) where a row's values are not contiguous, and gemm packs the panel.
    func panelRows(_ rows: UnsafeMutablePointer<UnsafePointer<Float>>, zero: UnsafePointer<Float>,
                   row: Int, column: Int, kc: Int, nr: Int) -> Bool
}

extension GEMMPanelSource {
    @inlinable @inline(__always)
    public func packedPanels(row: Int, column: Int, kc: Int, nc: Int, nr: Int) -> UnsafePointer<Float>? { nil }
    @inlinable public var wholePanels: Bool { false }
    @inlinable @inline(__always)
    public func panelRows(_ rows: UnsafeMutablePointer<UnsafePointer<Float>>, zero: UnsafePointer<Float>,
                          row: Int, column: Int, kc: Int, nr: Int) -> Bool { false }
}

/// op(B) packed once for many products with it: a convolution's weights, multiplied a few
/// hundred rows at a time (each product would pack the same panels again) and by every thread.
/// Every K block of every column block, in gemmPanels' order and blocking, so gemm reads the
/// panels in place: block (column jc, row pc) at jc * k + (its nc rounded up to nr) * pc. Made
/// by `GEMMPackedB.pack` for the wide tiles only, where gemm keeps the given orientation.
public struct GEMMPackedB: GEMMPanelSource {
    public let panels: UnsafePointer<Float>, n: Int, k: Int, nr: Int

    /// Floats of the packed op(B) [k, n] for `tile`.
    @inlinable public static func count(n: Int, k: Int, tile: GEMMTile) -> Int { panelWidth(n, nr: tile.nr) * k }

    /// nc columns rounded up to whole panels of nr.
    @inlinable static func panelWidth(_ nc: Int, nr: Int) -> Int { (nc + nr - 1) / nr * nr }

    /// Packs op(B) [k, n] (B [k, ldb], or [n, ldb] when transposed) into dst (count(n:k:tile:)
    /// floats) for products of the tile `ISA.tile`. A narrow N (where gemm would take the narrow
    /// tile, or compute the product transposed) is packed only when `padded`: into the full
    /// tile's panels, its columns past N zero.
    @inlinable
    public static func pack<ISA: ISATag>(_: ISA.Type, _ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int,
                                         transposed: Bool, n: Int, k: Int, padded: Bool) -> GEMMPackedB? {
        let tile = ISA.tile
        if n == 0 || k == 0 || (!padded && tile.prefersNarrowTile(n: n)) { return nil }
        let kBlock = GEMMBlocking.kBlock(k)
        var jc = 0
        while jc < n {
            let nc = min(GEMMBlocking.nc, n - jc), width = panelWidth(nc, nr: tile.nr)
            var pc = 0
            while pc < k {
                packB(dst + jc * k + width * pc, b, ldb: ldb, transposed: transposed, row: pc, column: jc,
                      kc: min(kBlock, k - pc), nc: nc, nr: tile.nr)
                pc += kBlock
            }
            jc += GEMMBlocking.nc
        }
        return GEMMPackedB(panels: dst, n: n, k: k, nr: tile.nr)
    }

    @inlinable init(panels: UnsafePointer<Float>, n: Int, k: Int, nr: Int) {
        self.panels = panels
        self.n = n
        self.k = k
        self.nr = nr
    }

    @inlinable public var wholePanels: Bool { true }

    @inlinable @inline(__always)
    public func packedPanels(row: Int, column: Int, kc: Int, nc: Int, nr: Int) -> UnsafePointer<Float>? {
        precondition(nr == self.nr && row + kc <= k && column + nc <= n, "GEMMPackedB: a block it does not hold")
        return panels + column * k + GEMMPackedB.panelWidth(nc, nr: nr) * row
    }

    @inlinable
    public func pack(_ dst: UnsafeMutablePointer<Float>, row: Int, column: Int, kc: Int, nc: Int, nr: Int) {
        dst.update(from: packedPanels(row: row, column: column, kc: kc, nc: nc, nr: nr)!,
                   count: GEMMPackedB.panelWidth(nc, nr: nr) * kc)
    }
}

/// op(B) a matrix in memory: B [K, ldb], or [N, ldb] when transposed.
public struct GEMMMatrix: GEMMPanelSource {
    public let b: UnsafePointer<Float>, ldb: Int, transposed: Bool

    @inlinable public init(b: UnsafePointer<Float>, ldb: Int, transposed: Bool) {
        self.b = b
        self.ldb = ldb
        self.transposed = transposed
    }

    @inlinable @inline(__always)
    public func pack(_ dst: UnsafeMutablePointer<Float>, row: Int, column: Int, kc: Int, nc: Int, nr: Int) {
        packB(dst, b, ldb: ldb, transposed: transposed, row: row, column: column, kc: kc, nc: nc, nr: nr)
    }

    /// B's rows in place (a panel's nr columns are contiguous in each row of B, not of B^T),
    /// where they are at most 1 KB apart (the one-channel convolutions' transposed weight
    /// gradients, 32 floats): rows further apart (the MLP's activations, 400-784 floats) each
    /// cost a cache line and mostly a TLB entry per step, and measured 2-3% slower than packing.
    @inlinable
    public func panelRows(_ rows: UnsafeMutablePointer<UnsafePointer<Float>>, zero: UnsafePointer<Float>,
                          row: Int, column: Int, kc: Int, nr: Int) -> Bool {
        if transposed || ldb > 256 { return false }
        for p in 0..<kc { rows[p] = b + (row + p) * ldb + column }
        return true
    }
}

/// Packs op(B)[row ..< row+kc, column ..< column+nc] into panels of nr columns:
/// panel p holds [kc, nr] contiguously, columns past the edge are zero.
@inlinable @inline(__always)
func packB(_ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int, transposed: Bool,
           row: Int, column: Int, kc: Int, nc: Int, nr: Int) {
    var j = 0
    var out = dst
    while j < nc {
        let columns = min(nr, nc - j)
        if !transposed {
            // op(B)(p, q) = b[p * ldb + q]: each packed row is a contiguous run of B.
            var src = b + row * ldb + column + j
            if columns == nr && nr % 16 == 0 {
                for _ in 0..<kc {
                    var q = 0
                    while q < nr {
                        UnsafeMutableRawPointer(out + q).storeBytes(
                            of: UnsafeRawPointer(src + q).loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
                        q += 16
                    }
                    out += nr; src += ldb
                }
            } else if columns == 8 && nr == 8 {
                for _ in 0..<kc {
                    UnsafeMutableRawPointer(out).storeBytes(
                        of: UnsafeRawPointer(src).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                    out += nr; src += ldb
                }
            } else {
                for _ in 0..<kc {
                    for q in 0..<columns { out[q] = src[q] }
                    for q in columns..<nr { out[q] = 0 }
                    out += nr; src += ldb
                }
            }
        } else {
            packTransposedPanel(out, b, ldb: ldb, row: row, column: column + j, kc: kc, columns: columns, nr: nr)
            out += kc * nr
        }
        j += nr
    }
}

/// One panel of packB for op(B) = B^T: op(B)(p, q) = b[q * ldb + p] for `columns` of nr columns
/// from `column`, rows row ..< row + kc, into dst [kc, nr] (columns past the edge zero).
@inlinable @inline(__always)
func packTransposedPanel(_ out: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int,
                         row: Int, column: Int, kc: Int, columns: Int, nr: Int) {
    if columns == nr && nr % 8 == 0 {
        // 8 x 8 blocks of the stored B, transposed in registers.
        var p = 0
        while p + 8 <= kc {
            var g = 0
            while g < nr {
                transpose8x8(b + (column + g) * ldb + row + p, ldb, out + p * nr + g, nr)
                g += 8
            }
            p += 8
        }
        while p < kc {
            for q in 0..<nr { out[p * nr + q] = b[(column + q) * ldb + row + p] }
            p += 1
        }
        return
    }
    // Read each row of the stored B contiguously.
    for q in 0..<columns {
        let src = b + (column + q) * ldb + row
        var o = out + q
        for p in 0..<kc { o.pointee = src[p]; o += nr }
    }
    if columns < nr {
        for p in 0..<kc { for q in columns..<nr { out[p * nr + q] = 0 } }
    }
}

/// dst[j * ldd + i] = src[i * lds + j] for i, j in 0 ..< 8: three rounds of de-interleaving
/// row pairs (even and odd elements of two rows: a shuffle and a permute each on AVX2).
@inlinable @inline(__always)
func transpose8x8(_ src: UnsafePointer<Float>, _ lds: Int, _ dst: UnsafeMutablePointer<Float>, _ ldd: Int) {
    typealias V = SIMD8<Float>
    @inline(__always) func load(_ i: Int) -> V { UnsafeRawPointer(src + i * lds).loadUnaligned(as: V.self) }
    @inline(__always) func split(_ a: V, _ b: V) -> (V, V) {
        let both = SIMD16<Float>(lowHalf: a, highHalf: b)
        return (both.evenHalf, both.oddHalf)
    }
    var r0 = load(0), r1 = load(1), r2 = load(2), r3 = load(3)
    var r4 = load(4), r5 = load(5), r6 = load(6), r7 = load(7)
    for _ in 0..<3 {
        let (e0, o0) = split(r0, r1), (e1, o1) = split(r2, r3)
        let (e2, o2) = split(r4, r5), (e3, o3) = split(r6, r7)
        (r0, r1, r2, r3, r4, r5, r6, r7) = (e0, e1, e2, e3, o0, o1, o2, o3)
    }
    let d = UnsafeMutableRawPointer(dst)
    d.storeBytes(of: r0, as: V.self)
    (d + 4 * ldd).storeBytes(of: r1, as: V.self)
    (d + 8 * ldd).storeBytes(of: r2, as: V.self)
    (d + 12 * ldd).storeBytes(of: r3, as: V.self)
    (d + 16 * ldd).storeBytes(of: r4, as: V.self)
    (d + 20 * ldd).storeBytes(of: r5, as: V.self)
    (d + 24 * ldd).storeBytes(of: r6, as: V.self)
    (d + 28 * ldd).storeBytes(of: r7, as: V.self)
}

/// Packs op(A)[row ..< row+mc, column ..< column+kc] into panels of mr rows:
/// panel p holds [kc, mr] contiguously, rows past the edge are zero.
@inlinable @inline(__always)
func packA(_ dst: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, lda: Int, transposed: Bool,
           row: Int, column: Int, mc: Int, kc: Int, mr: Int) {
    var i = 0
    var out = dst
    while i < mc {
        let rows = min(mr, mc - i)
        if transposed {
            // op(A)(r, p) = a[p * lda + r]: mr consecutive floats per packed step.
            var src = a + column * lda + row + i
            if rows == mr {
                for _ in 0..<kc {
                    for r in 0..<mr { out[r] = src[r] }
                    out += mr; src += lda
                }
            } else {
                for _ in 0..<kc {
                    for r in 0..<rows { out[r] = src[r] }
                    for r in rows..<mr { out[r] = 0 }
                    out += mr; src += lda
                }
            }
        } else {
            // op(A)(r, p) = a[r * lda + p]: read each row contiguously.
            for r in 0..<rows {
                let src = a + (row + i + r) * lda + column
                var o = out + r
                for p in 0..<kc { o.pointee = src[p]; o += mr }
            }
            if rows < mr {
                for p in 0..<kc { for r in rows..<mr { out[p * mr + r] = 0 } }
            }
            out += kc * mr
        }
        i += mr
    }
}
