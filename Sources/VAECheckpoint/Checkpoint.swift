import Foundation
import VAEData
import VAEModel
import VAESafetensors

// A checkpoint is one safetensors file (docs/ARCHITECTURE.md, "Files"; README "Checkpoint format"):
//   model tensors by their torch-style names (ParameterLayout), F32, weights [out, in];
//   optimizer.<name>.exp_avg and optimizer.<name>.exp_avg_sq, the Adam moments;
//   __metadata__: format = vae-dist/1, config (JSON of model and training options),
//   epoch, step (Adam steps taken), world_size, dataset, parameter_count, and data: JSON of
//   the DataFingerprint of the training images (absent in checkpoints of older versions),
//   checksums and checksum_algorithm: every tensor's CRC-32 (Checksums.swift; absent in
//   checkpoints of older versions, which load unverified).

public struct CheckpointConfig: Codable, Equatable, Sendable {
    public var model: ModelConfig
    public var training: TrainingOptions

    public init(model: ModelConfig, training: TrainingOptions) {
        self.model = model
        self.training = training
    }
}

public struct Checkpoint: Sendable {
    public static let format = "vae-dist/1"
    public var config: CheckpointConfig
    /// Where training stands (epoch, step, a mid-epoch position): what --resume continues from.
    public var resume: ResumeState
    public var epoch: Int { resume.epoch }
    public var step: Int { resume.step }
    public var worldSize: Int
    public var dataset: String
    /// The training images' fingerprint; nil in checkpoints written before it was recorded.
    public var data: DataFingerprint?
    public var metadata: [String: String]
    /// [parameterCount] in layout order.
    public var parameters: [Float]
    public var firstMoment: [Float]?
    public var secondMoment: [Float]?
    /// Whether every tensor matched its checksum; false for a file of an older vae-dist, which
    /// has none (the commands print `unverifiedNote`).
    public var verified = true

    /// Serializes the model (and Adam's moments, each [parameterCount] in layout order, when given).
    public static func encode(model: VAE, moments: (first: UnsafeMutablePointer<Float>, second: UnsafeMutablePointer<Float>)?,
                              config: CheckpointConfig,
                              resume: ResumeState, worldSize: Int, dataset: String,
                              data: DataFingerprint? = nil, run: String? = nil) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let configJSON = String(decoding: (try? encoder.encode(config)) ?? Data(), as: UTF8.self)
        var metadata = resume.metadata
        metadata["format"] = format
        metadata["config"] = configJSON
        metadata["world_size"] = String(worldSize)
        metadata["dataset"] = dataset
        metadata["parameter_count"] = String(model.parameterCount)
        if let data, let json = try? encoder.encode(data) { metadata["data"] = String(decoding: json, as: UTF8.self) }
        // The run record (RunRecord.swift) as the run stood when this checkpoint was written.
        if let run { metadata["run"] = run }
        var tensors: [(name: String, shape: [Int], bytes: UnsafeRawBufferPointer)] = []
        // Convolution weights in torch's order (TensorSpec.channelsLast): copies, freed after encoding.
        var copies: [UnsafeMutablePointer<Float>] = []
        defer { for copy in copies { copy.deallocate() } }
        func add(_ prefix: String, _ suffix: String, _ base: UnsafeMutablePointer<Float>) {
            for t in model.layout.tensors {
                var start = base + t.offset
                if t.channelsLast {
                    let copy = UnsafeMutablePointer<Float>.allocate(capacity: t.count)
                    t.fileOrder(copy, from: start)
                    copies.append(copy)
                    start = copy
                }
                tensors.append((prefix + t.name + suffix, t.shape, UnsafeRawBufferPointer(start: start, count: t.count * 4)))
            }
        }
        add("", "", model.parameters)
        if let moments {
            add("optimizer.", ".exp_avg", moments.first)
            add("optimizer.", ".exp_avg_sq", moments.second)
        }
        metadata.merge(TensorChecksums.metadata(tensors.map { ($0.name, $0.bytes) })) { $1 }
        return Safetensors.encode(metadata: metadata, tensors: tensors)
    }

    /// Reads, verifies and decodes the checkpoint at `path`.
    public static func load(path: String) throws(CheckpointError) -> Checkpoint {
        try decode(try readFile(path: path), path: path)
    }

    /// The safetensors file at `path` (bounded reads, `Safetensors.read`), not yet decoded.
    public static func readFile(path: String) throws(CheckpointError) -> SafetensorsFile {
        do { return try Safetensors.read(path: path) } catch { throw CheckpointError(error) }
    }

    /// The bytes of the checkpoint at `path`, its header validated (for the resume broadcast:
    /// every rank decodes the same bytes with `decode(bytes:path:)`).
    public static func readBytes(path: String) throws(CheckpointError) -> [UInt8] {
        do { return try Safetensors.readBytes(path: path) } catch { throw CheckpointError(error) }
    }

    public static func decode(bytes: [UInt8], path: String) throws(CheckpointError) -> Checkpoint {
        let file: SafetensorsFile
        do { file = try Safetensors.decode(bytes, path: path) } catch { throw CheckpointError(error) }
        return try decode(file, path: path)
    }

    public static func decode(_ file: SafetensorsFile, path: String) throws(CheckpointError) -> Checkpoint {
        let m = file.metadata
        guard m["format"] == format else {
            throw .checkpoint(path: path, reason: "metadata format is \(m["format"].map { "'\($0)'" } ?? "missing"), expected '\(format)' (not a vae-dist checkpoint)")
        }
        guard let configText = m["config"],
              let config = try? JSONDecoder().decode(CheckpointConfig.self, from: Data(configText.utf8)) else {
            throw .checkpoint(path: path, reason: "metadata config is missing or not valid JSON")
        }
        do { try config.model.validate() } catch { throw .checkpoint(path: path, reason: "model config is invalid: \(error)") }
        let resume = try ResumeState(metadata: m, path: path)
        var data: DataFingerprint?
        if let text = m["data"] {
            guard let decoded = try? JSONDecoder().decode(DataFingerprint.self, from: Data(text.utf8)) else {
                throw .checkpoint(path: path, reason: "metadata data = '\(text)' is not a data fingerprint (name, count, rows, columns, fnv1a64)")
            }
            data = decoded
        }
        let failures = file.checksumFailures()
        if let first = failures.first {
            throw .checkpoint(path: path, reason: first + "; use an earlier epoch-NNNN.safetensors")
        }
        // Every tensor the config's model needs is checked before anything is allocated for it:
        // a small file whose config describes a huge model fails here, not in the allocator.
        let layout = ParameterLayout(config.model)
        let hasOptimizer = file.tensors.contains { $0.name.hasPrefix("optimizer.") }
        let parts = [("", "")] + (hasOptimizer ? [("optimizer.", ".exp_avg"), ("optimizer.", ".exp_avg_sq")] : [])
        for (prefix, suffix) in parts {
            for t in layout.tensors { _ = try tensorBytes(file, prefix + t.name + suffix, shape: t.shape, path: path) }
        }
        /// The tensors of one part in layout order, each refused when a value fails `valid`.
        func gather(_ prefix: String, _ suffix: String, valid: (Float) -> Bool, what: String) throws(CheckpointError) -> [Float] {
            var out = [Float](repeating: 0, count: layout.count)
            for t in layout.tensors {
                let name = prefix + t.name + suffix
                let bytes = try tensorBytes(file, name, shape: t.shape, path: path)
                let bad = out.withUnsafeMutableBytes { raw in
                    bytes.withUnsafeBytes { src in
                        (raw.baseAddress! + t.offset * 4).copyMemory(from: src.baseAddress!, byteCount: src.count)
                    }
                    return raw.bindMemory(to: Float.self)[t.offset..<(t.offset + t.count)].firstIndex { !valid($0) }
                }
                if let bad { throw .checkpoint(path: path, reason: "tensor \(name) holds \(what) at element \(bad - t.offset)") }
                if t.channelsLast {
                    let stored = Array(out[t.offset..<(t.offset + t.count)])
                    out.withUnsafeMutableBufferPointer { t.bufferOrder($0.baseAddress! + t.offset, from: stored) }
                }
            }
            return out
        }
        let parameters = try gather("", "", valid: \.isFinite, what: "a non-finite value")
        var first: [Float]?, second: [Float]?
        if hasOptimizer {
            first = try gather("optimizer.", ".exp_avg", valid: \.isFinite, what: "a non-finite value")
            second = try gather("optimizer.", ".exp_avg_sq", valid: { $0.isFinite && $0 >= 0 }, what: "a non-finite or negative value")
        }
        return Checkpoint(config: config, resume: resume, worldSize: m["world_size"].flatMap(Int.init) ?? 1,
                          dataset: m["dataset"] ?? "", data: data, metadata: m, parameters: parameters,
                          firstMoment: first, secondMoment: second, verified: file.hasChecksums)
    }

    private static func tensorBytes(_ file: SafetensorsFile, _ name: String, shape: [Int], path: String) throws(CheckpointError)
        -> ArraySlice<UInt8> {
        do { return try file.floats(name, shape: shape, path: path) } catch { throw CheckpointError(error) }
    }

    /// The one note a command prints (rank 0 only) for a checkpoint it could not verify.
    public func unverifiedNote(path: String) -> String? {
        verified ? nil : "vae-dist: note: \(path) has no checksums (written by an older vae-dist); its tensors are not verified"
    }

    /// A model holding this checkpoint's parameters.
    public func makeModel() -> VAE {
        let model = VAE(config: config.model)
        parameters.withUnsafeBufferPointer { model.parameters.update(from: $0.baseAddress!, count: $0.count) }
        return model
    }
}
