import ArgumentParser
import VAECheckpoint
import VAEDistributed
import VAEKernels
import VAETraining

/// --threads of the commands that load a checkpoint and run the model (eval, encode); train
/// has its own in TrainingOptions, with the same default.
struct ThreadsOption: ParsableArguments {
    @Option(help: "Kernel threads per rank (0: the cores this process may use divided among the ranks on this node).")
    var threads = 0

    /// The validated count (one clear line when out of range).
    func validated() throws -> Int {
        if threads < 0 || threads > 1024 { throw TrainingError.option("--threads must be between 0 (automatic) and 1024 (got \(threads))") }
        return threads
    }

    /// The kernel threads to give the model: --threads, or the automatic count when it is 0.
    func kernelThreads() throws -> KernelThreads {
        let count = try validated()
        return KernelThreads(threads: count > 0 ? count : automaticThreadCount())
    }
}

/// The communicator of a command that reads a checkpoint and runs the model over the test set
/// (eval, encode, latent-map, manifold): errors abort every rank through it, and its
/// collectives (the gathers of the posterior, the sums of the losses) wait at most the default
/// --timeout for a stalled rank, which is then named as in training.
func startEvaluationCommunicator() throws -> any Communicator {
    let communicator = try makeCommunicator()
    Fatal.communicator = communicator
    try communicator.armWatchdog(timeout: TrainingOptions().timeout)
    communicator.phase = CollectivePhase(.evaluation, step: 0)
    return communicator
}
