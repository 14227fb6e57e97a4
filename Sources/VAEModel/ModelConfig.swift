// What the VAE is: image shape, MLP widths, latent size, likelihood, beta.

public enum Likelihood: String, Codable, Sendable, CaseIterable {
    /// Sigmoid output, binary cross-entropy summed over pixels.
    case bernoulli
    /// Per-pixel Gaussian with a learned per-pixel log-variance; NLL includes its constants.
    case gaussian
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

    enum CodingKeys: String, CodingKey { case imageHeight, imageWidth, channels, hidden, latent, likelihood, beta, autoencoder }

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
    }

    /// Checks the numbers; the message names the option to change.
    public func validate() throws(ModelConfigError) {
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
        // MPI counts are Int32: the flat buffers must stay below 2^31 floats.
        if ParameterLayout(self).count >= Int(Int32.max) { throw .invalid("the model would have 2^31 or more parameters") }
    }
}

public enum ModelConfigError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let message): message }
    }
}
