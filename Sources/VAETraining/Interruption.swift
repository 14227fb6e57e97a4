import Foundation
import VAEFiles

// Signals that ask the job to stop: SIGINT (Ctrl-C), SIGTERM (schedulers; mpirun passes its own
// Ctrl-C and SIGTERM on as SIGTERM), SIGHUP (the terminal or ssh session closed) and SIGUSR1
// (what mpirun forwards to every rank at once, and what Slurm's --signal sends before a time
// limit). The handler only records the signal; the training loop reduces that flag with the
// step's other control values, so every rank stops after the same step and rank 0 writes a
// checkpoint. A second signal of the same kind terminates at once.
// SIGPIPE is ignored: a closed standard output (`vae-dist train | head -1`) must not stop
// training; `Console` drops the lines and says so once on standard error.

nonisolated(unsafe) private var receivedSignal: sig_atomic_t = 0

public enum Interruption {
    public static let stopSignals = [SIGINT, SIGTERM, SIGHUP, SIGUSR1]

    public static func install() {
        for s in stopSignals {
            signal(s) { sig in
                receivedSignal = sig
                signal(sig, SIG_DFL)
            }
        }
        signal(SIGPIPE, SIG_IGN)
        // Writes past a file size limit fail with EFBIG (reported) instead of killing us.
        signal(SIGXFSZ, SIG_IGN)
    }

    /// The signal received, or 0.
    public static var pending: Int32 { receivedSignal }

    public static func name(_ s: Int32) -> String {
        switch s {
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case SIGHUP: "SIGHUP"
        case SIGUSR1: "SIGUSR1"
        default: "signal \(s)"
        }
    }
}

/// Test hooks (VAE_DIST_FAULT): "KIND:RANK:STEP[:COUNT]", comma-separated, where KIND is
/// nan (a NaN gradient), drift (perturb a parameter after the update) or error (throw),
/// applied on RANK at steps STEP ..< STEP + COUNT, counted from 1 over the steps this
/// process attempted (skipped steps included).
/// "hold:STEP[:FILE]" stops every rank before the global step STEP until a stop signal arrives
/// (or FILE exists): a test that signals a run, or changes its folder, at a known step then
/// waits for the line "vae-dist: test hook: holding before step STEP" instead of racing the
/// run's progress, so it passes on a CPU of any speed.
struct FaultInjection {
    struct Fault { var kind: String; var rank: Int; var steps: Range<Int> }
    var faults: [Fault] = []
    /// The global step to hold before, and the file that releases it (nil: a signal only).
    var hold: (step: Int, release: String?)?
    /// Seconds to sleep before every step (step-delay:SECONDS).
    var stepDelay: Double

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        stepDelay = faultStallSeconds("step-delay", environment: environment)
        guard let spec = environment["VAE_DIST_FAULT"] else { return }
        for item in spec.split(separator: ",") {
            let parts = item.split(separator: ":", maxSplits: 2).map(String.init)
            if parts[0] == "hold", parts.count >= 2, let step = Int(parts[1]) {
                hold = (step, parts.count > 2 ? parts[2] : nil)
                continue
            }
            let fields = item.split(separator: ":").map(String.init)
            guard fields.count >= 3, let rank = Int(fields[1]), let step = Int(fields[2]) else { continue }
            let count = max(fields.count > 3 ? Int(fields[3]) ?? 1 : 1, 1)
            faults.append(Fault(kind: fields[0], rank: rank, steps: step ..< step + count))
        }
    }

    func active(_ kind: String, rank: Int, step: Int) -> Bool {
        faults.contains { $0.kind == kind && $0.rank == rank && $0.steps.contains(step) }
    }

    /// The step-delay and hold hooks, before global step `globalStep`.
    func beforeStep(_ globalStep: Int, log: (String) -> Void) {
        if stepDelay > 0 { usleep(useconds_t(min(stepDelay, 60) * 1e6)) }
        guard let hold, hold.step == globalStep else { return }
        log("vae-dist: test hook: holding before step \(globalStep)")
        let deadline = Date().addingTimeInterval(600)
        while Interruption.pending == 0 && Date() < deadline {
            if let file = hold.release, FileManager.default.fileExists(atPath: file) { return }
            usleep(5_000)
        }
    }
}
