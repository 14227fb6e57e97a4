import Foundation
import VAEAnalysis
import VAECheckpoint
import VAEData
import VAEDistributed
import VAEOutputs

// One epoch: the loop over steps, what each step's reduced control block asks for (a skip, the
// sums, a stop inside the epoch), the log line or progress bar, then the evaluation, the
// epoch's metrics and rank 0's files.

/// Where this process stands in an epoch as its steps run (the sums come from the reduced control
/// blocks, the same on every rank; the times are this rank's).
struct EpochProgress {
    /// Global sums of the steps done so far in this epoch (a resumed checkpoint's included).
    var sums: PartialEpoch
    /// The first step this process runs (0, or where a resumed checkpoint stopped).
    let firstStep: Int
    let start: Double
    var times = StepTimes()
    var bar = ProgressBar()

    /// Examples per second of this process's steps, after step index `s`.
    func samplesPerSecond(after s: Int, batchSize: Int) -> Double {
        Double((s + 1 - firstStep) * batchSize) / (now() - start)
    }
}

extension Trainer {
    /// Trains epoch `e`, from the resumed checkpoint's step inside it when there is one.
    func trainEpoch(_ e: Int) throws {
        let plan = EpochPlan(exampleCount: dataset.train.count, globalBatchSize: options.batchSize, rank: communicator.rank,
                             worldSize: communicator.size, generator: generator, epoch: e)
        var progress = EpochProgress(sums: resumeState.partial, firstStep: resumeState.epochStep, start: now())
        resumeState = ResumeState()
        for s in progress.firstStep..<plan.steps {
            let control = try step(s, of: plan, epoch: e, times: &progress.times)
            try apply(control, epoch: e, to: &progress.sums)
            report(control, step: s, of: plan, epoch: e, &progress)
            if control.stopRequests > 0, try stopInsideEpoch(e, after: s, of: plan, &progress) { return }
        }
        let epochSeconds = now() - progress.start
        progress.bar.finish()
        try finishEpoch(e, plan: plan, progress, seconds: epochSeconds)
    }

    /// What a step's reduced control block asks of every rank alike: a step with a non-finite
    /// rank was skipped (too many in a row end the run); a good one adds its sums, and every
    /// --check-every steps the ranks compare their parameters.
    func apply(_ control: StepControl, epoch e: Int, to sums: inout PartialEpoch) throws {
        if control.nonFiniteRanks > 0 {
            // Skipped on every rank: no rank applied a non-finite gradient.
            consecutiveBadSteps += 1
            log("warning: step \(optimizer.step + 1) (epoch \(e)): non-finite loss or gradients on \(Int(control.nonFiniteRanks)) rank(s), step skipped (\(consecutiveBadSteps) in a row)")
            if consecutiveBadSteps >= options.maxBadSteps {
                throw TrainingError.training("stopped after \(consecutiveBadSteps) consecutive steps with non-finite loss or gradients (epoch \(e), step \(optimizer.step + 1)); lower --lr or check the data. The last checkpoint holds finite parameters: fix and continue with --resume")
            }
            return
        }
        consecutiveBadSteps = 0
        sums.recon += control.recon
        sums.kl += control.kl
        sums.penalty += control.regime.penalty
        sums.mi += control.regime.mi
        sums.tc += control.regime.tc
        sums.dwkl += control.regime.dwkl
        sums.examples += options.batchSize
        if faults.active("drift", rank: communicator.rank, step: attemptedSteps) { model.parameters[0] += 1e-3 }
        if communicator.size > 1 && options.checkEvery > 0 && optimizer.step % options.checkEvery == 0 {
            try checkParametersAgree()
        }
    }

    /// After step index `s`: every logEvery good steps rank 0's step row (steps.jsonl and
    /// TensorBoard) and, where there is no progress bar (mpirun, a log file), a log line; the
    /// progress bar on rank 0 at a terminal. Both show the run's elapsed time and ETA.
    func report(_ control: StepControl, step s: Int, of plan: EpochPlan, epoch e: Int, _ progress: inout EpochProgress) {
        let loss = trainLoss(progress.sums) / Double(max(progress.sums.examples, 1))
        let samplesPerSecond = progress.samplesPerSecond(after: s, batchSize: options.batchSize)
        let elapsed = now() - runClock.start
        let ran = optimizer.step - runClock.step
        let eta = ran > 0 ? elapsed / Double(ran) * Double(plan.steps * options.epochs - optimizer.step) : .nan
        let every = logEvery(stepsPerEpoch: plan.steps, elapsed: elapsed, ran: ran)
        if control.nonFiniteRanks == 0 && optimizer.step % every == 0 {
            if communicator.isRoot { writeStepRow(control, epoch: e, samplesPerSecond: samplesPerSecond) }
            if !progress.bar.interactive {
                log(String(format: "step %d (epoch %d, %d/%d)  loss %.2f  lr %.3g  %.0f samples/s  elapsed %@  ETA %@", optimizer.step, e, s + 1, plan.steps,
                           loss, optimizer.hyper.learningRate, samplesPerSecond, clockTime(elapsed), clockTime(eta)))
            }
        }
        if communicator.isRoot && progress.bar.interactive {
            progress.bar.update(epoch: e, epochs: options.epochs, step: s + 1, steps: plan.steps, loss: loss,
                                samplesPerSecond: samplesPerSecond, elapsed: elapsed, eta: eta)
        }
    }

    /// --log-every, or when it is 0 a row about every 10 s: every steps-per-epoch / 25 steps
    /// (at least 25 rows an epoch) until this process has run 10 steps, then fixed at the
    /// steps that take about 10 s at their measured pace, capped at steps-per-epoch / 25.
    /// Only rank 0 writes rows and lines, so no other rank needs to agree on it.
    func logEvery(stepsPerEpoch: Int, elapsed: Double, ran: Int) -> Int {
        if options.logEvery > 0 { return options.logEvery }
        let perEpoch = max(1, stepsPerEpoch / 25)
        if let automaticLogEvery { return automaticLogEvery }
        guard ran >= 10 else { return perEpoch }
        let tenSeconds = Int((10 * Double(ran) / max(elapsed, 1e-9)).rounded())
        automaticLogEvery = max(1, min(perEpoch, tenSeconds))
        return automaticLogEvery!
    }

    /// Rank 0: the step just taken as a row of steps.jsonl and TensorBoard scalars at its global step.
    func writeStepRow(_ control: StepControl, epoch e: Int, samplesPerSecond: Double) {
        let n = Double(options.batchSize)
        var row = StepMetrics()
        row.epoch = e
        row.step = optimizer.step
        row.recon = control.recon / n
        row.kl = control.kl / n
        row.loss = (control.recon + (regime.isPlain ? Double(modelConfig.beta) * control.kl : control.regime.penalty)) / n
        row.learningRate = Double(optimizer.hyper.learningRate)
        row.samplesPerSecond = samplesPerSecond
        row.gradNorm = options.clipGradNorm > 0 ? lastGradNorm : nil
        // Not synced per row: the epoch's files are; a crash loses at most a few rows.
        try? stepsFile?.write(contentsOf: Data((row.jsonLine + "\n").utf8))
        events?.appendStep(row)
    }

    /// A signal asked the job to stop after step index `s`: every rank stops; inside the epoch a
    /// checkpoint resumes at the next step (returns true: the epoch ends here).
    func stopInsideEpoch(_ e: Int, after s: Int, of plan: EpochPlan, _ progress: inout EpochProgress) throws -> Bool {
        interrupted = max(Interruption.pending, 1)
        if let warning = killWarning { log(warning) }
        guard s + 1 < plan.steps else { return false }
        progress.bar.finish()
        progress.sums.seconds += now() - progress.start
        try writeInterruptedCheckpoint(epoch: e, nextStep: s + 1, sums: progress.sums)
        log("vae-dist: stopped by \(Interruption.name(interrupted)) after step \(s + 1)/\(plan.steps) of epoch \(e); "
            + "checkpoint \(latestCheckpoint) resumes there with --resume" + stopNote)
        return true
    }

    /// The end of epoch `e`: the evaluation over every rank, the epoch's metrics, rank 0's files
    /// (the checkpoint when due), the epoch line.
    func finishEpoch(_ e: Int, plan: EpochPlan, _ progress: EpochProgress, seconds epochSeconds: Double) throws {
        let evalStart = now()
        communicator.phase = CollectivePhase(.evaluation, step: optimizer.step)
        let (test, aggregate, latent) = try evaluateTestSet(dataset.test)
        let evalSeconds = now() - evalStart
        var metrics = epochMetrics(e, progress, test: test, aggregate: aggregate, latent: latent)
        metrics.epochSeconds = epochSeconds + progress.sums.seconds
        metrics.evalSeconds = evalSeconds
        metrics.samplesPerSecond = Double((plan.steps - progress.firstStep) * options.batchSize) / epochSeconds
        epoch = e
        let checkpointNow = e % options.checkpointEvery == 0 || e == options.epochs || interrupted != 0
        communicator.phase = CollectivePhase(.checkpoint, step: optimizer.step)
        if checkpointNow { try reduction.shareOptimizerState(optimizer) }  // a collective: every rank
        if communicator.isRoot {
            let imageStart = now()
            let images = try writeImages(epoch: e)
            metrics.imageSeconds = now() - imageStart
            try writeEpochFiles(metrics, images: images, checkpoint: checkpointNow)
        }
        history.append(metrics)
        log(epochLine(metrics, epochs: options.epochs, config: modelConfig, seconds: epochSeconds))
        if interrupted != 0 {
            log("vae-dist: stopped by \(Interruption.name(Int32(interrupted))) at the end of epoch \(e); continue with --resume" + stopNote)
        }
    }

    /// Epoch `e`'s line of metrics.jsonl: the training sums, the evaluation, the step times
    /// (the caller adds the epoch's seconds).
    func epochMetrics(_ e: Int, _ progress: EpochProgress, test: VAEAnalysis.LossSums, aggregate: AggregatePosterior,
                      latent: LatentMeasures) -> EpochMetrics {
        let sums = progress.sums, seen = Double(max(sums.examples, 1))
        var metrics = EpochMetrics()
        metrics.epoch = e
        metrics.step = optimizer.step
        metrics.trainRecon = sums.recon / seen
        metrics.trainKL = sums.kl / seen
        metrics.trainLoss = trainLoss(sums) / seen
        if regime.tcBeta != nil {
            metrics.regimeTerms = [("train_mi", sums.mi / seen), ("train_tc", sums.tc / seen), ("train_dwkl", sums.dwkl / seen)]
        }
        let testMean = test.mean(beta: Double(modelConfig.beta))
        metrics.testLoss = testMean.loss
        metrics.testRecon = testMean.recon
        metrics.testKL = testMean.kl
        metrics.aggregateKL = aggregate.klToPrior
        metrics.posteriorStdMean = aggregate.posteriorStdMean
        metrics.computeSeconds = progress.times.compute
        metrics.communicationSeconds = progress.times.communication
        metrics.optimizerSeconds = progress.times.optimizer
        metrics.steps = progress.times.steps
        metrics.learningRate = Double(optimizer.hyper.learningRate)
        metrics.worldSize = communicator.size
        metrics.peakMemoryMB = peakMemoryMB()
        metrics.latent = latent
        return metrics
    }
}
