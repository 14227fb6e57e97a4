import ArgumentParser
import Foundation
import VAECheckpoint
import VAEData
import VAESafetensors
import VAETraining

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a checkpoint's tensors, shapes and metadata.",
        discussion: """
            With --verify it checks the file instead: every tensor against its CRC-32 checksum and \
            every F32 value for NaN or infinity, printing one line per failure. Exit code 0 when \
            all match; 1 on any failure, and for a file without checksums (written by a vae-dist \
            older than checksums), which has nothing to verify.
            """)
    @Option(help: ArgumentHelp("A safetensors file, or a run folder (reads RUN_DIR/checkpoints/latest.safetensors).",
                               valueName: "file|run-dir"))
    var checkpoint: String?
    @Argument(help: ArgumentHelp("The same as --checkpoint (the older form).", valueName: "file|run-dir"))
    var path: String?
    @Flag(help: "Print JSON instead of a table.") var json = false
    @Flag(help: "Check every tensor's CRC-32 checksum and finiteness; exit 1 on any failure.") var verify = false

    func run() throws {
        var verifyFailed = false
        try reportingErrors {
            let file = try checkpointFile(try named())
            let st = try Checkpoint.readFile(path: file)
            if verify { verifyFailed = try !verifyChecksums(st, path: file); return }
            if json {
                var object: [String: Any] = ["metadata": st.metadata]
                object["tensors"] = st.tensors.map { ["name": $0.name, "dtype": $0.dtype, "shape": $0.shape, "data_offsets": [$0.begin, $0.end]] as [String: Any] }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("\(file): \(st.tensors.count) tensors, \(st.data.count) bytes of data")
            for key in st.metadata.keys.sorted() {
                // One CRC-32 per tensor is noise in a table (--json has them all).
                let value = key == TensorChecksums.key ? "one CRC-32 per tensor (check them: inspect --verify)" : st.metadata[key]!
                print("  \(key) = \(value)")
            }
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
        if verifyFailed { Foundation.exit(1) }  // the failures were the message
    }

    /// --verify: one line per failure (false), or one line saying all tensors match (true).
    private func verifyChecksums(_ st: SafetensorsFile, path: String) throws -> Bool {
        guard st.hasChecksums else {
            throw TrainingError.file(path: path, reason: "has no checksums to verify (written by an older vae-dist)")
        }
        let failures = st.checksumFailures() + st.nonFiniteFailures()
        guard failures.isEmpty else {
            for failure in failures { FileHandle.standardError.write(Data("vae-dist: error: \(path): \(failure)\n".utf8)) }
            return false
        }
        print("\(path): all \(st.tensors.count) tensors match their CRC-32 checksums")
        return true
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
