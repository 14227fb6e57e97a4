import Foundation
import VAEData
import VAEModel

// A checkpoint is one safetensors file (docs/ARCHITECTURE.md, "Files"; README "Checkpoint format"):
//   model tensors by their torch-style names (ParameterLayout), F32, weights [out, in];
//   optimizer.<name>.exp_avg and optimizer.<name>.exp_avg_sq, the Adam moments;
//   __metadata__: format = vae-dist/1, config (JSON of model and training options),
//   epoch, step (Adam steps taken), world_size, dataset, parameter_count, and data: JSON of
//   the DataFingerprint of the training images (absent in checkpoints of older versions).

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

    /// Serializes the model (and the optimizer, when given).
    public static func encode(model: VAE, optimizer: AdamOptimizer?, config: CheckpointConfig,
                              resume: ResumeState, worldSize: Int, dataset: String,
                              data: DataFingerprint? = nil) -> [UInt8] {
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
        var tensors: [(name: String, shape: [Int], bytes: UnsafeRawBufferPointer)] = []
        func add(_ prefix: String, _ suffix: String, _ base: UnsafeMutablePointer<Float>) {
            for t in model.layout.tensors {
                tensors.append((prefix + t.name + suffix, t.shape, UnsafeRawBufferPointer(start: base + t.offset, count: t.count * 4)))
            }
        }
        add("", "", model.parameters)
        if let optimizer {
            add("optimizer.", ".exp_avg", optimizer.firstMoment)
            add("optimizer.", ".exp_avg_sq", optimizer.secondMoment)
        }
        return Safetensors.encode(metadata: metadata, tensors: tensors)
    }

    public static func load(path: String) throws(TrainingError) -> Checkpoint {
        try decode(try Safetensors.read(path: path), path: path)
    }

    public static func decode(_ file: SafetensorsFile, path: String) throws(TrainingError) -> Checkpoint {
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
        let layout = ParameterLayout(config.model)
        func gather(_ prefix: String, _ suffix: String) throws(TrainingError) -> [Float] {
            var out = [Float](repeating: 0, count: layout.count)
            for t in layout.tensors {
                let bytes = try file.floats(prefix + t.name + suffix, shape: t.shape, path: path)
                out.withUnsafeMutableBytes { raw in
                    bytes.withUnsafeBytes { src in
                        (raw.baseAddress! + t.offset * 4).copyMemory(from: src.baseAddress!, byteCount: src.count)
                    }
                }
            }
            return out
        }
        let parameters = try gather("", "")
        var first: [Float]?, second: [Float]?
        if file.tensor("optimizer.\(layout.tensors[0].name).exp_avg") != nil {
            first = try gather("optimizer.", ".exp_avg")
            second = try gather("optimizer.", ".exp_avg_sq")
        }
        if let bad = parameters.firstIndex(where: { !$0.isFinite }) {
            throw .checkpoint(path: path, reason: "parameter \(bad) is not finite")
        }
        if let first, let second, first.contains(where: { !$0.isFinite }) || second.contains(where: { !$0.isFinite || $0 < 0 }) {
            throw .checkpoint(path: path, reason: "the Adam moments hold non-finite or negative values")
        }
        return Checkpoint(config: config, resume: resume, worldSize: m["world_size"].flatMap(Int.init) ?? 1,
                          dataset: m["dataset"] ?? "", data: data, metadata: m, parameters: parameters,
                          firstMoment: first, secondMoment: second)
    }

    /// A model holding this checkpoint's parameters.
    public func makeModel() -> VAE {
        let model = VAE(config: config.model)
        parameters.withUnsafeBufferPointer { model.parameters.update(from: $0.baseAddress!, count: $0.count) }
        return model
    }
}
