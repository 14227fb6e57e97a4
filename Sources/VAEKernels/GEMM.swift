// General matrix multiply on row-major buffers, the three forms an MLP needs
// (`KernelSet.matmulNT/NN/TN`: x · W^T, dout · W, dout^T · x) through one `gemm`.
//
// The Goto/BLIS scheme: the K dimension is cut into blocks of `GEMMBlocking.kc`, B is packed
// into zero-padded panels of `nr` columns (a weight read as W^T is transposed 8 x 8 in
// registers on the way), and a register-blocked mr x nr micro-kernel keeps the whole C tile in
// registers while it streams through a B panel with fused multiply-adds. A is not packed: a
// step of the micro-kernel broadcasts one element of each of its mr rows, and those are
// contiguous or one row stride apart whichever way op(A) is stored, so the kernel reads A in
// place (packing it cost 2-5% of these GEMMs and bought nothing at these sizes). Only a
// partial last row panel is copied, zero-padded. The tile is the kernel set's
// (GEMMMicroKernels.swift): 6 x 16 on AVX2, 12 x 32 zmm or 12 x 16 ymm on AVX-512, with
// 4-row tiles for the rows past the last full tile.

/// Block sizes of the packed GEMM (the register tile is `GEMMTile`).
public enum GEMMBlocking {
    /// The narrow tile, 12 x 8: for N so small that wide panels would mostly compute
    /// padding (`GEMMTile.prefersNarrowTile`: N <= 8 on AVX2; on AVX-512 also the 20- and
    /// 40-wide latent layer and encoder heads).
    public static let narrowMR = 12
    public static let narrowNR = 8
    /// Depth of one packed block: a kc x nr panel of B (16-32 KiB) stays in L1.
    public static let kc = 256
    /// Rows of A swept per B panel: an mc x kc block of A (120 KiB) stays in L2.
    /// A multiple of every tile's mr (6 and 12).
    public static let mc = 120
    /// The length of gemm's K blocks for a product over k: k cut into equal blocks of at most
    /// kc (784 = 4 x 196, not 3 x 256 + 16: a short last block pays a C tile's loads and stores
    /// for a few steps), the last one shorter by the remainder. Each output element is summed
    /// block by block in this partition, so a caller that sums the blocks' products in order gets
    /// the same bits.
    @inlinable public static func kBlock(_ k: Int) -> Int {
        let blocks = (k + kc - 1) / kc
        return (k + blocks - 1) / blocks
    }
    /// Columns of B packed at once: a kc x nc block of B (1 MiB at most) in L2/L3.
    /// A multiple of every tile's nr (16 and 32).
    public static let nc = 1024
}

/// Scratch space for packed panels, allocated once and reused by every call.
/// Not thread-safe: each thread (each model) owns its own.
public final class GEMMWorkspace: @unchecked Sendable {
    @usableFromInline let packedA: UnsafeMutablePointer<Float>  // a partial row panel of A, [kc, mr]
    @usableFromInline let packedB: UnsafeMutablePointer<Float>  // [kc, nc] as nc/nr panels of [kc, nr]
    /// Scratch grown on first use, so a training step allocates only in its first call: C^T of
    /// a product computed transposed (`gemmTransposesProduct`), im2col parts of a convolution
    /// whose patches are not kept, and per-K-block products a caller sums in order (both
    /// ConvLayers.swift).
    @usableFromInline let transposed = GrowingBuffer(), patchParts = GrowingBuffer(), blockProducts = GrowingBuffer()

    public init() {
        packedA = allocateAligned(GEMMBlocking.kc * max(GEMMTile.avx512x12x32.mr, GEMMBlocking.narrowMR))
        packedB = allocateAligned(GEMMBlocking.kc * GEMMBlocking.nc)
    }

    /// At least `count` floats of scratch for C^T.
    @inlinable func transposedC(count: Int) -> UnsafeMutablePointer<Float> { transposed.atLeast(count) }
    /// At least `count` floats of scratch for im2col parts.
    public func patches(count: Int) -> UnsafeMutablePointer<Float> { patchParts.atLeast(count) }
    /// At least `count` floats of scratch for per-K-block products.
    public func partials(count: Int) -> UnsafeMutablePointer<Float> { blockProducts.atLeast(count) }

    deinit {
        packedA.deallocate()
        packedB.deallocate()
    }
}

/// A float buffer that grows to the largest size asked of it (64-byte aligned; zero-filled when
/// it grows). Not thread-safe, as GEMMWorkspace.
@usableFromInline final class GrowingBuffer {
    @usableFromInline var pointer = allocateAligned(1)
    @usableFromInline var capacity = 0

    @usableFromInline init() {}

    @inlinable func atLeast(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            pointer = allocateAligned(count)
            capacity = count
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}

/// A 64-byte aligned, zero-filled float buffer (one cache line, one AVX-512 vector).
public func allocateAligned(_ count: Int) -> UnsafeMutablePointer<Float> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
    raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
    return raw.assumingMemoryBound(to: Float.self)
}

/// C = (accumulate ? C : 0) + op(A) · op(B), with op(A) [M, K] and op(B) [K, N].
/// A is stored [M, lda] (or [K, lda] when transposed), B [K, ldb] (or [N, ldb]).
/// Instantiated by each per-ISA target with its tag. Some shapes run faster as the transposed
/// product C^T = op(B)^T · op(A)^T (`gemmTransposesProduct`): the same bits, since each element
/// of C is the same chain of fused multiply-adds over K either way (a · b = b · a exactly).
@inlinable
public func gemm<ISA: ISATag>(_: ISA.Type, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                              _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                              _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                              m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    if gemmTransposesProduct(ISA.tile, m: m, n: n) {
        gemmTransposed(ISA.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                       m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    } else {
        gemmAsGiven(ISA.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                    m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }
}

/// gemm computed as C^T = op(B)^T · op(A)^T into the workspace, then transposed into C (C is
/// first transposed in when accumulating, so that the sums start from the same value).
@inlinable
public func gemmTransposed<ISA: ISATag>(_: ISA.Type, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                                        _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                                        _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                                        m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
    if m == 0 || n == 0 { return }
    let ct = workspace.transposedC(count: m * n)  // [n, m]
    if accumulate { transposeMatrix(ct, ldd: m, c, lds: ldc, rows: m, columns: n) }
    gemmAsGiven(ISA.self, ct, ldc: m, b, lda: ldb, transposeA: !transposeB, a, ldb: lda, transposeB: !transposeA,
                m: n, n: m, k: k, accumulate: accumulate, workspace: workspace)
    transposeMatrix(c, ldd: ldc, ct, lds: m, rows: n, columns: m)
}

/// dst[j * ldd + i] = src[i * lds + j] for i < rows, j < columns (8 x 8 blocks in registers).
@inlinable
func transposeMatrix(_ dst: UnsafeMutablePointer<Float>, ldd: Int, _ src: UnsafePointer<Float>, lds: Int, rows: Int, columns: Int) {
    var i = 0
    while i + 8 <= rows {
        var j = 0
        while j + 8 <= columns {
            transpose8x8(src + i * lds + j, lds, dst + j * ldd + i, ldd)
            j += 8
        }
        while j < columns {
            for r in i..<(i + 8) { dst[j * ldd + r] = src[r * lds + j] }
            j += 1
        }
        i += 8
    }
    while i < rows {
        for j in 0..<columns { dst[j * ldd + i] = src[i * lds + j] }
        i += 1
    }
}

/// gemm in the orientation given (the packed blocked product).
@inlinable
public func gemmAsGiven<ISA: ISATag>(_: ISA.Type, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                                     _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
    gemmPanels(ISA.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, GEMMMatrix(b: b, ldb: ldb, transposed: transposeB),
               m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
}

/// Where gemm's op(B) [K, N] comes from: it is read only through `pack`, which copies
/// op(B)[row ..< row + kc, column ..< column + nc] into panels of nr columns (panel p holds
/// [kc, nr] contiguously, columns past N zero).
public protocol GEMMPanelSource {
    func pack(_ dst: UnsafeMutablePointer<Float>, row: Int, column: Int, kc: Int, nc: Int, nr: Int)
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
}

/// C = (accumulate ? C : 0) + op(A) · op(B), op(B) packed from `source` (k >= 0).
@inlinable
public func gemmPanels<ISA: ISATag, Source: GEMMPanelSource>(_: ISA.Type, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                                                             _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                                                             _ source: Source,
                                                             m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    let tile = ISA.tile
    let narrow = tile.prefersNarrowTile(n: n)
    let nr = narrow ? GEMMBlocking.narrowNR : tile.nr
    let packedA = workspace.packedA, packedB = workspace.packedB
    var jc = 0
    while jc < n {
        let nc = min(GEMMBlocking.nc, n - jc)
        let kBlock = GEMMBlocking.kBlock(k)
        var pc = 0
        while pc < k {
            let kc = min(kBlock, k - pc)
            // The first K block overwrites C unless the caller accumulates.
            let load = accumulate || pc > 0
            source.pack(packedB, row: pc, column: jc, kc: kc, nc: nc, nr: nr)
            var ic = 0
            while ic < m {
                gemmRowBlock(ISA.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, packedA: packedA, packedB: packedB,
                             rows: ic, mc: min(GEMMBlocking.mc, m - ic), columns: jc, nc: nc, depth: pc, kc: kc,
                             load: load, narrow: narrow)
                ic += GEMMBlocking.mc
            }
            pc += kBlock
        }
        jc += GEMMBlocking.nc
    }
}

/// Rows ic ..< ic + mc of C's columns jc ..< jc + nc over the K block pc ..< pc + kc, with that
/// block of op(B) already packed in `packedB`: the row tiles, each over every column panel.
@inlinable @inline(__always)
func gemmRowBlock<ISA: ISATag>(_: ISA.Type, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                               _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                               packedA: UnsafeMutablePointer<Float>, packedB: UnsafeMutablePointer<Float>,
                               rows ic: Int, mc: Int, columns jc: Int, nc: Int, depth pc: Int, kc: Int,
                               load: Bool, narrow: Bool) {
    let tile = ISA.tile
    let mr = narrow ? GEMMBlocking.narrowMR : tile.mr
    let nr = narrow ? GEMMBlocking.narrowNR : tile.nr
    // A is read in place (its rows lda apart, or a step's mr values adjacent when op(A) =
    // A^T); only a partial last row panel is packed (zero rows), so that no tile reads past
    // the end of A.
    let rowStride = transposeA ? 1 : lda, kStride = transposeA ? lda : 1
    // The rows past the last full tile. Up to `tile.fourRowTail` of them take 4-row tiles: on
    // AVX2 up to 4, and 2 take them with the last full tile's 6 (8 = 4 + 4), so 128 rows are 20
    // tiles of 6 and 2 of 4, none computing padding; with 12-row tiles up to 8 (64 = 5 x 12 + 4).
    var fullRows = mc / mr * mr, tailMR = mr
    if !narrow && mc % mr != 0 && mc % mr <= tile.fourRowTail {
        tailMR = 4
        if tile == .avx2x6x16 && mc % mr == 2 && fullRows > 0 { fullRows -= mr }
    }
    if fullRows < mc {
        packA(packedA, a, lda: lda, transposed: transposeA, row: ic + fullRows, column: pc,
              mc: mc - fullRows, kc: kc, mr: tailMR)
    }
    var jr = 0
    while jr < nc {
        let columns = min(nr, nc - jr)
        let panelB = packedB + jr * kc
        if tailMR == 4 {
            gemmFourRowTiles(ISA.self, c + ic * ldc + (jc + jr), ldc: ldc, packedA: packedA, panelB: panelB,
                             fullRows: fullRows, mc: mc, kc: kc, nr: nr, columns: columns, load: load)
        }
        var ir = 0
        while ir < (tailMR == 4 ? fullRows : mc) {
            let rows = min(mr, mc - ir)
            var source = a + (ic + ir) * rowStride + pc * kStride
            var rs = rowStride, ks = kStride
            if rows < mr { source = UnsafePointer(packedA); rs = 1; ks = mr }
            let tileC = c + (ic + ir) * ldc + (jc + jr)
            if narrow {
                microKernel12x8(kc: kc, a: source, rowStride: rs, kStride: ks, b: panelB,
                                c: tileC, ldc: ldc, rows: rows, columns: columns, load: load)
            } else {
                switch tile {
                case .avx2x6x16:
                    microKernel6x16(ISA.self, kc: kc, a: source, rowStride: rs, kStride: ks, b: panelB,
                                    c: tileC, ldc: ldc, rows: rows, columns: columns, load: load)
                case .avx512x12x32:
                    microKernel12x32(ISA.self, kc: kc, a: source, rowStride: rs, kStride: ks, b: panelB,
                                     c: tileC, ldc: ldc, rows: rows, columns: columns, load: load)
                case .avx512ymm12x16:
                    microKernel12x16(ISA.self, kc: kc, a: source, rowStride: rs, kStride: ks, b: panelB,
                                     c: tileC, ldc: ldc, rows: rows, columns: columns, load: load)
                }
            }
            ir += mr
        }
        jr += nr
    }
}

/// The 4-row tiles of rows fullRows ..< mc (packed in `packedA`) against one column panel; `c` is
/// the row block's first row at the panel's first column.
@inlinable @inline(__always)
func gemmFourRowTiles<ISA: ISATag>(_: ISA.Type, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                                   packedA: UnsafeMutablePointer<Float>, panelB: UnsafeMutablePointer<Float>,
                                   fullRows: Int, mc: Int, kc: Int, nr: Int, columns: Int, load: Bool) {
    var ir = fullRows
    while ir < mc {
        if nr == 32 {
            microKernel4x32(ISA.self, kc: kc, a: packedA + (ir - fullRows) * kc, b: panelB, c: c + ir * ldc, ldc: ldc,
                            rows: min(4, mc - ir), columns: columns, load: load)
        } else {
            microKernel4x16(ISA.self, kc: kc, a: packedA + (ir - fullRows) * kc, b: panelB, c: c + ir * ldc, ldc: ldc,
                            rows: min(4, mc - ir), columns: columns, load: load)
        }
        ir += 4
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

// MARK: - Reference

/// Naive reference: C = (accumulate ? C : 0) + op(A) · op(B), summed in Double.
public func gemmNaive(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                      _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                      _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                      m: Int, n: Int, k: Int, accumulate: Bool) {
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let av = transposeA ? a[p * lda + i] : a[i * lda + p]
                let bv = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                sum += Double(av) * Double(bv)
            }
            c[i * ldc + j] = Float(sum + (accumulate ? Double(c[i * ldc + j]) : 0))
        }
    }
}



/// Whether gemm computes C^T = op(B)^T · op(A)^T instead of C = op(A) · op(B): when N is so
/// narrow that the given product would take the narrow 12 x 8 tile and M is wide enough for the
/// full one. A convolution's weight gradient over one input channel ([32, 16] summed over
/// 65,536 positions) then runs at 2.1x, and the latent heads' narrow products at 2-3x
/// (`vae-dist bench --arch conv`, 2026-12-06, Intel Xeon model 207, AVX-512). Where both
/// orientations take the full tile, the given one stays: swapping the conv layers' [32, 512]
/// weight gradients made the 16,384 x 512 patch matrix the operand read in place, 1.3x slower.
@inlinable
public func gemmTransposesProduct(_ tile: GEMMTile, m: Int, n: Int) -> Bool {
    tile.prefersNarrowTile(n: n) && !tile.prefersNarrowTile(n: m)
}
