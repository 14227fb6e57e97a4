import VAEKernels

/// The GEMMs of one training step of `config` at `batch` rows, in execution order: each layer's
/// forward (x · W^T), then backward from the last layer, its weight gradient (dout^T · x) and,
/// but for the first layer, its input gradient (dout · W). `vae-dist bench` times them, and the
/// kernels are chosen at start on them (Kernels.prepare). A convolution's GEMMs have the batch's
/// output positions as rows (its patch as K); a transposed convolution's are the same swapped.
public func trainingGEMMShapes(config: ModelConfig, batch: Int) -> [GEMMShape] {
    let layout = ParameterLayout(config)
    var named: [(String, LinearView)] = layout.encoder.enumerated().map { ("encoder.\($0.offset)", $0.element) }
    named.append(("encoder.head", layout.head))
    named += layout.decoder.enumerated().map { ($0.offset == config.hidden.count ? "decoder.fc" : "decoder.\($0.offset)", $0.element) }
    if let output = layout.output { named.append(("decoder.out", output)) }
    let convs = layout.convEncoder.enumerated().map { ("encoder.conv.\($0.offset)", $0.element) }
    let deconvs = layout.convDecoder.enumerated().map { ("decoder.deconv.\($0.offset)", $0.element) }
    var shapes = convs.map { GEMMShape(layer: $0.0, form: .nt, m: batch * $0.1.geometry.positions, n: $0.1.channels, k: $0.1.geometry.patch) }
    shapes += named.map { GEMMShape(layer: $0.0, form: .nt, m: batch, n: $0.1.outFeatures, k: $0.1.inFeatures) }
    shapes += deconvs.map { GEMMShape(layer: $0.0, form: .nn, m: batch * $0.1.geometry.positions, n: $0.1.geometry.patch, k: $0.1.channels) }
    for (name, v) in deconvs.reversed() {
        let rows = batch * v.geometry.positions
        shapes.append(GEMMShape(layer: name, form: .tn, m: v.channels, n: v.geometry.patch, k: rows))
        shapes.append(GEMMShape(layer: name, form: .nt, m: rows, n: v.channels, k: v.geometry.patch))
    }
    for (i, (name, v)) in named.enumerated().reversed() {
        shapes.append(GEMMShape(layer: name, form: .tn, m: v.outFeatures, n: v.inFeatures, k: batch))
        if i > 0 || !convs.isEmpty { shapes.append(GEMMShape(layer: name, form: .nn, m: batch, n: v.inFeatures, k: v.outFeatures)) }
    }
    for (i, (name, v)) in convs.enumerated().reversed() {
        let rows = batch * v.geometry.positions
        shapes.append(GEMMShape(layer: name, form: .tn, m: v.channels, n: v.geometry.patch, k: rows))
        if i > 0 { shapes.append(GEMMShape(layer: name, form: .nn, m: rows, n: v.geometry.patch, k: v.channels)) }
    }
    return shapes
}
