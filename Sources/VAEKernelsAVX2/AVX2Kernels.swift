import VAEKernels

// The kernels of VAEKernels instantiated for AVX2 + FMA: this target is built with
// -march=x86-64-v3 (Package.swift), and every call below specializes a generic kernel
// with the tag `AVX2`, so the specialization is compiled here with that flag.
// It is also the floor of the binary (every other target is built for x86-64-v3)
// and the instantiation used on other architectures, where no -march is given.

/// The AVX2 + FMA instantiation's tag: its ISA and GEMM register tile.
public enum AVX2: ISATag {
    public static var isa: KernelISA { .avx2 }
    public static var tile: GEMMTile { .avx2x6x16 }
}

public struct AVX2Kernels: KernelSet {
    public init() {}
    public var isa: KernelISA { AVX2.isa }

    public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                     _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        VAEKernels.gemm(AVX2.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                        m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }

    public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool, patches: GEMMPatches,
                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        VAEKernels.gemmPanels(AVX2.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, patches,
                              m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }

    public func packB(_ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                      n: Int, k: Int, padded: Bool) -> GEMMPackedB? {
        GEMMPackedB.pack(AVX2.self, dst, b, ldb: ldb, transposed: transposeB, n: n, k: k, padded: padded)
    }

    public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool, packed: GEMMPackedB,
                     m: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        VAEKernels.gemmPanels(AVX2.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, packed,
                              m: m, n: packed.n, k: packed.k, accumulate: accumulate, workspace: workspace)
    }

    public func biasForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?) {
        VAEKernels.biasForward(AVX2.self, out, bias, rows: rows, columns: columns, rowStride: rowStride)
    }

    public func biasReluForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?) {
        VAEKernels.biasReluForward(AVX2.self, out, bias, rows: rows, columns: columns, rowStride: rowStride)
    }

    public func biasBackward(_ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?) {
        VAEKernels.biasBackward(AVX2.self, dbias, dout, rows: rows, columns: columns, rowStride: rowStride)
    }

    public func reluBackward(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ out: UnsafePointer<Float>, count: Int) {
        VAEKernels.reluBackward(AVX2.self, dinp, dout, out, count: count)
    }

    public func bernoulliNLLForwardBackward(recon: UnsafeMutablePointer<Float>, dlogits: UnsafeMutablePointer<Float>?,
                                            logits: UnsafePointer<Float>, targets: UnsafePointer<Float>,
                                            rows: Int, columns: Int, scale: Float) {
        VAEKernels.bernoulliNLLForwardBackward(AVX2.self, recon: recon, dlogits: dlogits, logits: logits, targets: targets,
                                               rows: rows, columns: columns, scale: scale)
    }

    public func adamUpdate(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                           firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
                           count: Int, step: Int, hyper: AdamHyperparameters) {
        VAEKernels.adamUpdate(AVX2.self, parameters: parameters, gradients: gradients, firstMoment: firstMoment,
                              secondMoment: secondMoment, count: count, step: step, hyper: hyper)
    }

    /// One ymm register per accumulator.
    public func fmaPeakLoop(iterations: Int, seed: Float) -> FMAPeakResult {
        VAEKernels.fmaPeakLoop(AVX2.self, SIMD8<Float>.self, iterations: iterations, seed: seed)
    }
}
