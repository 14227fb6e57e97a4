import Foundation

// Which algorithm Open MPI's nonblocking allreduce runs. Every allreduce of vae-dist is
// MPI_Iallreduce in place (the stall watchdog polls it), which Open MPI 4.1 serves from
// coll/libnbc; for an in-place request libnbc's own choice is always the binomial tree: reduce to
// rank 0, then broadcast, the whole buffer each round, 2 ceil(log2 p) (alpha + n beta). Its MCA
// parameter coll_libnbc_iallreduce_algorithm selects a bandwidth-optimal one instead:
//   rabenseifner (3)  reduce-scatter by recursive halving, allgather by recursive doubling:
//                     2 log2(p) alpha + 2 (p-1)/p n beta (p a power of two; otherwise 2(p - pof2)
//                     ranks first fold into pof2, and the result goes back: about n beta more);
//                     libnbc takes the ring for buffers of fewer elements than pof2;
//   ring (1)          2 (p-1) alpha + 2 (p-1)/p n beta on any p.
// Measured on 4 "hosts" at 1 Gbit/s (docs/performance.md): 2.6 MB in 41-43 ms (Rabenseifner), 50-54
// (ring), 59-60 (binomial). coll/han (hierarchical) and coll/adapt offer no MPI_Iallreduce in 4.1:
// with their priority raised the call still runs libnbc's binomial tree.
// Each algorithm adds every element in an order fixed by p and the rank (not by timing): runs repeat bit for bit.
//
// The parameter is global to the process and read at MPI_Init, so it is set as an environment
// variable before MPI_Init, and only when the user's Open MPI configuration says nothing about it:
// an OMPI_MCA_coll_libnbc_iallreduce_algorithm already in the environment (mpirun --mca passes its
// settings that way too) or a line for it in an MCA parameter file Open MPI reads (the files named
// by OMPI_MCA_mca_base_param_files, else $HOME/.openmpi/mca-params.conf and
// /etc/openmpi/openmpi-mca-params.conf) wins; an environment variable would otherwise outrank
// the file. OMPI_MCA_coll_libnbc_iallreduce_algorithm=0 brings back libnbc's own choice (the
// binomial tree: the overlapped default before this).

public enum AllreduceAlgorithm: Int, Sendable, CustomStringConvertible {
    case libnbcDefault = 0, ring = 1, binomial = 2, rabenseifner = 3, recursiveDoubling = 4

    public var description: String {
        switch self {
        case .libnbcDefault: "libnbc's own choice: the binomial tree in place"
        case .ring: "ring"
        case .binomial: "binomial tree"
        case .rabenseifner: "Rabenseifner"
        case .recursiveDoubling: "recursive doubling"
        }
    }

    /// vae-dist's choice for `ranks`: Rabenseifner on a power of two (log2 p latencies) and beyond
    /// 32 ranks; the ring on other counts up to 32, where Rabenseifner's folding step would move up
    /// to the whole buffer once more and the ring's 2 (p-1) latencies are still few.
    public static func chosen(ranks: Int) -> AllreduceAlgorithm {
        ranks & (ranks - 1) == 0 || ranks > 32 ? .rabenseifner : .ring
    }
}

/// What decided the algorithm of the allreduce, for the start-up line.
public struct AllreduceAlgorithmChoice: Sendable, CustomStringConvertible {
    public static let parameter = "coll_libnbc_iallreduce_algorithm"
    public let algorithm: AllreduceAlgorithm?
    /// "vae-dist", or where the user's setting came from.
    public let source: String

    public var description: String {
        let name = algorithm.map(\.description) ?? "unknown"
        return source == "vae-dist" ? name : "\(name), from \(source)"
    }

    /// Sets OMPI_MCA_coll_libnbc_iallreduce_algorithm for `ranks` ranks unless the environment or
    /// an MCA parameter file sets it; call before MPI_Init.
    public static func apply(ranks: Int, environment: [String: String] = ProcessInfo.processInfo.environment,
                             files: [String]? = nil) -> AllreduceAlgorithmChoice {
        let key = "OMPI_MCA_" + parameter
        if let value = environment[key] {
            return AllreduceAlgorithmChoice(algorithm: parse(value), source: "\(key)=\(value)")
        }
        for path in files ?? parameterFiles(environment: environment) {
            if let value = fileSetting(path: path) {
                return AllreduceAlgorithmChoice(algorithm: parse(value), source: "\(path): \(parameter) = \(value)")
            }
        }
        let algorithm = AllreduceAlgorithm.chosen(ranks: ranks)
        setenv(key, String(algorithm.rawValue), 0)
        return AllreduceAlgorithmChoice(algorithm: algorithm, source: "vae-dist")
    }

    /// A value as Open MPI accepts it: the number or the enumerator's name.
    static func parse(_ value: String) -> AllreduceAlgorithm? {
        let v = value.trimmingCharacters(in: .whitespaces)
        if let n = Int(v) { return AllreduceAlgorithm(rawValue: n) }
        return ["ignore": .libnbcDefault, "ring": .ring, "binomial": .binomial, "rabenseifner": .rabenseifner,
                "recursive_doubling": .recursiveDoubling][v.lowercased()]
    }

    /// The parameter files Open MPI 4.1 reads, in its order.
    static func parameterFiles(environment: [String: String]) -> [String] {
        for key in ["OMPI_MCA_mca_base_param_files", "OMPI_MCA_mca_param_files"] {
            if let list = environment[key] { return list.split(separator: ":").map(String.init) }
        }
        let home = environment["HOME"].map { ["\($0)/.openmpi/mca-params.conf"] } ?? []
        return home + ["/etc/openmpi/openmpi-mca-params.conf"]
    }

    /// The value a parameter file gives the parameter (`name = value` lines, # comments).
    static func fileSetting(path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let parts = content.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0].trimmingCharacters(in: .whitespaces) == parameter {
                return parts[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }
}
