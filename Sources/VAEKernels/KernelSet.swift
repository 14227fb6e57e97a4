// The kernels as one strategy value. Swift has no per-function target attribute, but an
// @inlinable generic is compiled with the flags of the module that specializes it. So the
// hot kernels are written once here as generics over an `ISATag`, and each thin per-ISA
// target (built with -march=x86-64-v3 or -march=x86-64-v4) declares a tag and a
// `KernelSet` whose methods call them with that tag. Every specialization then carries
// its tag in its symbol name: the AVX-512 copies can never be merged with (and called
// in place of) the AVX2 ones.

/// Names an instantiation of the kernels: its ISA and its GEMM register tile.
public protocol ISATag {
    static var isa: KernelISA { get }
    static var tile: GEMMTile { get }
}

/// The kernels the model and the optimizer run, for one ISA. Chosen once at start
/// (`Kernels.active` in VAEKernelDispatch); every method has a naive reference in this module.
public protocol KernelSet: Sendable {
    var isa: KernelISA { get }

    /// C = (accumulate ? C : 0) + op(A) · op(B), with op(A) [M, K] and op(B) [K, N] (see GEMM.swift).
    func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
              _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
              _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
              m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace)

    /// The same with op(B) = im2col(image) (GEMMPatches), packed from the image: a convolution's
    /// weight gradient without its patches stored.
    func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
              _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool, patches: GEMMPatches,
              m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace)

    /// op(B) [k, n] packed into dst (GEMMPackedB.count floats) once for many products with it;
    /// a narrow N only when `padded` (see GEMMPackedB.pack), else nil.
    func packB(_ dst: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
               n: Int, k: Int, padded: Bool) -> GEMMPackedB?

    /// The same with op(B) packed by packB: its panels read in place.
    func gemm(_ c: UnsafeMutablePointer<Float>, ldc: Int,
              _ a: UnsafePointer<Float>, lda: Int, transposeA: Bool, packed: GEMMPackedB,
              m: Int, accumulate: Bool, workspace: GEMMWorkspace)

    /// out[r, c] += bias[c], rows `rowStride` apart (nil: `columns`)
    func biasForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?)
    /// out = max(out + bias, 0), rows `rowStride` apart (nil: `columns`)
    func biasReluForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?)
    /// dbias[c] += sum over rows of dout[r, c]
    func biasBackward(_ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, rows: Int, columns: Int, rowStride: Int?)
    /// dinp = dout where out > 0, else 0
    func reluBackward(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ out: UnsafePointer<Float>, count: Int)

    /// Bernoulli -log p(x|z) per row, fused with its gradient (see Likelihood.swift).
    func bernoulliNLLForwardBackward(recon: UnsafeMutablePointer<Float>, dlogits: UnsafeMutablePointer<Float>?,
                                     logits: UnsafePointer<Float>, targets: UnsafePointer<Float>,
                                     rows: Int, columns: Int, scale: Float)

    /// One Adam step over a flat buffer (see Adam.swift).
    func adamUpdate(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                    firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
                    count: Int, step: Int, hyper: AdamHyperparameters)

    /// `iterations` rounds of 16 independent FMA chains in registers (see FMAPeak.swift).
    func fmaPeakLoop(iterations: Int, seed: Float) -> FMAPeakResult
}

extension KernelSet {
    /// out[r, c] += bias[c] over a contiguous [rows, columns] buffer.
    @inlinable
    public func biasForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int) {
        biasForward(out, bias, rows: rows, columns: columns, rowStride: nil)
    }

    /// out = max(out + bias, 0) over a contiguous [rows, columns] buffer.
    @inlinable
    public func biasReluForward(_ out: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, rows: Int, columns: Int) {
        biasReluForward(out, bias, rows: rows, columns: columns, rowStride: nil)
    }

    /// dbias[c] += sum over rows of dout[r, c], rows `columns` apart.
    @inlinable
    public func biasBackward(_ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, rows: Int, columns: Int) {
        biasBackward(dbias, dout, rows: rows, columns: columns, rowStride: nil)
    }

    /// C[M, N] (+)= A[M, K] · B[N, K]^T   (linear forward: x · W^T)
    @inlinable
    public func matmulNT(_ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                         m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        gemm(c, ldc: n, a, lda: k, transposeA: false, b, ldb: k, transposeB: true,
             m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }

    /// C[M, N] (+)= A[M, K] · B[K, N]   (linear backward: dout · W)
    @inlinable
    public func matmulNN(_ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                         m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        gemm(c, ldc: n, a, lda: k, transposeA: false, b, ldb: n, transposeB: false,
             m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }

    /// C[M, N] (+)= A[K, M]^T · B[K, N]   (weight gradient: dout^T · x)
    @inlinable
    public func matmulTN(_ c: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                         m: Int, n: Int, k: Int, accumulate: Bool, workspace: GEMMWorkspace) {
        gemm(c, ldc: n, a, lda: m, transposeA: true, b, ldb: n, transposeB: false,
             m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
    }
}
