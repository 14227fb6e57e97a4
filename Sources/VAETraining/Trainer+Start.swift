import Foundation
import VAECheckpoint
import VAEDistributed
import VAEFiles
import VAEOutputs

// The start of a run, before the first step: every rank checks that the others were given the
// same options, model and data; on --resume rank 0 reads the checkpoint and broadcasts it (the
// ranks need no shared filesystem); rank 0 prepares the output folder.

extension Trainer {
    /// Every rank must hold the same `text` (options, data shape, checkpoint state): compare a hash.
    static func checkAgreement(_ communicator: any Communicator, stage: String, text: String) throws {
        let hash = fnv1a(text)
        let (low, high) = try communicator.allreduceMinMax(hash)
        if low != high {
            throw TrainingError.training("ranks disagree on their \(stage) (this rank's hash \(String(hash, radix: 16))); start every rank with the same options, data and --out")
        }
    }

    /// Rank 0 reads latest.safetensors (or, when a crash came between writing an epoch
    /// file and linking it, the newest epoch file) and broadcasts its bytes, so ranks
    /// need no shared filesystem.
    /// Test hook: seconds rank 0 stalls before reading the checkpoint to resume from, as on a
    /// hung filesystem (VAE_DIST_FAULT=stall-read:SECONDS).
    static let readStallSeconds = faultStallSeconds("stall-read")

    static func loadBroadcast(directory: String, communicator: any Communicator) throws -> (Checkpoint, path: String) {
        var bytes: [UInt8] = []
        var length = [Int64(0)]
        var path = (directory as NSString).appendingPathComponent("latest.safetensors")
        if communicator.isRoot {
            if !FileManager.default.fileExists(atPath: path), let newest = epochCheckpoints(directory).last {
                path = (directory as NSString).appendingPathComponent(newest)
            }
            guard FileManager.default.fileExists(atPath: path) else {
                throw TrainingError.checkpoint(path: path, reason: "not found, nothing to resume (train without --resume first)")
            }
            if Self.readStallSeconds > 0 { usleep(useconds_t(min(Self.readStallSeconds, 3600) * 1e6)) }
            bytes = try Checkpoint.readBytes(path: path)
            length[0] = Int64(bytes.count)
        }
        try communicator.broadcast(&length, root: 0)
        if !communicator.isRoot { bytes = [UInt8](repeating: 0, count: Int(length[0])) }
        try communicator.broadcast(&bytes, root: 0)
        let checkpoint = try Checkpoint.decode(bytes: bytes, path: path)
        if communicator.isRoot, let note = checkpoint.unverifiedNote(path: path) {
            FileHandle.standardError.write(Data((note + "\n").utf8))
        }
        return (checkpoint, path)
    }

    func prepareOutput(resume: Bool, overwrite: Bool) throws {
        let existing = ((try? FileManager.default.contentsOfDirectory(atPath: checkpointDirectory)) ?? [])
            .filter { $0.hasSuffix(".safetensors") && !$0.hasPrefix(".") }
        if !resume && !existing.isEmpty {
            guard overwrite else {
                throw TrainingError.option("\(checkpointDirectory) already holds checkpoints of an earlier run: pass --resume to continue it, --overwrite to start over (deleting them), or another --out")
            }
            for name in existing { try? FileManager.default.removeItem(atPath: (checkpointDirectory as NSString).appendingPathComponent(name)) }
        }
        for folder in [options.output, checkpointDirectory,
                       (options.output as NSString).appendingPathComponent("samples"),
                       (options.output as NSString).appendingPathComponent("reconstructions")] {
            try AtomicFile.makeDirectory(folder)
        }
        // Temporary files of a run that was killed mid-write.
        for folder in [options.output, checkpointDirectory] {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
            where name.hasPrefix(".") && (name.contains(".tmp-") || name.contains(".link-")) {
                try? FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(name))
            }
        }
        // Keep the metrics of epochs the checkpoint holds; drop later ones (a crash
        // after their line but before their checkpoint).
        var kept = ""
        if resume, let text = try? String(contentsOfFile: metricsPath, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                if let data = line.data(using: .utf8),
                   let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                   let e = object["epoch"] as? Int, e <= epoch {
                    kept += line + "\n"
                }
            }
        }
        try AtomicFile.write(Array(kept.utf8), to: metricsPath)
        events = try TensorBoardWriter.start(in: options.output, resume: resume, startStep: optimizer.step + 1)
    }

    /// VAE_DIST_SHARED_MEMORY: unset, empty or 1 allows the sum over shared memory, 0 turns it off.
    public static func sharedMemoryAllowed(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(TrainingError) -> Bool {
        switch environment["VAE_DIST_SHARED_MEMORY"] {
        case nil, "", "1": return true
        case "0": return false
        case let value?:
            throw .option("VAE_DIST_SHARED_MEMORY=\(value): expected 1 (ranks on one node sum gradients through shared memory, the default) or 0 (MPI collectives)")
        }
    }
}

/// epoch-NNNN.safetensors files in `directory`, oldest first (by number, not by name).
func epochCheckpoints(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
        .compactMap { name -> (Int, String)? in
            guard name.hasPrefix("epoch-"), name.hasSuffix(".safetensors"),
                  let n = Int(name.dropFirst(6).dropLast(12)) else { return nil }
            return (n, name)
        }
        .sorted { $0.0 < $1.0 }.map(\.1)
}

/// Canonical JSON of options or a configuration, for agreement hashes.
func canonicalJSON<T: Encodable>(_ config: T) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: (try? encoder.encode(config)) ?? Data(), as: UTF8.self)
}

/// 64-bit FNV-1a.
func fnv1a(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
    return hash
}
