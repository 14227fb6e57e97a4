// Where a checkpoint stands in training: what --resume continues from. It travels in the
// checkpoint's string metadata (safetensors allows only strings there), written and read in
// this one place; a value that is present but malformed is an error, never a silent 0.
//
//   epoch           completed epochs
//   step            optimizer steps taken (the global step)
//   epoch_step      steps of epoch `epoch + 1` already done (a stop inside an epoch), with
//   epoch_recon, epoch_kl, epoch_examples, epoch_seconds   their global sums so far, and
//   epoch_penalty, epoch_mi, epoch_tc, epoch_dwkl          the training regime's (LossRegime.swift)
//   bad_steps       consecutive skipped (non-finite) steps at the checkpoint
//   stopped_by      the signal that stopped the run, when one did

/// Global sums over the finished steps of an epoch (carried across a mid-epoch resume).
public struct PartialEpoch: Equatable, Sendable {
    public var recon = 0.0
    public var kl = 0.0
    public var examples = 0
    public var seconds = 0.0
    public var penalty = 0.0, mi = 0.0, tc = 0.0, dwkl = 0.0

    public init(recon: Double = 0, kl: Double = 0, examples: Int = 0, seconds: Double = 0,
                penalty: Double = 0, mi: Double = 0, tc: Double = 0, dwkl: Double = 0) {
        self.recon = recon
        self.kl = kl
        self.examples = examples
        self.seconds = seconds
        self.penalty = penalty
        self.mi = mi
        self.tc = tc
        self.dwkl = dwkl
    }
}

public struct ResumeState: Equatable, Sendable {
    public var epoch = 0
    public var step = 0
    public var epochStep = 0
    public var partial = PartialEpoch()
    public var badSteps = 0
    public var stoppedBy: String?

    public init(epoch: Int = 0, step: Int = 0, epochStep: Int = 0, partial: PartialEpoch = PartialEpoch(),
                badSteps: Int = 0, stoppedBy: String? = nil) {
        self.epoch = epoch
        self.step = step
        self.epochStep = epochStep
        self.partial = partial
        self.badSteps = badSteps
        self.stoppedBy = stoppedBy
    }

    var metadata: [String: String] {
        var m = ["epoch": String(epoch), "step": String(step), "bad_steps": String(badSteps)]
        if epochStep > 0 {
            m["epoch_step"] = String(epochStep)
            m["epoch_recon"] = "\(partial.recon)"
            m["epoch_kl"] = "\(partial.kl)"
            m["epoch_examples"] = String(partial.examples)
            m["epoch_seconds"] = "\(partial.seconds)"
            for (key, value) in [("epoch_penalty", partial.penalty), ("epoch_mi", partial.mi), ("epoch_tc", partial.tc),
                                 ("epoch_dwkl", partial.dwkl)] where value != 0 {
                m[key] = "\(value)"
            }
        }
        if let stoppedBy { m["stopped_by"] = stoppedBy }
        return m
    }

    init(metadata m: [String: String], path: String) throws(CheckpointError) {
        func integer(_ key: String, required: Bool = false) throws(CheckpointError) -> Int {
            guard let text = m[key] else {
                if required { throw .checkpoint(path: path, reason: "metadata \(key) is missing") }
                return 0
            }
            guard let value = Int(text), value >= 0, value < 1 << 40 else {
                throw .checkpoint(path: path, reason: "metadata \(key) = '\(text)' is not a count")
            }
            return value
        }
        func real(_ key: String) throws(CheckpointError) -> Double {
            guard let text = m[key] else { return 0 }
            guard let value = Double(text), value.isFinite else {
                throw .checkpoint(path: path, reason: "metadata \(key) = '\(text)' is not a finite number")
            }
            return value
        }
        epoch = try integer("epoch", required: true)
        step = try integer("step", required: true)
        epochStep = try integer("epoch_step")
        partial = PartialEpoch(recon: try real("epoch_recon"), kl: try real("epoch_kl"),
                               examples: try integer("epoch_examples"), seconds: try real("epoch_seconds"),
                               penalty: try real("epoch_penalty"), mi: try real("epoch_mi"), tc: try real("epoch_tc"),
                               dwkl: try real("epoch_dwkl"))
        badSteps = try integer("bad_steps")
        stoppedBy = m["stopped_by"]
    }
}
