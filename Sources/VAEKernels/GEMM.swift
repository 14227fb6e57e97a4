// General matrix multiply for the three forms an MLP needs, on row-major buffers:
//
//   matmulNT:  C[M, N] (+)= A[M, K] · B[N, K]^T   (linear forward:  x · W^T)
//   matmulNN:  C[M, N] (+)= A[M, K] · B[K, N]     (linear backward: dout · W)
//   matmulTN:  C[M, N] (+)= A[K, M]^T · B[K, N]   (weight gradient: dout^T · x)
//
// The fast path is the Goto/BLIS scheme: the K dimension is cut into blocks of
// `GEMMBlocking.kc`, B is packed into zero-padded panels of `nr` columns and A
// into panels of `mr` rows, and a register-blocked mr x nr micro-kernel keeps
// the whole C tile in registers (6 x 16 floats = 12 AVX2 registers) while it
// streams through the packed panels with fused multiply-adds. Packing turns
// every transpose into a copy, so one micro-kernel serves all three forms.

/// Block sizes of the packed GEMM. `mr` x `nr` is the register tile: 6 x 16 in general,
/// 12 x 8 when N is narrow enough that 16-wide panels would mostly compute padding
/// (N = 20 or 40: the latent layer and the encoder heads).
public enum GEMMBlocking {
    public static let mr = 6
    public static let nr = 16
    public static let narrowMR = 12
    public static let narrowNR = 8

    /// The 12 x 8 tile pads N less: ceil(n / 8) * 8 < ceil(n / 16) * 16.
    @inline(__always)
    public static func useNarrowTile(n: Int) -> Bool { (n + 7) / 8 * 8 < (n + 15) / 16 * 16 }
    /// Depth of one packed block: a kc x nr panel of B (16 KiB) stays in L1.
    public static let kc = 256
    /// Rows of A packed at once: an mc x kc block of A (120 KiB) stays in L2.
    public static let mc = 120
    /// Columns of B packed at once: a kc x nc block of B (1 MiB at most) in L2/L3.
    public static let nc = 1024
}

/// Scratch space for packed panels, allocated once and reused by every call.
/// Not thread-safe: each thread (each model) owns its own.
public final class GEMMWorkspace: @unchecked Sendable {
    let packedA: UnsafeMutablePointer<Float>  // [mc, kc] as mc/mr panels of [kc, mr]
    let packedB: UnsafeMutablePointer<Float>  // [kc, nc] as nc/nr panels of [kc, nr]

    public init() {
        packedA = allocateAligned(GEMMBlocking.mc * GEMMBlocking.kc)
        packedB = allocateAligned(GEMMBlocking.kc * GEMMBlocking.nc)
    }

    deinit {
        packedA.deallocate()
        packedB.deallocate()
    }
}

/// A 64-byte aligned, zero-filled float buffer (one cache line, one AVX-512 vector).
public func allocateAligned(_ count: Int) -> UnsafeMutablePointer<Float> {
    let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
    raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
    return raw.assumingMemoryBound(to: Float.self)
}

/// C[M, N] (+)= A[M, K] · B[N, K]^T
public func matmulNT(_ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
    gemm(c, ldc: n, a, lda: k, transposeA: false, b, ldb: k, transposeB: true,
         m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
}

/// C[M, N] (+)= A[M, K] · B[K, N]
public func matmulNN(_ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
    gemm(c, ldc: n, a, lda: k, transposeA: false, b, ldb: n, transposeB: false,
         m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
}

/// C[M, N] (+)= A[K, M]^T · B[K, N]
public func matmulTN(_ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
    gemm(c, ldc: n, a, lda: m, transposeA: true, b, ldb: n, transposeB: false,
         m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
}

/// C = (accumulate ? C : 0) + op(A) · op(B), with op(A) [M, K] and op(B) [K, N].
/// A is stored [M, lda] (or [K, lda] when transposed), B [K, ldb] (or [N, ldb]).
public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                 _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                 _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                 m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
    if m == 0 || n == 0 { return }
    if k == 0 {
        if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
        return
    }
    let narrow = GEMMBlocking.useNarrowTile(n: n)
    let mr = narrow ? GEMMBlocking.narrowMR : GEMMBlocking.mr
    let nr = narrow ? GEMMBlocking.narrowNR : GEMMBlocking.nr
    let packedA = workspace.packedA, packedB = workspace.packedB
    var jc = 0
    while jc < n {
        let nc = min(GEMMBlocking.nc, n - jc)
        var pc = 0
        while pc < k {
            let kc = min(GEMMBlocking.kc, k - pc)
            // The first K block overwrites C unless the caller accumulates.
            let load = accumulate || pc > 0
            packB(packedB, b, ldb: ldb, transposed: transposeB, row: pc, column: jc, kc: kc, nc: nc, nr: nr)
            if narrow {
                // Narrow N: each A element feeds only 2N flops, so packing A would cost as much
                // as the multiply; read A in place and pack only a partial last row panel.
                let rowStride = transposeA ? 1 : lda, kStride = transposeA ? lda : 1
                var ir = 0
                while ir < m {
                    let rows = min(mr, m - ir)
                    var source = a + ir * rowStride + pc * kStride
                    var rs = rowStride, ks = kStride
                    if rows < mr {
                        packA(packedA, a, lda: lda, transposed: transposeA, row: ir, column: pc, mc: rows, kc: kc, mr: mr)
                        source = UnsafePointer(packedA); rs = 1; ks = mr
                    }
                    var jr = 0
                    while jr < nc {
                        microKernel12x8(kc: kc, a: source, rowStride: rs, kStride: ks, b: packedB + jr * kc,
                                        c: c + ir * ldc + (jc + jr), ldc: ldc, rows: rows, columns: min(nr, nc - jr), load: load)
                        jr += nr
                    }
                    ir += mr
                }
                pc += GEMMBlocking.kc
                continue
            }
            var ic = 0
            while ic < m {
                let mc = min(GEMMBlocking.mc, m - ic)
                packA(packedA, a, lda: lda, transposed: transposeA, row: ic, column: pc, mc: mc, kc: kc, mr: mr)
                var jr = 0
                while jr < nc {
                    let columns = min(nr, nc - jr)
                    let panelB = packedB + jr * kc
                    var ir = 0
                    while ir < mc {
                        let rows = min(mr, mc - ir)
                        let tile = c + (ic + ir) * ldc + (jc + jr)
                        microKernel6x16(kc: kc, a: packedA + ir * kc, b: panelB, c: tile, ldc: ldc,
                                        rows: rows, columns: columns, load: load)
                        ir += mr
                    }
                    jr += nr
                }
                ic += GEMMBlocking.mc
            }
            pc += GEMMBlocking.kc
        }
        jc += GEMMBlocking.nc
    }
}

/// Packs op(B)[row ..< row+kc, column ..< column+nc] into panels of nr columns:
/// panel p holds [kc, nr] contiguously, columns past the edge are zero.
@inline(__always)
func packB(_ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int, transposed: Bool,
           row: Int, column: Int, kc: Int, nc: Int, nr: Int) {
    var j = 0
    var out = dst
    while j < nc {
        let columns = min(nr, nc - j)
        if !transposed {
            // op(B)(p, q) = b[p * ldb + q]: each packed row is a contiguous run of B.
            var src = b + row * ldb + column + j
            if columns == 16 && nr == 16 {
                for _ in 0..<kc {
                    UnsafeMutableRawPointer(out).storeBytes(
                        of: UnsafeRawPointer(src).loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
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
            // op(B)(p, q) = b[q * ldb + p]: read each row of the stored B contiguously.
            for q in 0..<columns {
                let src = b + (column + j + q) * ldb + row
                var o = out + q
                for p in 0..<kc { o.pointee = src[p]; o += nr }
            }
            if columns < nr {
                for p in 0..<kc { for q in columns..<nr { out[p * nr + q] = 0 } }
            }
            out += kc * nr
        }
        j += nr
    }
}

/// Packs op(A)[row ..< row+mc, column ..< column+kc] into panels of mr rows:
/// panel p holds [kc, mr] contiguously, rows past the edge are zero.
@inline(__always)
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

/// The register tile: C[6, 16] (+)= Apanel[kc, 6]^T · Bpanel[kc, 16].
/// Six SIMD16 accumulators (twelve 256-bit registers), one B row and one
/// broadcast of A per FMA. Edge tiles compute the full tile and store part of it.
@inline(__always)
func microKernel6x16(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                     c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V()
    var pa = a
    var pb = UnsafeRawPointer(b)
    for _ in 0..<kc {
        let bv = pb.load(as: V.self)
        c0 = c0.addingProduct(V(repeating: pa[0]), bv)
        c1 = c1.addingProduct(V(repeating: pa[1]), bv)
        c2 = c2.addingProduct(V(repeating: pa[2]), bv)
        c3 = c3.addingProduct(V(repeating: pa[3]), bv)
        c4 = c4.addingProduct(V(repeating: pa[4]), bv)
        c5 = c5.addingProduct(V(repeating: pa[5]), bv)
        pa += 6
        pb += 64
    }
    if rows == 6 && columns == 16 {
        let r0 = UnsafeMutableRawPointer(c), r1 = UnsafeMutableRawPointer(c + ldc)
        let r2 = UnsafeMutableRawPointer(c + 2 * ldc), r3 = UnsafeMutableRawPointer(c + 3 * ldc)
        let r4 = UnsafeMutableRawPointer(c + 4 * ldc), r5 = UnsafeMutableRawPointer(c + 5 * ldc)
        if load {
            c0 += r0.loadUnaligned(as: V.self); c1 += r1.loadUnaligned(as: V.self)
            c2 += r2.loadUnaligned(as: V.self); c3 += r3.loadUnaligned(as: V.self)
            c4 += r4.loadUnaligned(as: V.self); c5 += r5.loadUnaligned(as: V.self)
        }
        r0.storeBytes(of: c0, as: V.self); r1.storeBytes(of: c1, as: V.self)
        r2.storeBytes(of: c2, as: V.self); r3.storeBytes(of: c3, as: V.self)
        r4.storeBytes(of: c4, as: V.self); r5.storeBytes(of: c5, as: V.self)
        return
    }
    let tile = (c0, c1, c2, c3, c4, c5)
    withUnsafeBytes(of: tile) { raw in
        let t = raw.baseAddress!.assumingMemoryBound(to: Float.self)
        for r in 0..<rows {
            let row = c + r * ldc
            let source = t + r * 16
            if load {
                for q in 0..<columns { row[q] += source[q] }
            } else {
                for q in 0..<columns { row[q] = source[q] }
            }
        }
    }
}

/// The narrow tile: C[12, 8] (+)= Apanel[kc, 12]^T · Bpanel[kc, 8]. Twelve SIMD8
/// accumulators (twelve 256-bit registers), one B row and twelve broadcasts per step.
@inline(__always)
/// A is read in place: element (r, p) at a[r * rowStride + p * kStride].
func microKernel12x8(kc: Int, a: UnsafePointer<Float>, rowStride: Int, kStride: Int, b: UnsafePointer<Float>,
                     c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD8<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V()
    var c6 = V(), c7 = V(), c8 = V(), c9 = V(), c10 = V(), c11 = V()
    let rs = rowStride
    var pa = a
    var pb = UnsafeRawPointer(b)
    for _ in 0..<kc {
        let bv = pb.load(as: V.self)
        c0 = c0.addingProduct(V(repeating: pa[0]), bv)
        c1 = c1.addingProduct(V(repeating: pa[rs]), bv)
        c2 = c2.addingProduct(V(repeating: pa[2 * rs]), bv)
        c3 = c3.addingProduct(V(repeating: pa[3 * rs]), bv)
        c4 = c4.addingProduct(V(repeating: pa[4 * rs]), bv)
        c5 = c5.addingProduct(V(repeating: pa[5 * rs]), bv)
        c6 = c6.addingProduct(V(repeating: pa[6 * rs]), bv)
        c7 = c7.addingProduct(V(repeating: pa[7 * rs]), bv)
        c8 = c8.addingProduct(V(repeating: pa[8 * rs]), bv)
        c9 = c9.addingProduct(V(repeating: pa[9 * rs]), bv)
        c10 = c10.addingProduct(V(repeating: pa[10 * rs]), bv)
        c11 = c11.addingProduct(V(repeating: pa[11 * rs]), bv)
        pa += kStride
        pb += 32
    }
    let tile = (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)
    withUnsafeBytes(of: tile) { raw in
        let t = raw.baseAddress!.assumingMemoryBound(to: Float.self)
        if columns == 8 {
            for r in 0..<rows {
                let row = UnsafeMutableRawPointer(c + r * ldc)
                var v = UnsafeRawPointer(t + r * 8).loadUnaligned(as: V.self)
                if load { v += row.loadUnaligned(as: V.self) }
                row.storeBytes(of: v, as: V.self)
            }
            return
        }
        for r in 0..<rows {
            let row = c + r * ldc
            let source = t + r * 8
            if load {
                for q in 0..<columns { row[q] += source[q] }
            } else {
                for q in 0..<columns { row[q] = source[q] }
            }
        }
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
