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

    public func update(_ model: VAE) {
        step += 1
        Kernels.active.adamUpdate(parameters: model.parameters, gradients: model.gradients, firstMoment: firstMoment,
                                  secondMoment: secondMoment, count: count, step: step, hyper: hyper)
    }
}
