import Foundation
import Testing
import VAEKernelDispatch
import VAEKernels
import VAEModel

/// The convolution kernels (im2col and col2im around the GEMM) against the naive loops, on every
/// kernel set this CPU runs and on 1, 2 and 3 threads; the conv layers' three passes each.
@Suite struct ConvolutionKernelTests {
    /// Strides 1-3, paddings 0-2, kernels 1-4, odd sides, 1 and 3 channels, empty border rows, and
    /// one geometry with more rows than one im2col part.
    static let geometries: [ConvGeometry] = [
        ConvGeometry(inHeight: 8, inWidth: 8, inChannels: 1, kernel: 4, stride: 2, padding: 1),
        // One and three channels (an odd height): col2im's row-by-row form (isScatteredHalving).
        ConvGeometry(inHeight: 7, inWidth: 10, inChannels: 1, kernel: 4, stride: 2, padding: 1),
        ConvGeometry(inHeight: 6, inWidth: 8, inChannels: 3, kernel: 4, stride: 2, padding: 1),
        ConvGeometry(inHeight: 7, inWidth: 5, inChannels: 3, kernel: 3, stride: 1, padding: 1),
        ConvGeometry(inHeight: 6, inWidth: 10, inChannels: 3, kernel: 2, stride: 2, padding: 0),
        ConvGeometry(inHeight: 9, inWidth: 7, inChannels: 5, kernel: 4, stride: 3, padding: 2),
        ConvGeometry(inHeight: 4, inWidth: 4, inChannels: 33, kernel: 1, stride: 1, padding: 0),
        // 528 floats a patch: the layers' im2col-and-multiply parts are 240 rows, so 5 examples'
        // 320 rows take two on one thread.
        ConvGeometry(inHeight: 16, inWidth: 16, inChannels: 33, kernel: 4, stride: 2, padding: 1),
        // 32 channels: the weight gradients pack their patches from the image (GEMMPatches).
        ConvGeometry(inHeight: 6, inWidth: 7, inChannels: 32, kernel: 4, stride: 2, padding: 1),
    ]

    /// A grey or colour image's layer's weight gradient (32 channels x 16 or 48 taps): on several
    /// threads its K blocks are shared out and added in order, whichever tile the kernels chosen
    /// at start use; the bits are one thread's single product's, accumulated or not, and close to
    /// the naive sum.
    @Test(arguments: [1, 3]) func fewColumnWeightGradientSameBitsOnAnyThreadCount(inChannels: Int) {
        let g = ConvGeometry(inHeight: 30, inWidth: 22, inChannels: inChannels, kernel: 4, stride: 2, padding: 1)
        let batch = 5, channels = 32, rows = batch * g.positions
        #expect(rows > 2 * GEMMBlocking.kc, "several K blocks: \(rows) rows")
        let conv = ConvView(geometry: g, channels: channels, weight: 0, bias: channels * g.patch)
        let image = randomFloats(batch * g.imageSize, seed: 31), dout = randomFloats(rows * channels, seed: 32)
        var cols = [Float](repeating: .nan, count: rows * g.patch)
        cols.withUnsafeMutableBufferPointer { im2col($0.baseAddress!, image, g, rows: 0..<rows) }
        let start = randomFloats(channels * g.patch + channels, seed: 33)
        var expected = [Float](repeating: 0, count: channels * g.patch), db = [Float](repeating: 0, count: channels)
        convolutionWeightGradientNaive(&expected, &db, dout, image, g, outChannels: channels, batch: batch)
        for accumulate in [false, true] {
            var results: [[Float]] = []
            for threads in [1, 2, 3] {
                var gradients = start
                convolutionWeightGradient(conv, dout: dout, image: image, cols: cols, gradients: &gradients, batch: batch,
                                          accumulate: accumulate, threads: KernelThreads(threads: threads), workspace: GEMMWorkspace())
                results.append(gradients)
            }
            let same = results.dropFirst().allSatisfy { $0.map(\.bitPattern) == results[0].map(\.bitPattern) }
            #expect(same, "threads 1, 2, 3: other bits (accumulate \(accumulate))")
            let base = accumulate ? Array(start[0..<(channels * g.patch)]) : [Float](repeating: 0, count: channels * g.patch)
            expectClose(Array(results[1][0..<(channels * g.patch)]), zip(base, expected).map { $0 + $1 }, rtol: 1e-4, atol: 1e-3,
                        "\(inChannels)-channel dweight, 2 threads, accumulate \(accumulate)")
        }
    }

    /// A weight gradient with its patches packed from the image (GEMMPatches) has the bits of the
    /// same product over the stored im2col, on every tile (nr 8, 16 and 32: panels within a
    /// pixel's channels and across pixels), with a row offset inside an example and C accumulated.
    /// On the 12 x 32 and 6 x 16 tiles, whole-pixel panels (32 channels) are read in place through
    /// row pointers (GEMMRowPointers.swift), so the tiles' row-pointer forms are checked here
    /// against the packed ones.
    @Test(arguments: geometries)
    func patchesPackedFromTheImageGiveTheStoredPatchesBits(g: ConvGeometry) {
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
        let batch = 3, rows = batch * g.positions
        let image = randomFloats(batch * g.imageSize, seed: 21)
        var cols = [Float](repeating: .nan, count: rows * g.patch)
        cols.withUnsafeMutableBufferPointer { im2col($0.baseAddress!, image, g, rows: 0..<rows) }
        #expect(check(Wide.self) && check(Tall.self) && check(Short.self))

        func check<Tag: ISATag>(_: Tag.Type) -> Bool {
            var same = true
            // 40 rows: three 12-row tiles and a 4-row one; 20: a 12-row and an 8-row tile (the
            // in-place form's 8 x 32); 11: one partial 12-row tile; 7 and 5: 4-row tiles only.
            // 6 x 16: 40 = 6 x 6 + 4, 20 = 2 x 6 + 4 + 4, 11 = 6 + a partial 6, 7 = 6 + 4, 5 partial.
            for (m, skip) in [(7, 0), (40, 1), (5, rows / 2 + 1), (11, 2), (20, 3)] {
                let k = rows - skip, dout = randomFloats(rows * m, seed: UInt64(m))
                let start = randomFloats(m * g.patch, seed: 22), ws = GEMMWorkspace()
                var reference = start, packed = start
                image.withUnsafeBufferPointer { image in
                    // Rows skip ..< rows: the patch source starts `skip` positions in (mid-example).
                    let shifted = GEMMPatchesFrom(image: image.baseAddress!, geometry: g, firstRow: skip)
                    dout.withUnsafeBufferPointer { d in
                        gemmPanels(Tag.self, &packed, ldc: g.patch, d.baseAddress! + skip * m, lda: m, transposeA: true, shifted,
                                   m: m, n: g.patch, k: k, accumulate: true, workspace: ws)
                    }
                }
                cols.withUnsafeBufferPointer { c in
                    dout.withUnsafeBufferPointer { d in
                        // Packed, never read in place: the reference the row-pointer tiles must match.
                        let stored = PackedOnly(matrix: GEMMMatrix(b: c.baseAddress! + skip * g.patch, ldb: g.patch, transposed: false))
                        gemmPanels(Tag.self, &reference, ldc: g.patch, d.baseAddress! + skip * m, lda: m, transposeA: true, stored,
                                   m: m, n: g.patch, k: k, accumulate: true, workspace: ws)
                    }
                }
                let equal = packed.map(\.bitPattern) == reference.map(\.bitPattern)
                #expect(equal, "\(Tag.tile) \(g) m \(m) from row \(skip): packed from the image, other bits")
                same = same && equal
            }
            return same
        }
    }

    /// im2col + each kernel set's GEMM + bias equals the direct convolution; every set gives the same bits.
    @Test(arguments: geometries)
    func forwardMatchesNaiveOnEveryKernelSet(g: ConvGeometry) {
        let batch = 3, outChannels = 7, rows = batch * g.positions
        let image = randomFloats(batch * g.imageSize, seed: 1)
        let weight = randomFloats(outChannels * g.patch, seed: 2, scale: 0.5)
        let bias = randomFloats(outChannels, seed: 3)
        var expected = [Float](repeating: 0, count: rows * outChannels)
        convolutionNaive(&expected, image, weight, bias, g, outChannels: outChannels, batch: batch)
        var cols = [Float](repeating: .nan, count: rows * g.patch)
        cols.withUnsafeMutableBufferPointer { im2col($0.baseAddress!, image, g, rows: 0..<rows) }
        var first: [Float]?
        for kernels in Kernels.runnable {
            var out = [Float](repeating: .nan, count: rows * outChannels)
            kernels.matmulNT(&out, cols, weight, m: rows, n: outChannels, k: g.patch, accumulate: false, workspace: GEMMWorkspace())
            kernels.biasForward(&out, bias, rows: rows, columns: outChannels, rowStride: nil)
            expectClose(out, expected, rtol: 1e-5, atol: 1e-5, "\(kernels.isa) forward \(g)")
            if let first { #expect(out == first, "\(kernels.isa): other bits than \(Kernels.runnable[0].isa)") } else { first = out }
        }
    }

    /// col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>, and the input gradient
    /// through it equals the naive one.
    @Test(arguments: geometries)
    func col2imIsTheAdjointOfIm2col(g: ConvGeometry) {
        let batch = 2, rows = batch * g.positions, outChannels = 4
        let x = randomFloats(batch * g.imageSize, seed: 4), c = randomFloats(rows * g.patch, seed: 5)
        var cols = [Float](repeating: 0, count: rows * g.patch), back = [Float](repeating: .nan, count: batch * g.imageSize)
        cols.withUnsafeMutableBufferPointer { im2col($0.baseAddress!, x, g, rows: 0..<rows) }
        back.withUnsafeMutableBufferPointer { col2im($0.baseAddress!, c, g, examples: 0..<batch) }
        let left = zip(cols, c).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let right = zip(x, back).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        expectClose(left, right, rtol: 1e-5, atol: 1e-5, "adjoint")
        // dimage = col2im(dout · W) against the naive input gradient.
        let dout = randomFloats(rows * outChannels, seed: 6), weight = randomFloats(outChannels * g.patch, seed: 7)
        var dcols = [Float](repeating: 0, count: rows * g.patch), dimage = [Float](repeating: 0, count: batch * g.imageSize)
        Kernels.active.matmulNN(&dcols, dout, weight, m: rows, n: g.patch, k: outChannels, accumulate: false, workspace: GEMMWorkspace())
        dimage.withUnsafeMutableBufferPointer { col2im($0.baseAddress!, dcols, g, examples: 0..<batch) }
        var expected = [Float](repeating: 0, count: batch * g.imageSize)
        convolutionInputGradientNaive(&expected, dout, weight, g, outChannels: outChannels, batch: batch)
        expectClose(dimage, expected, rtol: 1e-5, atol: 1e-5, "input gradient \(g)")
    }

    /// col2im gathers each pixel's terms in registers (16 channels or more) or adds each patch
    /// into a zeroed image (fewer): both add every element's terms to 0 in the patches' order, so
    /// on every geometry they have the same bits (-0 terms included: one term a pixel at kernel 1
    /// or stride = kernel), also for examples after the first; the gather hands each image row to
    /// `afterRow` whole, once, in order.
    @Test(arguments: geometries)
    func col2imGatherHasTheBitsOfTheScatter(g: ConvGeometry) {
        let batch = 3, size = g.positions * g.patch
        var c = randomFloats(batch * size, seed: 13)
        for i in stride(from: 0, to: c.count, by: 7) { c[i] = -0.0 }
        var scattered = [Float](repeating: .nan, count: batch * g.imageSize), gathered = scattered, later = scattered
        scattered.withUnsafeMutableBufferPointer { col2imScatter($0.baseAddress!, c, g, examples: 0..<batch) }
        var rows: [Int] = []
        gathered.withUnsafeMutableBufferPointer { buffer in
            let image = buffer.baseAddress!
            col2imGather(image, c, g, examples: 0..<batch) { row, index in
                #expect(row == image + index * g.inWidth * g.inChannels, "row \(index)")
                // Whole when handed over: no element of the row is still NaN.
                let whole = !(0..<g.inWidth * g.inChannels).contains { row[$0].isNaN }
                #expect(whole, "row \(index)")
                rows.append(index)
            }
        }
        let same = gathered.map(\.bitPattern) == scattered.map(\.bitPattern)
        #expect(same, "gathered and scattered bits differ: \(g)")
        #expect(rows == Array(0..<batch * g.inHeight))
        c.withUnsafeBufferPointer { patches in
            later.withUnsafeMutableBufferPointer { col2imGather($0.baseAddress!, patches.baseAddress! + size, g, examples: 1..<batch) }
        }
        let sameLater = later[g.imageSize...].map(\.bitPattern) == scattered[g.imageSize...].map(\.bitPattern)
        #expect(sameLater, "examples 1..<3: gathered and scattered bits differ: \(g)")
        let untouched = later[..<g.imageSize].allSatisfy(\.isNaN)
        #expect(untouched, "example 0 untouched")
    }

    /// The conv layers' forward, input gradient and weight gradient (a convolution and a transposed
    /// one) against the naive loops, with the same bits on 1, 2 and 3 threads.
    @Test(arguments: geometries)
    func layersMatchNaiveOnAnyThreadCount(g: ConvGeometry) {
        let batch = 5, channels = 6, rows = batch * g.positions
        let parameters = randomFloats(2 * channels * g.patch + channels + g.inChannels, seed: 8, scale: 0.5)
        let conv = ConvView(geometry: g, channels: channels, weight: 0, bias: channels * g.patch)
        let deconv = ConvView(geometry: g, channels: channels, weight: channels * g.patch + channels, bias: 2 * channels * g.patch + channels)
        let image = randomFloats(batch * g.imageSize, seed: 9), maps = randomFloats(rows * channels, seed: 10)
        let doutMaps = randomFloats(rows * channels, seed: 11), doutImage = randomFloats(batch * g.imageSize, seed: 12)
        var results: [[Float]] = []
        for threads in [1, 2, 3] {
            let pool = KernelThreads(threads: threads), ws = GEMMWorkspace()
            var out = [Float](repeating: .nan, count: rows * channels), cols = [Float](repeating: .nan, count: rows * g.patch)
            var outImage = [Float](repeating: .nan, count: batch * g.imageSize)
            var gradients = [Float](repeating: .nan, count: parameters.count)
            var dimage = [Float](repeating: .nan, count: batch * g.imageSize), dmaps = [Float](repeating: .nan, count: rows * channels)
            var scratch = [Float](repeating: .nan, count: rows * g.patch)
            convolutionForward(conv, image: image, out: &out, cols: &cols, parameters: parameters, batch: batch, relu: false,
                               threads: pool, workspace: ws)
            convolutionBackward(conv, dout: doutMaps, image: image, cols: cols, dimage: &dimage, parameters: parameters,
                                gradients: &gradients, batch: batch, accumulate: false, threads: pool, workspace: ws)
            transposedConvolutionForward(deconv, input: maps, out: &outImage, parameters: parameters, batch: batch,
                                         relu: false, threads: pool, workspace: ws)
            transposedConvolutionBackward(deconv, dout: doutImage, input: maps, dinput: &dmaps, dcols: &scratch, parameters: parameters,
                                          gradients: &gradients, batch: batch, accumulate: false, threads: pool, workspace: ws)
            results.append(out + dimage + outImage + dmaps + gradients)
            if threads > 1 { continue }
            let w = Array(parameters[conv.weight..<(conv.weight + channels * g.patch)])
            let tw = Array(parameters[deconv.weight..<(deconv.weight + channels * g.patch)])
            var expected = [Float](repeating: 0, count: rows * channels)
            convolutionNaive(&expected, image, w, Array(parameters[conv.bias..<(conv.bias + channels)]), g, outChannels: channels, batch: batch)
            expectClose(out, expected, rtol: 1e-5, atol: 1e-5, "conv forward")
            var dw = [Float](repeating: 0, count: channels * g.patch), db = [Float](repeating: 0, count: channels)
            convolutionWeightGradientNaive(&dw, &db, doutMaps, image, g, outChannels: channels, batch: batch)
            expectClose(Array(gradients[conv.weight..<(conv.weight + dw.count)]), dw, rtol: 1e-4, atol: 1e-4, "conv dweight")
            expectClose(Array(gradients[conv.bias..<(conv.bias + channels)]), db, rtol: 1e-4, atol: 1e-4, "conv dbias")
            var di = [Float](repeating: 0, count: batch * g.imageSize)
            convolutionInputGradientNaive(&di, doutMaps, w, g, outChannels: channels, batch: batch)
            expectClose(dimage, di, rtol: 1e-5, atol: 1e-5, "conv dimage")
            // The transposed convolution is the adjoint: its forward is the input gradient's loop.
            var t = [Float](repeating: 0, count: batch * g.imageSize)
            convolutionInputGradientNaive(&t, maps, tw, g, outChannels: channels, batch: batch)
            let tb = Array(parameters[deconv.bias..<(deconv.bias + g.inChannels)])
            for i in t.indices { t[i] += tb[i % g.inChannels] }
            expectClose(outImage, t, rtol: 1e-5, atol: 1e-5, "transposed forward")
            var tdw = [Float](repeating: 0, count: channels * g.patch)
            convolutionWeightGradientNaive(&tdw, nil, maps, doutImage, g, outChannels: channels, batch: batch)
            expectClose(Array(gradients[deconv.weight..<(deconv.weight + tdw.count)]), tdw, rtol: 1e-4, atol: 1e-4, "transposed dweight")
            var tdb = [Float](repeating: 0, count: g.inChannels)
            for i in doutImage.indices { tdb[i % g.inChannels] += doutImage[i] }
            expectClose(Array(gradients[deconv.bias..<(deconv.bias + g.inChannels)]), tdb, rtol: 1e-4, atol: 1e-4, "transposed dbias")
            var tdi = [Float](repeating: 0, count: rows * channels)
            convolutionNaive(&tdi, doutImage, tw, nil, g, outChannels: channels, batch: batch)
            expectClose(dmaps, tdi, rtol: 1e-5, atol: 1e-5, "transposed dinput")
        }
        #expect(results[1] == results[0], "2 threads: other bits than 1")
        #expect(results[2] == results[0], "3 threads: other bits than 1")
    }
}

/// The conv architecture's layout: torch's names and shapes, and the one clear error for sizes
/// the stride-2 layers cannot halve.
@Suite struct ConvArchitectureTests {
    @Test func disentanglementLibLayout() throws {
        var config = ModelConfig(imageHeight: 64, imageWidth: 64, hidden: [256], latent: 10)
        config.architecture = .conv
        try config.validate()
        let shapes = Dictionary(uniqueKeysWithValues: ParameterLayout(config).tensors.map { ($0.name, $0.shape) })
        #expect(shapes["encoder.conv.0.weight"] == [32, 1, 4, 4])
        #expect(shapes["encoder.conv.1.weight"] == [32, 32, 4, 4])
        #expect(shapes["encoder.conv.2.weight"] == [64, 32, 2, 2])
        #expect(shapes["encoder.conv.3.weight"] == [64, 64, 2, 2])
        #expect(shapes["encoder.0.weight"] == [256, 1024])
        #expect(shapes["encoder.mu.weight"] == [10, 256])
        #expect(shapes["decoder.0.weight"] == [256, 10])
        #expect(shapes["decoder.fc.weight"] == [1024, 256])
        #expect(shapes["decoder.deconv.0.weight"] == [64, 64, 4, 4])
        #expect(shapes["decoder.deconv.1.weight"] == [64, 32, 4, 4])
        #expect(shapes["decoder.deconv.2.weight"] == [32, 32, 4, 4])
        #expect(shapes["decoder.deconv.3.weight"] == [32, 1, 4, 4])
        #expect(shapes["decoder.deconv.3.bias"] == [1])
        // About 83 MFLOP per training example (forward and backward GEMMs).
        let flops = trainingGEMMShapes(config: config, batch: 1).reduce(0) { $0 + $1.flops }
        #expect(flops > 75e6 && flops < 90e6, "\(flops)")
    }

    @Test func sidesMustHalve() {
        var config = ModelConfig(imageHeight: 28, imageWidth: 28, hidden: [256], latent: 10)
        config.architecture = .conv
        #expect(throws: ModelConfigError.self) { try config.validate() }
        do { try config.validate() } catch {
            #expect(error.description.contains("divisible by 16") && error.description.contains("--conv-channels 2 values"), "\(error)")
        }
        config.convChannels = [32, 64]
        #expect(throws: Never.self) { try config.validate() }
    }

    /// A conv config's JSON carries the architecture; an MLP's JSON is as before (no new keys).
    @Test func configJSON() throws {
        let mlp = String(decoding: try JSONEncoder().encode(ModelConfig()), as: UTF8.self)
        #expect(!mlp.contains("architecture") && !mlp.contains("convChannels"))
        var conv = ModelConfig(imageHeight: 8, imageWidth: 8, hidden: [5], latent: 2)
        conv.architecture = .conv
        conv.convChannels = [3, 4]
        let back = try JSONDecoder().decode(ModelConfig.self, from: try JSONEncoder().encode(conv))
        #expect(back == conv)
    }
}

/// A matrix that gemm must pack (no panelRows): the packed form the in-place tiles are checked against.
struct PackedOnly: GEMMPanelSource {
    let matrix: GEMMMatrix

    func pack(_ dst: UnsafeMutablePointer<Float>, row: Int, column: Int, kc: Int, nc: Int, nr: Int) {
        matrix.pack(dst, row: row, column: column, kc: kc, nc: nc, nr: nr)
    }
}

/// GEMMPatches from a row other than the first: op(B) row r is patch row firstRow + r.
struct GEMMPatchesFrom: GEMMPanelSource {
    let image: UnsafePointer<Float>, geometry: ConvGeometry, firstRow: Int

    func pack(_ dst: UnsafeMutablePointer<Float>, row: Int, column: Int, kc: Int, nc: Int, nr: Int) {
        GEMMPatches(image: image, geometry: geometry).pack(dst, row: firstRow + row, column: column, kc: kc, nc: nc, nr: nr)
    }

    func panelRows(_ rows: UnsafeMutablePointer<UnsafePointer<Float>>, zero: UnsafePointer<Float>,
                   row: Int, column: Int, kc: Int, nr: Int) -> Bool {
        GEMMPatches(image: image, geometry: geometry).panelRows(rows, zero: zero, row: firstRow + row, column: column, kc: kc, nr: nr)
    }
}
