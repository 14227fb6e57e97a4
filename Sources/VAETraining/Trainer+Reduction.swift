import VAEDistributed
import VAEKernels

// The check that ranks still train one model (the reductions are in GradientReduction.swift).

extension Trainer {
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
