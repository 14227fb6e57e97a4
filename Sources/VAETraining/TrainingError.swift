import VAECheckpoint
import VAEFiles

// Errors the training layer throws: each carries what was wrong and where, and a
// hint when there is an obvious next step. Only the executable decides to exit.

public enum TrainingError: Error, CustomStringConvertible {
    /// A bad option value or combination.
    case option(String)
    /// A file that cannot be read or written.
    case file(path: String, reason: String)
    /// A checkpoint that is malformed or does not fit this run.
    case checkpoint(path: String, reason: String)
    /// Ranks disagree or training diverged.
    case training(String)

    /// A file that could not be written, as the training layer reports it.
    public init(_ error: FileError) { self = .file(path: error.path, reason: error.reason) }

    /// A checkpoint that could not be read or used, as the training layer reports it.
    public init(_ error: CheckpointError) {
        switch error {
        case .file(let path, let reason): self = .file(path: path, reason: reason)
        case .checkpoint(let path, let reason): self = .checkpoint(path: path, reason: reason)
        }
    }

    /// The same error with `hint` appended to its reason.
    func adding(_ hint: String) -> TrainingError {
        switch self {
        case .option(let message): .option(message + hint)
        case .file(let path, let reason): .file(path: path, reason: reason + hint)
        case .checkpoint(let path, let reason): .checkpoint(path: path, reason: reason + hint)
        case .training(let message): .training(message + hint)
        }
    }

    public var description: String {
        switch self {
        case .option(let message): message
        case .file(let path, let reason): "\(path): \(reason)"
        case .checkpoint(let path, let reason): "checkpoint \(path): \(reason)"
        case .training(let message): message
        }
    }
}

/// A start-up check that failed the same way on every rank (options, data, checkpoint): rank 0
/// reports `error` as one line and every rank finalizes MPI and exits 1, with no MPI_Abort. A
/// check that fails on some ranks only stays an ordinary error (MPI_Abort ends the job).
public struct FailedOnEveryRank: Error, CustomStringConvertible {
    /// Rank 0's error (on the other ranks their own, or what rank 0 told them).
    public let error: any Error
    public var description: String { "\(error)" }
}
