import Foundation
import VAECheckpoint

// The learning rate of each optimizer step and gradient clipping, as PyTorch users set them.

/// The learning rate of optimizer step `step` (0-based) of `totalSteps`:
///   warm-up, step < warmup:   lr * (step + 1) / warmup   (linear, reaching lr at the last warm-up step)
///   constant:                 lr
///   cosine:                   lr * 0.5 * (1 + cos(pi * (step - warmup) / (totalSteps - warmup)))
public func learningRate(step: Int, totalSteps: Int, base: Float, schedule: LearningRateSchedule, warmupSteps: Int) -> Float {
    if step < warmupSteps { return base * Float(step + 1) / Float(warmupSteps) }
    switch schedule {
    case .constant:
        return base
    case .cosine:
        let span = max(totalSteps - warmupSteps, 1)
        let progress = min(Double(step - warmupSteps) / Double(span), 1)
        return Float(Double(base) * 0.5 * (1 + cos(Double.pi * progress)))
    }
}

/// The KL warm-up (--kl-warmup N): the factor on beta at optimizer step `step` (0-based), rising
/// linearly from 0 at step 0 to 1 at step N and staying there: min(1, step / N). 1 when N is 0.
public func klWarmupFactor(step: Int, warmupSteps: Int) -> Float {
    warmupSteps > 0 && step < warmupSteps ? Float(step) / Float(warmupSteps) : 1
}

/// Controlled capacity (--capacity C --capacity-steps N, Burgess et al. 2018): the KL target in
/// nats at optimizer step `step` (0-based), rising linearly from 0 at step 0 to C at step N:
/// C * min(1, step / N).
public func capacityTarget(step: Int, capacity: Double, capacitySteps: Int) -> Double {
    capacitySteps > 0 && step < capacitySteps ? capacity * Double(step) / Double(capacitySteps) : capacity
}

/// The coefficient torch.nn.utils.clip_grad_norm_ applies: min(1, maxNorm / (norm + 1e-6)).
public func clipCoefficient(norm: Double, maxNorm: Double) -> Float {
    Float(min(1, maxNorm / (norm + 1e-6)))
}
