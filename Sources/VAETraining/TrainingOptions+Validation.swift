import VAECheckpoint
import VAEDistributed
import VAEKernels

// The checks of a run's options (the stored TrainingOptions live in VAECheckpoint, which
// reads them back from any checkpoint; whether they make a valid run is training's concern).

extension TrainingOptions {
    public func validate(worldSize: Int) throws(TrainingError) {
        if epochs < 0 { throw .option("--epochs must be 0 or more (got \(epochs))") }
        if batchSize < 1 { throw .option("--batch-size must be at least 1 (got \(batchSize))") }
        if batchSize < worldSize {
            throw .option("--batch-size \(batchSize) is smaller than the \(worldSize) ranks: every rank needs at least one example of each global batch")
        }
        if !learningRate.isFinite || learningRate <= 0 { throw .option("--lr must be a positive number (got \(learningRate))") }
        if checkpointEvery < 1 { throw .option("--checkpoint-every must be at least 1 (got \(checkpointEvery))") }
        if keepCheckpoints < 0 { throw .option("--keep-checkpoints must be 0 or more (got \(keepCheckpoints))") }
        if maxBadSteps < 1 { throw .option("--max-bad-steps must be at least 1 (got \(maxBadSteps))") }
        if checkEvery < 0 { throw .option("--check-every must be 0 or more (got \(checkEvery))") }
        if !bucketMB.isFinite || bucketMB < 0 { throw .option("--bucket-mb must be 0 or more (got \(bucketMB))") }
        if warmupSteps < 0 { throw .option("--warmup-steps must be 0 or more (got \(warmupSteps))") }
        if !clipGradNorm.isFinite || clipGradNorm < 0 { throw .option("--clip-grad-norm must be 0 (off) or a positive norm (got \(clipGradNorm))") }
        if logEvery < 0 { throw .option("--log-every must be 0 or more (got \(logEvery))") }
        if threads < 0 || threads > 1024 {
            throw .option("--threads must be between 0 (automatic) and 1024 (got \(threads))")
        }
        if let problem = validateTimeout(timeout) { throw .option(problem) }
        if !testFraction.isFinite || testFraction <= 0 || testFraction >= 1 {
            throw .option("--test-fraction must be between 0 and 1, exclusive (got \(testFraction))")
        }
        if microBatches < 1 { throw .option("--accumulate must be at least 1 micro-batch per optimizer step (got \(microBatches))") }
        if batchSize < worldSize * microBatches {
            throw .option("--batch-size \(batchSize) cannot be cut into \(worldSize) rank\(worldSize == 1 ? "" : "s") x --accumulate \(microBatches) micro-batches: every micro-batch needs at least one example on every rank")
        }
        let groups = Self.deterministicGroups
        if deterministic && (groups % worldSize != 0 || batchSize % groups != 0) {
            throw .option("--deterministic splits every batch into \(groups) fixed groups: it needs 1, 2 or 4 ranks and a --batch-size divisible by \(groups) (got \(worldSize) ranks, batch \(batchSize))")
        }
        if deterministic && gradCompression != .none {
            throw .option("--grad-compression \(gradCompression.rawValue) rounds each rank's gradient, so --deterministic's promise (bit-identical on 1, 2 and 4 ranks) would not hold: use one of them")
        }
        if deterministic && (groups / worldSize) % microBatches != 0 {
            throw .option("--deterministic computes each of its \(groups) fixed groups alone, so a micro-batch is one or more whole groups: --accumulate x ranks must divide \(groups) (got --accumulate \(microBatches) on \(worldSize) rank\(worldSize == 1 ? "" : "s"))")
        }
    }

    var adam: AdamHyperparameters { AdamHyperparameters(learningRate: learningRate) }
}
