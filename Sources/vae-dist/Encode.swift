import ArgumentParser
import Foundation
import VAEAnalysis
import VAEData
import VAEDistributed
import VAEFiles
import VAEKernels
import VAEModel
import VAESafetensors
import VAETraining

struct Encode: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the encoder's mu and logvar of a data split as safetensors, for numpy, scikit-learn or UMAP (sharded over ranks under mpirun).",
        discussion: """
            Tensors: mu and logvar [N, latent] (F32); labels [N] (I64) when the data has labels \
            (dsprites: the shape); factors [N, F] (F32) when it has ground-truth factors, their names \
            in the metadata key factor_names (a JSON list). The rows are the split's images in order.
            """)
    @OptionGroup var source: CheckpointOption
    @Option(help: "Data folder or built-in set (default: the checkpoint's).") var data: String?
    @Option(help: "Which split to encode: test or train.") var split = "test"
    @Option(help: "Encode only the first N images of the split.") var limit: Int?
    @Option(help: "Output file (.safetensors).") var out: String
    @OptionGroup var threads: ThreadsOption

    func run() throws {
        try reportingErrors {
            guard split == "test" || split == "train" else { throw TrainingError.option("--split '\(split)': expected test or train") }
            if let limit, limit < 1 { throw TrainingError.option("--limit must be at least 1 (got \(limit))") }
            _ = try threads.validated()
            guard out.hasSuffix(".safetensors") else {
                throw TrainingError.option("--out \(out): encode writes a safetensors file; give a name ending in .safetensors")
            }
            try checkOutputFolder(out, option: "--out")
            let communicator = try startEvaluationCommunicator()
            let (checkpoint, path) = try source.load(isRoot: communicator.isRoot)
            let model = checkpoint.makeModel()
            model.threads = try threads.kernelThreads()
            let images = try testImages(data, checkpoint: checkpoint, path: path, train: split == "train")
            let count = min(limit ?? images.count, images.count)
            let e = try gatherPosterior(model: model, images: images, count: count, communicator: communicator)
            if communicator.isRoot {
                let labels = images.labels.map { $0[0..<count].map { Int64($0) } }
                let f = images.factorNames.count
                let factors = images.factors.map { Array($0[0..<(count * f)]) }
                var metadata = ["format": "vae-dist-encodings/1", "data": data ?? checkpoint.config.training.data,
                                "split": split, "epoch": "\(checkpoint.epoch)", "checkpoint": path]
                if factors != nil {
                    metadata["factor_names"] = "[" + images.factorNames.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
                }
                let bytes = e.mu.withUnsafeBytes { mu in
                    e.logvar.withUnsafeBytes { logvar in
                        (labels ?? []).withUnsafeBytes { labelBytes in
                            (factors ?? []).withUnsafeBytes { factorBytes in
                                var tensors: [(name: String, dtype: String, shape: [Int], bytes: UnsafeRawBufferPointer)] =
                                    [("mu", "F32", [count, e.latent], mu), ("logvar", "F32", [count, e.latent], logvar)]
                                if labels != nil { tensors.append(("labels", "I64", [count], labelBytes)) }
                                if factors != nil { tensors.append(("factors", "F32", [count, f], factorBytes)) }
                                return Safetensors.encode(metadata: metadata, typedTensors: tensors)
                            }
                        }
                    }
                }
                try AtomicFile.write(bytes, to: out)
                print("vae-dist: wrote mu and logvar [\(count), \(e.latent)]"
                      + (labels != nil ? ", labels" : "") + (factors != nil ? ", factors [\(count), \(f)]" : "")
                      + " of the \(split) split to \(out)")
            }
            communicator.finalize()
        }
    }
}
