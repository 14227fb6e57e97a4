import Foundation

// SIGINT (Ctrl-C) and SIGTERM (schedulers, mpirun on Ctrl-C) ask the job to stop:
// the handler only records the signal; the training loop reduces that flag with
// the step's other control values, so every rank stops after the same step and
// rank 0 writes a checkpoint. A second signal terminates at once.

nonisolated(unsafe) private var receivedSignal: sig_atomic_t = 0

public enum Interruption {
    public static func install() {
        for s in [SIGINT, SIGTERM] {
            signal(s) { sig in
                receivedSignal = sig
                signal(sig, SIG_DFL)
            }
        }
        // Writes past a file size limit fail with EFBIG (reported) instead of killing us.
        signal(SIGXFSZ, SIG_IGN)
    }

    /// The signal received, or 0.
    public static var pending: Int32 { receivedSignal }

    public static func name(_ s: Int32) -> String {
        switch s { case SIGINT: "SIGINT"; case SIGTERM: "SIGTERM"; default: "signal \(s)" }
    }
}

/// Test hooks of file access (VAE_DIST_FAULT, comma-separated): "KIND:SECONDS" pauses that long;
/// KIND is stall-write (halfway through writing a checkpoint) or stall-read (before reading
/// one, as on a hung filesystem). 0 when not set.
func faultStallSeconds(_ kind: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> Double {
    guard let spec = environment["VAE_DIST_FAULT"] else { return 0 }
    for item in spec.split(separator: ",") where item.hasPrefix(kind + ":") {
        return Double(item.dropFirst(kind.count + 1)) ?? 0
    }
    return 0
}

/// Test hooks (VAE_DIST_FAULT): "KIND:RANK:STEP[:COUNT]", comma-separated, where KIND is
/// nan (a NaN gradient), drift (perturb a parameter after the update) or error (throw),
/// applied on RANK at steps STEP ..< STEP + COUNT, counted from 1 over the steps this
/// process attempted (skipped steps included).
struct FaultInjection {
    struct Fault { var kind: String; var rank: Int; var steps: Range<Int> }
    var faults: [Fault] = []

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard let spec = environment["VAE_DIST_FAULT"] else { return }
        for item in spec.split(separator: ",") {
            let parts = item.split(separator: ":").map(String.init)
            guard parts.count >= 3, let rank = Int(parts[1]), let step = Int(parts[2]) else { continue }
            let count = max(parts.count > 3 ? Int(parts[3]) ?? 1 : 1, 1)
            faults.append(Fault(kind: parts[0], rank: rank, steps: step ..< step + count))
        }
    }

    func active(_ kind: String, rank: Int, step: Int) -> Bool {
        faults.contains { $0.kind == kind && $0.rank == rank && $0.steps.contains(step) }
    }
}
