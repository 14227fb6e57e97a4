import VAEKernels

// The kernels of VAEKernels instantiated for AVX-512: this target is built with
// -march=x86-64-v4 (Package.swift), and every call below specializes a generic kernel
// with the tag `AVX512`, so the specialization is compiled here with that flag.
// Nothing here may run unless CPUID reports AVX-512 (KernelISA.select): VAEKernelDispatch
// is the only place that hands out this struct.

/// The AVX-512 instantiation's tag: its ISA and GEMM register tile.
public enum AVX512: ISATag {
    public static var isa: KernelISA { .avx512 }
    public static var tile: GEMMTile { .avx512x12x32 }
}

public struct AVX512Kernels: KernelSet {
    public init() {}
    public var isa: KernelISA { AVX512.isa }

    public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                     _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        VAEKernels.gemm(AVX512.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                        m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }

    public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool, patches: GEMMPatches,
                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        VAEKernels.gemmPanels(AVX512.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, patches,
                              m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }

    public func packB(_ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                      n: Int, k: Int, padded: Bool) -> GEMMPackedB? {
        GEMMPackedB.pack(AVX512.self, dst, b, ldb: ldb, transposed: transposeB, n: n, k: k, padded: padded)
    }

    public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool, packed: GEMMPackedB,
                     m: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        VAEKernels.gemmPanels(AVX512.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, packed,
                              m: m, n: packed.n, k: packed.k, accumulate: accumulate, workspace: workspace)
    }

    public func biasForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?) {
        VAEKernels.biasForward(AVX512.self, out, bias, rows: rows, columns: columns, rowStride: rowStride)
    }

    public func biasReluForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?) {
        VAEKernels.biasReluForward(AVX512.self, out, bias, rows: rows, columns: columns, rowStride: rowStride)
    }

    public func biasBackward(_ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?) {
        VAEKernels.biasBackward(AVX512.self, dbias, dout, rows: rows, columns: columns, rowStride: rowStride)
    }

    public func reluBackward(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ out: UnsafePointer<Float>, count: Int) {
        VAEKernels.reluBackward(AVX512.self, dinp, dout, out, count: count)
    }

    public func bernoulliNLLForwardBackward(recon: UnsafeMutablePointer<Float>, dlogits: UnsafeMutablePointer<Float>?,
                                            logits: UnsafePointer<Float>, targets: UnsafePointer<Float>,
                                            rows: Int, columns: Int, scale: Float) {
        VAEKernels.bernoulliNLLForwardBackward(AVX512.self, recon: recon, dlogits: dlogits, logits: logits, targets: targets,
                                               rows: rows, columns: columns, scale: scale)
    }

    public func adamUpdate(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                           firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
                           count: Int, step: Int, hyper: AdamHyperparameters) {
        VAEKernels.adamUpdate(AVX512.self, parameters: parameters, gradients: gradients, firstMoment: firstMoment,
                              secondMoment: secondMoment, count: count, step: step, hyper: hyper)
    }

    /// One zmm register per accumulator.
    public func fmaPeakLoop(iterations: Int, seed: Float) -> FMAPeakResult {
        VAEKernels.fmaPeakLoop(AVX512.self, SIMD16<Float>.self, iterations: iterations, seed: seed)
    }
}

/// The AVX-512 instantiation with the GEMM on ymm registers: its own tag, so that its GEMM is
/// a separate specialization compiled here for x86-64-v4.
public enum AVX512YMM: ISATag {
    public static var isa: KernelISA { .avx512ymm }
    public static var tile: GEMMTile { .avx512ymm12x16 }
}

/// The AVX-512 kernels with the 12 x 16 ymm GEMM tile (for CPUs with 256-bit AVX-512 units).
/// Only the GEMM differs: the elementwise kernels and Adam are AVX512Kernels'.
public struct AVX512YMMKernels: KernelSet {
    public init() {}
    public var isa: KernelISA { AVX512YMM.isa }
    let elementwise = AVX512Kernels()

    public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
                     _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        VAEKernels.gemm(AVX512YMM.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                        m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }

    public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool, patches: GEMMPatches,
                     m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        VAEKernels.gemmPanels(AVX512YMM.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, patches,
                              m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }

    public func packB(_ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
                      n: Int, k: Int, padded: Bool) -> GEMMPackedB? {
        GEMMPackedB.pack(AVX512YMM.self, dst, b, ldb: ldb, transposed: transposeB, n: n, k: k, padded: padded)
    }

    public func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
                     _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool, packed: GEMMPackedB,
                     m: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        VAEKernels.gemmPanels(AVX512YMM.self, c, ldc: ldc, a, lda: lda, transposeA: transposeA, packed,
                              m: m, n: packed.n, k: packed.k, accumulate: accumulate, workspace: workspace)
    }

    public func biasForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?) {
        elementwise.biasForward(out, bias, rows: rows, columns: columns, rowStride: rowStride)
    }

    public func biasReluForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?) {
        elementwise.biasReluForward(out, bias, rows: rows, columns: columns, rowStride: rowStride)
    }

    public func biasBackward(_ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?) {
        elementwise.biasBackward(dbias, dout, rows: rows, columns: columns, rowStride: rowStride)
    }

    public func reluBackward(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ out: UnsafePointer<Float>, count: Int) {
        elementwise.reluBackward(dinp, dout, out, count: count)
    }

    public func bernoulliNLLForwardBackward(recon: UnsafeMutablePointer<Float>, dlogits: UnsafeMutablePointer<Float>?,
                                            logits: UnsafePointer<Float>, targets: UnsafePointer<Float>,
                                            rows: Int, columns: Int, scale: Float) {
        elementwise.bernoulliNLLForwardBackward(recon: recon, dlogits: dlogits, logits: logits, targets: targets,
                                                rows: rows, columns: columns, scale: scale)
    }

    public func adamUpdate(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                           firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
                           count: Int, step: Int, hyper: AdamHyperparameters) {
        elementwise.adamUpdate(parameters: parameters, gradients: gradients, firstMoment: firstMoment,
                               secondMoment: secondMoment, count: count, step: step, hyper: hyper)
    }

    /// One ymm register per accumulator: the peak of the registers its GEMM uses.
    public func fmaPeakLoop(iterations: Int, seed: Float) -> FMAPeakResult {
        VAEKernels.fmaPeakLoop(AVX512YMM.self, SIMD8<Float>.self, iterations: iterations, seed: seed)
    }
}
