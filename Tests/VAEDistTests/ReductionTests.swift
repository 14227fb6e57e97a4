import Foundation
import Testing
import VAEDistributed
import VAEKernels
import VAEModel
import VAETraining
import VAESafetensors
import VAECheckpoint

@Suite struct ReductionTests {
    /// Buckets tile the gradient buffer from its end to its start, each boundary a layer's start,
    /// each bucket (but the first layer's) at least the requested size.
    @Test(arguments: [1, 10_000, 100_000, 400_000])
    func bucketsTileTheBufferOnLayerBoundaries(bucketFloats: Int) {
        let layout = ParameterLayout(ModelConfig(hidden: [400, 200], latent: 20, likelihood: .gaussian))
        let buckets = gradientBuckets(layout, bucketFloats: bucketFloats)
        let layerStarts = Set(layout.encoder.map(\.weight) + [layout.head.weight] + layout.decoder.map(\.weight) + [layout.output!.weight])
        #expect(buckets.first?.upperBound == layout.count && buckets.last?.lowerBound == 0)
        for (a, b) in zip(buckets, buckets.dropFirst()) { #expect(b.upperBound == a.lowerBound, "contiguous, falling") }
        for bucket in buckets {
            #expect(layerStarts.contains(bucket.lowerBound))
            #expect(bucket.count >= bucketFloats || bucket.lowerBound == 0)
        }
        if bucketFloats == 1 { #expect(buckets.count == layerStarts.count, "one bucket per layer") }
        #expect(gradientBuckets(layout, bucketFloats: 0).isEmpty && gradientBuckets(layout, bucketFloats: layout.count).isEmpty)
    }

    @Test(arguments: [(10, 1), (10, 3), (652_824, 4), (3, 4)])
    func shardsTileTheBuffer(total: Int, ranks: Int) {
        let shards = Shards(total: total, ranks: ranks)
        var next = 0
        for r in 0..<ranks {
            let range = shards.range(r)
            #expect(range.lowerBound == next && Int(shards.counts[r]) == range.count)
            #expect(abs(range.count - total / ranks) <= 1)
            next = range.upperBound
        }
        #expect(next == total)
    }

    /// The shared-memory reduction's sum: slot by slot in rank order, the same bits as a plain
    /// left-to-right loop on any thread count, across its 4096-float pieces and a ragged tail.
    @Test(arguments: [(2, 1), (3, 2), (4, 3), (5, 2)])
    func sharedMemorySumAddsSlotsInRankOrder(slots n: Int, threads: Int) {
        let count = 3 * 16_384 + 4096 + 37
        // Magnitudes from 1e-4 to 1e4: a different order of additions would change the bits.
        let slots = (0..<n).map { _ in (0..<count).map { _ in Float.random(in: -1...1) * powf(10, Float.random(in: -4...4)) } }
        var expected = [Float](repeating: 0, count: count)
        for i in 0..<count {
            var s = slots[0][i] + slots[1][i]
            for k in 2..<n { s += slots[k][i] }
            expected[i] = s
        }
        var out = [Float](repeating: .nan, count: count)
        let pointers = slots.map { s -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
            p.initialize(from: s, count: count)
            return p
        }
        defer { pointers.forEach { $0.deallocate() } }
        out.withUnsafeMutableBufferPointer {
            sumSlots(pointers.map { UnsafePointer($0) }, into: $0.baseAddress!, count: count, threads: KernelThreads(threads: threads))
        }
        expectIdentical(out, expected, "the sum of \(n) slots on \(threads) threads")
    }

    /// The sharded shared-memory update sums each piece of the block as Adam updates it: the
    /// same parameters and moments as summing the block first and updating it, on any thread
    /// count, with its new parameters published to the shared buffer and nothing outside the
    /// block touched. The block starts at no multiple of 16 and ends in a ragged piece.
    @Test(arguments: [(2, 1), (3, 2), (4, 3)])
    func summedAdamUpdateEqualsSumThenUpdate(slots n: Int, threads: Int) {
        let config = ModelConfig(imageHeight: 16, imageWidth: 16, hidden: [40], latent: 3)
        let (a, b) = (VAE(config: config), VAE(config: config))
        a.initialize(seed: 3)
        b.initialize(seed: 3)
        a.threads = KernelThreads(threads: threads)
        b.threads = KernelThreads(threads: threads)
        let p = a.parameterCount, block = 1001..<(p - 37)
        let hyper = AdamHyperparameters(learningRate: 1e-2)
        let (oa, ob) = (AdamOptimizer(count: p, hyper: hyper), AdamOptimizer(count: p, hyper: hyper))
        for i in 0..<p {
            let (m, v) = (Float.random(in: -0.1...0.1), Float.random(in: 0...0.01))
            (oa.firstMoment[i], ob.firstMoment[i], oa.secondMoment[i], ob.secondMoment[i]) = (m, m, v, v)
        }
        oa.step = 5
        ob.step = 5
        let slots = (0..<n).map { _ -> UnsafeMutablePointer<Float> in
            let s = UnsafeMutablePointer<Float>.allocate(capacity: p)
            for i in 0..<p { s[i] = Float.random(in: -1...1) * powf(10, Float.random(in: -4...2)) }
            return s
        }
        let sum = UnsafeMutablePointer<Float>.allocate(capacity: p), shared = UnsafeMutablePointer<Float>.allocate(capacity: p)
        shared.initialize(repeating: -7, count: p)
        defer { (slots + [sum, shared]).forEach { $0.deallocate() } }
        sumSlots(slots.map { UnsafePointer($0) }, into: sum, count: p, threads: .serial)
        oa.update(a, range: block, gradients: sum + block.lowerBound)
        ob.update(b, range: block, summing: slots.map { UnsafePointer($0 + block.lowerBound) }, publish: shared + block.lowerBound)
        let all = 0..<p
        expectIdentical(all.map { b.parameters[$0] }, all.map { a.parameters[$0] }, "parameters, \(n) slots, \(threads) threads")
        expectIdentical(all.map { ob.firstMoment[$0] }, all.map { oa.firstMoment[$0] }, "first moments")
        expectIdentical(all.map { ob.secondMoment[$0] }, all.map { oa.secondMoment[$0] }, "second moments")
        #expect(ob.step == oa.step)
        #expect(all.allSatisfy { block.contains($0) ? shared[$0].bitPattern == a.parameters[$0].bitPattern : shared[$0] == -7 },
                "the shared buffer holds the block's new parameters and nothing else")
        #expect(block.contains { a.parameters[$0] != 0 } && (0..<block.lowerBound).contains { a.parameters[$0] != 0 })
    }

    /// VAE_DIST_SHARED_MEMORY: unset, empty or 1 allow the shared-memory sum, 0 turns it off,
    /// anything else is an error naming the variable and its value.
    @Test func sharedMemoryEnvironmentVariable() throws {
        #expect(try Trainer.sharedMemoryAllowed([:]) && Trainer.sharedMemoryAllowed(["VAE_DIST_SHARED_MEMORY": ""]))
        #expect(try Trainer.sharedMemoryAllowed(["VAE_DIST_SHARED_MEMORY": "1"]))
        #expect(try !Trainer.sharedMemoryAllowed(["VAE_DIST_SHARED_MEMORY": "0"]))
        #expect(throws: TrainingError.self) { try Trainer.sharedMemoryAllowed(["VAE_DIST_SHARED_MEMORY": "yes"]) }
        let error = #expect(throws: TrainingError.self) { try Trainer.sharedMemoryAllowed(["VAE_DIST_SHARED_MEMORY": "off"]) }
        #expect(error.map { "\($0)" }?.contains("VAE_DIST_SHARED_MEMORY=off: expected 1") == true)
    }

    /// The resume state survives the checkpoint metadata exactly; a malformed value is an
    /// error naming the key, never a silent 0.
    @Test func resumeStateRoundTripsAndRejectsMalformedValues() throws {
        let state = ResumeState(epoch: 3, step: 1234, epochStep: 17,
                                partial: PartialEpoch(recon: 1234.5678901, kl: 0.1 + 0.2, examples: 2176, seconds: 1.25),
                                badSteps: 2, stoppedBy: "SIGTERM")
        let model = VAE(config: ModelConfig(imageHeight: 2, imageWidth: 2, hidden: [3], latent: 1))
        let bytes = Checkpoint.encode(model: model, optimizer: nil, config: CheckpointConfig(model: model.config, training: TrainingOptions()),
                                      resume: state, worldSize: 2, dataset: "x")
        let file = try Safetensors.decode(bytes, path: "r")
        #expect(try Checkpoint.decode(file, path: "r").resume == state)
        for (key, value) in [("epoch_step", "-1"), ("epoch_recon", "nan"), ("step", "12x"), ("bad_steps", "")] {
            var bad = file
            bad.metadata[key] = value
            #expect { try Checkpoint.decode(bad, path: "/c.safetensors") } throws: { "\($0)".contains(key) && "\($0)".contains("/c.safetensors") }
        }
        var missing = file
        missing.metadata["step"] = nil
        #expect { try Checkpoint.decode(missing, path: "c") } throws: { "\($0)".contains("step is missing") }
    }
}
