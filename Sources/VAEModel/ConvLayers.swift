import VAEKernelDispatch
import VAEKernels

// The conv architecture's layers as forward/backward pairs over the GEMM (see Convolution.swift
// in VAEKernels): a convolution is im2col, then a GEMM with the batch's output positions as
// rows; a transposed convolution is the same pair swapped. Patches are made a few hundred rows
// at a time next to the product that reads them, or packed straight from the image by the
// weight gradient (GEMMPatches). Threads cut rows of outputs, examples of col2im, and a weight
// gradient's columns or, for one input channel, its K blocks summed in gemm's order: never a
// sum, so every thread count gives the same bits.

/// Ranges per thread of the passes whose parts are independent and share their packed weights
/// (the products with im2col or col2im, the one-channel weight gradients' K blocks): the pool's
/// threads claim them as they go, so a thread slowed by the host (on a 2-core AMD EPYC guest,
/// 2026-12-07, the worker's halves ran 8-14% slower than the caller's, and the caller waited
/// for them 14-22% of the time spent in regions; docs/performance.md) no longer holds the
/// other up. The weight gradients cut by columns keep one range each: 2 or 4 per thread measured
/// slower (docs/performance.md).
let convChunksPerThread = 8

extension ConvView {
    /// Whether the weight gradient packs the patches straight from the image (GEMMPatches), so
    /// that they are never stored: where each panel of the GEMM tile's nr columns is one pixel's
    /// channels (inChannels a multiple of nr). Elsewhere (one input channel) the forward pass
    /// keeps its patches in `cols` for the backward pass, as the transposed product there needs.
    public var packsPatchesFromImage: Bool {
        let tile = Kernels.choice.isa.tile
        return geometry.inChannels % tile.nr == 0 && !tile.prefersNarrowTile(n: geometry.patch)
    }
}

/// out [batch * positions, channels] = im2col(image) · weight^T + bias (+ ReLU); `cols` keeps
/// the patches for the backward pass unless the view packs them from the image.
public func convolutionForward(_ view: ConvView, image: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                        cols: UnsafeMutablePointer<Float>, parameters: UnsafePointer<Float>, batch: Int, relu: Bool,
                        threads: KernelThreads, workspace: GEMMWorkspace) {
    let g = view.geometry, rows = batch * g.positions
    threads.forEachRange(rows, alignment: rowAlignment(columns: view.channels), minimum: GEMMBlocking.narrowMR,
                         chunksPerThread: convChunksPerThread,
                         PatchProductRows(cols: view.packsPatchesFromImage ? nil : cols, image: image, geometry: g, out: out, mask: nil,
                                          weight: parameters + view.weight,
                                          packed: packWeights(parameters + view.weight, ldb: g.patch, transposed: true,
                                                              n: view.channels, k: g.patch, workspace: workspace),
                                          bias: parameters + view.bias,
                                          outFeatures: view.channels, relu: relu, threads: threads, workspace: workspace))
}

/// Given dout [batch * positions, channels] (the ReLU's gradient already applied): dweight and
/// dbias (+)= the convolution's, and dimage = its input gradient when wanted.
public func convolutionBackward(_ view: ConvView, dout: UnsafePointer<Float>, image: UnsafePointer<Float>, cols: UnsafePointer<Float>,
                                dimage: UnsafeMutablePointer<Float>?, reluMask: UnsafePointer<Float>? = nil,
                                parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, batch: Int,
                                accumulate: Bool, threads: KernelThreads, workspace: GEMMWorkspace) {
    convolutionWeightGradient(view, dout: dout, image: image, cols: cols, gradients: gradients, batch: batch, accumulate: accumulate,
                              threads: threads, workspace: workspace)
    if let dimage {
        convolutionInputGradient(view, dout: dout, dimage: dimage, reluMask: reluMask, parameters: parameters, batch: batch,
                                 threads: threads, workspace: workspace)
    }
}

/// dweight (+)= dout^T · im2col(image) and dbias (+)= the sum of dout's rows; the patches
/// packed from the image, or read from `cols` (kept by the forward pass) when the view does not.
public func convolutionWeightGradient(_ view: ConvView, dout: UnsafePointer<Float>, image: UnsafePointer<Float>,
                                      cols: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, batch: Int,
                                      accumulate: Bool, threads: KernelThreads, workspace: GEMMWorkspace) {
    let g = view.geometry, rows = batch * g.positions
    patchWeightGradient(view, dweight: gradients + view.weight, dbias: gradients + view.bias, dout: dout, cols: cols,
                        patches: view.packsPatchesFromImage ? GEMMPatches(image: image, geometry: g) : nil, rows: rows,
                        accumulate: accumulate, threads: threads, workspace: workspace)
}

/// dweight [channels, patch] (+)= dout [rows, channels]^T · patches [rows, patch] (packed from
/// `patches` or read from `cols`), and dbias (+)= the sum of dout's rows when given. With as
/// many patch columns as two GEMM panels per thread, threads take blocks of the columns: each
/// then packs only its own, where a cut by channels (a conv layer has 32 or 64) has every
/// thread pack all of them. The bias then goes by channels, in a second pass. Every element's
/// sum is whole on one thread either way: the same bits on any thread count.
func patchWeightGradient(_ view: ConvView, dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?,
                         dout: UnsafePointer<Float>, cols: UnsafePointer<Float>, patches: GEMMPatches?, rows: Int,
                         accumulate: Bool, threads: KernelThreads, workspace: GEMMWorkspace) {
    let g = view.geometry, tile = Kernels.choice.isa.tile
    let work = LinearWeightGradient(dweight: dweight, dbias: dbias, dout: dout, inp: cols, patches: patches, batch: rows,
                                    inFeatures: g.patch, outFeatures: view.channels, accumulate: accumulate,
                                    threads: threads, workspace: workspace)
    // A patch of one input channel (16 columns, 48 in colour): the product is a few hundred
    // floats summed over 65,536 positions, bound by reading dout and the patches. Threads take
    // gemm's K blocks instead, each block's product stored on its own and the blocks then added
    // in order: the sums gemm makes over the whole K, the same bits. (Cut by channels, each
    // thread read all the patches: on the 12 x 32 tile 2.2x slower on 2 threads than on one, on
    // the 6 x 16 tile 1.2-1.3x faster, where K blocks make it 2x faster; by columns, each read
    // all of dout: no faster than one.)
    // (Every product the chosen tile computes transposed, gemmTransposesProduct, has fewer than
    // two panels' columns per thread too: at most 56 on the 12 x 32 tile, 8 on the others.)
    let byColumns = g.patch >= 2 * tile.nr * threads.count
    if threads.count > 1 && !byColumns && patches == nil && rows > 0 {
        let length = GEMMBlocking.kBlock(rows), blocks = (rows + length - 1) / length, size = view.channels * g.patch
        let partials = workspace.partials(count: blocks * size)
        threads.forEachRange(blocks, alignment: 1, minimum: 1, chunksPerThread: convChunksPerThread,
                             WeightGradientBlocks(partials: partials, dout: dout, cols: cols, rows: rows, length: length,
                                                  channels: view.channels, patch: g.patch, threads: threads, workspace: workspace))
        if !accumulate { dweight.update(from: partials, count: size) } else { addInPlace(dweight, partials, count: size) }
        for b in 1..<blocks { addInPlace(dweight, partials + b * size, count: size) }
    } else if threads.count > 1 && byColumns {
        threads.forEachRange(g.patch, alignment: tile.nr, minimum: 2 * tile.nr, work.columns)
    } else {
        threads.forEachRange(view.channels, alignment: rowAlignment(columns: g.patch), minimum: 16, work)
        return
    }
    if let dbias {
        threads.forEachRange(view.channels, alignment: 16, minimum: 16,
                             BiasGradientColumns(dbias: dbias, dout: dout, rows: rows, columns: view.channels,
                                                 accumulate: accumulate))
    }
}

/// dst[i] += src[i] for i < count (vectorized by the compiler; each element one add).
@inline(__always)
func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    for i in 0..<count { dst[i] += src[i] }
}

/// K blocks `blocks` of dweight's product: block b's dout^T · cols over rows b * length ..< +
/// length, overwritten into partials[b] [channels, patch] (one gemm K block each).
struct WeightGradientBlocks: RangeWork {
    let partials: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, cols: UnsafePointer<Float>
    let rows: Int, length: Int, channels: Int, patch: Int
    let threads: KernelThreads, workspace: GEMMWorkspace

    @inline(__always)
    func run(_ blocks: Range<Int>, thread: Int) {
        let ws = threads.gemmWorkspace(thread, own: workspace)
        for b in blocks {
            let first = b * length, k = min(length, rows - first)
            Kernels.active.gemm(partials + b * channels * patch, ldc: patch, dout + first * channels, lda: channels, transposeA: true,
                                cols + first * patch, ldb: patch, transposeB: false, m: channels, n: patch, k: k,
                                accumulate: false, workspace: ws)
        }
    }
}

/// Columns `columns` of dbias (+)= the sum of dout's rows.
struct BiasGradientColumns: RangeWork {
    let dbias: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, rows: Int, columns: Int, accumulate: Bool

    @inline(__always)
    func run(_ range: Range<Int>, thread: Int) {
        let o = range.lowerBound
        if !accumulate { (dbias + o).update(repeating: 0, count: range.count) }
        Kernels.active.biasBackward(dbias + o, dout + o, rows: rows, columns: range.count, rowStride: columns)
    }
}

/// dimage = col2im(dout · weight), overwritten; where `reluMask` (the image, the ReLU's output
/// that fed this layer) is not positive, 0 instead: the ReLU's backward, applied while each
/// part is in cache.
public func convolutionInputGradient(_ view: ConvView, dout: UnsafePointer<Float>, dimage: UnsafeMutablePointer<Float>,
                                     reluMask: UnsafePointer<Float>? = nil, parameters: UnsafePointer<Float>, batch: Int,
                                     threads: KernelThreads, workspace: GEMMWorkspace) {
    threads.forEachRange(batch, alignment: 1, minimum: 1, chunksPerThread: convChunksPerThread,
                         ProductCol2ImExamples(image: dimage, mask: reluMask, input: dout, weight: parameters + view.weight,
                                               packed: packWeights(parameters + view.weight, ldb: view.geometry.patch, transposed: false,
                                                                   n: view.geometry.patch, k: view.channels, workspace: workspace),
                                               geometry: view.geometry, channels: view.channels, bias: nil, relu: false,
                                               threads: threads, workspace: workspace))
}

/// The transposed convolution: out image [batch, geometry.in*] = col2im(input · weight) + bias
/// (+ ReLU), input [batch * positions, channels].
public func transposedConvolutionForward(_ view: ConvView, input: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                  parameters: UnsafePointer<Float>, batch: Int,
                                  relu: Bool, threads: KernelThreads, workspace: GEMMWorkspace) {
    // cols [rows, patch] = input [rows, channels] · weight [channels, patch], then col2im.
    threads.forEachRange(batch, alignment: 1, minimum: 1, chunksPerThread: convChunksPerThread,
                         ProductCol2ImExamples(image: out, mask: nil, input: input, weight: parameters + view.weight,
                                               packed: packWeights(parameters + view.weight, ldb: view.geometry.patch, transposed: false,
                                                                   n: view.geometry.patch, k: view.channels, padded: true,
                                                                   workspace: workspace),
                                               geometry: view.geometry, channels: view.channels, bias: parameters + view.bias, relu: relu,
                                               threads: threads, workspace: workspace))
}

/// Given dout image [batch, geometry.in*] (the ReLU's gradient already applied): dweight and
/// dbias (+)= the transposed convolution's, and dinput [batch * positions, channels] when wanted.
public func transposedConvolutionBackward(_ view: ConvView, dout: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                          dinput: UnsafeMutablePointer<Float>?, reluMask: UnsafePointer<Float>? = nil,
                                          dcols: UnsafeMutablePointer<Float>,
                                          parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, batch: Int,
                                          accumulate: Bool, threads: KernelThreads, workspace: GEMMWorkspace) {
    transposedConvolutionInputGradient(view, dout: dout, dcols: dcols, dinput: dinput, reluMask: reluMask, parameters: parameters, batch: batch,
                                       threads: threads, workspace: workspace)
    transposedConvolutionWeightGradient(view, dout: dout, dcols: dcols, input: input, gradients: gradients, batch: batch,
                                        accumulate: accumulate, threads: threads, workspace: workspace)
}

/// dweight [channels, patch] (+)= input^T · im2col(dout), its patches packed from dout or read
/// from dcols (made by transposedConvolutionInputGradient) when the view does not; dbias (+)=
/// the sum over the output image's pixels of dout.
public func transposedConvolutionWeightGradient(_ view: ConvView, dout: UnsafePointer<Float>, dcols: UnsafePointer<Float>,
                                                input: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>, batch: Int,
                                                accumulate: Bool, threads: KernelThreads, workspace: GEMMWorkspace) {
    let g = view.geometry, rows = batch * g.positions
    patchWeightGradient(view, dweight: gradients + view.weight, dbias: nil, dout: input, cols: dcols,
                        patches: view.packsPatchesFromImage ? GEMMPatches(image: dout, geometry: g) : nil, rows: rows,
                        accumulate: accumulate, threads: threads, workspace: workspace)
    threads.forEachRange(g.inChannels, alignment: 16, minimum: 16,
                         BiasGradientColumns(dbias: gradients + view.bias, dout: dout, rows: batch * g.inHeight * g.inWidth,
                                             columns: g.inChannels, accumulate: accumulate))
}

/// dcols = im2col(dout) [rows, patch] (kept for the weight gradient unless the view packs its
/// patches from dout) and, when wanted, dinput [rows, channels] = dcols · weight [channels,
/// patch]^T, 0 where `reluMask` (the ReLU output that fed this layer) is not positive: a few
/// hundred rows at a time, each part multiplied (and masked) while it is still in cache.
public func transposedConvolutionInputGradient(_ view: ConvView, dout: UnsafePointer<Float>, dcols: UnsafeMutablePointer<Float>,
                                               dinput: UnsafeMutablePointer<Float>?, reluMask: UnsafePointer<Float>? = nil,
                                               parameters: UnsafePointer<Float>, batch: Int,
                                               threads: KernelThreads, workspace: GEMMWorkspace) {
    threads.forEachRange(batch * view.geometry.positions, alignment: rowAlignment(columns: view.channels),
                         minimum: GEMMBlocking.narrowMR, chunksPerThread: convChunksPerThread,
                         PatchProductRows(cols: view.packsPatchesFromImage ? nil : dcols, image: dout, geometry: view.geometry,
                                          out: dinput, mask: reluMask, weight: parameters + view.weight,
                                          packed: dinput == nil ? nil : packWeights(parameters + view.weight, ldb: view.geometry.patch,
                                                                                    transposed: true, n: view.channels,
                                                                                    k: view.geometry.patch, workspace: workspace),
                                          bias: nil, outFeatures: view.channels, relu: false,
                                          threads: threads, workspace: workspace))
}

/// op(B) [k, n] of a pass's products packed once into the workspace, for every part and thread
/// to read (nil where gemm packs as it goes: a narrow N, which it computes transposed).
func packWeights(_ b: UnsafePointer<Float>, ldb: Int, transposed: Bool, n: Int, k: Int, padded: Bool = false,
                 workspace: GEMMWorkspace) -> GEMMPackedB? {
    let kernels = Kernels.active
    let dst = workspace.packedWeights(count: GEMMPackedB.count(n: n, k: k, tile: kernels.isa.tile))
    return kernels.packB(dst, b, ldb: ldb, transposeB: transposed, n: n, k: k, padded: padded)
}

/// [batch, positions, channels] (NHWC) -> [batch, channels, positions] (CHW, torch's flatten order),
/// or back with `toCHW` false.
func transposeFeatureMaps(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, batch: Int, positions: Int,
                          channels: Int, toCHW: Bool) {
    let size = positions * channels
    for n in 0..<batch {
        let s = src + n * size, d = dst + n * size
        for p in 0..<positions {
            for c in 0..<channels {
                if toCHW { d[c * positions + p] = s[p * channels + c] } else { d[p * channels + c] = s[c * positions + p] }
            }
        }
    }
}

/// For a range of rows (output positions), a few hundred at a time (about 512 KB of patches):
/// im2col(image) for those rows, into `cols` (kept) or, when it is nil, into the thread's
/// scratch; then, while they are in cache, out = patches · weight^T (+ bias, ReLU) for them
/// when `out` is given. A row's result depends on that row alone, so any cut gives the bits of
/// one GEMM over all rows.
struct PatchProductRows: RangeWork {
    let cols: UnsafeMutablePointer<Float>?, image: UnsafePointer<Float>, geometry: ConvGeometry
    /// out is 0 where mask (same shape) is not positive: a ReLU's backward (bias nil then).
    let out: UnsafeMutablePointer<Float>?, mask: UnsafePointer<Float>?
    /// weight^T packed once for every part (nil: each part's product packs it).
    let weight: UnsafePointer<Float>, packed: GEMMPackedB?, bias: UnsafePointer<Float>?
    let outFeatures: Int, relu: Bool
    let threads: KernelThreads, workspace: GEMMWorkspace

    @inline(__always)
    func run(_ rows: Range<Int>, thread: Int) {
        let patch = geometry.patch
        let chunk = max(1, (1 << 17) / patch / GEMMBlocking.mc) * GEMMBlocking.mc
        let ws = threads.gemmWorkspace(thread, own: workspace)
        let scratch = cols == nil ? ws.patches(count: min(chunk, rows.count) * patch) : nil
        var first = rows.lowerBound
        while first < rows.upperBound {
            let part = first..<min(first + chunk, rows.upperBound)
            let patches = cols.map { $0 + part.lowerBound * patch } ?? scratch!
            im2col(patches, image, geometry, rows: part)
            if let out {
                let o = out + part.lowerBound * outFeatures
                if let packed {
                    Kernels.active.gemm(o, ldc: outFeatures, patches, lda: patch, transposeA: false, packed: packed, m: part.count,
                                        accumulate: false, workspace: ws)
                } else {
                    Kernels.active.matmulNT(o, patches, weight, m: part.count, n: outFeatures, k: patch, accumulate: false,
                                            workspace: ws)
                }
                if let bias {
                    if relu {
                        Kernels.active.biasReluForward(o, bias, rows: part.count, columns: outFeatures)
                    } else {
                        Kernels.active.biasForward(o, bias, rows: part.count, columns: outFeatures)
                    }
                }
                if let mask {
                    let first = part.lowerBound * outFeatures
                    Kernels.active.reluBackward(o, o, mask + first, count: part.count * outFeatures)
                }
            }
            first = part.upperBound
        }
    }
}

/// For a range of examples, a few at a time (about 512 KB of patches, in the thread's scratch,
/// so they are still in cache when added back): their rows of cols = input · weight, then
/// col2im, bias and ReLU. The bits are those of one GEMM over all rows (a row's result does not
/// depend on the others).
struct ProductCol2ImExamples: RangeWork {
    /// image is 0 where mask (same shape) is not positive: a ReLU's backward.
    let image: UnsafeMutablePointer<Float>, mask: UnsafePointer<Float>?
    /// weight packed once for every part (nil: each part's product packs it).
    let input: UnsafePointer<Float>, weight: UnsafePointer<Float>, packed: GEMMPackedB?
    let geometry: ConvGeometry, channels: Int
    let bias: UnsafePointer<Float>?, relu: Bool
    let threads: KernelThreads, workspace: GEMMWorkspace

    @inline(__always)
    func run(_ examples: Range<Int>, thread: Int) {
        let g = geometry, perExample = g.positions * g.patch
        let chunk = max(1, (1 << 17) / perExample)
        let ws = threads.gemmWorkspace(thread, own: workspace)
        let cols = ws.patches(count: min(chunk, examples.count) * perExample)
        var first = examples.lowerBound
        while first < examples.upperBound {
            let part = first..<min(first + chunk, examples.upperBound)
            let row = part.lowerBound * g.positions
            if let packed {
                Kernels.active.gemm(cols, ldc: g.patch, input + row * channels, lda: channels, transposeA: false, packed: packed,
                                    m: part.count * g.positions, accumulate: false, workspace: ws)
            } else {
                Kernels.active.matmulNN(cols, input + row * channels, weight, m: part.count * g.positions,
                                        n: g.patch, k: channels, accumulate: false, workspace: ws)
            }
            let rowLength = g.inWidth * g.inChannels
            if g.col2imGathers && rowLength % 16 == 0 {
                // Each image row's epilogue while the row is in L1: the same calls as on the
                // whole part, cut at rows of whole vectors, so the same bits.
                col2imGather(image, cols, g, examples: part) { row, index in
                    epilogue(row, pixels: g.inWidth, offset: index * rowLength)
                }
            } else {
                col2im(image, cols, g, examples: part)
                let first = part.lowerBound * g.imageSize
                epilogue(image + first, pixels: part.count * g.inHeight * g.inWidth, offset: first)
            }
            first = part.upperBound
        }
    }

    /// On `pixels` pixels of the image from image + offset (= `start`): bias and ReLU (a
    /// transposed convolution's forward), or 0 where the mask is not positive (an input gradient).
    @inline(__always)
    func epilogue(_ start: UnsafeMutablePointer<Float>, pixels: Int, offset: Int) {
        if let bias {
            if relu {
                Kernels.active.biasReluForward(start, bias, rows: pixels, columns: geometry.inChannels)
            } else {
                Kernels.active.biasForward(start, bias, rows: pixels, columns: geometry.inChannels)
            }
        }
        if let mask {
            Kernels.active.reluBackward(start, start, mask + offset, count: pixels * geometry.inChannels)
        }
    }
}

