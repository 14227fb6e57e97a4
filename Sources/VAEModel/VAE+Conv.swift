import VAEKernels

// The conv architecture's encoder and decoder (ModelConfig.architecture == .conv):
//   encoder  x [batch, H, W, C] -> convolutions (ReLU) -> flatten (CHW, as torch) -> dense
//            layers (ReLU) -> heads                        (mlpForward from the flattened map)
//   decoder  z -> dense layers and decoder.fc (ReLU) -> unflatten (CHW -> HWC) -> transposed
//            convolutions (ReLU but the last) -> logits [batch, H, W, C]

extension VAE {
    func convEncode(_ workspace: VAEWorkspace, x: UnsafePointer<Float>, batch: Int) {
        let conv = workspace.conv!
        var input = x
        for (i, view) in layout.convEncoder.enumerated() {
            convolutionForward(view, image: input, out: conv.encoderMaps[i], cols: conv.encoderCols[i], parameters: parameters,
                               batch: batch, relu: true, threads: threads, workspace: workspace.gemm)
            input = UnsafePointer(conv.encoderMaps[i])
        }
        let last = layout.convEncoder.last!
        transposeFeatureMaps(conv.flat, input, batch: batch, positions: last.geometry.positions, channels: last.channels, toCHW: true)
        mlpForward(layout.encoder, activations: workspace.encoderHidden, head: layout.head, output: workspace.heads,
                   input: conv.flat, batch: batch, workspace: workspace.gemm)
    }

    func convDecode(_ workspace: VAEWorkspace, z: UnsafePointer<Float>, batch: Int) {
        let conv = workspace.conv!
        var input = z
        for (i, layer) in layout.decoder.enumerated() {
            linearForward(workspace.decoderHidden[i], input, parameters + layer.weight, parameters + layer.bias,
                          batch: batch, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, relu: true,
                          threads: threads, workspace: workspace.gemm)
            input = UnsafePointer(workspace.decoderHidden[i])
        }
        let first = layout.convDecoder[0]
        transposeFeatureMaps(conv.decoderMaps[0], input, batch: batch, positions: first.geometry.positions,
                             channels: first.channels, toCHW: false)
        let count = layout.convDecoder.count
        for (i, view) in layout.convDecoder.enumerated() {
            let out = i == count - 1 ? workspace.logits : conv.decoderMaps[i + 1]
            transposedConvolutionForward(view, input: conv.decoderMaps[i], out: out, parameters: parameters,
                                         batch: batch, relu: i < count - 1, threads: threads, workspace: workspace.gemm)
        }
    }

    /// The decoder's backward from dlogits to dz (workspace.dz).
    func convDecoderBackward(_ workspace: VAEWorkspace, gradients: UnsafeMutablePointer<Float>, batch: Int,
                             observer: (any BackwardObserver)?, accumulate: Bool) {
        let conv = workspace.conv!, ws = workspace.gemm
        let count = layout.convDecoder.count
        var dout = UnsafeMutablePointer(workspace.dlogits)
        for i in stride(from: count - 1, through: 0, by: -1) {
            let view = layout.convDecoder[i]
            // (The ReLU after this layer was applied to dout by the next layer's input gradient.)
            transposedConvolutionBackward(view, dout: dout, input: conv.decoderMaps[i], dinput: conv.decoderGradients[i],
                                          reluMask: i > 0 ? conv.decoderMaps[i] : nil,
                                          dcols: conv.scratch, parameters: parameters, gradients: gradients, batch: batch,
                                          accumulate: accumulate, threads: threads, workspace: ws)
            observer?.gradientsFinal(from: view.weight)
            dout = conv.decoderGradients[i]
        }
        let first = layout.convDecoder[0], last = layout.decoder.count - 1
        transposeFeatureMaps(workspace.decoderGradient[last], dout, batch: batch, positions: first.geometry.positions,
                             channels: first.channels, toCHW: true)
        denseDecoderBackward(workspace, gradients: gradients, batch: batch, observer: observer, accumulate: accumulate)
    }

    /// The encoder's convolutions' backward, from d(flattened map) in workspace.conv.dflat.
    func convEncoderBackward(_ workspace: VAEWorkspace, x: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>,
                             batch: Int, observer: (any BackwardObserver)?, accumulate: Bool) {
        let conv = workspace.conv!
        let count = layout.convEncoder.count
        let last = layout.convEncoder[count - 1]
        transposeFeatureMaps(conv.encoderGradients[count - 1], conv.dflat, batch: batch, positions: last.geometry.positions,
                             channels: last.channels, toCHW: false)
        for i in stride(from: count - 1, through: 0, by: -1) {
            let view = layout.convEncoder[i]
            let dout = conv.encoderGradients[i]
            // The last convolution's ReLU here; the others' in the next layer's input gradient.
            if i == count - 1 { reluBackward(dout, dout, conv.encoderMaps[i], count: batch * view.gemmSize, threads: threads) }
            let image = i > 0 ? UnsafePointer(conv.encoderMaps[i - 1]) : x
            convolutionBackward(view, dout: dout, image: image, cols: conv.encoderCols[i],
                                dimage: i > 0 ? conv.encoderGradients[i - 1] : nil,
                                reluMask: i > 0 ? image : nil, parameters: parameters, gradients: gradients,
                                batch: batch, accumulate: accumulate, threads: threads, workspace: workspace.gemm)
            observer?.gradientsFinal(from: view.weight)
        }
    }
}

/// The conv architecture's activations and their gradients for up to `capacity` examples.
public final class ConvWorkspace: @unchecked Sendable {
    /// Per encoder convolution: its patches [capacity * positions, patch] (kept for backward;
    /// one float where the layer packs them from its input instead), its output maps
    /// [capacity * positions, channels] after ReLU, and their gradients.
    let encoderCols: [UnsafeMutablePointer<Float>]
    let encoderMaps: [UnsafeMutablePointer<Float>]
    let encoderGradients: [UnsafeMutablePointer<Float>]
    /// The last map flattened CHW [capacity, features], and its gradient.
    let flat: UnsafeMutablePointer<Float>
    let dflat: UnsafeMutablePointer<Float>
    /// Per transposed convolution: its input maps [capacity * positions, channels] (the first
    /// one unflattened from decoder.fc) and their gradients.
    let decoderMaps: [UnsafeMutablePointer<Float>]
    let decoderGradients: [UnsafeMutablePointer<Float>]
    /// The largest patch matrix a transposed convolution's backward keeps for its weight gradient
    /// (the layers that do not pack their patches from dout).
    let scratch: UnsafeMutablePointer<Float>
    private var owned: [UnsafeMutablePointer<Float>] = []

    init(layout: ParameterLayout, capacity: Int) {
        var all: [UnsafeMutablePointer<Float>] = []
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = allocateAligned(max(capacity * count, 1))
            all.append(p)
            return p
        }
        encoderCols = layout.convEncoder.map { buffer($0.packsPatchesFromImage ? 0 : $0.geometry.positions * $0.geometry.patch) }
        encoderMaps = layout.convEncoder.map { buffer($0.gemmSize) }
        encoderGradients = layout.convEncoder.map { buffer($0.gemmSize) }
        let features = layout.convEncoder.last?.gemmSize ?? 0
        flat = buffer(features)
        dflat = buffer(features)
        decoderMaps = layout.convDecoder.map { buffer($0.gemmSize) }
        decoderGradients = layout.convDecoder.map { buffer($0.gemmSize) }
        scratch = buffer(layout.convDecoder.map { $0.packsPatchesFromImage ? 0 : $0.geometry.positions * $0.geometry.patch }.max() ?? 0)
        owned = all
    }

    deinit { for p in owned { p.deallocate() } }
}
