// One GEMM of a training step, by its form and sizes: what `vae-dist bench` times per layer and
// what the kernels are chosen on at start (VAEKernelDispatch/KernelChoice.swift). The model's
// list of them is `trainingGEMMShapes` (VAEModel/StepShapes.swift).

public struct GEMMShape: Sendable, Equatable, CustomStringConvertible {
    /// The three forms an MLP runs (KernelSet.matmulNT/NN/TN).
    public enum Form: String, Sendable { case nt = "A*B^T", nn = "A*B", tn = "A^T*B" }
    public var layer: String
    public var form: Form
    public var m: Int, n: Int, k: Int

    public init(layer: String, form: Form, m: Int, n: Int, k: Int) {
        self.layer = layer
        self.form = form
        self.m = m
        self.n = n
        self.k = k
    }

    public var description: String { "\(layer) \(form.rawValue) \(m)x\(n)x\(k)" }
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

extension KernelSet {
    /// Runs `shape` once on dense operands (A [m, k] or [k, m], B [n, k] or [k, n], C [m, n]):
    /// the weight gradient (A^T * B) accumulates, as in backward, the others overwrite C.
    @inlinable
    public func run(_ shape: GEMMShape, c: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                    workspace: GEMMWorkspace) {
        let (m, n, k) = (shape.m, shape.n, shape.k)
        switch shape.form {
        case .nt: matmulNT(c, a, b, m: m, n: n, k: k, accumulate: false, workspace: workspace)
        case .nn: matmulNN(c, a, b, m: m, n: n, k: k, accumulate: false, workspace: workspace)
        case .tn: matmulTN(c, a, b, m: m, n: n, k: k, accumulate: true, workspace: workspace)
        }
    }
}
