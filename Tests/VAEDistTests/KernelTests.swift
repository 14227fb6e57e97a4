import Foundation
import Testing
import VAEKernelDispatch
import VAEKernels
import VAEKernelsAVX2

/// Odd shapes on purpose: edges of the 6x16 and 12x32 register tiles, of the narrow 12x8
/// tile (N <= 64 on AVX-512) and of the K, M, N blocks.
let gemmShapes: [(Int, Int, Int)] = [(1, 1, 1), (7, 33, 5), (6, 16, 256), (13, 17, 257), (33, 129, 7),
                                     (129, 40, 400), (128, 400, 784), (5, 1030, 3), (121, 20, 513), (30, 7, 300), (122, 33, 9),
                                     (12, 32, 1), (25, 65, 33), (129, 96, 7), (1, 1057, 129)]

/// Every kernel instantiation this CPU can run (AVX2 always; AVX-512 where CPUID reports it).
/// Each test runs all of them and checks that the list is not empty.
func runnableKernels(sourceLocation: SourceLocation = #_sourceLocation) -> [any KernelSet] {
    let all = Kernels.runnable
    #expect(!all.isEmpty && all.contains { $0.isa == .avx2 }, "no AVX2 kernels to test", sourceLocation: sourceLocation)
    return all
}

@Suite struct GEMMTests {
    @Test(arguments: [false, true], [false, true])
    func packedMatchesNaive(transposeA: Bool, transposeB: Bool) {
        let workspace = GEMMWorkspace()
        for kernels in runnableKernels() {
            for (m, n, k) in gemmShapes {
                let a = randomFloats(m * k, seed: UInt64(m * 31 + k)), b = randomFloats(k * n, seed: UInt64(n * 17 + k))
                let start = randomFloats(m * n, seed: 99)
                for accumulate in [false, true] {
                    var fast = start, slow = start
                    let lda = transposeA ? m : k, ldb = transposeB ? k : n
                    kernels.gemm(&fast, ldc: n, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                                 m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
                    gemmNaive(&slow, ldc: n, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                              m: m, n: n, k: k, accumulate: accumulate)
                    expectClose(fast, slow, rtol: 1e-4, atol: 1e-4 * Float(k).squareRoot(),
                                "\(kernels.isa) gemm \(m)x\(n)x\(k) tA \(transposeA) tB \(transposeB) acc \(accumulate)")
                }
            }
        }
    }

    /// Every kernel set this CPU runs gives the same bits, whatever its tile: each output element is
    /// one FMA chain over the same K blocks. This is what lets the choice by measurement change speed only.
    @Test(arguments: [false, true], [false, true])
    func everyKernelSetGivesTheSameBits(transposeA: Bool, transposeB: Bool) {
        let workspace = GEMMWorkspace()
        let all = runnableKernels()
        var compared = 0
        for (m, n, k) in gemmShapes + [(64, 400, 784), (32, 400, 784), (64, 784, 400), (400, 784, 64), (32, 40, 400), (60, 20, 400)] {
            let a = randomFloats(m * k, seed: UInt64(m * 7 + k)), b = randomFloats(k * n, seed: UInt64(n * 3 + k))
            let start = randomFloats(m * n, seed: 11)
            let lda = transposeA ? m : k, ldb = transposeB ? k : n
            for accumulate in [false, true] {
                var reference = start
                all[0].gemm(&reference, ldc: n, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                            m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
                for kernels in all.dropFirst() {
                    var c = start
                    kernels.gemm(&c, ldc: n, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                                 m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
                    #expect(c.map(\.bitPattern) == reference.map(\.bitPattern),
                            "\(kernels.isa) vs \(all[0].isa) gemm \(m)x\(n)x\(k) tA \(transposeA) tB \(transposeB) acc \(accumulate)")
                    compared += 1
                }
            }
        }
        // One kernel set only (a CPU without AVX-512): nothing to compare, and the count says so.
        #expect(compared == (all.count - 1) * 2 * (gemmShapes.count + 6))
    }

    /// Operands inside wider matrices (lda, ldb, ldc past the block): the layers' GEMMs on a
    /// block of columns, and A read in place by the micro-kernels with its own row stride.
    @Test(arguments: [false, true], [false, true])
    func stridedOperandsMatchNaive(transposeA: Bool, transposeB: Bool) {
        let workspace = GEMMWorkspace()
        for kernels in runnableKernels() {
            for (m, n, k) in [(13, 17, 257), (128, 400, 784), (7, 40, 20), (25, 65, 33), (130, 33, 9), (30, 7, 300), (122, 33, 9)] {
                let lda = (transposeA ? m : k) + 5, ldb = (transposeB ? k : n) + 3, ldc = n + 7
                let a = randomFloats((transposeA ? k : m) * lda, seed: UInt64(m + k))
                let b = randomFloats((transposeB ? n : k) * ldb, seed: UInt64(n + 2 * k))
                var fast = randomFloats(m * ldc, seed: 5), slow = fast
                kernels.gemm(&fast, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                             m: m, n: n, k: k, accumulate: true, workspace: workspace)
                gemmNaive(&slow, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                          m: m, n: n, k: k, accumulate: true)
                expectClose(fast, slow, rtol: 1e-4, atol: 1e-4 * Float(k).squareRoot(),
                            "\(kernels.isa) strided gemm \(m)x\(n)x\(k) tA \(transposeA) tB \(transposeB)")
            }
        }
    }

    /// The AVX-512 GEMMs' algorithms (the 12x32 zmm and 12x16 ymm tiles, their 4-row tails and
    /// narrow-tile rules), compiled for this test target's ISA: checked on every CPU, AVX-512 or
    /// not, against the naive GEMM and bit for bit against the AVX2 kernels.
    @Test func avx512TileAlgorithmsMatchNaiveAndAVX2Bits() {
        enum Wide: ISATag {
            static var isa: KernelISA { .avx2 }
            static var tile: GEMMTile { .avx512x12x32 }
        }
        enum Tall: ISATag {
            static var isa: KernelISA { .avx2 }
            static var tile: GEMMTile { .avx512ymm12x16 }
        }
        #expect(checkTile(Wide.self) == (gemmShapes.count + 4) * 3)
        #expect(checkTile(Tall.self) == (gemmShapes.count + 4) * 3)
    }

    /// Returns the rounds compared.
    func checkTile<Tag: ISATag>(_: Tag.Type) -> Int {
        let workspace = GEMMWorkspace()
        let avx2 = AVX2Kernels()
        var rounds = 0
        for (m, n, k) in gemmShapes + [(64, 400, 784), (32, 400, 96), (60, 40, 400), (20, 784, 64)] {
            for (transposeA, transposeB) in [(false, true), (false, false), (true, false)] {
                let a = randomFloats(m * k, seed: UInt64(m * 31 + k)), b = randomFloats(k * n, seed: UInt64(n * 17 + k))
                var fast = randomFloats(m * n, seed: 99), slow = fast, reference = fast
                let lda = transposeA ? m : k, ldb = transposeB ? k : n
                gemm(Tag.self, &fast, ldc: n, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                     m: m, n: n, k: k, accumulate: transposeA, workspace: workspace)
                gemmNaive(&slow, ldc: n, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                          m: m, n: n, k: k, accumulate: transposeA)
                avx2.gemm(&reference, ldc: n, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                          m: m, n: n, k: k, accumulate: transposeA, workspace: workspace)
                expectClose(fast, slow, rtol: 1e-4, atol: 1e-4 * Float(k).squareRoot(),
                            "\(Tag.tile) tile gemm \(m)x\(n)x\(k) tA \(transposeA) tB \(transposeB)")
                #expect(fast.map(\.bitPattern) == reference.map(\.bitPattern),
                        "\(Tag.tile) tile vs AVX2 6x16 bits, gemm \(m)x\(n)x\(k) tA \(transposeA) tB \(transposeB)")
                rounds += 1
            }
        }
        return rounds
    }

    /// gemm computes some products transposed (C^T = op(B)^T · op(A)^T, then C transposed back):
    /// the same bits as the product as given, with every tile, both transposes, strided C and
    /// accumulation; and the rule takes that path where it measured faster.
    @Test func transposedProductGivesTheSameBits() {
        enum Wide: ISATag {
            static var isa: KernelISA { .avx2 }
            static var tile: GEMMTile { .avx512x12x32 }
        }
        enum Tall: ISATag {
            static var isa: KernelISA { .avx2 }
            static var tile: GEMMTile { .avx512ymm12x16 }
        }
        enum Short: ISATag {
            static var isa: KernelISA { .avx2 }
            static var tile: GEMMTile { .avx2x6x16 }
        }
        #expect(gemmTransposesProduct(.avx512x12x32, m: 32, n: 16))  // a one-channel conv's weight gradient
        #expect(gemmTransposesProduct(.avx512x12x32, m: 64, n: 20))  // the latent heads
        #expect(!gemmTransposesProduct(.avx512x12x32, m: 32, n: 512))
        #expect(!gemmTransposesProduct(.avx512x12x32, m: 16, n: 16))
        #expect(check(Wide.self) == 28 && check(Tall.self) == 28 && check(Short.self) == 28)

        func check<Tag: ISATag>(_: Tag.Type) -> Int {
            let workspace = GEMMWorkspace()
            var rounds = 0
            for (m, n, k) in [(32, 16, 700), (16, 32, 65), (5, 10, 40), (64, 20, 256), (256, 10, 64), (1, 9, 3), (13, 29, 300)] {
                for (transposeA, transposeB) in [(false, true), (false, false), (true, false), (true, true)] {
                    let a = randomFloats(m * k, seed: UInt64(m * 5 + k)), b = randomFloats(k * n, seed: UInt64(n * 13 + k))
                    let lda = transposeA ? m : k, ldb = transposeB ? k : n, ldc = n + 3
                    let accumulate = (m + n) % 2 == 0 || transposeB
                    var given = randomFloats(m * ldc, seed: 7), transposed = given, slow = given
                    gemmAsGiven(Tag.self, &given, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                                m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
                    gemmTransposed(Tag.self, &transposed, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb,
                                   transposeB: transposeB, m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
                    gemmNaive(&slow, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                              m: m, n: n, k: k, accumulate: accumulate)
                    let label = "\(Tag.tile) gemm \(m)x\(n)x\(k) tA \(transposeA) tB \(transposeB) acc \(accumulate)"
                    expectClose(transposed, slow, rtol: 1e-4, atol: 1e-4 * Float(k).squareRoot(), label)
                    let equal = transposed.map(\.bitPattern) == given.map(\.bitPattern)
                    #expect(equal, "transposed vs given: other bits, \(label)")
                    rounds += 1
                }
            }
            return rounds
        }
    }

    /// op(B) packed once (GEMMPackedB, a convolution's weights) gives the bits of gemm packing as it
    /// goes, on every kernel set: shapes with several K blocks (k > 256), several column blocks
    /// (n > 1024), ragged last panels, and narrow N (packB declines them unless padded; padded,
    /// gemm's transposed product has the same bits).
    @Test func prepackedWeightsGiveTheBitsOfGemm() {
        let workspace = GEMMWorkspace()
        var packedProducts = 0
        for kernels in runnableKernels() {
            for (m, n, k) in [(37, 32, 512), (130, 512, 32), (12, 64, 700), (25, 1100, 9), (5, 48, 257), (40, 16, 32), (9, 8, 3)] {
                for (transposeA, transposeB) in [(false, true), (false, false), (true, false)] { for padded in [false, true] {
                    let a = randomFloats(m * k, seed: UInt64(m + k)), b = randomFloats(k * n, seed: UInt64(n * 3 + k))
                    let lda = transposeA ? m : k, ldb = transposeB ? k : n, ldc = n + 5
                    let label = "\(kernels.isa) \(m)x\(n)x\(k) tA \(transposeA) tB \(transposeB) padded \(padded)"
                    let count = GEMMPackedB.count(n: n, k: k, tile: kernels.isa.tile), panels = allocateAligned(count)
                    defer { panels.deallocate() }
                    panels.update(repeating: .nan, count: count)
                    guard let packed = kernels.packB(panels, b, ldb: ldb, transposeB: transposeB, n: n, k: k, padded: padded) else {
                        #expect(!padded && kernels.isa.tile.prefersNarrowTile(n: n), "packB declined: \(label)")
                        continue
                    }
                    for accumulate in [false, true] {
                        var given = randomFloats(m * ldc, seed: 11), fromPacked = given
                        kernels.gemm(&given, ldc: ldc, a, lda: lda, transposeA: transposeA, b, ldb: ldb, transposeB: transposeB,
                                     m: m, n: n, k: k, accumulate: accumulate, workspace: workspace)
                        kernels.gemm(&fromPacked, ldc: ldc, a, lda: lda, transposeA: transposeA, packed: packed, m: m,
                                     accumulate: accumulate, workspace: workspace)
                        #expect(fromPacked.map(\.bitPattern) == given.map(\.bitPattern), "packed vs gemm: other bits, \(label)")
                        packedProducts += 1
                    }
                } }
            }
        }
        #expect(packedProducts >= 60)
    }

    @Test func namedFormsAreTheRightTransposes() {
        let workspace = GEMMWorkspace()
        let kernels = Kernels.active
        let (m, n, k) = (7, 19, 11)
        let a = randomFloats(m * k, seed: 1), bt = randomFloats(n * k, seed: 2)
        var c = [Float](repeating: 0, count: m * n), ref = c
        kernels.matmulNT(&c, a, bt, m: m, n: n, k: k, accumulate: false, workspace: workspace)
        for i in 0..<m { for j in 0..<n { ref[i * n + j] = (0..<k).reduce(0) { $0 + a[i * k + $1] * bt[j * k + $1] } } }
        expectClose(c, ref, rtol: 1e-5, atol: 1e-5, "A*B^T")
        let at = randomFloats(k * m, seed: 3), b = randomFloats(k * n, seed: 4)
        kernels.matmulTN(&c, at, b, m: m, n: n, k: k, accumulate: false, workspace: workspace)
        for i in 0..<m { for j in 0..<n { ref[i * n + j] = (0..<k).reduce(0) { $0 + at[$1 * m + i] * b[$1 * n + j] } } }
        expectClose(c, ref, rtol: 1e-5, atol: 1e-5, "A^T*B")
        kernels.matmulNN(&c, a, b, m: m, n: n, k: k, accumulate: false, workspace: workspace)
        for i in 0..<m { for j in 0..<n { ref[i * n + j] = (0..<k).reduce(0) { $0 + a[i * k + $1] * b[$1 * n + j] } } }
        expectClose(c, ref, rtol: 1e-5, atol: 1e-5, "A*B")
    }
}

@Suite struct ElementwiseTests {
    @Test(arguments: [(1, 1), (3, 17), (5, 784), (2, 33), (7, 129)])
    func biasReluAndBackward(rows: Int, columns: Int) {
        for kernels in runnableKernels() {
            let isa = kernels.isa
            let input = randomFloats(rows * columns, seed: 5), bias = randomFloats(columns, seed: 6)
            var fast = input, slow = input
            kernels.biasReluForward(&fast, bias, rows: rows, columns: columns)
            biasReluForwardNaive(&slow, bias, rows: rows, columns: columns)
            expectClose(fast, slow, rtol: 0, atol: 0, "\(isa) bias+relu")
            var plain = input
            kernels.biasForward(&plain, bias, rows: rows, columns: columns)
            expectClose(plain, (0..<(rows * columns)).map { input[$0] + bias[$0 % columns] }, rtol: 0, atol: 0, "\(isa) bias")
            let dout = randomFloats(rows * columns, seed: 7)
            var d1 = [Float](repeating: 0, count: rows * columns), d2 = d1
            kernels.reluBackward(&d1, dout, fast, count: rows * columns)
            reluBackwardNaive(&d2, dout, fast, count: rows * columns)
            expectClose(d1, d2, rtol: 0, atol: 0, "\(isa) relu backward")
            var b1 = randomFloats(columns, seed: 8), b2 = b1
            kernels.biasBackward(&b1, dout, rows: rows, columns: columns)
            biasBackwardNaive(&b2, dout, rows: rows, columns: columns)
            expectClose(b1, b2, rtol: 1e-5, atol: 1e-5, "\(isa) bias backward")
        }
    }

    @Test func vectorExpAndLogMatchLibm() {
        let xs = stride(from: Float(-87), through: 88, by: 0.173).map { $0 }
        var i = 0
        while i + 16 <= xs.count {
            var v = SIMD16<Float>()
            for j in 0..<16 { v[j] = xs[i + j] }
            let e = vexp(AVX2.self, v)
            for j in 0..<16 { #expect(abs(e[j] - exp(xs[i + j])) <= 3e-7 * exp(xs[i + j]), "exp(\(xs[i + j]))") }
            let positive = vexp(AVX2.self, v * 0.2)
            let l = vlog(AVX2.self, positive)
            for j in 0..<16 { #expect(abs(l[j] - log(positive[j])) <= 2e-7 * max(1, abs(log(positive[j]))), "log(\(positive[j]))") }
            i += 16
        }
    }

    /// 2100 columns: 131 vectors, so a row's product of log factors restarts twice (every 64).
    @Test(arguments: [(1, 1), (3, 17), (4, 784), (2, 50), (2, 2100)])
    func bernoulliMatchesNaive(rows: Int, columns: Int) {
        for kernels in runnableKernels() {
            let logits = randomFloats(rows * columns, seed: 11, scale: 12)
            let targets = randomFloats(rows * columns, seed: 12).map { ($0 + 1) / 2 }
            var r1 = [Float](repeating: 0, count: rows), r2 = r1
            var d1 = [Float](repeating: 0, count: rows * columns), d2 = d1
            kernels.bernoulliNLLForwardBackward(recon: &r1, dlogits: &d1, logits: logits, targets: targets,
                                                rows: rows, columns: columns, scale: 0.5)
            bernoulliNLLNaive(recon: &r2, dlogits: &d2, logits: logits, targets: targets, rows: rows, columns: columns, scale: 0.5)
            expectClose(r1, r2, rtol: 1e-5, atol: 1e-5, "\(kernels.isa) BCE")
            expectClose(d1, d2, rtol: 1e-5, atol: 1e-6, "\(kernels.isa) dBCE/dlogits")
        }
    }

    @Test(arguments: [1, 7, 33, 129])
    func adamMatchesReferenceAndPyTorchFormula(n: Int) {
        for kernels in runnableKernels() {
            var p1 = randomFloats(n, seed: 21), m1 = [Float](repeating: 0, count: n), v1 = m1
            var p2 = p1, m2 = m1, v2 = v1
            let hyper = AdamHyperparameters(learningRate: 1e-2)
            for step in 1...5 {
                let g = randomFloats(n, seed: UInt64(100 + step))
                kernels.adamUpdate(parameters: &p1, gradients: g, firstMoment: &m1, secondMoment: &v1, count: n, step: step, hyper: hyper)
                adamUpdateNaive(parameters: &p2, gradients: g, firstMoment: &m2, secondMoment: &v2, count: n, step: step, hyper: hyper)
            }
            expectClose(p1, p2, rtol: 1e-5, atol: 1e-6, "\(kernels.isa) Adam parameters")
            expectClose(m1, m2, rtol: 1e-5, atol: 1e-7, "\(kernels.isa) Adam exp_avg")
            // First step of Adam moves every parameter by lr * sign(g) (up to eps).
            var p = [Float](repeating: 0, count: 3), m = p, v = p
            kernels.adamUpdate(parameters: &p, gradients: [2, -0.5, 1e-3], firstMoment: &m, secondMoment: &v, count: 3, step: 1, hyper: hyper)
            expectClose(p, [-0.01, 0.01, -0.01], rtol: 1e-4, atol: 1e-7, "\(kernels.isa) first Adam step")
        }
    }
}

@Suite struct RandomTests {
    @Test func philoxKnownAnswer() {
        // Random123's known-answer test for philox4x32_10: counter and key all ones bits.
        let g = Philox4x32(seed: 0xFFFF_FFFF_FFFF_FFFF)
        let out = g.block(SIMD4(repeating: 0xFFFF_FFFF))
        #expect(out == SIMD4(0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd))
        let zero = Philox4x32(seed: 0).block(SIMD4(repeating: 0))
        #expect(zero == SIMD4(0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8))
    }

    @Test func normalsHaveUnitMomentsAndDependOnlyOnKey() {
        let g = Philox4x32(seed: 42)
        let n = 200_000
        var z = [Float](repeating: 0, count: n)
        fillNormal(&z, count: n, generator: g, stream: .reparameterization, epoch: 3, index: 17)
        let mean = z.reduce(0.0) { $0 + Double($1) } / Double(n)
        let variance = z.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n) - mean * mean
        #expect(abs(mean) < 0.01)
        #expect(abs(variance - 1) < 0.02)
        var again = [Float](repeating: 0, count: 20)
        fillNormal(&again, count: 20, generator: g, stream: .reparameterization, epoch: 3, index: 17)
        #expect(Array(z[0..<20]) == again)
        var other = again
        fillNormal(&other, count: 20, generator: g, stream: .reparameterization, epoch: 3, index: 18)
        #expect(other != again)
    }

    @Test func permutationIsAPermutationFixedBySeedAndEpoch() {
        let g = Philox4x32(seed: 5)
        let p = epochPermutation(count: 1000, generator: g, epoch: 2)
        #expect(Set(p).count == 1000 && p.min() == 0 && p.max() == 999)
        #expect(p == epochPermutation(count: 1000, generator: g, epoch: 2))
        #expect(p != epochPermutation(count: 1000, generator: g, epoch: 3))
        #expect(p != Array(0..<1000).map { Int32($0) })
    }
}
