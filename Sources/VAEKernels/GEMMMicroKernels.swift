// The register tiles of the packed GEMM (GEMM.swift): the tile enum, the AVX2 tiles (6 x 16
// and its 4-row tail) and the narrow 12 x 8 (the AVX-512 ones: GEMMMicroKernelsAVX512.swift).
// Each is generic over the ISA tag only so that every per-ISA target compiles its own copy with
// its own -march (except the narrow tile). Not inlined: a call costs nothing against kc steps
// of 12-24 FMAs.

/// The GEMM register tile of an ISA.
public enum GEMMTile: Sendable {
    /// 6 x 16: 12 accumulators of the 16 ymm registers (AVX2).
    case avx2x6x16
    /// 12 x 32: 24 accumulators of the 32 zmm registers, two B vectors and a broadcast
    /// (AVX-512: two 512-bit FMA pipes with 4-cycle latency need at least 8 chains; 24
    /// also halve the loads per FMA against a 6 x 16 tile).
    case avx512x12x32
    /// 12 x 16 on ymm registers: 24 SIMD8 accumulators of the 32 ymm registers AVX-512VL
    /// gives (AVX2 has 16, hence its 6 x 16). For CPUs that run AVX-512 on 256-bit units
    /// (Zen 4), where a zmm FMA costs two ymm ones: twice the rows of the AVX2 tile per B load.
    case avx512ymm12x16

    @inlinable public var mr: Int { self == .avx2x6x16 ? 6 : 12 }
    @inlinable public var nr: Int { self == .avx512x12x32 ? 32 : 16 }

    /// Row cuts between threads (BlockSplit, the row-cut GEMMs) start at multiples of this. Rows
    /// past a block's last full tile run on 4-row tiles (4 x 16 or 4 x 32) when there are at most
    /// `fourRowTail` of them; the AVX2 tile also runs 2 as 4 + 4 with the last full tile. So any
    /// even cut computes no padding on AVX2 (128 rows are 64 + 64), any multiple of 4 none with
    /// the 12-row tiles (64 = 5 x 12 + 4, 32 = 2 x 12 + 2 x 4).
    @inlinable public var rowSplitAlignment: Int { self == .avx2x6x16 ? 2 : 4 }

    /// The most rows past the last full tile that run on 4-row tiles (more: one padded full tile).
    @inlinable public var fourRowTail: Int { self == .avx2x6x16 ? 4 : 8 }

    /// How a block of mc rows is cut into tiles: rows ..< fullRows on full mr-row tiles, the rest
    /// on 4-row tiles (tailMR 4: up to `fourRowTail` rows past the last full tile, and on AVX2 2
    /// rows with the last full tile's 6, 8 = 4 + 4, so 128 rows are 20 tiles of 6 and 2 of 4,
    /// none computing padding; 64 = 5 x 12 + 4 on the 12-row tiles) or on one partial full-height
    /// tile (tailMR mr).
    @inlinable public func rowTiles(_ mc: Int) -> (fullRows: Int, tailMR: Int) {
        let fullRows = mc / mr * mr, left = mc - fullRows
        if left == 0 || left > fourRowTail { return (fullRows, mr) }
        return (self == .avx2x6x16 && left == 2 && fullRows > 0 ? fullRows - mr : fullRows, 4)
    }

    /// Whether the tile has forms reading B's rows in place (GEMMRowPointers.swift): the 12 x 32
    /// and the 6 x 16, not the 12 x 16 ymm tile.
    @inlinable public var readsRowsInPlace: Bool { self != .avx512ymm12x16 }

    /// Whether the narrow 12 x 8 tile (GEMMBlocking.narrowMR/NR) serves N better: it pads
    /// N to a multiple of 8 instead of nr. The 32-wide tile keeps it for N <= 64 only:
    /// beyond that the 8-wide tile's 8 times fewer FMAs per broadcast cost more than padding.
    /// The 16-wide tile keeps it only where it would pad N to twice the narrow tile's width
    /// (N <= 8): the 12 x 8 tile needs 13 loads per 12 FMAs and ran at 40-50% of the peak,
    /// the 6 x 16 tile at 85% (N = 40: 38% faster despite computing 48 columns; N = 20: 30%).
    @inlinable
    public func prefersNarrowTile(n: Int) -> Bool {
        let narrowPadded = (n + 7) / 8 * 8, widePadded = (n + nr - 1) / nr * nr
        switch self {
        case .avx2x6x16, .avx512ymm12x16: return 2 * narrowPadded <= widePadded
        case .avx512x12x32: return n <= 64 && narrowPadded < widePadded
        }
    }
}

/// The AVX2 register tile: C[6, 16] (+)= Apanel[kc, 6]^T · Bpanel[kc, 16].
/// Six SIMD16 accumulators (twelve of the 16 ymm registers), one B row and one
/// broadcast of A per FMA. Edge tiles compute the full tile and store part of it.
@inlinable @inline(never)
func microKernel6x16<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, rowStride rs: Int, kStride: Int,
                                  b: UnsafePointer<Float>,
                                  c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V()
    var pb = UnsafeRawPointer(b)
    if rs == 1 {
        // A packed, or op(A) = A^T: the six values of a step are adjacent (constant offsets).
        var pa = a
        var remaining = kc  // >= 1: gemm never calls with an empty K block
        repeat {
            let bv = pb.load(as: V.self)
            c0 = c0.addingProduct(V(repeating: pa[0]), bv)
            c1 = c1.addingProduct(V(repeating: pa[1]), bv)
            c2 = c2.addingProduct(V(repeating: pa[2]), bv)
            c3 = c3.addingProduct(V(repeating: pa[3]), bv)
            c4 = c4.addingProduct(V(repeating: pa[4]), bv)
            c5 = c5.addingProduct(V(repeating: pa[5]), bv)
            pa += kStride
            pb += 64
            remaining &-= 1
        } while remaining > 0
    } else {
        // Rows of a row-major A (kStride 1): six row pointers and one shared index, so that no
        // address waits on another (a pointer stepped row to row makes a chain of adds).
        let a0 = a, a1 = a + rs, a2 = a + 2 * rs, a3 = a + 3 * rs, a4 = a + 4 * rs, a5 = a + 5 * rs
        var p = 0
        repeat {
            let bv = pb.load(as: V.self)
            c0 = c0.addingProduct(V(repeating: a0[p]), bv)
            c1 = c1.addingProduct(V(repeating: a1[p]), bv)
            c2 = c2.addingProduct(V(repeating: a2[p]), bv)
            c3 = c3.addingProduct(V(repeating: a3[p]), bv)
            c4 = c4.addingProduct(V(repeating: a4[p]), bv)
            c5 = c5.addingProduct(V(repeating: a5[p]), bv)
            p &+= 1
            pb += 64
        } while p < kc
    }
    storeTile6x16(c, ldc: ldc, rows: rows, columns: columns, load: load, (c0, c1, c2, c3, c4, c5))
}

/// C[rows, columns] (+)= the 6 x 16 tile's accumulators (row r in the r-th): a full tile
/// straight from the registers, an edge tile through the stack.
@inlinable @inline(__always)
func storeTile6x16(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool,
                   _ tile: (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)) {
    typealias V = SIMD16<Float>
    var (c0, c1, c2, c3, c4, c5) = tile
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

/// The AVX2 tile for the last rows of a block: C[4, 16] (+)= Apanel[kc, 4]^T · Bpanel[kc, 16],
/// A packed. Eight accumulators: exactly the chains two FMA pipes of 4-cycle latency need.
@inlinable @inline(never)
func microKernel4x16<ISA: ISATag>(_: ISA.Type, kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                  c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD16<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V()
    var pa = a
    var pb = UnsafeRawPointer(b)
    var remaining = kc  // >= 1: gemm never calls with an empty K block
    repeat {
        let bv = pb.load(as: V.self)
        c0 = c0.addingProduct(V(repeating: pa[0]), bv)
        c1 = c1.addingProduct(V(repeating: pa[1]), bv)
        c2 = c2.addingProduct(V(repeating: pa[2]), bv)
        c3 = c3.addingProduct(V(repeating: pa[3]), bv)
        pa += 4
        pb += 64
        remaining &-= 1
    } while remaining > 0
    storeTile4x16(c, ldc: ldc, rows: rows, columns: columns, load: load, (c0, c1, c2, c3))
}

/// C[rows, columns] (+)= the 4 x 16 tile's accumulators (row r in the r-th).
@inlinable @inline(__always)
func storeTile4x16(_ c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool,
                   _ tile: (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)) {
    typealias V = SIMD16<Float>
    withUnsafeBytes(of: tile) { raw in
        let t = raw.baseAddress!.assumingMemoryBound(to: Float.self)
        for r in 0..<rows {
            let row = c + r * ldc
            let source = t + r * 16
            if columns == 16 {
                var v = UnsafeRawPointer(source).loadUnaligned(as: V.self)
                if load { v += UnsafeRawPointer(row).loadUnaligned(as: V.self) }
                UnsafeMutableRawPointer(row).storeBytes(of: v, as: V.self)
            } else if load {
                for q in 0..<columns { row[q] += source[q] }
            } else {
                for q in 0..<columns { row[q] = source[q] }
            }
        }
    }
}

/// The narrow tile: C[12, 8] (+)= Apanel[kc, 12]^T · Bpanel[kc, 8]. Twelve SIMD8
/// accumulators (twelve 256-bit registers), one B row and twelve broadcasts per step.
/// A is read in place: element (r, p) at a[r * rowStride + p * kStride].
/// Not generic: compiled once, here, for x86-64-v3, and called by both instantiations.
/// Specialized in a per-ISA target this loop kept its accumulators on the stack (40%
/// slower), and the narrow shapes are under 2% of a training step's FLOPs.
@usableFromInline @inline(never)
func microKernel12x8(kc: Int, a: UnsafePointer<Float>, rowStride: Int, kStride: Int, b: UnsafePointer<Float>,
                     c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, load: Bool) {
    typealias V = SIMD8<Float>
    var c0 = V(), c1 = V(), c2 = V(), c3 = V(), c4 = V(), c5 = V()
    var c6 = V(), c7 = V(), c8 = V(), c9 = V(), c10 = V(), c11 = V()
    let rs = rowStride
    var pa = a
    var pb = UnsafeRawPointer(b)
    var remaining = kc  // >= 1: gemm never calls with an empty K block
    repeat {
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
        remaining &-= 1
    } while remaining > 0
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
