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

    /// `update` of parameters `range` with their gradient the sum of `slots` (each pointing at
    /// the range's first element), added in slot order as `sumSlots` adds them: a piece at a
    /// time into a buffer that stays in L1, then Adam on it, then the piece's new parameters
    /// copied to `publish` (the range's first element) while they are in L1. The same bits as
    /// summing the whole range first, without writing the sum out and reading it back.
    public func update(_ model: VAE, range: Range<Int>, summing slots: [UnsafePointer<Float>],
                       publish: UnsafeMutablePointer<Float>) {
        step += 1
        let step = step, hyper = hyper
        model.threads.forEachRange(range.count, alignment: 16, minimum: 16_384,
                                   SummedAdamRange(parameters: model.parameters + range.lowerBound, slots: slots, publish: publish,
                                                   firstMoment: firstMoment + range.lowerBound,
                                                   secondMoment: secondMoment + range.lowerBound, step: step, hyper: hyper))
    }
}

/// Adam on elements `range` of the buffers, the gradient summed from `slots` piece by piece
/// (pieces of 4,096: a multiple of 16, so the same elements take the SIMD body as in AdamRange),
/// each piece's new parameters also copied to `publish`.
struct SummedAdamRange: RangeWork {
    let parameters: UnsafeMutablePointer<Float>, slots: [UnsafePointer<Float>], publish: UnsafeMutablePointer<Float>
    let firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>
    let step: Int, hyper: AdamHyperparameters

    func run(_ range: Range<Int>, thread: Int) {
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 4096) { buffer in
            let sum = buffer.baseAddress!
            var i = range.lowerBound
            while i < range.upperBound {
                let n = min(4096, range.upperBound - i)
                vectorAdd(sum, slots[0] + i, slots[1] + i, count: n)
                for s in slots.dropFirst(2) { vectorAdd(sum, sum, s + i, count: n) }
                Kernels.active.adamUpdate(parameters: parameters + i, gradients: sum, firstMoment: firstMoment + i,
                                          secondMoment: secondMoment + i, count: n, step: step, hyper: hyper)
                (publish + i).update(from: parameters + i, count: n)
                i += n
            }
        }
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
