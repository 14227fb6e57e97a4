import VAESafetensors

/// Why a checkpoint cannot be read or used; `description` is the line the commands print.
public enum CheckpointError: Error, CustomStringConvertible {
    /// A file that cannot be read (not found, a folder ...).
    case file(path: String, reason: String)
    /// A file that is not a vae-dist checkpoint, or is a corrupt one.
    case checkpoint(path: String, reason: String)

    /// The safetensors reader's error, said of a checkpoint.
    public init(_ error: SafetensorsError) {
        switch error {
        case .invalid(let path, let reason): self = .checkpoint(path: path, reason: "not a valid safetensors file: \(reason)")
        case .file(let path, let problem): self = .file(path: path, reason: problem.description)
        case .tensor(let path, let reason): self = .checkpoint(path: path, reason: reason)
        }
    }

    public var description: String {
        switch self {
        case .file(let path, let reason): "\(path): \(reason)"
        case .checkpoint(let path, let reason): "checkpoint \(path): \(reason)"
        }
    }
}
