// What the VAE is: image shape, MLP widths, latent size, likelihood, beta.

public enum Likelihood: String, Codable, Sendable, CaseIterable {
    /// Sigmoid output, binary cross-entropy summed over pixels.
    case bernoulli
    /// Per-pixel Gaussian with a learned per-pixel log-variance; NLL includes its constants.
    case gaussian
}

/// The encoder and decoder networks.
public enum Architecture: String, Codable, Sendable, CaseIterable {
    /// Fully connected layers (the default).
    case mlp
    /// Convolutions (disentanglement_lib's, Locatello et al. 2019): stride-2 convolutions with
    /// `convChannels`, kernels 4, 4, then 2, ReLU, the dense `hidden` layers, the heads; the
    /// decoder: dense layers, a dense layer to the last feature map, transposed convolutions
    /// with kernel 4 mirroring the encoder, the last one to `channels`.
    case conv
}

public struct ModelConfig: Codable, Equatable, Sendable {
    public var imageHeight: Int
    public var imageWidth: Int
    /// Colour channels per pixel: 1 (gray) or 3 (RGB). The input is H x W x C, interleaved
    /// (HWC, as PIL and numpy hold images): pixel (y, x) channel c at (y * W + x) * C + c.
    public var channels = 1
    /// Encoder hidden widths, input side first; the decoder mirrors them.
    public var hidden: [Int]
    public var latent: Int
    public var likelihood: Likelihood
    /// Weight of the KL term (beta-VAE; 1 gives the ELBO).
    public var beta: Float
    /// Plain autoencoder: z = mu, no KL term.
    public var autoencoder: Bool
    /// The networks; `conv` adds `convChannels`.
    public var architecture: Architecture = .mlp
    /// Output channels of the encoder's convolutions, input side first (conv only).
    public var convChannels: [Int] = ModelConfig.defaultConvChannels

    public static let defaultConvChannels = [32, 32, 64, 64]
    /// The dense width of the conv architecture when --hidden is not given.
    public static let defaultConvHidden = [256]

    public init(imageHeight: Int = 28, imageWidth: Int = 28, hidden: [Int] = [400], latent: Int = 20,
                likelihood: Likelihood = .bernoulli, beta: Float = 1, autoencoder: Bool = false) {
        self.imageHeight = imageHeight
        self.imageWidth = imageWidth
        self.hidden = hidden
        self.latent = latent
        self.likelihood = likelihood
        self.beta = beta
        self.autoencoder = autoencoder
    }

    public var inputDimension: Int { imageHeight * imageWidth * channels }

    enum CodingKeys: String, CodingKey {
        case imageHeight, imageWidth, channels, hidden, latent, likelihood, beta, autoencoder, architecture, convChannels
    }

    /// The conv fields are written for conv models only: an MLP's config is as before.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(autoencoder, forKey: .autoencoder)
        try c.encode(beta, forKey: .beta)
        try c.encode(channels, forKey: .channels)
        try c.encode(hidden, forKey: .hidden)
        try c.encode(imageHeight, forKey: .imageHeight)
        try c.encode(imageWidth, forKey: .imageWidth)
        try c.encode(latent, forKey: .latent)
        try c.encode(likelihood, forKey: .likelihood)
        if architecture != .mlp {
            try c.encode(architecture, forKey: .architecture)
            try c.encode(convChannels, forKey: .convChannels)
        }
    }

    /// `channels` is optional in JSON: checkpoints written before colour load as gray (C = 1).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        imageHeight = try c.decode(Int.self, forKey: .imageHeight)
        imageWidth = try c.decode(Int.self, forKey: .imageWidth)
        channels = try c.decodeIfPresent(Int.self, forKey: .channels) ?? 1
        hidden = try c.decode([Int].self, forKey: .hidden)
        latent = try c.decode(Int.self, forKey: .latent)
        likelihood = try c.decode(Likelihood.self, forKey: .likelihood)
        beta = try c.decode(Float.self, forKey: .beta)
        autoencoder = try c.decode(Bool.self, forKey: .autoencoder)
        architecture = try c.decodeIfPresent(Architecture.self, forKey: .architecture) ?? .mlp
        convChannels = try c.decodeIfPresent([Int].self, forKey: .convChannels) ?? ModelConfig.defaultConvChannels
    }

    /// The conv architecture's layers (empty for the MLP).
    public var convLayers: [ConvLayerShape] {
        guard architecture == .conv else { return [] }
        var h = imageHeight, w = imageWidth, c = channels
        return convChannels.enumerated().map { i, out in
            let kernel = i < 2 ? 4 : 2
            let layer = ConvLayerShape(inHeight: h, inWidth: w, inChannels: c, outChannels: out, kernel: kernel, padding: kernel == 4 ? 1 : 0)
            h /= 2; w /= 2; c = out
            return layer
        }
    }

    /// Checks the numbers; the message names the option to change.
    /// `imageSize` false: before the data is read (its image size is not known yet).
    public func validate(imageSize: Bool = true) throws(ModelConfigError) {
        if imageHeight <= 0 || imageWidth <= 0 { throw .invalid("image size \(imageHeight)x\(imageWidth) must be positive") }
        if channels != 1 && channels != 3 { throw .invalid("images have \(channels) channels; vae-dist models gray (1) or RGB (3)") }
        if hidden.isEmpty || hidden.contains(where: { $0 <= 0 }) {
            throw .invalid("--hidden must list positive layer widths, such as 400 or 512,256 (got \(hidden.map(String.init).joined(separator: ",")))")
        }
        if latent <= 0 { throw .invalid("--latent must be a positive number of dimensions (got \(latent))") }
        if !beta.isFinite || beta < 0 { throw .invalid("--beta must be a finite number >= 0 (got \(beta))") }
        // Bounds that keep every size computation far from overflow (and memory sane).
        if imageHeight > 4096 || imageWidth > 4096 { throw .invalid("image size \(imageHeight)x\(imageWidth) is too large (at most 4096x4096)") }
        if hidden.count > 64 || hidden.contains(where: { $0 > 1 << 16 }) { throw .invalid("--hidden allows at most 64 layers of at most 65536 units") }
        if latent > 1 << 14 { throw .invalid("--latent is at most 16384 (got \(latent))") }
        try validateConv(imageSize: imageSize)
        // MPI counts are Int32: the flat buffers must stay below 2^31 floats.
        if ParameterLayout(self).count >= Int(Int32.max) { throw .invalid("the model would have 2^31 or more parameters") }
    }
}

extension ModelConfig {
    func validateConv(imageSize: Bool) throws(ModelConfigError) {
        guard architecture == .conv else { return }
        let list = convChannels.map(String.init).joined(separator: ",")
        if convChannels.isEmpty || convChannels.count > 8 || convChannels.contains(where: { $0 <= 0 || $0 > 4096 }) {
            throw .invalid("--conv-channels must list 1 to 8 positive channel counts of at most 4096, such as 32,32,64,64 (got \(list))")
        }
        let side = 1 << convChannels.count
        if imageSize, imageHeight % side != 0 || imageWidth % side != 0 {
            let fits = (1...convChannels.count).last { imageHeight % (1 << $0) == 0 && imageWidth % (1 << $0) == 0 }
            throw .invalid("--arch conv with \(convChannels.count) stride-2 layers (--conv-channels \(list)) needs image sides divisible by \(side), but the images are \(imageHeight)x\(imageWidth)"
                           + (fits.map { ": give --conv-channels \($0) values" } ?? ""))
        }
        // The patch matrices and maps of one example (ConvWorkspace), bounded before any is
        // allocated: a checkpoint's small tensors do not prove its image size.
        if imageSize, convActivationsPerExample > 1 << 26 {
            throw .invalid("--arch conv on \(imageHeight)x\(imageWidth)x\(channels) images with --conv-channels \(list) needs \(convActivationsPerExample >> 18) MB of activations per example; at most 256 MB: use smaller images (--image-size) or fewer channels")
        }
    }

    /// Floats of the conv layers' patch matrices and maps (and their gradients) for one example.
    public var convActivationsPerExample: Int {
        convLayers.reduce(0) { total, c in
            let positions = c.outHeight * c.outWidth
            // The convolution's patches, its map and gradient; the transposed one's patches (kernel 4) and maps.
            return total + positions * (c.kernel * c.kernel * c.inChannels + 2 * c.outChannels)
                + positions * (16 * c.inChannels + 2 * c.outChannels)
        }
    }
}

/// One stride-2 convolution of the conv architecture: [inHeight, inWidth, inChannels] ->
/// [inHeight / 2, inWidth / 2, outChannels]; the decoder's transposed convolution mirrors it.
public struct ConvLayerShape: Sendable, Equatable {
    public let inHeight: Int, inWidth: Int, inChannels: Int, outChannels: Int, kernel: Int, padding: Int
    public var outHeight: Int { (inHeight + 2 * padding - kernel) / 2 + 1 }
    public var outWidth: Int { (inWidth + 2 * padding - kernel) / 2 + 1 }
}

public enum ModelConfigError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let message): message }
    }
}
