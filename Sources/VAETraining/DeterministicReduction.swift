import VAECheckpoint
import VAEDistributed
import VAEKernels
import VAEModel

// --deterministic (a GradientReduction). Floating-point sums depend on their order, and the
// order of an allreduce depends on the rank count, so 1, 2 and 4 ranks normally agree only to
// rounding, which Adam can amplify over an epoch. Here every global batch is cut into 4 fixed
// groups g0..g3 of consecutive examples; the step computes each group's gradient alone, into the
// buffer `gradientTarget(group:)` gives it (GEMM rows do not interact, and the weight gradient
// sums over exactly the group's rows), and the groups are always combined as (g0 + g1) + (g2 + g3):
// locally on 1 rank; by an allreduce of two partial sums on 2 ranks (a + b = b + a exactly);
// by an allgather and the same tree on 4 ranks. With `sharded`, each rank then updates only its
// block of the parameters and the blocks are allgathered: Adam is elementwise, so the result is
// the same bits.

final class DeterministicReduction: GradientReduction {
    static let groups = TrainingOptions.deterministicGroups
    let communicator: any Communicator
    let model: VAE
    let shards: Shards?
    /// One gradient buffer per local group when a rank holds more than one group.
    let groupGradients: [UnsafeMutablePointer<Float>]
    /// 4 ranks: the 4 partial sums gathered from every rank [4, parameterCount].
    let gathered: UnsafeMutablePointer<Float>

    /// Every rank holds the whole reduced gradient after `reduce`, sharded or not: its norm is
    /// summed whole, the same on any rank count (the bits of a --deterministic run do not
    /// depend on how many ranks ran it).
    func squaredGradientNorm() throws -> Double { sumOfSquares(model.gradients, count: model.parameterCount) }

    init(model: VAE, communicator: any Communicator, sharded: Bool) {
        self.model = model
        self.communicator = communicator
        let count = model.parameterCount
        let localGroups = Self.groups / communicator.size
        groupGradients = localGroups > 1 ? (0..<localGroups).map { _ in allocateAligned(count) } : []
        gathered = allocateAligned(communicator.size == 4 ? 4 * count : 1)
        shards = sharded && communicator.size > 1 ? Shards(total: count, ranks: communicator.size) : nil
    }

    deinit {
        for g in groupGradients { g.deallocate() }
        gathered.deallocate()
    }

    var name: String {
        "deterministic: \(Self.groups) fixed groups summed as (g0 + g1) + (g2 + g3)" + (shards == nil ? "" : ", sharded optimizer")
    }

    var updateRange: Range<Int> { shards?.range(communicator.rank) ?? 0..<model.parameterCount }

    /// Each of this rank's groups writes its own buffer over (a micro-batch is one or more whole
    /// groups, TrainingOptions.validate, so --accumulate changes no bit: each group's gradient is
    /// computed alone either way); one group per rank (4 ranks) writes model.gradients, the
    /// rank's partial sum already. The step runs every group's forward of a micro-batch before
    /// any backward, so a regime over the global batch (which refuses --accumulate) sees the
    /// same latents on any rank count (`LocalBatch.prepareObjective`).
    func gradientTarget(group: Int) -> GradientTarget {
        GradientTarget(gradients: groupGradients.isEmpty ? model.gradients : groupGradients[group], accumulate: false)
    }

    /// This rank's groups summed in tree order into model.gradients.
    func finishLocalGradient() throws {
        let p = model.parameterCount
        switch groupGradients.count {
        case 4:
            vectorAdd(groupGradients[0], groupGradients[0], groupGradients[1], count: p)
            vectorAdd(groupGradients[2], groupGradients[2], groupGradients[3], count: p)
            vectorAdd(model.gradients, groupGradients[0], groupGradients[2], count: p)
        case 2:
            vectorAdd(model.gradients, groupGradients[0], groupGradients[1], count: p)
        default:
            break
        }
    }

    /// Combines the ranks' partial sums in the same tree order on every rank count.
    func reduce() throws {
        let p = model.parameterCount
        switch communicator.size {
        case 1: return
        case 2: try communicator.allreduceSum(model.gradients, count: p)
        default:
            try communicator.allgather(model.gradients, count: p, into: gathered)
            vectorAdd(gathered, gathered, gathered + p, count: p)
            vectorAdd(gathered + 2 * p, gathered + 2 * p, gathered + 3 * p, count: p)
            vectorAdd(model.gradients, gathered, gathered + 2 * p, count: p)
        }
    }

    func shareParameters() throws {
        if let shards { try communicator.allgatherInPlace(model.parameters, shards: shards) }
    }

    func shareOptimizerState(_ optimizer: AdamOptimizer) throws {
        if let shards { try gatherMoments(optimizer, shards: shards) }
    }
}
