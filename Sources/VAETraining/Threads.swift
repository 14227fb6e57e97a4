import Foundation
import VAECheckpoint
import VAEKernels

// How many kernel threads each rank runs (--threads; 0 picks this default).
//
// The default divides the cores this process may use (its affinity mask) among the ranks on
// this node, so `mpirun -n 4` on 2 cores stays at 1 thread each and a lone `vae-dist train`
// uses every core. A launcher that bound each rank to its own cores already gave the rank its
// share: Open MPI says so with OMPI_MCA_orte_bound_at_launch=1 (its default binding for 2 ranks,
// one core each, or `--map-by slot:PE=2 --bind-to core`, two), and then the mask is used whole.

/// Ranks of this job on this node, as the launcher tells it: Open MPI, MPICH/Hydra, Slurm.
public func localRankCount(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
    for key in ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"] {
        if let value = environment[key].flatMap({ Int($0) }), value > 0 { return value }
    }
    // Slurm's per-node task list, "2(x3),1": the first node's count.
    if let list = environment["SLURM_STEP_TASKS_PER_NODE"] ?? environment["SLURM_TASKS_PER_NODE"],
       let value = Int(list.prefix { $0.isNumber }), value > 0 {
        return value
    }
    return 1
}

/// The default thread count: Slurm's --cpus-per-task when set (the cores each task was given),
/// the whole affinity mask when Open MPI bound this rank to its own cores, else the affinity
/// mask divided among the ranks on this node.
/// VAE_DIST_THREADS, or OMP_NUM_THREADS as PyTorch users set it (its first entry: "4,2" is 4),
/// asks for that many threads per rank when --threads is not given.
public func environmentThreadCount(environment: [String: String] = ProcessInfo.processInfo.environment) -> (count: Int, name: String)? {
    for name in ["VAE_DIST_THREADS", "OMP_NUM_THREADS"] {
        if let text = environment[name], let count = Int(text.prefix { $0 != "," }.trimmingCharacters(in: .whitespaces)), count > 0 {
            return (min(count, 1024), name)
        }
    }
    return nil
}

public func automaticThreadCount(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
    if let (count, _) = environmentThreadCount(environment: environment) { return count }
    if let perTask = environment["SLURM_CPUS_PER_TASK"].flatMap({ Int($0) }), perTask > 0 {
        return min(perTask, availableCores())
    }
    if environment["OMPI_MCA_orte_bound_at_launch"] == "1" { return availableCores() }
    return defaultThreadCount(localRanks: localRankCount(environment: environment))
}

extension TrainingOptions {
    /// --threads, or the default for this process when it is 0.
    public var resolvedThreads: Int { threads > 0 ? threads : automaticThreadCount() }

    /// One warning line when more threads were asked for (--threads, VAE_DIST_THREADS or
    /// OMP_NUM_THREADS) than this process has cores: the threads would wait for each other at
    /// every region of the step, several times slower than fewer threads.
    public func threadsWarning(environment: [String: String] = ProcessInfo.processInfo.environment,
                               cores: Int = availableCores()) -> String? {
        let asked: (count: Int, source: String)
        if threads > 0 {
            asked = (threads, "--threads \(threads)")
        } else if let (count, name) = environmentThreadCount(environment: environment) {
            asked = (count, "\(name)=\(count)")
        } else {
            return nil
        }
        guard asked.count > cores else { return nil }
        return "warning: \(asked.source) asks for more threads than the \(cores) core\(cores == 1 ? "" : "s") this process may use; "
            + "extra threads only wait for the others: use \(cores) or fewer"
    }
}
