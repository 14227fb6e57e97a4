import Foundation

// The stall watchdog's logic, apart from MPI (MPIWatchdog.swift drives it over a duplicated
// communicator). A rank that stops answering (SIGSTOP, a stuck NFS read, a paused VM) would
// otherwise leave every other rank inside a collective forever. As PyTorch's process groups
// and Horovod's stall check do, every collective gets a deadline (`--timeout`): a warning
// names the missing ranks at half of it, and at the deadline the ranks that can still talk
// name them and the job ends. Collectives are numbered as they are entered (the k-th is the
// same call on every rank); to know WHO is missing, a waiting rank asks its peers (rank 0 all
// ranks, the others rank 0) which collective they wait in: a rank that answers with an earlier
// number, or not at all, has not arrived. Heartbeats at the start of each step tell where a
// missing rank was last seen.

/// What the ranks are doing when they enter a collective: the words of a stall report.
public struct CollectivePhase: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Int64, Sendable {
        case startup = 0, step, evaluation, checkpoint, finish
    }
    public var kind: Kind
    /// .step: the optimizer step being computed; otherwise the last step completed.
    public var step: Int

    public init(_ kind: Kind, step: Int) {
        self.kind = kind
        self.step = step
    }

    public static let startup = CollectivePhase(.startup, step: 0)

    public var description: String {
        switch kind {
        case .startup: "start-up"
        case .step: "step \(step)"
        case .evaluation: "the evaluation after step \(step)"
        case .checkpoint: "the checkpoint gather after step \(step)"
        case .finish: "the end of training (step \(step))"
        }
    }
}

/// A rank's word that it entered collective number `sequence` during `phase`.
public struct Heartbeat: Sendable, Equatable {
    public var sequence: Int64
    public var phase: CollectivePhase

    public init(sequence: Int64, phase: CollectivePhase) {
        self.sequence = sequence
        self.phase = phase
    }

    /// On the wire: three Int64 (sequence, phase kind, step).
    public static let wordCount = 3
    public func write(to words: UnsafeMutablePointer<Int64>) {
        words[0] = sequence
        words[1] = phase.kind.rawValue
        words[2] = Int64(phase.step)
    }
    public init(words: UnsafePointer<Int64>) {
        sequence = words[0]
        phase = CollectivePhase(CollectivePhase.Kind(rawValue: words[1]) ?? .startup, step: Int(words[2]))
    }
}

/// The deadline of one wait in a collective: it spins for a moment, then sleeps between polls
/// (a rank waiting for a slow or stopped peer does not burn a core); it warns once at half the
/// timeout and expires at the timeout. A timeout of 0 never warns nor expires.
public struct StallClock: Sendable {
    public enum Event: Sendable, Equatable { case none, warn, expire }
    public let timeout: Double
    public let start: Double
    public private(set) var warned = false

    public init(timeout: Double, start: Double) {
        self.timeout = timeout
        self.start = start
    }

    public mutating func event(at now: Double) -> Event {
        guard timeout > 0 else { return .none }
        let waited = now - start
        if waited >= timeout { return .expire }
        if !warned && waited >= timeout / 2 {
            warned = true
            return .warn
        }
        return .none
    }

    /// Microseconds to sleep before the next poll after waiting `waited` seconds: none for the
    /// first 2 ms (most collectives finish by then), 50 us up to 100 ms, then 1 ms.
    public static func pause(afterWaiting waited: Double) -> UInt32 {
        if waited < 0.002 { return 0 }
        return waited < 0.1 ? 50 : 1000
    }
}

/// The last heartbeat heard from every rank (rank 0 hears all ranks; the others hear rank 0):
/// where a missing rank was last seen.
public struct Arrivals: Sendable {
    public private(set) var last: [Heartbeat?]

    public init(ranks: Int) { last = Array(repeating: nil, count: ranks) }

    public mutating func record(_ beat: Heartbeat, from rank: Int) {
        // Messages of one sender arrive in order; keep the newest anyway.
        if let known = last[rank], known.sequence >= beat.sequence { return }
        last[rank] = beat
    }

}

/// The ranks of `peers` that have not arrived at collective `sequence`, from their answers (in the
/// same order; nil: none came). A rank that did not answer is stopped or stuck outside MPI: when
/// any is silent, only the silent ones are named. A rank that answers is alive, and when it waits
/// in an earlier collective it usually waits for a silent one: a rank stopped inside a nonblocking
/// barrier can let the barrier complete on some ranks and not on others. Only when every peer
/// answered are those in an earlier collective named.
public func ranksNotArrived(_ peers: [Int], answers: [Heartbeat?], at sequence: Int64) -> [Int] {
    let silent = zip(peers, answers).filter { $0.1 == nil }.map(\.0)
    if !silent.isEmpty { return silent }
    return zip(peers, answers).filter { $0.1!.sequence < sequence }.map(\.0)
}

/// The lines a stall prints, one per rank that can still talk.
public enum StallReport {
    /// "rank 1" or "ranks 1, 3".
    public static func ranks(_ ranks: [Int]) -> String {
        (ranks.count == 1 ? "rank " : "ranks ") + ranks.map(String.init).joined(separator: ", ")
    }

    /// Where a missing rank was last heard from.
    static func lastSeen(_ ranks: [Int], _ arrivals: Arrivals, now phase: CollectivePhase) -> String {
        ranks.map { r in
            guard let beat = arrivals.last[r] else { return "nothing heard from rank \(r) since start-up" }
            if beat.phase == phase { return "rank \(r) entered an earlier collective of \(phase), not this one" }
            return "rank \(r) was last in \(beat.phase)"
        }.joined(separator: ", ")
    }

    static func timeoutText(_ timeout: Double) -> String {
        timeout == timeout.rounded() ? String(Int(timeout)) : String(timeout)
    }

    /// The line of a rank that knows who is missing (rank 0 for every rank, a rank for rank 0).
    public static func stalled(phase: CollectivePhase, missing: [Int], arrivals: Arrivals, timeout: Double, call: String) -> String {
        notArrived(phase: phase, missing: missing, timeout: timeout, call: call, source: lastSeen(missing, arrivals, now: phase))
    }

    /// The line of a rank told by rank 0 who is missing.
    public static func reported(phase: CollectivePhase, missing: [Int], timeout: Double, call: String) -> String {
        notArrived(phase: phase, missing: missing, timeout: timeout, call: call, source: "named by rank 0")
    }

    private static func notArrived(phase: CollectivePhase, missing: [Int], timeout: Double, call: String, source: String) -> String {
        "stall in \(phase): \(ranks(missing)) \(missing.count == 1 ? "has" : "have") not arrived after "
            + "\(timeoutText(timeout)) s (--timeout \(timeoutText(timeout)); waiting in \(call); \(source)); "
            + "ending the job: the last checkpoint is intact, continue with --resume"
    }

    /// Every rank arrived (as far as anyone heard) but the collective did not complete. `reason`:
    /// what the rank saying it knows (rank 0 heard every rank; another rank: rank 0 named nobody).
    public static func unexplained(phase: CollectivePhase, timeout: Double, call: String,
                                   reason: String = "although rank 0 heard every rank arrive") -> String {
        "stall in \(phase): \(call) did not complete within --timeout \(timeoutText(timeout)) s \(reason) "
            + "(a network or MPI failure?); ending the job: the last checkpoint is intact, continue with --resume"
    }

    /// The warning at half the timeout.
    public static func warning(phase: CollectivePhase, missing: [Int], arrivals: Arrivals, waited: Double, timeout: Double) -> String {
        let who = missing.isEmpty ? "the collective to complete" : "\(ranks(missing)) (\(lastSeen(missing, arrivals, now: phase)))"
        return String(format: "stall in %@: waited %.1f s for %@; the job ends at --timeout %@ s",
                      phase.description, waited, who, timeoutText(timeout))
    }
}

/// --timeout: seconds, 0 (off) or a positive finite number.
public func validateTimeout(_ seconds: Double) -> String? {
    if seconds.isNaN || seconds < 0 || seconds.isInfinite {
        return "--timeout must be 0 (no stall watchdog) or a positive number of seconds (got \(seconds))"
    }
    return nil
}
