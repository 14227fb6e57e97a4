import Foundation
import Testing
import VAEDistributed
import VAEKernels
import VAEModel
import VAETraining
import VAECheckpoint

@Suite struct ScheduleTests {
    @Test func warmupThenConstantOrCosine() {
        let lr: Float = 1e-3
        func at(_ step: Int, _ schedule: LearningRateSchedule, warmup: Int = 10) -> Float {
            learningRate(step: step, totalSteps: 110, base: lr, schedule: schedule, warmupSteps: warmup)
        }
        expectClose([at(0, .constant), at(4, .constant), at(9, .constant), at(50, .constant)], [1e-4, 5e-4, 1e-3, 1e-3], rtol: 1e-6)
        // Cosine over the 100 steps after warm-up: lr at its start, lr/2 halfway, 0 at the end.
        expectClose([at(10, .cosine), at(60, .cosine), at(110, .cosine), at(200, .cosine)], [1e-3, 5e-4, 0, 0], rtol: 1e-5, atol: 1e-9)
        expectClose([at(35, .cosine)], [Float(0.5 * (1 + cos(Double.pi / 4))) * lr], rtol: 1e-5)
        #expect(at(0, .cosine, warmup: 0) == lr)
    }

    @Test func clipCoefficientIsTorchs() {
        #expect(abs(clipCoefficient(norm: 10, maxNorm: 1) - Float(1 / (10 + 1e-6))) < 1e-9)
        #expect(clipCoefficient(norm: 0.5, maxNorm: 1) == 1)
        let values = randomFloats(1001, seed: 3, scale: 2)
        let exact = values.reduce(0.0) { $0 + Double($1) * Double($1) }
        let computed = values.withUnsafeBufferPointer { sumOfSquares($0.baseAddress!, count: $0.count) }
        expectClose(computed, exact, rtol: 1e-6)
    }

    /// Clipping at a norm no gradient reaches changes nothing, bit for bit; a small limit
    /// changes the run (Adam's first step is scale-free, later ones are not).
    @Test func clippingChangesTheRunOnlyWhenItClips() throws {
        func run(_ clip: Double, _ schedule: LearningRateSchedule = .constant) throws -> [Float] {
            var o = options(temporaryDirectory("clip\(clip)\(schedule)"), data: "synthetic:300", epochs: 1, batch: 30)
            o.clipGradNorm = clip
            o.lrSchedule = schedule
            let trainer = try Trainer(options: o, model: ModelConfig(hidden: [16], latent: 3), resume: false,
                                      communicator: SingleProcessCommunicator()) { _ in }
            try trainer.run()
            return Array(UnsafeBufferPointer(start: trainer.model.parameters, count: trainer.model.parameterCount))
        }
        let plain = try run(0)
        #expect(try run(1e9) == plain, "a limit never reached")
        #expect(try run(1e-2) != plain, "a limit that clips")
        #expect(try run(0, .cosine) != plain, "the cosine schedule lowers the rate")
    }
}
