import ArgumentParser
import Foundation
import VAECheckpoint
import VAEDistributed
import VAEModel
import VAETraining

// The options that configure a run are declared once, in VAETraining's TrainOptions.table (flag,
// help, default, resume rule, where the value goes); this command hands them to it unparsed.
// The defaults live in TrainingOptions() and ModelConfig(); GivenOptions merges what was given
// over them, or over the checkpoint's configuration with --resume.

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a VAE (data-parallel when launched by mpirun or srun).",
        usage: "vae-dist train [<options>] [--resume] [--allow-other-data] [--overwrite] [--from <run|checkpoint>]",
        discussion: """
            Writes OUT/metrics.jsonl, OUT/checkpoints/, OUT/samples/ and OUT/reconstructions/.

            --resume continues the run in --out from its checkpoint: `train --resume --out DIR --epochs N` \
            needs no other option (the model, the data and the rest come from the checkpoint), on any \
            rank count. Options given again may differ only for \(resumeOptions(.mayChange)); \
            \(resumeOptions(.mustAgree)) must match the checkpoint. --data may name another folder of \
            the same images (compared by count, shape and hash); other images need --allow-other-data.

            RUN OPTIONS:
            \(TrainOptions.helpText)
            """)

    @Flag(help: "Continue the run in --out from OUT/checkpoints/latest.safetensors, with its options (see above).")
    var resume = false
    @Flag(name: .customLong("allow-other-data"), help: "With --resume: continue on --data whose images differ from those the checkpoint was trained on.")
    var allowOtherData = false
    @Flag(help: "Start over in an OUT that holds checkpoints of an earlier run, deleting them.")
    var overwrite = false
    @Option(name: .customLong("from"), help: ArgumentHelp("Start a new run with the options of this run folder or checkpoint (its config, not its parameters); options given go on top, any may change.", valueName: "run|checkpoint"))
    var from: String?
    /// The run options, read by TrainOptions.parse.
    @Argument(parsing: .allUnrecognized, help: .hidden)
    var options: [String] = []

    /// The options given on the command line, typed; nil where not given. A flag given is on.
    func given() throws -> GivenOptions {
        do {
            return try TrainOptions.parse(options)
        } catch let error as TrainOptionError {
            throw ValidationError(error.description)
        }
    }

    func validate() throws { _ = try given() }

    func run() throws {
        try reportingErrors {
            let given = try given()
            // Checked before a checkpoint is read, so a bad value is named as typed. The image size
            // is the data's, known once it is read (Trainer.modelForData checks it then): here a
            // size every --conv-channels count divides stands in for the default 28x28.
            var model = given.newRun().model
            if model.architecture == .conv {
                model.imageHeight = 1 << min(model.convChannels.count, 8)
                model.imageWidth = model.imageHeight
            }
            try model.validate()
            Interruption.install()
            let communicator = try makeCommunicator()
            Fatal.communicator = communicator
            let trainer = try Trainer(given: given, resume: resume, overwrite: overwrite, allowOtherData: allowOtherData,
                                      from: from, communicator: communicator) { line in
                Console.out(line + "\n")
            }
            trainer.build = buildIdentity
            trainer.commandLine = CommandLine.arguments
            if communicator.isRoot, let warning = trainer.options.threadsWarning() { Console.err(warning + "\n") }
            try trainer.run()
            try communicator.barrier()
            communicator.finalize()
        }
    }
}

/// "--epochs, --lr, ..." for the options with this resume rule.
private func resumeOptions(_ rule: GivenOptions.ResumeRule) -> String {
    GivenOptions.resumeRules.filter { $0.value == rule }.map(\.key).joined(separator: ", ")
}

/// Builds and validates the model options shared by the commands.
func modelConfig(hidden: String, latent: Int, likelihood: String, beta: Float, autoencoder: Bool) throws -> ModelConfig {
    let config = ModelConfig(hidden: try parseHidden(hidden), latent: latent, likelihood: try parseLikelihood(likelihood),
                             beta: beta, autoencoder: autoencoder)
    try config.validate()
    return config
}

/// Runs a command body; any error becomes one line and exit code 1 (MPI_Abort under MPI).
func reportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let error as CommunicatorError where error.isStall {
        // The stall watchdog printed its line on every rank that can still talk.
        Fatal.abortAfterStall()
    } catch let error as FailedOnEveryRank {
        Fatal.exitOnEveryRank(error.description)
    } catch {
        Fatal.exit("\(error)")
    }
}
