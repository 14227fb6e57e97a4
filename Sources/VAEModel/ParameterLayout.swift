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

public struct TensorSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    /// Offset in floats from the start of the flat buffer.
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// A linear layer's place in the flat buffer: weight [outFeatures, inFeatures], bias [outFeatures].
public struct LinearView: Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Int
    public let bias: Int
}

public struct ParameterLayout: Sendable {
    public private(set) var tensors: [TensorSpec] = []
    public private(set) var count = 0
    public private(set) var encoder: [LinearView] = []
    /// mu and logvar heads fused: weight [2 * latent, hidden] (mu rows first), bias [2 * latent].
    public private(set) var head: LinearView
    public private(set) var decoder: [LinearView] = []
    public private(set) var output: LinearView
    /// Offset of decoder.logvar [inputDimension], gaussian likelihood only.
    public private(set) var outputLogvar: Int?

    public init(_ config: ModelConfig) {
        head = LinearView(inFeatures: 0, outFeatures: 0, weight: 0, bias: 0)
        output = head
        let d = config.inputDimension, l = config.latent
        var width = d
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
        output = linear("decoder.out", inFeatures: width, outFeatures: d)
        if config.likelihood == .gaussian { outputLogvar = add("decoder.logvar", [d]) }
    }

    public func tensor(named name: String) -> TensorSpec? { tensors.first { $0.name == name } }

    private mutating func add(_ name: String, _ shape: [Int]) -> Int {
        let spec = TensorSpec(name: name, shape: shape, offset: count)
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
