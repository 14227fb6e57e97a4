import ArgumentParser
import _VAEBuildInfo
import Foundation
import VAEData
import VAEDistributed
import VAEKernelDispatch
import VAEKernels
import VAEModel
import VAECheckpoint
import VAETraining

/// The release this executable reports with `vae-dist --version`.
let vaeDistVersion = "0.1.0"
/// The release and the source commit (Launch/setup.sh embeds it; "unknown" without it).
let buildIdentity = BuildIdentity(version: vaeDistVersion, commit: String(cString: vae_dist_build_commit()))

@main
struct VAEDist: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vae-dist",
        abstract: "Data-parallel Variational Autoencoder training over MPI.",
        discussion: """
            Run one process for debugging, or launch with mpirun / srun for data-parallel \
            training: `mpirun -n 4 vae-dist train`.
            """,
        version: "\(vaeDistVersion) (commit \(buildIdentity.commit))",
        subcommands: [Train.self, Eval.self, Sample.self, Reconstruct.self, Interpolate.self, Traverse.self,
                      LatentMap.self, Manifold.self, Inspect.self, Encode.self, Bench.self])

    /// Parses and runs. Command bodies report their own errors through `Fatal`;
    /// what reaches this catch is a parsing error: one line, exit code 1.
    static func main() {
        flushDenormals()  // before any thread starts: every thread computes without denormals (FloatEnvironment.swift)
        // A VAE_DIST_ISA this CPU cannot honour is refused before anything runs.
        if case .failure(let error) = Kernels.selection { Fatal.exit(error.description) }
        if let word = CommandLine.arguments.dropFirst().first, let message = unknownCommand(word) { Fatal.exit(message) }
        // The kernels are timed on the default model's step unless the command names its own
        // workload first (train and bench do).
        let model = ModelConfig(), batch = TrainingOptions().batchSize
        Kernels.prepare(KernelWorkload(name: "\(describe(model)) x \(batch) rows", shapes: trainingGEMMShapes(config: model, batch: batch)))
        do {
            var command = try parseAsRoot(joiningNegativeValues(Array(CommandLine.arguments.dropFirst())))
            try command.run()
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }  // --help, --version
            Fatal.exit(message(for: error) + " (see vae-dist help)")
        }
    }
}

/// The one way out on a fatal error: a message naming the rank under MPI, then
/// MPI_Abort so no rank is left waiting in a collective.
enum Fatal {
    nonisolated(unsafe) static var communicator: (any Communicator)?

    static func exit(_ message: String) -> Never {
        RunLock.current?.release()  // the run ends here: the next one needs no note about it
        if let communicator, communicator.size > 1 {
            Console.err("vae-dist: rank \(communicator.rank): error: \(message)\n")
            communicator.abort(code: 1)
        }
        if communicator == nil, let rank = launcherRank(), rank != 0 {
            // Parsing failed before MPI started: every rank sees the same error; rank 0 reports it.
            Foundation.exit(1)
        }
        Console.err("vae-dist: error: \(message)\n")
        Foundation.exit(1)
    }

    /// An error every rank met alike (`FailedOnEveryRank`): rank 0 prints it once, every rank
    /// finalizes MPI and exits 1. (mpirun then says in its own words that a process returned a
    /// non-zero exit code; there is no MPI_Abort banner.)
    static func exitOnEveryRank(_ message: String) -> Never {
        RunLock.current?.release()
        if let communicator {
            if communicator.isRoot { Console.err("vae-dist: error: \(message)\n") }
            communicator.finalize()
            Foundation.exit(1)
        }
        exit(message)
    }

    /// A stall (already reported by the watchdog): end the whole job.
    static func abortAfterStall() -> Never {
        communicator?.abort(code: 1)
        Foundation.exit(1)
    }

    static func launcherRank() -> Int? {
        let env = ProcessInfo.processInfo.environment
        for key in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"] {
            if let value = env[key], let rank = Int(value) { return rank }
        }
        return nil
    }
}


/// "unknown command 'trian'; did you mean 'train'?" for a first word that is neither an option
/// nor a subcommand (swift-argument-parser would say "Unexpected argument 'trian'").
func unknownCommand(_ word: String) -> String? {
    guard !word.hasPrefix("-") else { return nil }
    let names = VAEDist.configuration.subcommands.map { $0._commandName } + ["help"]
    guard !names.contains(word) else { return nil }
    let hint = nearestName(word, among: names).map { "; did you mean '\($0)'?" } ?? ""
    return "unknown command '\(word)'\(hint) (commands: \(names.dropLast().joined(separator: ", ")); see vae-dist help)"
}
