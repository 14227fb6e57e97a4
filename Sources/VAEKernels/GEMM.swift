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
// (GEMMMicroKernels.swift, GEMMMicroKernelsAVX512.swift): 6 x 16 on AVX2, 12 x 32 zmm or 12 x 16 ymm on AVX-512, with
// 4-row tiles for the rows past the last full tile. For op(A) = A^T on the 12 x 32 and 6 x 16
// tiles, B is not packed either where its panels' rows lie contiguous in memory (B itself, a
// convolution's patches in the image): the tile reads them through a list of row addresses
// (GEMMRowPointers.swift), the same FMAs in the same order.

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
    /// whose patches are not kept, per-K-block products a caller sums in order, and a
    /// convolution's packed weights (GEMMPackedB; all ConvLayers.swift).
    @usableFromInline let transposed = GrowingBuffer(), patchParts = GrowingBuffer(), blockProducts = GrowingBuffer()
    @usableFromInline let weightPanels = GrowingBuffer()
    /// Row addresses of op(B)'s panels read in place (GEMMRowPointers.swift), and 32 zeros for
    /// the rows outside an image.
    @usableFromInline let panelRowAddresses = GrowingBuffer()
    @usableFromInline let zeroRow = UnsafePointer(allocateAligned(32))

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
    /// At least `count` floats of scratch for packed weights (GEMMPackedB).
    public func packedWeights(count: Int) -> UnsafeMutablePointer<Float> { weightPanels.atLeast(count) }

    /// Room for at least `count` row addresses (GEMMRowPointers.swift).
    @inlinable func rowPointers(count: Int) -> UnsafeMutablePointer<UnsafePointer<Float>> {
        let floats = count * MemoryLayout<UnsafePointer<Float>>.stride / MemoryLayout<Float>.stride
        return UnsafeMutableRawPointer(panelRowAddresses.atLeast(floats)).bindMemory(to: UnsafePointer<Float>.self, capacity: count)
    }

    deinit {
        packedA.deallocate()
        packedB.deallocate()
        zeroRow.deallocate()
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
    // Packed weights (GEMMPackedB) come in the full tile's panels even for a narrow N.
    let narrow = !source.wholePanels && tile.prefersNarrowTile(n: n)
    let nr = narrow ? GEMMBlocking.narrowNR : tile.nr
    let packedA = workspace.packedA, packedB = workspace.packedB
    let rowPointers = tile.readsRowsInPlace && !narrow && transposeA
    var jc = 0
    while jc < n {
        let nc = min(GEMMBlocking.nc, n - jc)
        let kBlock = GEMMBlocking.kBlock(k)
        var pc = 0
        while pc < k {
            let kc = min(kBlock, k - pc)
            // The first K block overwrites C unless the caller accumulates.
            let load = accumulate || pc > 0
            if rowPointers && nc % nr == 0 {
                // The 12 x 32 and 6 x 16 tiles read the panels' rows in place where the source
                // has them (GEMMRowPointers.swift): the same products without packing.
                let pointers = workspace.rowPointers(count: nc / nr * kc)
                var inPlace = true, j = 0
                while inPlace && j < nc {
                    inPlace = source.panelRows(pointers + j / nr * kc, zero: workspace.zeroRow, row: pc, column: jc + j, kc: kc, nr: nr)
                    j += nr
                }
                if inPlace {
                    var ic = 0
                    while ic < m {
                        gemmRowBlockRows(ISA.self, c, ldc: ldc, a, lda: lda, packedA: packedA, panels: pointers, rows: ic,
                                         mc: min(GEMMBlocking.mc, m - ic), columns: jc, nc: nc, depth: pc, kc: kc, load: load)
                        ic += GEMMBlocking.mc
                    }
                    pc += kBlock
                    continue
                }
            }
            let panels: UnsafePointer<Float>
            if let given = source.packedPanels(row: pc, column: jc, kc: kc, nc: nc, nr: nr) {
                panels = given
            } else {
                source.pack(packedB, row: pc, column: jc, kc: kc, nc: nc, nr: nr)
                panels = UnsafePointer(packedB)
            }
            var ic = 0
            while ic < m {
                gemmRowBlock(ISA.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, packedA: packedA, packedB: panels,
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
                               packedA: UnsafeMutablePointer<Float>, packedB: UnsafePointer<Float>,
                               rows ic: Int, mc: Int, columns jc: Int, nc: Int, depth pc: Int, kc: Int,
                               load: Bool, narrow: Bool) {
    let tile = ISA.tile
    let mr = narrow ? GEMMBlocking.narrowMR : tile.mr
    let nr = narrow ? GEMMBlocking.narrowNR : tile.nr
    // A is read in place (its rows lda apart, or a step's mr values adjacent when op(A) =
    // A^T); only a partial last row panel is packed (zero rows), so that no tile reads past
    // the end of A.
    let rowStride = transposeA ? 1 : lda, kStride = transposeA ? lda : 1
    // The rows past the last full tile take 4-row tiles or one partial tile (GEMMTile.rowTiles);
    // the narrow tile has no 4-row form.
    let (fullRows, tailMR) = narrow ? (mc / mr * mr, mr) : tile.rowTiles(mc)
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
                                   packedA: UnsafeMutablePointer<Float>, panelB: UnsafePointer<Float>,
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
