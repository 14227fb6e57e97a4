import Foundation
import VAEModel
import VAEAnalysis

// Pictures of the latent space (the notes' argument for the VAE, shown):
//   latent map  the test set's encoder means as a scatter plot, one color per label, under the
//               prior's 1- and 2-sigma circles: an autoencoder's codes leave gaps and ignore
//               the circles, a VAE's fill them.
//   manifold    decodes of a grid of z at Gaussian quantiles (Kingma and Welling 2014, fig. 4):
//               every cell is a likely prior sample; a VAE shows images that morph smoothly,
//               an autoencoder garbage wherever its codes left a gap.
// Both are drawn in one plane of the latent space (`AggregatePosterior.planeAxes`): the two
// latent dimensions when there are two, else the top two principal directions of the means.

/// Phi^-1(p), the standard normal quantile, p in (0, 1): bisection on Phi(x) = erfc(-x/sqrt 2)/2
/// to Double precision (a grid needs a few dozen of them).
public func normalQuantile(_ p: Double) -> Double {
    precondition(p > 0 && p < 1, "normalQuantile needs p in (0, 1), got \(p)")
    var low = -40.0, high = 40.0
    for _ in 0..<200 {
        let middle = 0.5 * (low + high)
        if 0.5 * erfc(-middle / 2.0.squareRoot()) < p { low = middle } else { high = middle }
        if high - low <= 1e-15 * max(1, abs(middle)) { break }
    }
    return 0.5 * (low + high)
}

/// The grid's coordinates along one axis: Phi^-1((i + 0.5) / steps), i = 0 ..< steps
/// (evenly spaced probabilities; 20 steps span -1.96 ... 1.96).
public func manifoldQuantiles(steps: Int) -> [Double] {
    (0..<steps).map { normalQuantile((Double($0) + 0.5) / Double(steps)) }
}

/// Latents [steps * steps, latent] of the manifold, row-major as the picture reads: column c
/// is q_c along axes[0] (left to right ascending), row r is q_{steps-1-r} along axes[1] (top
/// to bottom descending, so up is up as in the latent map); z = q_c axes[0] + q_r' axes[1].
public func manifoldLatents(steps: Int, axes: [[Double]]) -> [Float] {
    precondition(axes.count == 2 && axes[0].count == axes[1].count)
    let q = manifoldQuantiles(steps: steps), l = axes[0].count
    var z = [Float]()
    z.reserveCapacity(steps * steps * l)
    for row in 0..<steps {
        for column in 0..<steps {
            let a = q[column], b = q[steps - 1 - row]
            for j in 0..<l { z.append(Float(a * axes[0][j] + b * axes[1][j])) }
        }
    }
    return z
}

/// The decoded manifold [steps * steps, D] in [0, 1].
public func manifoldGrid(model: VAE, steps: Int, axes: [[Double]]) -> [Float] {
    decodeLatents(model: model, latents: manifoldLatents(steps: steps, axes: axes), count: steps * steps)
}

/// Coordinates [count, 2] of `mu` [count, latent] in the plane: mu . axes[k]. Not centered, so
/// the prior N(0, I), projected on orthonormal axes, is still N(0, I_2) about the origin and its
/// circles are exact.
public func projectLatents(_ mu: [Float], latent: Int, axes: [[Double]]) -> [Double] {
    let count = mu.count / latent
    var points = [Double](repeating: 0, count: count * 2)
    for r in 0..<count {
        for k in 0..<2 {
            var s = 0.0
            for j in 0..<latent { s += Double(mu[r * latent + j]) * axes[k][j] }
            points[r * 2 + k] = s
        }
    }
    return points
}

/// An 8-bit RGB picture: pixels [height, width, 3].
public struct RGBImage: Sendable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public func pixel(x: Int, y: Int) -> [UInt8] { Array(pixels[((y * width + x) * 3)..<((y * width + x) * 3 + 3)]) }

    mutating func set(x: Int, y: Int, _ color: [UInt8]) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        for c in 0..<3 { pixels[(y * width + x) * 3 + c] = color[c] }
    }
}

/// The scatter plot's layout and colors.
public enum LatentScatter {
    /// matplotlib's tab10; label k gets palette[k % 10].
    public static let palette: [[UInt8]] = [
        [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
        [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
    ]
    public static let margin = 16, plotSize = 480, swatch = 16, swatchStep = 24
    static let background: [UInt8] = [255, 255, 255], axis: [UInt8] = [210, 210, 210], circle: [UInt8] = [0, 0, 0]

    /// More distinct labels than this get no legend: a column of swatches without names is
    /// unreadable past a few dozen, and labels such as 200 or 255 would make it absurd.
    public static let maxLegendEntries = 20

    /// The color of the k-th label value present (in ascending order).
    public static func color(label k: Int) -> [UInt8] { palette[k % palette.count] }

    /// Half the side of the plotted square: the data and the 2-sigma circle, with room
    /// (non-finite coordinates, a diverged encoder's, are not drawn and do not count).
    public static func extent(points: [Double]) -> Double {
        max(2.5, 1.05 * (points.lazy.filter { $0.isFinite }.map { abs($0) }.max() ?? 0))
    }

    /// The pixel of plane point (x, y) in a plot of half-side `extent` (y up).
    public static func pixel(x: Double, y: Double, extent: Double) -> (x: Int, y: Int) {
        let scale = Double(plotSize - 1) / (2 * extent)
        return (margin + Int(((x + extent) * scale).rounded()), margin + Int(((extent - y) * scale).rounded()))
    }

    /// The legend's swatch for the k-th label: its top-left corner.
    public static func swatchOrigin(_ k: Int) -> (x: Int, y: Int) {
        (2 * margin + plotSize, margin + k * swatchStep)
    }

    /// points [count, 2] drawn as 2x2 dots colored by `labels` (one color when nil), the axes
    /// through 0, the circles of radius 1 and 2 over them, and on the right one swatch per label
    /// value present, in ascending order, top to bottom (none past `maxLegendEntries` values).
    public static func draw(points: [Double], labels: [UInt8]?, extent: Double) -> RGBImage {
        let legend = labels.map(LabelLegend.init)
        let legendCount = legend.map { $0.isDrawn ? $0.values.count : 0 } ?? 0
        let width = 3 * margin + plotSize + swatch
        let height = max(2 * margin + plotSize, 2 * margin + legendCount * swatchStep)
        var image = RGBImage(width: width, height: height, pixels: [UInt8](repeating: 255, count: width * height * 3))
        let origin = pixel(x: 0, y: 0, extent: extent)
        for i in 0..<plotSize {
            image.set(x: margin + i, y: origin.y, axis)
            image.set(x: origin.x, y: margin + i, axis)
        }
        for r in 0..<(points.count / 2) {
            let (x, y) = (points[2 * r], points[2 * r + 1])
            guard x.isFinite, y.isFinite else { continue }
            let p = pixel(x: x, y: y, extent: extent)
            let color = legend.map { $0.color(of: labels![r]) } ?? palette[0]
            for dy in 0..<2 { for dx in 0..<2 { image.set(x: p.x + dx, y: p.y + dy, color) } }
        }
        let scale = Double(plotSize - 1) / (2 * extent)
        for sigma in [1.0, 2.0] {
            let radius = sigma * scale
            let reach = Int(radius.rounded(.up)) + 1
            for dy in -reach...reach {
                for dx in -reach...reach where abs((Double(dx * dx + dy * dy)).squareRoot() - radius) < 0.75 {
                    image.set(x: origin.x + dx, y: origin.y + dy, circle)
                }
            }
        }
        for k in 0..<legendCount {
            let corner = swatchOrigin(k)
            for dy in 0..<swatch { for dx in 0..<swatch { image.set(x: corner.x + dx, y: corner.y + dy, color(label: k)) } }
        }
        return image
    }
}

/// The label values a latent map colors: those present, ascending; the k-th gets
/// `LatentScatter.color(label: k)`.
public struct LabelLegend: Sendable {
    public let values: [UInt8]
    /// [256]: each value's position in `values` (-1: absent).
    private let position: [Int]

    public init(_ labels: [UInt8]) {
        var present = [Bool](repeating: false, count: 256)
        for label in labels { present[Int(label)] = true }
        values = (0..<256).filter { present[$0] }.map { UInt8($0) }
        var position = [Int](repeating: -1, count: 256)
        for (k, value) in values.enumerated() { position[Int(value)] = k }
        self.position = position
    }

    public func color(of label: UInt8) -> [UInt8] { LatentScatter.color(label: max(0, position[Int(label)])) }

    /// Whether the picture has a legend (at most `LatentScatter.maxLegendEntries` values).
    public var isDrawn: Bool { values.count <= LatentScatter.maxLegendEntries }

    /// The caption's words on the colors.
    public var caption: String {
        let contiguous = values.count > 1 && Int(values.last!) - Int(values.first!) + 1 == values.count
        let names = contiguous ? "\(values.first!) to \(values.last!)" : values.map { "\($0)" }.joined(separator: ", ")
        return isDrawn
            ? "one color per label; legend on the right: swatches for labels \(names), top to bottom"
            : "one color per label value (colors repeat every \(LatentScatter.palette.count)); no legend: \(values.count) distinct labels are more than \(LatentScatter.maxLegendEntries)"
    }
}

/// A latent map of the test means: the PNG with its caption in tEXt chunks, and the caption.
public func latentMap(posterior: PosteriorParameters, labels: [UInt8]?, autoencoder: Bool) -> (png: [UInt8], caption: String, image: RGBImage) {
    let aggregate = AggregatePosterior(posterior, autoencoder: autoencoder)
    let axes = aggregate.planeAxes
    let points = projectLatents(posterior.mu, latent: posterior.latent, axes: axes)
    let extent = LatentScatter.extent(points: points)
    let image = LatentScatter.draw(points: points, labels: labels, extent: extent)
    let axesName = posterior.latent == 2 ? "latent dimensions" : "principal components"
    let plane = posterior.latent == 2
        ? "horizontal z1, vertical z2 (the 2 latent dimensions)"
        : "horizontal and vertical: the means projected (not centered) on the top 2 principal components of their covariance (of \(posterior.latent) latent dimensions)"
    let colors = labels.map { LabelLegend($0).caption } ?? "no labels: one color"
    let caption = "vae-dist latent map: encoder means of \(posterior.count) test images; \(plane); \(colors); "
        + "black circles: the prior N(0, I) at 1 and 2 sigma; the plot spans -\(jsonNumber(extent)) to \(jsonNumber(extent)) on both axes; "
        + "aggregate_kl \(jsonNumber(aggregate.klToPrior)), posterior_std_mean \(jsonNumber(aggregate.posteriorStdMean))"
    let png = PNG.encodeRGB(width: image.width, height: image.height, pixels: image.pixels, text: [
        ("Title", "vae-dist latent map"), ("Description", caption),
        ("vae-dist:axes", axesName), ("vae-dist:extent", jsonNumber(extent)),
        // The plane's unit vectors in latent space, [[horizontal], [vertical]] (JSON).
        ("vae-dist:plane", "[" + axes.map { "[" + $0.map { String($0) }.joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"),
    ])
    return (png, caption, image)
}
