import Foundation
import Testing
import VAEDistributed
import VAEModel
import VAETraining
import VAECheckpoint

/// --accumulate N: the batch of an optimizer step in N micro-batches equals the step on the whole
/// batch. With --deterministic each of the 4 fixed groups is computed alone either way, so
/// the parameters are bit-identical; otherwise only the weight gradients' sums over the batch
/// are cut in N (C + A1ᵀB1 + A2ᵀB2 instead of C + AᵀB), equal to float rounding.
/// Tests/integration/accumulate_test.sh does the same on 1 and 2 MPI ranks.
@Suite(.serialized) struct AccumulateTests {
    func train(microBatches: Int, deterministic: Bool, shard: Bool = false, klWarmup: Int = 0, _ name: String) throws -> Trainer {
        var o = options(temporaryDirectory(name), data: "synthetic:640", epochs: 1, batch: 128)
        o.microBatches = microBatches
        o.deterministic = deterministic
        o.shardOptimizer = shard
        o.klWarmup = klWarmup
        let trainer = try Trainer(options: o, model: ModelConfig(hidden: [64], latent: 4), resume: false,
                                  communicator: SingleProcessCommunicator()) { _ in }
        try trainer.run()
        return trainer
    }

    func parameters(_ t: Trainer) -> [Float] { Array(UnsafeBufferPointer(start: t.model.parameters, count: t.model.parameterCount)) }

    @Test func deterministicMicroBatchesAreBitIdentical() throws {
        let whole = try train(microBatches: 1, deterministic: true, "detwhole")
        for n in [2, 4] {
            let parts = try train(microBatches: n, deterministic: true, "det\(n)")
            let (a, b) = (parameters(whole), parameters(parts))
            let first = a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
            #expect(first == nil, "--accumulate \(n): parameter \(first ?? -1) is \(first.map { b[$0] } ?? 0), not \(first.map { a[$0] } ?? 0)")
            #expect(parts.history.last?.trainLoss == whole.history.last?.trainLoss, "the loss sums add in the same order")
            #expect(parts.history.last?.step == 5, "5 optimizer steps of 128, whatever the micro-batches")
        }
    }

    @Test func microBatchesEqualTheWholeBatchToRounding() throws {
        let whole = try train(microBatches: 1, deterministic: false, "whole")
        let parts = try train(microBatches: 2, deterministic: false, "parts2")
        let uneven = try train(microBatches: 3, deterministic: false, "parts3")  // 43 + 43 + 42 rows
        expectClose(parameters(parts), parameters(whole), rtol: 1e-4, atol: 1e-6, "--accumulate 2")
        expectClose(parameters(uneven), parameters(whole), rtol: 1e-4, atol: 1e-6, "--accumulate 3")
        expectClose(parts.history[0].trainLoss, whole.history[0].trainLoss, rtol: 1e-6, "train loss")
    }

    /// The KL warm-up needs no global-batch statistics: its gradient follows the step, and its
    /// penalty weighs the KL summed over every micro-batch (the same bits as one micro-batch).
    @Test func warmupWithMicroBatches() throws {
        let whole = try train(microBatches: 1, deterministic: true, klWarmup: 8, "warmwhole")
        let plain = try train(microBatches: 1, deterministic: true, "warmplain")
        #expect(parameters(whole) != parameters(plain), "the warm-up changes the model")
        for n in [2, 4] {
            let parts = try train(microBatches: n, deterministic: true, klWarmup: 8, "warm\(n)")
            expectIdentical(parameters(parts), parameters(whole), "--kl-warmup with --accumulate \(n): parameters")
            #expect(parts.history.last?.trainLoss == whole.history.last?.trainLoss, "--accumulate \(n): the warm-up's penalty")
        }
        let uneven = try train(microBatches: 3, deterministic: false, klWarmup: 8, "warm3")
        let one = try train(microBatches: 1, deterministic: false, klWarmup: 8, "warm1")
        expectClose(parameters(uneven), parameters(one), rtol: 1e-4, atol: 1e-6, "--kl-warmup with --accumulate 3")
        expectClose(uneven.history[0].trainLoss, one.history[0].trainLoss, rtol: 1e-6, "train loss under the warm-up")
    }

    /// Capacity, free bits and beta-TCVAE need every micro-batch's latents before any backward.
    @Test func regimesOverTheGlobalBatchRefuseMicroBatches() {
        let regimes: [(String, (inout TrainingOptions) -> Void)] = [
            ("--capacity", { $0.capacity = 5; $0.capacitySteps = 10 }), ("--free-bits", { $0.freeBits = 0.5 }), ("--tc-beta", { $0.tcBeta = 6 }),
        ]
        for (option, set) in regimes {
            var o = TrainingOptions()
            set(&o)
            #expect(throws: Never.self) { try o.validateRegime(model: ModelConfig(), worldSize: 1) }
            o.microBatches = 2
            #expect { try o.validateRegime(model: ModelConfig(), worldSize: 1) } throws: {
                "\($0)".contains("\(option) needs the latents of the whole global batch before any backward, and --accumulate 2")
            }
        }
        var warm = TrainingOptions()
        warm.klWarmup = 10
        warm.microBatches = 4
        #expect(throws: Never.self) { try warm.validateRegime(model: ModelConfig(), worldSize: 1) }
    }

    @Test func badAccumulateValuesAreClearErrors() {
        var o = TrainingOptions()
        o.microBatches = 0
        #expect { try o.validate(worldSize: 1) } throws: { "\($0)".contains("--accumulate must be at least 1") }
        o.microBatches = 3
        o.batchSize = 8
        #expect { try o.validate(worldSize: 4) } throws: { "\($0)".contains("--batch-size 8 cannot be cut into 4 ranks x --accumulate 3 micro-batches") }
        o.batchSize = 128
        o.deterministic = true
        o.microBatches = 2
        #expect { try o.validate(worldSize: 4) } throws: { "\($0)".contains("--accumulate x ranks must divide 4") }
        #expect(throws: Never.self) { try o.validate(worldSize: 2) }
        o.microBatches = 3
        #expect { try o.validate(worldSize: 1) } throws: { "\($0)".contains("--accumulate x ranks must divide 4") }
    }
}
