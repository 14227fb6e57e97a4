import ArgumentParser
import Foundation
import VAEData
import VAETraining

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a checkpoint's tensors, shapes and metadata.")
    @Option(help: ArgumentHelp("A safetensors file, or a run folder (reads RUN_DIR/checkpoints/latest.safetensors).",
                               valueName: "file|run-dir"))
    var checkpoint: String?
    @Argument(help: ArgumentHelp("The same as --checkpoint (the older form).", valueName: "file|run-dir"))
    var path: String?
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        try reportingErrors {
            let file = try checkpointFile(try named())
            let st = try Safetensors.read(path: file)
            if json {
                var object: [String: Any] = ["metadata": st.metadata]
                object["tensors"] = st.tensors.map { ["name": $0.name, "dtype": $0.dtype, "shape": $0.shape, "data_offsets": [$0.begin, $0.end]] as [String: Any] }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("\(file): \(st.tensors.count) tensors, \(st.data.count) bytes of data")
            for key in st.metadata.keys.sorted() { print("  \(key) = \(st.metadata[key]!)") }
            // The data the run trained on, readable (the JSON is above and in --json).
            if st.metadata["format"] == Checkpoint.format {
                if let text = st.metadata["data"] {
                    let data = try? JSONDecoder().decode(DataFingerprint.self, from: Data(text.utf8))
                    print("  trained on: \(data.map { "\($0)" } ?? "unreadable data record")")
                } else {
                    print("  trained on: not recorded (a checkpoint of an older vae-dist; --resume trusts its --data)")
                }
            }
            let width = st.tensors.map(\.name.count).max() ?? 0
            for t in st.tensors {
                print("  " + t.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  \(t.dtype)  \(t.shape)")
            }
        }
    }

    /// The one checkpoint given, as --checkpoint or as the positional path.
    private func named() throws -> String {
        switch (checkpoint, path) {
        case let (option?, nil): return option
        case let (nil, positional?): return positional
        case (nil, nil): throw TrainingError.option("inspect needs a checkpoint: --checkpoint FILE|RUN_DIR")
        case let (option?, positional?):
            throw TrainingError.option("inspect takes one checkpoint, got --checkpoint \(option) and \(positional)")
        }
    }
}
