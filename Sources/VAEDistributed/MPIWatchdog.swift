import CMPI
import Foundation

/// The stall watchdog's side channel over MPI (the logic is in StallWatchdog.swift). On a
/// duplicated communicator, so its messages never match the training's:
///   tag 1  heartbeats: every rank sends rank 0, and rank 0 sends every rank, the sequence
///          number of each collective it enters (Isend, 24 bytes; one Irecv stays posted per peer);
///   tag 2  rank 0's stall report to the ranks that arrived: which ranks are missing;
///   tag 3  their acknowledgement, so rank 0 aborts the job only after they printed their line.
final class MPIWatchdog {
    let rank: Int
    let size: Int
    let timeout: Double
    private var comm: MPI_Comm
    /// The ranks this rank hears heartbeats from: every other rank on rank 0, rank 0 elsewhere.
    let peers: [Int]
    private(set) var arrivals: Arrivals
    private(set) var sequence: Int64 = 0
    private var receives: [MPI_Request?]
    private let receiveWords: UnsafeMutablePointer<Int64>  // [peers.count, 3]
    private var sends: [MPI_Request?] = []
    private let sendWords: UnsafeMutablePointer<Int64>     // [ringSlots, 3]
    private static let ringSlots = 4096
    private static let maxPendingSends = 2048
    private var nextSlot = 0
    /// Rank 0's report: [phase kind, step, missing count, missing ranks...].
    private let reportWords: UnsafeMutablePointer<Int64>
    private var reportRequest: MPI_Request?
    private var finished = false

    init(world: MPI_Comm, rank: Int, size: Int, timeout: Double) throws(CommunicatorError) {
        self.rank = rank
        self.size = size
        self.timeout = timeout
        var dup: MPI_Comm? = nil
        try MPICommunicator.check(MPI_Comm_dup(world, &dup), "MPI_Comm_dup (stall watchdog)")
        comm = dup!
        try MPICommunicator.check(vae_mpi_errors_return(comm), "MPI_Comm_set_errhandler (stall watchdog)")
        peers = rank == 0 ? Array(1..<size) : [0]
        arrivals = Arrivals(ranks: size)
        receiveWords = .allocate(capacity: max(peers.count, 1) * Heartbeat.wordCount)
        sendWords = .allocate(capacity: Self.ringSlots * Heartbeat.wordCount)
        reportWords = .allocate(capacity: 3 + size)
        receives = Array(repeating: vae_mpi_request_null(), count: peers.count)
        reportRequest = vae_mpi_request_null()
        sends.reserveCapacity(Self.maxPendingSends + size)
        for i in peers.indices { try postReceive(i) }
        if rank != 0 {
            try MPICommunicator.check(MPI_Irecv(reportWords, Int32(3 + size), vae_mpi_int64(), 0, 2, comm, &reportRequest),
                                      "MPI_Irecv (stall report)")
        }
    }

    deinit {
        receiveWords.deallocate()
        sendWords.deallocate()
        reportWords.deallocate()
    }

    private func postReceive(_ i: Int) throws(CommunicatorError) {
        try MPICommunicator.check(MPI_Irecv(receiveWords + i * Heartbeat.wordCount, Int32(Heartbeat.wordCount), vae_mpi_int64(),
                                            Int32(peers[i]), 1, comm, &receives[i]), "MPI_Irecv (heartbeat)")
    }

    /// Before a collective: its sequence number, announced to the peers.
    func enter(_ phase: CollectivePhase) throws(CommunicatorError) -> Int64 {
        sequence += 1
        try drain()
        try pruneSends()
        // Sends pile up only towards a peer that stopped receiving; the collective then stalls
        // and the deadline fires, so skipping its heartbeats loses nothing.
        if sends.count < Self.maxPendingSends {
            let slot = sendWords + (nextSlot % Self.ringSlots) * Heartbeat.wordCount
            nextSlot += 1
            Heartbeat(sequence: sequence, phase: phase).write(to: slot)
            for peer in peers {
                var request: MPI_Request? = vae_mpi_request_null()
                try MPICommunicator.check(MPI_Isend(slot, Int32(Heartbeat.wordCount), vae_mpi_int64(), Int32(peer), 1, comm, &request),
                                          "MPI_Isend (heartbeat)")
                sends.append(request)
            }
        }
        return sequence
    }

    /// Records every heartbeat that has arrived.
    func drain() throws(CommunicatorError) {
        for i in peers.indices {
            while true {
                var flag: Int32 = 0
                try MPICommunicator.check(MPI_Test(&receives[i], &flag, vae_mpi_status_ignore()), "MPI_Test (heartbeat)")
                if flag == 0 { break }
                arrivals.record(Heartbeat(words: receiveWords + i * Heartbeat.wordCount), from: peers[i])
                try postReceive(i)
            }
        }
    }

    private func pruneSends() throws(CommunicatorError) {
        var kept = 0
        for i in sends.indices {
            var flag: Int32 = 0
            try MPICommunicator.check(MPI_Test(&sends[i], &flag, vae_mpi_status_ignore()), "MPI_Test (heartbeat send)")
            if flag == 0 {
                sends[kept] = sends[i]
                kept += 1
            }
        }
        sends.removeLast(sends.count - kept)
    }

    /// While a collective waits (past its first moments): a report from rank 0, a warning at
    /// half the timeout, the stall at the deadline. Throws the stall (its line printed).
    func check(_ clock: inout StallClock, now: Double, sequence waitedFor: Int64, phase: CollectivePhase,
               call: StaticString) throws(CommunicatorError) {
        try drain()
        if rank != 0, try reportArrived() { try reported(phase: phase, call: "\(call)") }
        switch clock.event(at: now) {
        case .none: return
        case .warn:
            let missing = arrivals.missing(at: waitedFor, among: peers)
            // Rank 0 names the missing ranks; another rank speaks only when rank 0 itself is missing.
            if rank == 0 || !missing.isEmpty {
                say("warning", StallReport.warning(phase: phase, missing: missing, arrivals: arrivals,
                                                   waited: now - clock.start, timeout: timeout))
            }
        case .expire:
            try stalled(sequence: waitedFor, phase: phase, call: "\(call)")
        }
    }

    private func reportArrived() throws(CommunicatorError) -> Bool {
        var flag: Int32 = 0
        try MPICommunicator.check(MPI_Test(&reportRequest, &flag, vae_mpi_status_ignore()), "MPI_Test (stall report)")
        return flag != 0
    }

    /// The deadline passed in collective `sequence`.
    private func stalled(sequence waitedFor: Int64, phase: CollectivePhase, call: String) throws(CommunicatorError) -> Never {
        let missing = arrivals.missing(at: waitedFor, among: peers)
        if rank == 0 {
            let line = missing.isEmpty ? StallReport.unexplained(phase: phase, timeout: timeout, call: call)
                : StallReport.stalled(phase: phase, missing: missing, arrivals: arrivals, timeout: timeout, call: call)
            say("error", line)
            // Tell the ranks that arrived who is missing; abort once they printed it (or after 3 s).
            let live = peers.filter { !missing.contains($0) }
            reportWords[0] = phase.kind.rawValue
            reportWords[1] = Int64(phase.step)
            reportWords[2] = Int64(missing.count)
            for (i, r) in missing.enumerated() { reportWords[3 + i] = Int64(r) }
            var requests: [MPI_Request?] = []
            var acks = [Int64](repeating: 0, count: live.count)
            for (i, peer) in live.enumerated() {
                var send: MPI_Request? = vae_mpi_request_null(), ack: MPI_Request? = vae_mpi_request_null()
                _ = MPI_Isend(reportWords, Int32(3 + missing.count), vae_mpi_int64(), Int32(peer), 2, comm, &send)
                _ = acks.withUnsafeMutableBufferPointer { MPI_Irecv($0.baseAddress! + i, 1, vae_mpi_int64(), Int32(peer), 3, comm, &ack) }
                requests += [send, ack]
            }
            waitBriefly(&requests, seconds: 3)
            throw CommunicatorError(stall: line, call: call)
        }
        if !missing.isEmpty {
            // Rank 0 itself has not arrived.
            let line = StallReport.stalled(phase: phase, missing: missing, arrivals: arrivals, timeout: timeout, call: call)
            say("error", line)
            throw CommunicatorError(stall: line, call: call)
        }
        // Rank 0 arrived: it names the missing ranks (its deadline may come a little later).
        let grace = min(max(2, timeout / 2), 10)
        let start = MPI_Wtime()
        while MPI_Wtime() - start < grace {
            if try reportArrived() { try reported(phase: phase, call: call) }
            usleep(1000)
        }
        let line = StallReport.unexplained(phase: phase, timeout: timeout, call: call)
            .replacingOccurrences(of: "although rank 0 heard every rank arrive", with: "and rank 0, which arrived, named no rank")
        say("error", line)
        throw CommunicatorError(stall: line, call: call)
    }

    /// Rank 0's report arrived: print it, acknowledge, and wait for rank 0 to end the job.
    private func reported(phase: CollectivePhase, call: String) throws(CommunicatorError) -> Never {
        let count = Int(reportWords[2])
        let missing = (0..<min(max(count, 0), size)).map { Int(reportWords[3 + $0]) }
        let reportedPhase = CollectivePhase(CollectivePhase.Kind(rawValue: reportWords[0]) ?? phase.kind, step: Int(reportWords[1]))
        let line = missing.isEmpty ? StallReport.unexplained(phase: reportedPhase, timeout: timeout, call: call)
            : StallReport.reported(phase: reportedPhase, missing: missing, timeout: timeout, call: call)
        say("error", line)
        var word: Int64 = 1
        var requests: [MPI_Request?] = [vae_mpi_request_null()]
        _ = MPI_Isend(&word, 1, vae_mpi_int64(), 0, 3, comm, &requests[0])
        waitBriefly(&requests, seconds: 1)
        // Rank 0 aborts the job now; should it not, this rank does.
        usleep(3_000_000)
        throw CommunicatorError(stall: line, call: call)
    }

    private func waitBriefly(_ requests: inout [MPI_Request?], seconds: Double) {
        let start = MPI_Wtime()
        var done: Int32 = 0
        while MPI_Wtime() - start < seconds {
            _ = requests.withUnsafeMutableBufferPointer { MPI_Testall(Int32($0.count), $0.baseAddress, &done, nil) }
            if done != 0 { return }
            usleep(1000)
        }
    }

    /// One line on stderr, tagged with the rank as every fatal error is.
    private func say(_ kind: String, _ line: String) {
        FileHandle.standardError.write(Data("vae-dist: rank \(rank): \(kind): \(line)\n".utf8))
    }

    /// Before MPI_Finalize: cancel the posted receives, let the last heartbeats go.
    func finish() {
        guard !finished else { return }
        finished = true
        for i in receives.indices where receives[i] != vae_mpi_request_null() {
            MPI_Cancel(&receives[i])
            MPI_Wait(&receives[i], vae_mpi_status_ignore())
        }
        if rank != 0 && reportRequest != vae_mpi_request_null() {
            MPI_Cancel(&reportRequest)
            MPI_Wait(&reportRequest, vae_mpi_status_ignore())
        }
        waitBriefly(&sends, seconds: 1)
        var handle: MPI_Comm? = comm
        MPI_Comm_free(&handle)
    }
}
