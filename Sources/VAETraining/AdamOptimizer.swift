import VAEKernelDispatch
import VAEKernels
import VAEModel

/// Adam state over the model's flat parameter buffer: first and second moments in
/// the same layout, and the step count (for bias correction).
public final class AdamOptimizer: @unchecked Sendable {
    public var hyper: AdamHyperparameters
    public let count: Int
    public let firstMoment: UnsafeMutablePointer<Float>   // [count] exp_avg
    public let secondMoment: UnsafeMutablePointer<Float>  // [count] exp_avg_sq
    public var step = 0

    public init(count: Int, hyper: AdamHyperparameters) {
        self.count = count
        self.hyper = hyper
        firstMoment = allocateAligned(count)
        secondMoment = allocateAligned(count)
    }

    deinit {
        firstMoment.deallocate()
        secondMoment.deallocate()
    }

    /// One Adam step on parameters `range` (all of them, or a rank's shard under the sharded
    /// optimizer: Adam is elementwise, so shards updated apart give the same bits), on the
    /// model's threads in ranges cut at multiples of 16 (the same elements take the SIMD body).
    /// `gradients` holds the range's gradients (default: the model's buffer at the range).
    public func update(_ model: VAE, range: Range<Int>? = nil, gradients: UnsafeMutablePointer<Float>? = nil) {
        step += 1
        let r = range ?? 0..<count
        let step = step, hyper = hyper
        let p = model.parameters + r.lowerBound, g = gradients ?? model.gradients + r.lowerBound
        let m = firstMoment + r.lowerBound, v = secondMoment + r.lowerBound
        model.threads.forEachRange(r.count, alignment: 16, minimum: 16_384,
                                   AdamRange(parameters: p, gradients: g, firstMoment: m, secondMoment: v, step: step, hyper: hyper))
    }
}

/// Adam on elements `range` of the buffers.
struct AdamRange: RangeWork {
    let parameters: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>
    let firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>
    let step: Int, hyper: AdamHyperparameters

    func run(_ range: Range<Int>, thread: Int) {
        let i = range.lowerBound
        Kernels.active.adamUpdate(parameters: parameters + i, gradients: gradients + i, firstMoment: firstMoment + i,
                                  secondMoment: secondMoment + i, count: range.count, step: step, hyper: hyper)
    }
}
