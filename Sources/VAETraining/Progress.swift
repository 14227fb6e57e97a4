import Foundation
import VAEDistributed
import VAEOutputs

/// Rank 0's progress display: a live bar with loss and samples/s on a terminal,
/// nothing in between epochs when output goes to a file or pipe.
struct ProgressBar {
    /// VAE_DIST_PROGRESS=0|1 decides; otherwise a bar when stdout is a terminal and no
    /// MPI launcher started us (Open MPI hands every rank a pty, even when mpirun's own
    /// output goes to a file, so under mpirun the bar is opt-in).
    let interactive: Bool = {
        switch ProcessInfo.processInfo.environment["VAE_DIST_PROGRESS"] {
        case "0": false
        case "1": true
        default: isatty(STDOUT_FILENO) == 1 && !launchedByMPI()
        }
    }()
    var lastDraw = 0.0

    mutating func update(epoch: Int, epochs: Int, step: Int, steps: Int, loss: Double, samplesPerSecond: Double,
                         elapsed: Double, eta: Double) {
        guard interactive else { return }
        let t = now()
        guard t - lastDraw > 0.1 || step == steps else { return }
        lastDraw = t
        let width = 30
        let filled = steps > 0 ? width * step / steps : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = String(format: "\repoch %d/%d [%@] %d/%d loss %.2f  %.0f samples/s  %@ elapsed, ETA %@ ", epoch, epochs, bar, step, steps,
                          loss, samplesPerSecond, clockTime(elapsed), clockTime(eta))
        Console.out(line)
    }

    func finish() {
        guard interactive else { return }
        Console.out("\r\u{1B}[K")
    }
}
