import CMPI
import Foundation

/// The stall watchdog's side channel over MPI (the logic is in StallWatchdog.swift). On a
/// duplicated communicator, so its messages never match the training's. Messages are 4 Int64
/// words (`Heartbeat` + a query number):
///   tag 1  heartbeat: when a rank enters the first collective of a new phase (a step, the
///          evaluation...), it tells rank 0, and rank 0 tells every rank (one Isend per step,
///          one Irecv per peer kept posted): rank 0 knows who has not even started a step;
///   tag 4  query, tag 5 answer: at half the timeout and at the deadline a rank asks its peers
///          which collective they are in; a rank waiting in a collective answers from its poll
///          loop, a stopped one never does. This finds a rank stopped between two collectives of
///          one step at no cost per step;
///   tag 2  rank 0's stall report to the ranks that answered: which ranks are missing;
///   tag 3  their acknowledgement, so rank 0 aborts the job only after they printed their line.
final class MPIWatchdog {
    let rank: Int
    let size: Int
    /// Seconds a collective may wait; 0: no deadline, and no heartbeats are sent.
    var timeout: Double
    private var comm: MPI_Comm
    /// The ranks this rank talks to: every other rank on rank 0, rank 0 elsewhere.
    let peers: [Int]
    /// The phase each peer last announced (heartbeats).
    private(set) var arrivals: Arrivals
    /// Collectives entered so far (the k-th is the same call on every rank).
    private(set) var sequence: Int64 = 0
    private var announced: CollectivePhase?
    private static let words = 4
    // Receives kept posted, one per peer and kind, each with its 4 words.
    private var heartbeats: [MPI_Request?], queries: [MPI_Request?], answers: [MPI_Request?]
    private let heartbeatWords, queryWords, answerWords: UnsafeMutablePointer<Int64>
    private var indices: [Int32]
    // Sends: heartbeats from a ring of slots; answers and queries from one slot each per peer.
    private var sends: [MPI_Request?] = []
    private let sendWords: UnsafeMutablePointer<Int64>
    private static let ringSlots = 1024
    private static let maxPendingSends = 512
    private var nextSlot = 0
    private var announcements = 0
    private let replyWords: UnsafeMutablePointer<Int64>  // [peers, 4]
    /// This rank's current question to its peers, and their answers to it (nil: none yet).
    private var query: Int64 = 0
    private var replies: [Heartbeat?]
    /// Where this rank waits now (what it answers).
    private var waiting = Heartbeat(sequence: 0, phase: .startup)
    /// A warning being prepared: asked at `asked`, printed once answered or `answerGrace` later.
    private var pendingWarning: (asked: Double, waited: Double)?
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
        let n = peers.count
        arrivals = Arrivals(ranks: size)
        heartbeats = Array(repeating: vae_mpi_request_null(), count: n)
        queries = heartbeats
        answers = heartbeats
        heartbeatWords = .allocate(capacity: n * Self.words)
        queryWords = .allocate(capacity: n * Self.words)
        answerWords = .allocate(capacity: n * Self.words)
        replyWords = .allocate(capacity: n * Self.words)
        indices = Array(repeating: 0, count: n)
        replies = Array(repeating: nil, count: n)
        sendWords = .allocate(capacity: Self.ringSlots * Self.words)
        reportWords = .allocate(capacity: 3 + size)
        reportRequest = vae_mpi_request_null()
        sends.reserveCapacity(Self.maxPendingSends + 4 * size)
        for i in 0..<n {
            try post(&heartbeats[i], heartbeatWords, i, tag: 1)
            try post(&queries[i], queryWords, i, tag: 4)
            try post(&answers[i], answerWords, i, tag: 5)
        }
        if rank != 0 {
            try MPICommunicator.check(MPI_Irecv(reportWords, Int32(3 + size), vae_mpi_int64(), 0, 2, comm, &reportRequest),
                                      "MPI_Irecv (stall report)")
        }
    }

    deinit {
        for p in [heartbeatWords, queryWords, answerWords, replyWords, sendWords, reportWords] { p.deallocate() }
    }

    private func post(_ request: inout MPI_Request?, _ words: UnsafeMutablePointer<Int64>, _ i: Int, tag: Int32) throws(CommunicatorError) {
        try MPICommunicator.check(MPI_Irecv(words + i * Self.words, Int32(Self.words), vae_mpi_int64(), Int32(peers[i]), tag, comm, &request),
                                  "MPI_Irecv (stall watchdog)")
    }

    private func send(_ words: UnsafeMutablePointer<Int64>, to peer: Int, tag: Int32) throws(CommunicatorError) {
        var request: MPI_Request? = vae_mpi_request_null()
        try MPICommunicator.check(MPI_Isend(words, Int32(Self.words), vae_mpi_int64(), Int32(peer), tag, comm, &request),
                                  "MPI_Isend (stall watchdog)")
        sends.append(request)
    }

    /// Completed receives of one kind: calls `handle(peer index, its words)` and posts it again.
    private func receive(_ requests: inout [MPI_Request?], _ words: UnsafeMutablePointer<Int64>, tag: Int32,
                         _ handle: (Int, UnsafeMutablePointer<Int64>) throws(CommunicatorError) -> Void) throws(CommunicatorError) {
        while true {
            var count: Int32 = 0
            let n = Int32(requests.count)
            let code = requests.withUnsafeMutableBufferPointer { r in
                indices.withUnsafeMutableBufferPointer { MPI_Testsome(n, r.baseAddress, &count, $0.baseAddress, nil) }
            }
            try MPICommunicator.check(code, "MPI_Testsome (stall watchdog)")
            if count <= 0 { return }  // none completed (or MPI_UNDEFINED: none active)
            for k in 0..<Int(count) {
                let i = Int(indices[k])
                try handle(i, words + i * Self.words)
                try post(&requests[i], words, i, tag: tag)
            }
        }
    }

    /// Before a collective: its sequence number; the first collective of a new phase is announced.
    func enter(_ phase: CollectivePhase) throws(CommunicatorError) -> Int64 {
        sequence += 1
        guard timeout > 0, phase != announced else { return sequence }
        announced = phase
        announcements += 1
        // Collect the peers' heartbeats every 16 steps (and in every stalled wait): a test that
        // finds nothing new yields the core when ranks oversubscribe it, which costs a time
        // slice; 16 queued 32-byte messages per peer cost nothing.
        if announcements % 16 == 0 {
            try receive(&heartbeats, heartbeatWords, tag: 1) { i, w throws(CommunicatorError) in
                arrivals.record(Heartbeat(words: w), from: peers[i])
            }
        }
        if sends.count >= 64 {
            var done: Int32 = 0
            let code = sends.withUnsafeMutableBufferPointer { MPI_Testall(Int32($0.count), $0.baseAddress, &done, nil) }
            try MPICommunicator.check(code, "MPI_Testall (stall watchdog)")
            if done != 0 { sends.removeAll(keepingCapacity: true) }
        }
        // Sends pile up only towards a peer that stopped receiving; a collective then stalls and
        // the deadline fires, so a skipped heartbeat loses nothing.
        if sends.count < Self.maxPendingSends {
            let slot = sendWords + (nextSlot % Self.ringSlots) * Self.words
            nextSlot += 1
            Heartbeat(sequence: sequence, phase: phase).write(to: slot)
            slot[3] = 0
            for peer in peers { try send(slot, to: peer, tag: 1) }
        }
        return sequence
    }

    /// Heartbeats in, queries answered, answers collected, rank 0's report heard.
    private func serve() throws(CommunicatorError) {
        try receive(&heartbeats, heartbeatWords, tag: 1) { i, w throws(CommunicatorError) in
            arrivals.record(Heartbeat(words: w), from: peers[i])
        }
        try receive(&queries, queryWords, tag: 4) { i, w throws(CommunicatorError) in
            let reply = replyWords + i * Self.words
            waiting.write(to: reply)
            reply[3] = w[3]
            try send(reply, to: peers[i], tag: 5)
        }
        try receive(&answers, answerWords, tag: 5) { i, w throws(CommunicatorError) in
            if w[3] == query { replies[i] = Heartbeat(words: w) }
        }
        if rank != 0 {
            var flag: Int32 = 0
            try MPICommunicator.check(MPI_Test(&reportRequest, &flag, vae_mpi_status_ignore()), "MPI_Test (stall report)")
            if flag != 0 { try reported() }
        }
    }

    /// Asks every peer where it waits (the answers arrive through `serve`).
    private func ask() throws(CommunicatorError) {
        query += 1
        for i in replies.indices { replies[i] = nil }
        let slot = sendWords + (nextSlot % Self.ringSlots) * Self.words
        nextSlot += 1
        slot[0] = 0; slot[1] = 0; slot[2] = 0; slot[3] = query
        for peer in peers { try send(slot, to: peer, tag: 4) }
    }

    private var answerGrace: Double { min(1, timeout / 8) }

    /// Peers that have not arrived at collective `waitedFor` (`ranksNotArrived`). Another rank
    /// names rank 0 only when it does not answer: rank 0, waiting too, hears every rank and names
    /// them (a rank that rank 0 leaves behind in an earlier collective is not the missing one).
    private func missing(at waitedFor: Int64) -> [Int] {
        rank == 0 ? ranksNotArrived(peers, answers: replies, at: waitedFor) : (replies[0] == nil ? [0] : [])
    }

    private var everyoneAnswered: Bool { replies.allSatisfy { $0 != nil } }

    /// While a collective waits (past its first moments): serve the side channel, warn at half
    /// the timeout, end the job at the deadline (throws the stall, its line printed).
    func check(_ clock: inout StallClock, now: Double, sequence waitedFor: Int64, phase: CollectivePhase,
               call: StaticString) throws(CommunicatorError) {
        waiting = Heartbeat(sequence: waitedFor, phase: phase)
        try serve()
        if let warning = pendingWarning, everyoneAnswered || now - warning.asked >= answerGrace {
            pendingWarning = nil
            let absent = missing(at: waitedFor)
            // Rank 0 names the missing ranks; another rank speaks only when rank 0 does not answer.
            if rank == 0 || !absent.isEmpty {
                say("warning", StallReport.warning(phase: phase, missing: absent, arrivals: arrivals, waited: warning.waited, timeout: timeout))
            }
        }
        switch clock.event(at: now) {
        case .none: return
        case .warn:
            try ask()
            pendingWarning = (now, now - clock.start)
        case .expire:
            try stalled(sequence: waitedFor, phase: phase, call: "\(call)")
        }
    }

    /// Asks again and waits for the answers (serving the channel meanwhile).
    private func askAndWait() throws(CommunicatorError) {
        try ask()
        let start = MPI_Wtime()
        while !everyoneAnswered && MPI_Wtime() - start < max(answerGrace, 0.5) {
            usleep(1000)
            try serve()
        }
    }

    /// The deadline passed in collective `waitedFor`.
    private func stalled(sequence waitedFor: Int64, phase: CollectivePhase, call: String) throws(CommunicatorError) -> Never {
        try askAndWait()
        let absent = missing(at: waitedFor)
        if rank == 0 {
            let line = absent.isEmpty ? StallReport.unexplained(phase: phase, timeout: timeout, call: call)
                : StallReport.stalled(phase: phase, missing: absent, arrivals: arrivals, timeout: timeout, call: call)
            say("error", line)
            // Tell the ranks that answered who is missing; abort once they printed it (or after 3 s).
            let live = peers.filter { !absent.contains($0) }
            reportWords[0] = phase.kind.rawValue
            reportWords[1] = Int64(phase.step)
            reportWords[2] = Int64(absent.count)
            for (i, r) in absent.enumerated() { reportWords[3 + i] = Int64(r) }
            var requests: [MPI_Request?] = []
            // The acknowledgements land in memory that outlives every pending receive: the job ends
            // right after, whether or not they all arrived, so it is never freed.
            let acks = UnsafeMutablePointer<Int64>.allocate(capacity: max(live.count, 1))
            for (i, peer) in live.enumerated() {
                var send: MPI_Request? = vae_mpi_request_null(), ack: MPI_Request? = vae_mpi_request_null()
                _ = MPI_Isend(reportWords, Int32(3 + absent.count), vae_mpi_int64(), Int32(peer), 2, comm, &send)
                _ = MPI_Irecv(acks + i, 1, vae_mpi_int64(), Int32(peer), 3, comm, &ack)
                requests += [send, ack]
            }
            waitBriefly(&requests, seconds: 3)
            throw CommunicatorError(stall: line, call: call)
        }
        if !absent.isEmpty {
            // Rank 0 itself did not answer.
            let line = StallReport.stalled(phase: phase, missing: absent, arrivals: arrivals, timeout: timeout, call: call)
            say("error", line)
            throw CommunicatorError(stall: line, call: call)
        }
        // Rank 0 answered: it names the missing ranks (its deadline may come a little later).
        let start = MPI_Wtime()
        while MPI_Wtime() - start < min(max(2, timeout / 2), 10) {
            usleep(1000)
            try serve()  // returns only without a report
        }
        let line = StallReport.unexplained(phase: phase, timeout: timeout, call: call,
                                           reason: "and rank 0, which is waiting too, named no rank")
        say("error", line)
        throw CommunicatorError(stall: line, call: call)
    }

    /// Rank 0's report arrived: print it, acknowledge, and wait for rank 0 to end the job.
    private func reported() throws(CommunicatorError) -> Never {
        let count = Int(reportWords[2])
        let absent = (0..<min(max(count, 0), size)).map { Int(reportWords[3 + $0]) }
        let phase = CollectivePhase(CollectivePhase.Kind(rawValue: reportWords[0]) ?? waiting.phase.kind, step: Int(reportWords[1]))
        let call = "the same collective"
        let line = absent.isEmpty ? StallReport.unexplained(phase: phase, timeout: timeout, call: call)
            : StallReport.reported(phase: phase, missing: absent, timeout: timeout, call: call)
        say("error", line)
        // The acknowledgement is sent from memory that outlives the send (never freed: the job ends).
        let word = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        word.initialize(to: 1)
        var requests: [MPI_Request?] = [vae_mpi_request_null()]
        _ = MPI_Isend(word, 1, vae_mpi_int64(), 0, 3, comm, &requests[0])
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
        Console.err("vae-dist: rank \(rank): \(kind): \(line)\n")
    }

    /// Before MPI_Finalize: cancel the posted receives, let the last messages go.
    func finish() {
        guard !finished else { return }
        finished = true
        for i in peers.indices {
            for r in [0, 1, 2] {
                var request = r == 0 ? heartbeats[i] : r == 1 ? queries[i] : answers[i]
                if request != vae_mpi_request_null() {
                    MPI_Cancel(&request)
                    MPI_Wait(&request, vae_mpi_status_ignore())
                }
            }
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
