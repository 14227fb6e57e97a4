import VAEDistributed
import VAEKernels

// How gradients and parameters are kept identical across ranks (see also the step in
// Trainer.trainEpoch): the deterministic reduction and the parameter agreement check.

extension Trainer {
    // MARK: Deterministic reduction
    //
    // Floating-point sums depend on their order, and the order of an allreduce depends on
    // the rank count, so 1, 2 and 4 ranks normally agree only to rounding, which Adam can
    // amplify over an epoch (measured on Fashion-MNIST: 0.2 after 468 steps). With
    // --deterministic every global batch is cut into 4 fixed groups g0..g3 of consecutive
    // examples; each group's gradient is computed alone (GEMM rows do not interact, and the
    // weight gradient sums over exactly the group's rows), and the groups are always combined
    // as (g0 + g1) + (g2 + g3): locally on 1 rank; by an allreduce of two partial sums on 2
    // ranks (a + b = b + a exactly); by an allgather and the same tree on 4 ranks.

    /// This rank's groups' gradients, each computed straight into its own buffer, summed in
    /// tree order into model.gradients.
    func computeGroupGradients(lossScale: Float, recon: inout Double, kl: inout Double) {
        let localGroups = TrainingOptions.deterministicGroups / communicator.size
        let rows = localBatch / localGroups
        let p = model.parameterCount
        for g in 0..<localGroups {
            // One group per rank (4 ranks): its gradient is the rank's partial sum already.
            let target = localGroups == 1 ? model.gradients : groupGradients[g]
            target.update(repeating: 0, count: p)
            forwardBackward(row: g * rows, rows: rows, lossScale: lossScale, into: target, recon: &recon, kl: &kl)
        }
        switch localGroups {
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
    func reduceDeterministically() throws {
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

    /// Every rank must hold bit-identical parameters: compare checksums of their bits.
    func checkParametersAgree() throws {
        let size = communicator.size
        let sum = bitChecksum(model.parameters, count: model.parameterCount)
        var table = [Double](repeating: 0, count: 2 * size)  // 32-bit halves: exact in Double
        table[2 * communicator.rank] = Double(sum >> 32)
        table[2 * communicator.rank + 1] = Double(sum & 0xFFFF_FFFF)
        try table.withUnsafeMutableBufferPointer { p throws(CommunicatorError) in
            try communicator.allreduceSum(p.baseAddress!, count: 2 * size)
        }
        let sums = (0..<size).map { UInt64(table[2 * $0]) << 32 | UInt64(table[2 * $0 + 1]) }
        let differing = (1..<size).filter { sums[$0] != sums[0] }
        if !differing.isEmpty {
            throw TrainingError.training("parameters differ across ranks at step \(optimizer.step): rank\(differing.count == 1 ? "" : "s") \(differing.map(String.init).joined(separator: ", ")) disagree with rank 0 (checksum \(String(sums[differing[0]], radix: 16)) vs \(String(sums[0], radix: 16))); the ranks no longer train one model (a hardware fault, or a rank that skipped a step)")
        }
    }
}
