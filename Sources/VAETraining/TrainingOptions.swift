import VAEData
import VAEKernels

/// How to train (everything but the model's shape, which is `ModelConfig`).
public struct TrainingOptions: Codable, Equatable, Sendable {
    public var data: String = Dataset.defaultDirectory
    public var epochs = 10
    /// Global batch size, split evenly over ranks.
    public var batchSize = 128
    public var learningRate: Float = 1e-3
    public var seed: UInt64 = 1
    /// Sample binary pixels ~ Bernoulli(pixel / 255) instead of using intensities.
    public var binarize = false
    public var output = "runs/latest"
    public var checkpointEvery = 1
    /// Epoch checkpoints kept besides latest.safetensors.
    public var keepCheckpoints = 3

    public init() {}

    public func validate(worldSize: Int) throws(TrainingError) {
        if epochs < 0 { throw .option("--epochs must be 0 or more (got \(epochs))") }
        if batchSize < 1 { throw .option("--batch-size must be at least 1 (got \(batchSize))") }
        if batchSize % worldSize != 0 {
            throw .option("--batch-size \(batchSize) is not divisible by the \(worldSize) ranks: every rank takes an equal slice of the global batch (use a multiple of \(worldSize))")
        }
        if !learningRate.isFinite || learningRate <= 0 { throw .option("--lr must be a positive number (got \(learningRate))") }
        if checkpointEvery < 1 { throw .option("--checkpoint-every must be at least 1 (got \(checkpointEvery))") }
        if keepCheckpoints < 0 { throw .option("--keep-checkpoints must be 0 or more (got \(keepCheckpoints))") }
    }

    var adam: AdamHyperparameters { AdamHyperparameters(learningRate: learningRate) }
}
