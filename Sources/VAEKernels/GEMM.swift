// General matrix multiply on row-major buffers, the three forms an MLP needs
// (`KernelSet.matmulNT/NN/TN`: x · W^T, dout · W, dout^T · x) through one `gemm`.
//
// The fast path is the Goto/BLIS scheme: the K dimension is cut into blocks of
// `GEMMBlocking.kc`, B is packed into zero-padded panels of `nr` columns and A
// into panels of `mr` rows, and a register-blocked mr x nr micro-kernel keeps
// the whole C tile in registers while it streams through the packed panels with
// fused multiply-adds. Packing turns every transpose into a copy, so one
// micro-kernel serves all three forms. The tile is the ISA's (GEMMMicroKernels.swift):
// 6 x 16 on AVX2, 12 x 32 on AVX-512.

/// Block sizes of the packed GEMM (the register tile is `GEMMTile`).
public enum GEMMBlocking {
    /// The narrow tile, 12 x 8: for N so small that wide panels would mostly compute
    /// padding (N = 20 or 40: the latent layer and the encoder heads).
    public static let narrowMR = 12
    public static let narrowNR = 8
    /// Depth of one packed block: a kc x nr panel of B (16-32 KiB) stays in L1.
    public static let kc = 256
    /// Rows of A packed at once: an mc x kc block of A (120 KiB) stays in L2.
    /// A multiple of every tile's mr (6 and 12).
    public static let mc = 120
    /// Columns of B packed at once: a kc x nc block of B (1 MiB at most) in L2/L3.
    /// A multiple of every tile's nr (16 and 32).
    public static let nc = 1024
}

/// Scratch space for packed panels, allocated once and reused by every call.
/// Not thread-safe: each thread (each model) owns its own.
public final class GEMMWorkspace: @unchecked Sendable {
    @usableFromInline let packedA: UnsafeMutablePointer<Float>  // [mc, kc] as mc/mr panels of [kc, mr]
    @usableFromInline let packedB: UnsafeMutablePointer<Float>  // [kc, nc] as nc/nr panels of [kc, nr]

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

/// C = (accumulate ? C : 0) + op(A) · op(B), with op(A) [M, K] and op(B) [K, N].
/// A is stored [M, lda] (or [K, lda] when transposed), B [K, ldb] (or [N, ldb]).
/// Instantiated by each per-ISA target with its tag.
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
    let tile = ISA.tile
    let narrow = tile.prefersNarrowTile(n: n)
    let mr = narrow ? GEMMBlocking.narrowMR : tile.mr
    let nr = narrow ? GEMMBlocking.narrowNR : tile.nr
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
                        let tileC = c + (ic + ir) * ldc + (jc + jr)
                        switch tile {
                        case .avx2x6x16:
                            microKernel6x16(ISA.self, kc: kc, a: packedA + ir * kc, b: panelB, c: tileC, ldc: ldc,
                                            rows: rows, columns: columns, load: load)
                        case .avx512x12x32:
                            microKernel12x32(ISA.self, kc: kc, a: packedA + ir * kc, b: panelB, c: tileC, ldc: ldc,
                                             rows: rows, columns: columns, load: load)
                        }
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
