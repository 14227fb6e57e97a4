import VAEKernels

/// The GEMMs of one training step of `config` at `batch` rows, in execution order: each layer's
/// forward (x · W^T), then backward from the last layer, its weight gradient (dout^T · x) and,
/// but for the first layer, its input gradient (dout · W). `vae-dist bench` times them, and the
/// kernels are chosen at start on them (Kernels.prepare).
public func trainingGEMMShapes(config: ModelConfig, batch: Int) -> [GEMMShape] {
    let layout = ParameterLayout(config)
    var named: [(String, LinearView)] = layout.encoder.enumerated().map { ("encoder.\($0.offset)", $0.element) }
    named.append(("encoder.head", layout.head))
    named += layout.decoder.enumerated().map { ("decoder.\($0.offset)", $0.element) }
    named.append(("decoder.out", layout.output))
    var shapes = named.map { GEMMShape(layer: $0.0, form: .nt, m: batch, n: $0.1.outFeatures, k: $0.1.inFeatures) }
    for (i, (name, v)) in named.enumerated().reversed() {
        shapes.append(GEMMShape(layer: name, form: .tn, m: v.outFeatures, n: v.inFeatures, k: batch))
        if i > 0 { shapes.append(GEMMShape(layer: name, form: .nn, m: batch, n: v.inFeatures, k: v.outFeatures)) }
    }
    return shapes
}
