import CMPI
import Foundation

// Open MPI moves a nonblocking collective's schedule (libnbc's rounds) forward only inside an
// MPI call, and Debian's build has no progress thread of its own (`ompi_info`: "OMPI progress:
// no"). The gradient buckets started during backward therefore sat still until backward polled
// between two layers, and most of their rounds ran after backward, in `finishReductions`: the
// overlap hid almost nothing, and the overlapped default trained slower than one allreduce after
// backward. Horovod drives MPI from a background thread for the same reason; this is that thread.
//
// It exists only under MPI_THREAD_MULTIPLE (the training thread keeps calling MPI meanwhile: the
// watchdog, the next bucket's MPI_Iallreduce) and only polls the buckets' requests: it calls
// MPI_Testall on them every `interval` microseconds while any is outstanding and sleeps on a
// condition otherwise. libnbc's schedule and its sums are fixed, so the progress thread changes
// when the rounds run, never what they add: runs repeat bit for bit with or without it.
// VAE_DIST_PROGRESS_THREAD=0 turns it off (MPI_Init then asks for no thread support, as before).

/// The background poller of the overlapped reduction's requests.
final class ReductionProgress: @unchecked Sendable {
    /// Guards `requests`, `failure` and `stopping`; signalled when a request arrives or on stop.
    private let condition = NSCondition()
    private var requests: [MPI_Request?] = []
    private var failure: CommunicatorError?
    private var stopping = false
    private let stopped = DispatchSemaphore(value: 0)
    /// Microseconds between two polls while requests are outstanding.
    let interval: UInt32

    /// Whether the environment allows the thread (VAE_DIST_PROGRESS_THREAD=0 turns it off).
    static func enabled(_ environment: [String: String]) -> Bool {
        environment["VAE_DIST_PROGRESS_THREAD"] != "0"
    }

    static let defaultInterval: UInt32 = 50

    init(interval: UInt32 = defaultInterval) {
        self.interval = interval
        requests.reserveCapacity(64)
        let thread = Thread { [self] in run() }
        thread.name = "vae-dist MPI progress"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Hands a started request to the thread.
    func add(_ request: MPI_Request?) {
        condition.lock()
        requests.append(request)
        condition.signal()
        condition.unlock()
    }

    /// Takes back the requests not yet complete (the caller waits for them) and what failed.
    func take(into pending: inout [MPI_Request?]) throws(CommunicatorError) {
        condition.lock()
        pending.append(contentsOf: requests)
        requests.removeAll(keepingCapacity: true)
        let failed = failure
        failure = nil
        condition.unlock()
        if let failed { throw failed }
    }

    /// Whether requests handed to the thread are still incomplete (without any MPI call).
    var outstanding: Bool {
        condition.lock()
        defer { condition.unlock() }
        return !requests.isEmpty
    }

    /// Ends the thread (before MPI_Finalize); returns once it stopped.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
        stopped.wait()
    }

    private func run() {
        while true {
            condition.lock()
            while requests.isEmpty && !stopping { condition.wait() }
            if stopping {
                condition.unlock()
                stopped.signal()
                return
            }
            var done: Int32 = 0
            let count = Int32(requests.count)
            let code = requests.withUnsafeMutableBufferPointer { MPI_Testall(count, $0.baseAddress, &done, nil) }
            if code != vae_mpi_success() {
                // The requests' states are unknown now: stop polling them; the training thread
                // reports the error from `take`.
                failure = CommunicatorError(call: "MPI_Testall (progress thread)",
                                            message: "\(MPICommunicator.errorText(code)) (code \(code))")
                requests.removeAll(keepingCapacity: true)
            } else if done != 0 {
                requests.removeAll(keepingCapacity: true)
            }
            condition.unlock()
            usleep(interval)
        }
    }
}
