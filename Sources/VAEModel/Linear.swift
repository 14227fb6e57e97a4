import VAEKernelDispatch
import VAEKernels

// A fully connected layer as a forward/backward pair (torch.nn.Linear semantics):
//   out[B, O] = inp[B, I] · weight[O, I]^T + bias[O]
// on the kernels chosen at start for this CPU (`Kernels.active`). On several threads each GEMM
// is cut along its output, never along K (see KernelThreads), so every thread count gives the
// same bits. Each parallel part is a small struct (RangeWork): the threads call it through a
// pointer, which allocates nothing.

/// A wide layer's GEMMs are cut along their output features (columns of C): each thread then
/// packs only its own columns of the weight, where a cut along the batch would have every
/// thread pack all of it (the panels left over after an equal share are cut by rows:
/// BlockSplit). Narrow outputs (the latent heads) are cut along the batch.
public let columnSplitMinimum = 128

/// Row cuts of a GEMM with `columns` output columns fall at multiples of this: between the
/// row tiles it will use (AVX2's 6 x 16 tile: any even row, `GEMMTile.rowSplitAlignment`).
@inline(__always)
func rowAlignment(columns: Int) -> Int {
    let tile = Kernels.choice.isa.tile
    return tile.prefersNarrowTile(n: columns) ? GEMMBlocking.narrowMR : tile.rowSplitAlignment
}

/// The cut of a wide layer's [batch, features] output between the threads.
@inline(__always)
func wideSplit(batch: Int, features: Int, threads: KernelThreads) -> BlockSplit {
    let tile = Kernels.choice.isa.tile
    return BlockSplit(rows: batch, columns: features, threads: threads.count, panel: tile.nr, rowAlignment: tile.rowSplitAlignment)
}

/// out = inp · weight^T + bias, then ReLU when `relu`. Threads take blocks of output features
/// (wide layers) or of rows (examples).
@inline(__always)
public func linearForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                          _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                          batch: Int, inFeatures: Int, outFeatures: Int, relu: Bool,
                          threads: KernelThreads = .serial, workspace: GEMMWorkspace) {
    if threads.count > 1 && outFeatures >= 2 * columnSplitMinimum {
        threads.forEachBlock(wideSplit(batch: batch, features: outFeatures, threads: threads),
                             LinearForwardBlock(out: out, inp: inp, weight: weight, bias: bias,
                                                inFeatures: inFeatures, outFeatures: outFeatures, relu: relu,
                                                threads: threads, workspace: workspace))
        return
    }
    threads.forEachRange(batch, alignment: rowAlignment(columns: outFeatures), minimum: GEMMBlocking.narrowMR,
                         LinearForwardRows(out: out, inp: inp, weight: weight, bias: bias, inFeatures: inFeatures,
                                           outFeatures: outFeatures, relu: relu, threads: threads, workspace: workspace))
}

/// dweight[O, I] += dout^T · inp,  dbias[O] += sum_b dout,  dinp[B, I] = dout · weight (when wanted).
/// With `accumulate` false, dweight and dbias are overwritten instead (the first micro-batch of a
/// step: no zeroing pass over the gradient buffer, no load of it in the GEMM; the same bits, as
/// 0 + x = x). dinp is overwritten, not accumulated: every layer input here has exactly one consumer.
/// Threads take blocks of output features for dweight and dbias (the K = batch sum stays whole),
/// then blocks of rows for dinp.
@inline(__always)
public func linearBackward(_ dinp: UnsafeMutablePointer<Float>?, _ dweight: UnsafeMutablePointer<Float>,
                           _ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                           _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                           batch: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool = true,
                           threads: KernelThreads = .serial, workspace: GEMMWorkspace) {
    // Rows of dweight between row tiles, not at multiples of 16: 400 rows are 200 + 200 on 2
    // threads, where 16 would give 208 + 192 (a 4% longer wait for the slower thread).
    threads.forEachRange(outFeatures, alignment: rowAlignment(columns: inFeatures), minimum: 16,
                         LinearWeightGradient(dweight: dweight, dbias: dbias, dout: dout, inp: inp, batch: batch,
                                              inFeatures: inFeatures, outFeatures: outFeatures,
                                              accumulate: accumulate, threads: threads, workspace: workspace))
    if let dinp {
        let work = LinearInputGradient(dinp: dinp, dout: dout, weight: weight, batch: batch, inFeatures: inFeatures,
                                       outFeatures: outFeatures, threads: threads, workspace: workspace)
        if threads.count > 1 && inFeatures >= 2 * columnSplitMinimum {
            threads.forEachBlock(wideSplit(batch: batch, features: inFeatures, threads: threads), work.blocks)
        } else {
            threads.forEachRange(batch, alignment: rowAlignment(columns: inFeatures), minimum: GEMMBlocking.narrowMR, work)
        }
    }
}

/// Rows `rows` of out = inp · weight^T + bias (+ ReLU).
struct LinearForwardRows: RangeWork {
    let out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>
    /// nil: no bias and no ReLU (a transposed convolution's input gradient).
    let weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?
    let inFeatures: Int, outFeatures: Int, relu: Bool
    let threads: KernelThreads, workspace: GEMMWorkspace

    @inline(__always)
    func run(_ rows: Range<Int>, thread: Int) {
        let o = out + rows.lowerBound * outFeatures
        Kernels.active.matmulNT(o, inp + rows.lowerBound * inFeatures, weight, m: rows.count, n: outFeatures, k: inFeatures,
                 accumulate: false, workspace: threads.gemmWorkspace(thread, own: workspace))
        guard let bias else { return }
        if relu {
            Kernels.active.biasReluForward(o, bias, rows: rows.count, columns: outFeatures)
        } else {
            Kernels.active.biasForward(o, bias, rows: rows.count, columns: outFeatures)
        }
    }
}

/// A block (rows = examples, columns = output features) of out = inp · weight^T + bias (+ ReLU).
struct LinearForwardBlock: BlockWork {
    let out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>
    let weight: UnsafePointer<Float>, bias: UnsafePointer<Float>
    let inFeatures: Int, outFeatures: Int, relu: Bool
    let threads: KernelThreads, workspace: GEMMWorkspace

    @inline(__always)
    func run(_ block: Block, thread: Int) {
        let features = block.columns, m = block.rows.count, n = features.count
        let o = out + block.rows.lowerBound * outFeatures + features.lowerBound
        // out[rows, features] = inp[rows, :] · weight[features, :]^T
        Kernels.active.gemm(o, ldc: outFeatures, inp + block.rows.lowerBound * inFeatures, lda: inFeatures, transposeA: false,
                            weight + features.lowerBound * inFeatures, ldb: inFeatures, transposeB: true,
                            m: m, n: n, k: inFeatures, accumulate: false,
                            workspace: threads.gemmWorkspace(thread, own: workspace))
        let b = bias + features.lowerBound
        if relu {
            Kernels.active.biasReluForward(o, b, rows: m, columns: n, rowStride: outFeatures)
        } else {
            Kernels.active.biasForward(o, b, rows: m, columns: n, rowStride: outFeatures)
        }
    }
}

/// Output features `features` of dweight (+)= dout^T · inp and dbias (+)= sum_b dout.
struct LinearWeightGradient: RangeWork {
    /// dbias nil: none (a transposed convolution's, which sums its output instead).
    let dweight: UnsafeMutablePointer<Float>, dbias: UnsafeMutablePointer<Float>?
    let dout: UnsafePointer<Float>, inp: UnsafePointer<Float>
    /// When given: inp is im2col of this image, packed from it (inp is not read).
    var patches: GEMMPatches? = nil
    let batch: Int, inFeatures: Int, outFeatures: Int, accumulate: Bool
    let threads: KernelThreads, workspace: GEMMWorkspace

    /// The same product cut by input features (columns of dweight) instead, without dbias.
    var columns: Columns { Columns(whole: self) }

    struct Columns: RangeWork {
        let whole: LinearWeightGradient

        @inline(__always)
        func run(_ columns: Range<Int>, thread: Int) {
            whole.multiply(features: 0..<whole.outFeatures, columns: columns, thread: thread)
        }
    }

    /// dweight[features, columns] (+)= dout[:, features]^T · inp[:, columns].
    @inline(__always)
    func multiply(features: Range<Int>, columns: Range<Int>, thread: Int) {
        let o = features.lowerBound, q = columns.lowerBound, ws = threads.gemmWorkspace(thread, own: workspace)
        let c = dweight + o * inFeatures + q
        if let patches {
            Kernels.active.gemm(c, ldc: inFeatures, dout + o, lda: outFeatures, transposeA: true, patches: patches.fromColumn(q),
                                m: features.count, n: columns.count, k: batch, accumulate: accumulate, workspace: ws)
        } else {
            Kernels.active.gemm(c, ldc: inFeatures, dout + o, lda: outFeatures, transposeA: true, inp + q, ldb: inFeatures,
                                transposeB: false, m: features.count, n: columns.count, k: batch, accumulate: accumulate,
                                workspace: ws)
        }
    }

    @inline(__always)
    func run(_ features: Range<Int>, thread: Int) {
        let o = features.lowerBound
        multiply(features: features, columns: 0..<inFeatures, thread: thread)
        guard let dbias else { return }
        if !accumulate { (dbias + o).update(repeating: 0, count: features.count) }
        Kernels.active.biasBackward(dbias + o, dout + o, rows: batch, columns: features.count, rowStride: outFeatures)
    }
}

/// Rows `rows` of dinp = dout · weight.
struct LinearInputGradient: RangeWork {
    let dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, weight: UnsafePointer<Float>
    let batch: Int, inFeatures: Int, outFeatures: Int
    let threads: KernelThreads, workspace: GEMMWorkspace

    /// The same product cut into blocks (rows, input features) instead (BlockSplit).
    var blocks: Blocks { Blocks(whole: self) }

    struct Blocks: BlockWork {
        let whole: LinearInputGradient

        @inline(__always)
        func run(_ block: Block, thread: Int) {
            let w = whole, features = block.columns, first = block.rows.lowerBound
            // dinp[rows, features] = dout[rows, :] · weight[:, features]
            Kernels.active.gemm(w.dinp + first * w.inFeatures + features.lowerBound, ldc: w.inFeatures,
                                w.dout + first * w.outFeatures, lda: w.outFeatures, transposeA: false,
                                w.weight + features.lowerBound, ldb: w.inFeatures, transposeB: false,
                                m: block.rows.count, n: features.count, k: w.outFeatures, accumulate: false,
                                workspace: w.threads.gemmWorkspace(thread, own: w.workspace))
        }
    }

    @inline(__always)
    func run(_ rows: Range<Int>, thread: Int) {
        Kernels.active.matmulNN(dinp + rows.lowerBound * inFeatures, dout + rows.lowerBound * outFeatures, weight,
                 m: rows.count, n: inFeatures, k: outFeatures, accumulate: false,
                 workspace: threads.gemmWorkspace(thread, own: workspace))
    }
}
