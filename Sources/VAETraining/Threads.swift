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
public func automaticThreadCount(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
    if let perTask = environment["SLURM_CPUS_PER_TASK"].flatMap({ Int($0) }), perTask > 0 {
        return min(perTask, availableCores())
    }
    if environment["OMPI_MCA_orte_bound_at_launch"] == "1" { return availableCores() }
    return defaultThreadCount(localRanks: localRankCount(environment: environment))
}

extension TrainingOptions {
    /// --threads, or the default for this process when it is 0.
    public var resolvedThreads: Int { threads > 0 ? threads : automaticThreadCount() }
}
