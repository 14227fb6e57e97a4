import VAEKernels

// Every parameter lives in ONE contiguous buffer; tensors are named views into it
// with the names and [out, in] shapes of torch.nn.Linear state dicts. Gradients and
// Adam moments use the same layout, so allreduce, the optimizer and checkpoints each
// touch one buffer.
//
// Order (default model 784-400-20 gives 652,824 floats):
//   encoder.0.weight [400, 784], encoder.0.bias [400], ...
//   encoder.mu.weight [20, 400], encoder.logvar.weight [20, 400]   <- adjacent: one fused
//   encoder.mu.bias [20], encoder.logvar.bias [20]                    head GEMM [40, 400]
//   decoder.0.weight [400, 20], decoder.0.bias [400], ...
//   decoder.out.weight [784, 400], decoder.out.bias [784]
//   decoder.logvar [784]   (gaussian likelihood only: learned per-pixel log-variance)
//
// The conv architecture (ModelConfig.architecture), in the order forward runs:
//   encoder.conv.0.weight [32, C, 4, 4] (torch.nn.Conv2d), encoder.conv.0.bias [32], ...
//     (convolution weights are held [out, kh, kw, in] here and written in torch's order:
//     TensorSpec.channelsLast)
//   encoder.0.weight [256, 64 * 4 * 4] (the last feature map flattened as torch does: CHW), ...
//   encoder.mu.*, encoder.logvar.*   (as above)
//   decoder.0.weight [256, latent], ..., decoder.fc.weight [64 * 4 * 4, 256] (to the feature map, CHW)
//   decoder.deconv.0.weight [64, 64, 4, 4] (torch.nn.ConvTranspose2d: [in, out, kh, kw]), ...,
//   decoder.deconv.3.weight [32, C, 4, 4] (the output), decoder.deconv.3.bias [C]
//   decoder.logvar [H * W * C]   (gaussian likelihood only)

public struct TensorSpec: Sendable, Equatable {
    public let name: String
    /// The shape in the checkpoint (torch's).
    public let shape: [Int]
    /// Offset in floats from the start of the flat buffer.
    public let offset: Int
    /// A convolution weight held in the flat buffer with its second dimension last:
    /// [shape[0], kh, kw, shape[1]] (an image patch's channels adjacent, as the images are HWC),
    /// while the checkpoint holds torch's [shape[0], shape[1], kh, kw]. `fileOrder` and
    /// `bufferOrder` convert.
    public var channelsLast = false
    public var count: Int { shape.reduce(1, *) }

    /// The tensor in the checkpoint's order from `buffer` (its place in the flat buffer) into `file`.
    public func fileOrder(_ file: UnsafeMutablePointer<Float>, from buffer: UnsafePointer<Float>) {
        guard channelsLast else { return file.update(from: buffer, count: count) }
        let rows = shape[0], channels = shape[1], taps = shape[2] * shape[3]
        for r in 0..<rows {
            for c in 0..<channels { for t in 0..<taps { file[(r * channels + c) * taps + t] = buffer[(r * taps + t) * channels + c] } }
        }
    }

    /// The tensor in the flat buffer's order from `file` (the checkpoint's order) into `buffer`.
    public func bufferOrder(_ buffer: UnsafeMutablePointer<Float>, from file: UnsafePointer<Float>) {
        guard channelsLast else { return buffer.update(from: file, count: count) }
        let rows = shape[0], channels = shape[1], taps = shape[2] * shape[3]
        for r in 0..<rows {
            for c in 0..<channels { for t in 0..<taps { buffer[(r * taps + t) * channels + c] = file[(r * channels + c) * taps + t] } }
        }
    }
}

/// A linear layer's place in the flat buffer: weight [outFeatures, inFeatures], bias [outFeatures].
public struct LinearView: Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Int
    public let bias: Int
}

/// A convolution's place in the flat buffer. For torch.nn.Conv2d: `geometry` is its own, weight
/// [channels = Cout, geometry.patch] (a patch in the order ky, kx, channel), bias [Cout]. For torch.nn.ConvTranspose2d: `geometry` is
/// that of its adjoint convolution (geometry.in* are the transposed convolution's output image,
/// geometry.out* its input positions), weight [channels = its input channels, geometry.patch],
/// bias [geometry.inChannels].
public struct ConvView: Sendable {
    public let geometry: ConvGeometry
    public let channels: Int
    public let weight: Int
    public let bias: Int
    /// Output positions x channels of one example (a convolution's output; a transposed
    /// convolution's input).
    public var gemmSize: Int { geometry.positions * channels }

    public init(geometry: ConvGeometry, channels: Int, weight: Int, bias: Int) {
        self.geometry = geometry
        self.channels = channels
        self.weight = weight
        self.bias = bias
    }
}

public struct ParameterLayout: Sendable {
    public private(set) var tensors: [TensorSpec] = []
    public private(set) var count = 0
    public private(set) var encoder: [LinearView] = []
    /// mu and logvar heads fused: weight [2 * latent, hidden] (mu rows first), bias [2 * latent].
    public private(set) var head: LinearView
    public private(set) var decoder: [LinearView] = []
    /// The MLP's last decoder layer (nil for conv: the last transposed convolution).
    public private(set) var output: LinearView?
    /// conv: the encoder's convolutions, input side first (before `encoder`, the dense layers).
    public private(set) var convEncoder: [ConvView] = []
    /// conv: the decoder's transposed convolutions, after `decoder` (whose last layer is decoder.fc).
    public private(set) var convDecoder: [ConvView] = []
    /// Offset of decoder.logvar [inputDimension], gaussian likelihood only.
    public private(set) var outputLogvar: Int?

    public init(_ config: ModelConfig) {
        head = LinearView(inFeatures: 0, outFeatures: 0, weight: 0, bias: 0)
        let d = config.inputDimension, l = config.latent
        var width = d
        let convs = config.convLayers
        for (i, c) in convs.enumerated() {
            let g = ConvGeometry(inHeight: c.inHeight, inWidth: c.inWidth, inChannels: c.inChannels, kernel: c.kernel, stride: 2, padding: c.padding)
            let w = add("encoder.conv.\(i).weight", [c.outChannels, c.inChannels, c.kernel, c.kernel], channelsLast: true)
            convEncoder.append(ConvView(geometry: g, channels: c.outChannels, weight: w, bias: add("encoder.conv.\(i).bias", [c.outChannels])))
            width = g.positions * c.outChannels
        }
        let featureMap = width
        for (i, h) in config.hidden.enumerated() {
            encoder.append(linear("encoder.\(i)", inFeatures: width, outFeatures: h))
            width = h
        }
        let muWeight = add("encoder.mu.weight", [l, width])
        _ = add("encoder.logvar.weight", [l, width])
        let muBias = add("encoder.mu.bias", [l])
        _ = add("encoder.logvar.bias", [l])
        head = LinearView(inFeatures: width, outFeatures: 2 * l, weight: muWeight, bias: muBias)
        width = l
        for (i, h) in config.hidden.reversed().enumerated() {
            decoder.append(linear("decoder.\(i)", inFeatures: width, outFeatures: h))
            width = h
        }
        if convs.isEmpty {
            output = linear("decoder.out", inFeatures: width, outFeatures: d)
        } else {
            decoder.append(linear("decoder.fc", inFeatures: width, outFeatures: featureMap))
            // Kernel 4, padding 1: each doubles the sides, mirroring the encoder's channels.
            for (i, c) in convs.enumerated().reversed() {
                let g = ConvGeometry(inHeight: c.inHeight, inWidth: c.inWidth, inChannels: c.inChannels, kernel: 4, stride: 2, padding: 1)
                let j = convs.count - 1 - i
                let w = add("decoder.deconv.\(j).weight", [c.outChannels, c.inChannels, 4, 4], channelsLast: true)
                convDecoder.append(ConvView(geometry: g, channels: c.outChannels, weight: w, bias: add("decoder.deconv.\(j).bias", [c.inChannels])))
            }
        }
        if config.likelihood == .gaussian { outputLogvar = add("decoder.logvar", [d]) }
    }

    public func tensor(named name: String) -> TensorSpec? { tensors.first { $0.name == name } }

    /// Where each layer's weight starts, ascending: the offsets backward finishes, from the last.
    public var layerStarts: [Int] {
        (convEncoder.map(\.weight) + encoder.map(\.weight) + [head.weight] + decoder.map(\.weight)
         + (output.map { [$0.weight] } ?? []) + convDecoder.map(\.weight)).sorted()
    }

    private mutating func add(_ name: String, _ shape: [Int], channelsLast: Bool = false) -> Int {
        let spec = TensorSpec(name: name, shape: shape, offset: count, channelsLast: channelsLast)
        tensors.append(spec)
        count += spec.count
        return spec.offset
    }

    private mutating func linear(_ prefix: String, inFeatures: Int, outFeatures: Int) -> LinearView {
        let w = add("\(prefix).weight", [outFeatures, inFeatures])
        let b = add("\(prefix).bias", [outFeatures])
        return LinearView(inFeatures: inFeatures, outFeatures: outFeatures, weight: w, bias: b)
    }
}
