import Foundation
import Testing
import VAEData
import VAEDistributed
import VAEKernels
import VAEModel
import VAETraining
import VAECheckpoint

@Suite(.serialized) struct ThreadTests {
    /// Every chunk runs exactly once per region, region after region, whether the workers are
    /// spinning (regions back to back), polling between yields or asleep (pauses between);
    /// thread index t is always the same thread, and 0 is the caller.
    @Test func poolRunsEveryChunkOnce() {
        let pool = ThreadPool(threads: 4)
        let runs = UnsafeMutablePointer<Int>.allocate(capacity: 8)
        let owners = UnsafeMutablePointer<pthread_t>.allocate(capacity: 4)
        let known = UnsafeMutablePointer<Bool>.allocate(capacity: 4)
        runs.initialize(repeating: 0, count: 8)
        known.initialize(repeating: false, count: 4)
        defer { runs.deallocate(); owners.deallocate(); known.deallocate() }
        var regions = 0
        for round in 0..<4000 {
            pool.run(1 + round % 8, CountChunks(runs: runs, owners: owners, known: known))
            regions += 1
            if round % 1000 == 999 { usleep(20_000) }  // let the workers fall asleep
            if round % 100 == 50 { usleep(300) }  // a pause the workers poll through (ThreadPool's yieldWindow)
        }
        #expect(regions == 4000)
        #expect((0..<8).map { runs[$0] } == (0..<8).map { 500 * (8 - $0) })
        #expect(known[0] && pthread_equal(owners[0], pthread_self()) != 0)
        let seen = (0..<4).filter { known[$0] }.map { "\(owners[$0])" }
        #expect(Set(seen).count == seen.count, "distinct threads")
    }

    struct CountChunks: ChunkWork {
        let runs: UnsafeMutablePointer<Int>, owners: UnsafeMutablePointer<pthread_t>, known: UnsafeMutablePointer<Bool>
        func run(chunk: Int, thread: Int) {
            runs[chunk] += 1
            let me = pthread_self()
            if known[thread] { precondition(pthread_equal(owners[thread], me) != 0, "thread index \(thread) moved") }
            owners[thread] = me
            known[thread] = true
        }
    }

    /// Kernel threads compute with flush-to-zero and denormals-are-zero (FloatEnvironment.swift):
    /// a denormal input reads as 0 and a product below the normal range becomes 0, on every
    /// worker; the caller's thread gets the same mode from `flushDenormals`.
    @Test func kernelThreadsFlushDenormals() {
        #if arch(x86_64)
        let pool = ThreadPool(threads: 3)
        let values = UnsafeMutablePointer<Float>.allocate(capacity: 2)
        let results = UnsafeMutablePointer<Float>.allocate(capacity: 8)
        let modes = UnsafeMutablePointer<Bool>.allocate(capacity: 8)
        defer { values.deallocate(); results.deallocate(); modes.deallocate() }
        values[0] = 1e-39  // denormal
        values[1] = 1e-20  // 1e-20 * 1e-20 underflows to a denormal
        #expect(values[0] != 0 && values[0] < Float.leastNormalMagnitude)
        // Regions until a worker ran a chunk (the caller may run them all on a busy machine).
        var ranOnWorkers: [Int] = []
        let deadline = Date().addingTimeInterval(60)
        while ranOnWorkers.isEmpty && Date() < deadline {
            results.initialize(repeating: -1, count: 8)
            modes.initialize(repeating: false, count: 8)
            pool.run(8, DenormalProbe(values: values, results: results, modes: modes))
            ranOnWorkers = (0..<8).filter { results[$0] != -1 }
        }
        #expect(!ranOnWorkers.isEmpty, "no worker ran a chunk")
        #expect(ranOnWorkers.allSatisfy { modes[$0] }, "workers run with FTZ and DAZ")
        #expect(ranOnWorkers.allSatisfy { results[$0] == 0 }, "denormals flushed: \(ranOnWorkers.map { results[$0] })")
        var saved = fenv_t()
        fegetenv(&saved)
        flushDenormals()
        #expect(flushesDenormals())
        DenormalProbe(values: values, results: results, modes: modes).run(chunk: 0, thread: 1)
        fesetenv(&saved)
        #expect(results[0] == 0 && modes[0], "the caller's thread after flushDenormals")
        #endif
    }

    struct DenormalProbe: ChunkWork {
        let values: UnsafeMutablePointer<Float>, results: UnsafeMutablePointer<Float>, modes: UnsafeMutablePointer<Bool>
        func run(chunk: Int, thread: Int) {
            // Chunks the caller runs (thread 0, the test's own thread) are not recorded: only the
            // workers' mode is the pool's doing.
            if thread == 0 { return }
            modes[chunk] = flushesDenormals()
            results[chunk] = values[0] * 1 + values[1] * values[1]
        }
    }

    /// The ranges tile the work, start at multiples of the alignment, and number at most
    /// chunksPerThread per thread (one on one thread), as many as the minimum allows.
    @Test(arguments: [(0, 16, 16), (1, 16, 16), (37, 12, 12), (100, 16, 16), (652_824, 16, 16_384), (40, 16, 16), (7, 1, 1),
                      (96, 1, 1)])
    func rangesTileTheWork(total: Int, alignment: Int, minimum: Int) {
        for threads in 1...4 {
            for chunksPerThread in [1, 8] {
                let k = KernelThreads(threads: threads)
                let seen = UnsafeMutablePointer<Int>.allocate(capacity: max(total, 1))
                let calls = UnsafeMutablePointer<Int>.allocate(capacity: threads)
                seen.initialize(repeating: 0, count: max(total, 1))
                calls.initialize(repeating: 0, count: threads)
                defer { seen.deallocate(); calls.deallocate() }
                k.forEachRange(total, alignment: alignment, minimum: minimum, chunksPerThread: chunksPerThread,
                               MarkRange(seen: seen, calls: calls, alignment: alignment))
                #expect((0..<total).allSatisfy { seen[$0] == 1 }, "\(total) over \(threads) threads")
                let count = (0..<threads).reduce(0) { $0 + calls[$1] }
                let most = threads == 1 ? 1 : threads * chunksPerThread
                #expect(count >= (total > 0 ? 1 : 0) && count <= most)
                // As many ranges as allowed: 96 (a multiple of 8, 16, 24 and 32) in ranges of at least 1.
                if total == 96 && minimum == 1 { #expect(count == most, "\(threads) threads, \(chunksPerThread) each") }
            }
        }
    }

    struct MarkRange: RangeWork {
        let seen: UnsafeMutablePointer<Int>, calls: UnsafeMutablePointer<Int>, alignment: Int
        func run(_ range: Range<Int>, thread: Int) {
            precondition(range.lowerBound % alignment == 0)
            for i in range { seen[i] += 1 }
            calls[thread] += 1
        }
    }

    /// A wide layer's output cut between threads (BlockSplit) covers every element once; each
    /// thread gets the same whole panels and a row slice of the ones left over, so no thread
    /// computes more than one slice of a panel beyond an equal share.
    @Test(arguments: [(128, 400, 16, 2), (128, 784, 16, 2), (128, 400, 32, 12), (37, 300, 16, 2), (128, 256, 16, 2), (5, 400, 16, 2)])
    func blockSplitCoversTheOutputOnceAndBalances(rows: Int, columns: Int, panel: Int, alignment: Int) {
        for threads in 1...8 {
            let split = BlockSplit(rows: rows, columns: columns, threads: threads, panel: panel, rowAlignment: alignment)
            var seen = [Int](repeating: 0, count: rows * columns)
            var work: [Int] = []
            for part in 0..<split.parts {
                var mine = 0
                for block in [split.panels(part: part), split.leftover(part: part)].compactMap({ $0 }) {
                    #expect(block.columns.lowerBound % panel == 0 && block.rows.lowerBound % alignment == 0)
                    for r in block.rows { for c in block.columns { seen[r * columns + c] += 1 } }
                    mine += block.rows.count * block.columns.count
                }
                work.append(mine)
            }
            #expect(seen.allSatisfy { $0 == 1 }, "\(rows)x\(columns) on \(threads) threads")
            #expect(split.parts <= threads)
            let leftover = split.leftoverColumns.count
            #expect(work.max()! - work.min()! <= max(split.sliceRows * leftover, panel * rows / max(1, split.parts)),
                    "\(rows)x\(columns) on \(threads) threads: \(work)")
        }
        // 400 columns (25 panels) on 2 threads: 12 panels each and half the rows of the 25th.
        let two = BlockSplit(rows: 128, columns: 400, threads: 2, panel: 16, rowAlignment: 2)
        #expect(two.panels(part: 0) == Block(rows: 0..<128, columns: 0..<192) && two.panels(part: 1) == Block(rows: 0..<128, columns: 192..<384))
        #expect(two.leftover(part: 0) == Block(rows: 0..<64, columns: 384..<400) && two.leftover(part: 1) == Block(rows: 64..<128, columns: 384..<400))
    }

    /// A batch and its noise loaded on 1 to 3 threads equal the serial fill, element for element:
    /// by example indices (training) and by a range starting past 0 (evaluation), binarized or not.
    @Test func loadBatchOnThreadsEqualsTheSerialFill() {
        let images = Synthetic.images(count: 300, seed: 3)
        let generator = Philox4x32(seed: 11)
        let rows = 37, latent = 5, d = images.pixelsPerImage
        let indices: [Int32] = (0..<rows).map { Int32(($0 * 97 + 13) % images.count) }
        for binarize in [false, true] {
            for byIndex in [true, false] {
                let first = 211
                var x = [Float](repeating: 0, count: rows * d), eps = [Float](repeating: 0, count: rows * latent)
                if byIndex {
                    indices.withUnsafeBufferPointer {
                        fillBatch(&x, from: images, indices: $0, binarize: binarize, generator: generator, epoch: 4)
                    }
                } else {
                    fillBatch(&x, from: images, range: first..<(first + rows), binarize: binarize, generator: generator, epoch: 4)
                }
                for r in 0..<rows {
                    let index = byIndex ? Int(indices[r]) : first + r
                    fillNormal(&eps[r * latent], count: latent, generator: generator, stream: .evaluation, epoch: 2, index: index)
                }
                for threads in 1...3 {
                    var tx = [Float](repeating: -1, count: rows * d), teps = [Float](repeating: -1, count: rows * latent)
                    tx.withUnsafeMutableBufferPointer { xb in
                        teps.withUnsafeMutableBufferPointer { eb in
                            indices.withUnsafeBufferPointer { ib in
                                loadBatch(xb.baseAddress!, noise: BatchNoise(eps: eb.baseAddress!, latent: latent, stream: .evaluation, epoch: 2),
                                          from: images, indices: byIndex ? ib : nil, first: first, rows: rows, binarize: binarize,
                                          generator: generator, epoch: 4, threads: KernelThreads(threads: threads))
                            }
                        }
                    }
                    let same = tx == x && teps == eps
                    #expect(same, "binarize \(binarize), by index \(byIndex), \(threads) threads")
                }
            }
        }
    }

    /// The finiteness check of every step, on 1 to 3 threads: a NaN or an infinity anywhere
    /// (first and last element, both sides of each thread's block: 100,032 on 2 threads, 66,688
    /// and 133,376 on 3, the SIMD tail) is found.
    @Test func allFiniteOnThreadsFindsEveryNonFiniteValue() {
        let count = 200_003
        var values = randomFloats(count, seed: 8)
        for threads in 1...3 {
            let pool = KernelThreads(threads: threads)
            let clean = pool.allFinite(values, count: count)
            #expect(clean)
            for position in [0, 66_687, 66_688, 100_031, 100_032, 133_375, 133_376, 199_999, count - 1] {
                for bad in [Float.nan, .infinity, -.infinity] {
                    let saved = values[position]
                    values[position] = bad
                    // Booleans first: an expectation on the call itself would print the whole array.
                    let threaded = pool.allFinite(values, count: count), serial = allFinite(values, count: count)
                    #expect(!threaded && !serial, "\(bad) at \(position) on \(threads) threads")
                    values[position] = saved
                }
            }
        }
    }

    /// Forward and backward on odd shapes give the same bits on 1 to 4 threads. The 270-wide
    /// layer is cut by columns (its forward and its input gradient), the others by rows.
    @Test(arguments: [Likelihood.bernoulli, .gaussian])
    func forwardBackwardIsBitIdenticalOnAnyThreadCount(likelihood: Likelihood) {
        let config = ModelConfig(imageHeight: 7, imageWidth: 9, hidden: [270, 33], latent: 5, likelihood: likelihood)
        #expect(config.hidden[0] >= 2 * columnSplitMinimum)
        let batch = 37
        let x = randomFloats(batch * config.inputDimension, seed: 4).map { ($0 + 1) / 2 }
        let eps = randomFloats(batch * config.latent, seed: 5, scale: 1.5)
        var reference: (gradients: [Float], recon: [Float], kl: [Float])?
        for threads in 1...4 {
            let model = VAE(config: config)
            model.initialize(seed: 3)
            model.threads = KernelThreads(threads: threads)
            let workspace = VAEWorkspace(config: config, capacity: batch)
            model.gradients.update(repeating: 0, count: model.parameterCount)
            model.forward(workspace, x: x, eps: eps, batch: batch, lossScale: 1 / Float(batch))
            model.backward(workspace, x: x, eps: eps, batch: batch, lossScale: 1 / Float(batch))
            let result = (Array(UnsafeBufferPointer(start: model.gradients, count: model.parameterCount)),
                          Array(UnsafeBufferPointer(start: workspace.recon, count: batch)),
                          Array(UnsafeBufferPointer(start: workspace.kl, count: batch)))
            if let reference {
                // Compared as Bools: on a failure, swift-testing would diff the whole arrays.
                let gradientsEqual = bits(result.0) == bits(reference.gradients)
                let lossesEqual = bits(result.1) == bits(reference.recon) && bits(result.2) == bits(reference.kl)
                #expect(gradientsEqual, "gradients, \(threads) threads: \(firstDifference(result.0, reference.gradients))")
                #expect(lossesEqual, "losses, \(threads) threads")
            } else {
                reference = result
            }
        }
    }

    /// A few training epochs and their evaluations: parameters, Adam moments and every logged
    /// loss are bit-identical on 1, 2 and 3 threads.
    @Test func trainingIsBitIdenticalOnOneTwoAndThreeThreads() throws {
        var runs: [(parameters: [UInt32], moments: [UInt32], losses: [Double])] = []
        for threads in 1...3 {
            var o = options(temporaryDirectory("threads\(threads)"), data: "synthetic:960", epochs: 2, batch: 96)
            o.threads = threads
            let trainer = try Trainer(options: o, model: ModelConfig(hidden: [200, 100], latent: 10),
                                      resume: false, communicator: SingleProcessCommunicator()) { _ in }
            #expect(trainer.model.threads.count == threads)
            try trainer.run()
            let n = trainer.model.parameterCount
            runs.append((bits(Array(UnsafeBufferPointer(start: trainer.model.parameters, count: n))),
                         bits(Array(UnsafeBufferPointer(start: trainer.optimizer.firstMoment, count: n))
                              + Array(UnsafeBufferPointer(start: trainer.optimizer.secondMoment, count: n))),
                         trainer.history.flatMap { [$0.trainLoss, $0.testLoss, $0.testRecon, $0.testKL] }))
        }
        #expect(runs[0].losses.count == 8)
        for t in 1..<runs.count {
            let parametersEqual = runs[t].parameters == runs[0].parameters
            let momentsEqual = runs[t].moments == runs[0].moments
            let lossesEqual = runs[t].losses == runs[0].losses
            #expect(parametersEqual, "parameters, \(t + 1) threads vs 1")
            #expect(momentsEqual, "Adam moments, \(t + 1) threads vs 1")
            #expect(lossesEqual, "losses, \(t + 1) threads vs 1: \(runs[t].losses) vs \(runs[0].losses)")
        }
    }

    @Test func defaultThreadsDivideTheCoresAmongTheRanksOnTheNode() throws {
        #expect(localRankCount(environment: [:]) == 1)
        #expect(localRankCount(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "4"]) == 4)
        #expect(localRankCount(environment: ["SLURM_TASKS_PER_NODE": "2(x3),1"]) == 2)
        let cores = availableCores()
        #expect(cores >= 1)
        #expect(defaultThreadCount(localRanks: 1) == cores)
        #expect(defaultThreadCount(localRanks: 4 * cores) == 1)
        #expect(automaticThreadCount(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "\(4 * cores)"]) == 1)
        #expect(automaticThreadCount(environment: [:]) == cores)
        #expect(automaticThreadCount(environment: ["SLURM_CPUS_PER_TASK": "1", "SLURM_NTASKS_PER_NODE": "1"]) == 1)
        // Bound by mpirun: this rank's mask is its own share, not divided again.
        #expect(automaticThreadCount(environment: ["OMPI_COMM_WORLD_LOCAL_SIZE": "\(4 * cores)",
                                                   "OMPI_MCA_orte_bound_at_launch": "1"]) == cores)
        var o = TrainingOptions()
        o.threads = -1
        #expect(throws: TrainingError.self) { try o.validate(worldSize: 1) }
    }
}

func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

/// "element i: a vs b" for the first element whose bits differ.
func firstDifference(_ a: [Float], _ b: [Float]) -> String {
    guard let i = a.indices.first(where: { i in i >= b.count || a[i].bitPattern != b[i].bitPattern }) else { return "same bits" }
    return "element \(i): \(a[i]) vs \(b[i])"
}
