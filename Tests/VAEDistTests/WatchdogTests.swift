import Foundation
import Testing
import VAEDistributed
import VAETraining
import VAECheckpoint

/// The stall watchdog's pieces that need no MPI (StallWatchdog.swift): the clock of a wait,
/// who has not arrived, the heartbeat's wire form, the lines a stall prints, --timeout checks.
/// Tests/integration/watchdog_test.sh stops real ranks.
@Suite struct WatchdogTests {
    @Test func theClockWarnsOnceAtHalfAndExpiresAtTheTimeout() {
        var clock = StallClock(timeout: 6, start: 100)
        #expect(clock.event(at: 100) == .none && clock.event(at: 102.9) == .none)
        #expect(clock.event(at: 103) == .warn)
        #expect(clock.event(at: 104) == .none, "warns once")
        #expect(clock.event(at: 105.99) == .none && clock.event(at: 106) == .expire && clock.event(at: 500) == .expire)
        var off = StallClock(timeout: 0, start: 0)
        #expect([1, 1e6, 1e9].allSatisfy { off.event(at: $0) == .none }, "--timeout 0 never fires")
    }

    @Test func pollingSpinsBrieflyThenSleeps() {
        #expect(StallClock.pause(afterWaiting: 0) == 0 && StallClock.pause(afterWaiting: 0.0019) == 0)
        #expect(StallClock.pause(afterWaiting: 0.01) == 50 && StallClock.pause(afterWaiting: 5) == 1000)
    }

    @Test func silentRanksAreMissingAndOtherwiseThoseBehind() {
        let at = { (sequence: Int64) in Heartbeat(sequence: sequence, phase: CollectivePhase(.step, step: 5)) }
        #expect(ranksNotArrived([1, 2, 3], answers: [at(10), at(9), nil], at: 10) == [3], "rank 2 one behind waits for silent rank 3")
        #expect(ranksNotArrived([1, 2, 3], answers: [nil, at(9), nil], at: 10) == [1, 3])
        #expect(ranksNotArrived([1, 2, 3], answers: [at(10), at(9), at(8)], at: 10) == [2, 3], "all answered: those behind")
        #expect(ranksNotArrived([1, 2, 3], answers: [at(10), at(11), at(10)], at: 10).isEmpty)
        #expect(ranksNotArrived([0], answers: [nil], at: 1) == [0], "a silent rank 0")
        var arrivals = Arrivals(ranks: 4)
        arrivals.record(at(10), from: 1)
        arrivals.record(at(8), from: 1)  // older: ignored
        #expect(arrivals.last[1]?.sequence == 10 && arrivals.last[2] == nil)
    }

    @Test func aHeartbeatRoundTripsThroughItsWords() {
        let beat = Heartbeat(sequence: 123_456_789_012, phase: CollectivePhase(.evaluation, step: 4680))
        var words = [Int64](repeating: 0, count: Heartbeat.wordCount)
        words.withUnsafeMutableBufferPointer { beat.write(to: $0.baseAddress!) }
        #expect(words.withUnsafeBufferPointer { Heartbeat(words: $0.baseAddress!) } == beat)
    }

    @Test func theLinesNameTheRanksAndTheStep() {
        var arrivals = Arrivals(ranks: 4)
        arrivals.record(Heartbeat(sequence: 3, phase: CollectivePhase(.step, step: 36)), from: 1)
        arrivals.record(Heartbeat(sequence: 7, phase: CollectivePhase(.step, step: 37)), from: 3)
        let phase = CollectivePhase(.step, step: 37)
        let line = StallReport.stalled(phase: phase, missing: [1, 3], arrivals: arrivals, timeout: 6, call: "MPI_Iallreduce(float)")
        #expect(line.hasPrefix("stall in step 37: ranks 1, 3 have not arrived after 6 s (--timeout 6; waiting in MPI_Iallreduce(float); "))
        #expect(line.contains("rank 1 was last in step 36") && line.contains("rank 3 entered an earlier collective of step 37, not this one"))
        #expect(line.hasSuffix("the last checkpoint is intact, continue with --resume"))
        let one = StallReport.reported(phase: phase, missing: [2], timeout: 2.5, call: "MPI_Ibarrier")
        #expect(one.hasPrefix("stall in step 37: rank 2 has not arrived after 2.5 s (--timeout 2.5; waiting in MPI_Ibarrier; named by rank 0)"))
        let warning = StallReport.warning(phase: CollectivePhase(.evaluation, step: 120), missing: [2], arrivals: Arrivals(ranks: 4),
                                          waited: 150, timeout: 300)
        #expect(warning == "stall in the evaluation after step 120: waited 150.0 s for rank 2 (nothing heard from rank 2 since start-up); the job ends at --timeout 300 s")
        #expect(CollectivePhase(.checkpoint, step: 60).description == "the checkpoint gather after step 60")
    }

    @Test func badTimeoutsAreClearErrors() {
        for bad in [-1, .nan, .infinity, -0.5] as [Double] {
            var o = TrainingOptions()
            o.timeout = bad
            #expect { try o.validate(worldSize: 2) } throws: { "\($0)".contains("--timeout must be 0 (no stall watchdog) or a positive number of seconds") }
        }
        for good in [0, 0.5, 300] as [Double] {
            var o = TrainingOptions()
            o.timeout = good
            #expect(throws: Never.self) { try o.validate(worldSize: 2) }
        }
    }

    /// One process has nothing to watch: arming and phases change nothing.
    @Test func theSingleProcessCommunicatorIgnoresTheWatchdog() throws {
        let c = SingleProcessCommunicator()
        c.armWatchdog(timeout: 1)
        c.phase = CollectivePhase(.step, step: 3)
        var x: [Float] = [1, 2]
        x.withUnsafeMutableBufferPointer { c.allreduceSum($0.baseAddress!, count: 2) }
        #expect(x == [1, 2] && c.phase == .startup)
    }
}
