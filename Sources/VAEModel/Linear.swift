import VAEKernelDispatch
import VAEKernels

// A fully connected layer as a forward/backward pair (torch.nn.Linear semantics):
//   out[B, O] = inp[B, I] · weight[O, I]^T + bias[O]
// on the kernels chosen at start for this CPU (`Kernels.active`).

/// out = inp · weight^T + bias, then ReLU when `relu`.
@inline(__always)
public func linearForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                          _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                          batch: Int, inFeatures: Int, outFeatures: Int, relu: Bool, workspace: GEMMWorkspace) {
    let kernels = Kernels.active
    kernels.matmulNT(out, inp, weight, m: batch, n: outFeatures, k: inFeatures, accumulate: false, workspace: workspace)
    if relu {
        kernels.biasReluForward(out, bias, rows: batch, columns: outFeatures)
    } else {
        kernels.biasForward(out, bias, rows: batch, columns: outFeatures)
    }
}

/// dweight[O, I] += dout^T · inp,  dbias[O] += sum_b dout,  dinp[B, I] = dout · weight (when wanted).
/// dinp is overwritten, not accumulated: every layer input here has exactly one consumer.
@inline(__always)
public func linearBackward(_ dinp: UnsafeMutablePointer<Float>?, _ dweight: UnsafeMutablePointer<Float>,
                           _ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                           _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                           batch: Int, inFeatures: Int, outFeatures: Int, workspace: GEMMWorkspace) {
    let kernels = Kernels.active
    kernels.matmulTN(dweight, dout, inp, m: outFeatures, n: inFeatures, k: batch, accumulate: true, workspace: workspace)
    kernels.biasBackward(dbias, dout, rows: batch, columns: outFeatures)
    if let dinp {
        kernels.matmulNN(dinp, dout, weight, m: batch, n: inFeatures, k: outFeatures, accumulate: false, workspace: workspace)
    }
}
