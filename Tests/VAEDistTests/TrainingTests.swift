import Foundation
import Testing
import VAEData
import VAEDistributed
import VAEModel
import VAETraining
import VAESafetensors
import VAECheckpoint
import VAEAnalysis

func options(_ out: String, data: String = "synthetic:2000", epochs: Int = 2, batch: Int = 64) -> TrainingOptions {
    var o = TrainingOptions()
    o.data = data
    o.epochs = epochs
    o.batchSize = batch
    o.output = out
    return o
}

@Suite(.serialized) struct TrainingTests {
    /// A short run must learn: test NELBO after 4 epochs at least 25% below the
    /// untrained model's (measured: about 350 -> 150 nats, see the README).
    @Test func shortSyntheticRunLearns() throws {
        let out = temporaryDirectory()
        let trainer = try Trainer(options: options(out, epochs: 4), model: ModelConfig(hidden: [200], latent: 10),
                                  resume: false, communicator: SingleProcessCommunicator()) { _ in }
        let workspace = VAEWorkspace(config: trainer.modelConfig, capacity: 200)
        let before = evaluate(model: trainer.model, workspace: workspace, images: trainer.dataset.test,
                              range: 0..<trainer.dataset.test.count, binarize: false, seed: 1).mean(beta: 1)
        try trainer.run()
        let after = trainer.history.last!
        #expect(after.testNELBO < 0.75 * (before.recon + before.kl), "test NELBO \(before.recon + before.kl) -> \(after.testNELBO)")
        #expect(trainer.history.map(\.testNELBO) == trainer.history.map(\.testNELBO).sorted(by: >), "NELBO falls every epoch")
        // The output folder has what the README promises.
        let files = try FileManager.default.subpathsOfDirectory(atPath: out)
        for f in ["metrics.jsonl", "checkpoints/latest.safetensors", "checkpoints/epoch-0004.safetensors",
                  "samples/epoch-0004.png", "reconstructions/epoch-0001.png"] {
            #expect(files.contains(f), "missing \(f)")
        }
        let lines = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 4)
        let last = try JSONSerialization.jsonObject(with: Data(lines[3].utf8)) as! [String: Any]
        for key in ["epoch", "step", "train_loss", "train_recon", "train_kl", "test_loss", "test_recon", "test_kl",
                    "test_nelbo", "epoch_seconds", "samples_per_second", "world_size"] {
            #expect(last[key] != nil, "metrics lack \(key)")
        }
        #expect(last["epoch"] as? Int == 4 && last["step"] as? Int == 4 * (2000 / 64))
    }

    @Test func everyLikelihoodAndModeTrainsToFiniteLosses() throws {
        for config in [ModelConfig(hidden: [64, 32], latent: 4, likelihood: .gaussian),
                       ModelConfig(hidden: [64], latent: 4, beta: 4),
                       ModelConfig(hidden: [64], latent: 4, autoencoder: true)] {
            let out = temporaryDirectory("mode\(config.likelihood)\(config.beta)\(config.autoencoder)")
            var o = options(out, data: "synthetic:500", epochs: 2, batch: 50)
            o.binarize = config.beta == 4
            let trainer = try Trainer(options: o, model: config, resume: false, communicator: SingleProcessCommunicator()) { _ in }
            try trainer.run()
            let m = trainer.history.last!
            #expect(m.testNELBO.isFinite && m.trainLoss.isFinite)
            #expect(trainer.history[1].trainLoss < trainer.history[0].trainLoss)
            if config.autoencoder { #expect(m.testKL == 0) }
        }
    }

    @Test func badOptionsAreClearErrors() {
        let out = temporaryDirectory()
        let cases: [(TrainingOptions, String)] = [
            ({ var o = options(out); o.batchSize = 0; return o }(), "--batch-size"),
            ({ var o = options(out); o.epochs = -1; return o }(), "--epochs"),
            ({ var o = options(out); o.learningRate = .nan; return o }(), "--lr"),
            ({ var o = options(out); o.data = "synthetic:x"; return o }(), "synthetic:N"),
            ({ var o = options(out); o.data = "/nonexistent/folder"; return o }(), "/nonexistent/folder"),
        ]
        for (o, fragment) in cases {
            #expect { try Trainer(options: o, model: ModelConfig(), resume: false, communicator: SingleProcessCommunicator()) { _ in } }
                throws: { "\($0)".contains(fragment) }
        }
        #expect { try ModelConfig(latent: 0).validate() } throws: { "\($0)".contains("--latent") }
        #expect { try ModelConfig(hidden: []).validate() } throws: { "\($0)".contains("--hidden") }
    }
}

@Suite(.serialized) struct ResumeTests {
    /// Two epochs straight and one epoch plus a resumed one give bit-identical
    /// parameters and Adam moments (llm.c test_gpt2.c style).
    @Test func resumeIsBitIdentical() throws {
        let config = ModelConfig(hidden: [64], latent: 6)
        let straight = temporaryDirectory("straight"), split = temporaryDirectory("split")
        let a = try Trainer(options: options(straight, data: "synthetic:800", epochs: 2, batch: 32), model: config,
                            resume: false, communicator: SingleProcessCommunicator()) { _ in }
        try a.run()
        let first = try Trainer(options: options(split, data: "synthetic:800", epochs: 1, batch: 32), model: config,
                                resume: false, communicator: SingleProcessCommunicator()) { _ in }
        try first.run()
        let resumed = try Trainer(options: options(split, data: "synthetic:800", epochs: 2, batch: 32), model: config,
                                  resume: true, communicator: SingleProcessCommunicator()) { _ in }
        #expect(resumed.epoch == 1 && resumed.optimizer.step == 25)
        #expect(resumed.resumedFrom == split + "/checkpoints/latest.safetensors")
        try resumed.run()
        #expect(resumed.attemptedSteps == 25, "the resumed run trains epoch 2 only")
        let n = a.model.parameterCount
        #expect(memcmp(a.model.parameters, resumed.model.parameters, n * 4) == 0, "parameters differ after resume")
        #expect(memcmp(a.optimizer.secondMoment, resumed.optimizer.secondMoment, n * 4) == 0, "Adam state differs after resume")
        // The checkpoints' tensor data are identical (their metadata name different --out folders).
        let fileA = try Safetensors.read(path: straight + "/checkpoints/latest.safetensors")
        let fileB = try Safetensors.read(path: split + "/checkpoints/latest.safetensors")
        #expect(fileA.data == fileB.data && fileA.tensors == fileB.tensors, "the final checkpoints' tensors differ")
        #expect(fileA.metadata["step"] == "50" && fileB.metadata["epoch"] == "2")
        let lines = try String(contentsOfFile: split + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2, "metrics.jsonl continues across the resume")
    }

    @Test func resumeRefusesAnotherArchitectureAndMissingCheckpoints() throws {
        let out = temporaryDirectory()
        #expect { try Trainer(options: options(out, data: "synthetic:200", epochs: 1, batch: 20), model: ModelConfig(hidden: [16], latent: 2),
                              resume: true, communicator: SingleProcessCommunicator()) { _ in } }
            throws: { "\($0)".contains("nothing to resume") }
        try Trainer(options: options(out, data: "synthetic:200", epochs: 1, batch: 20), model: ModelConfig(hidden: [16], latent: 2),
                    resume: false, communicator: SingleProcessCommunicator()) { _ in }.run()
        #expect { try Trainer(options: options(out, data: "synthetic:200", epochs: 2, batch: 20), model: ModelConfig(hidden: [32], latent: 2),
                              resume: true, communicator: SingleProcessCommunicator()) { _ in } }
            throws: { "\($0)".contains("--hidden cannot change on resume: \(out)/checkpoints/latest.safetensors was trained with --hidden 16, this run gives --hidden 32") }
    }
}

@Suite struct SafetensorsTests {
    @Test func roundTripAndStrictValidation() throws {
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let bytes = values.withUnsafeBytes { raw in
            Safetensors.encode(metadata: ["format": "x"], tensors: [("a", [2, 3], raw), ("b", [1], UnsafeRawBufferPointer(rebasing: raw[0..<4]))])
        }
        // 8-byte header length, a JSON header padded to a multiple of 8, then the 7 floats' 28 bytes.
        let headerLength = (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        #expect(headerLength % 8 == 0 && bytes.count == 8 + headerLength + 28, "header \(headerLength), file \(bytes.count) bytes")
        // Whatever the metadata's length, the data starts 8-byte aligned.
        for n in 0..<8 {
            let padded = values.withUnsafeBytes { raw in
                Safetensors.encode(metadata: ["format": String(repeating: "x", count: n)], tensors: [("a", [2, 3], raw)])
            }
            let length = (0..<8).reduce(0) { $0 | Int(padded[$1]) << (8 * $1) }
            #expect(length % 8 == 0 && padded.count == 8 + length + 24, "metadata of \(n) characters: header \(length) bytes")
        }
        let file = try Safetensors.decode(bytes, path: "t")
        #expect(file.metadata == ["format": "x"] && file.tensors.map(\.name) == ["a", "b"] && file.tensor("a")?.shape == [2, 3])
        // The data section holds the tensors' bytes: a, then b (= the first float of a).
        let expected = values.withUnsafeBytes { Array($0) } + values.withUnsafeBytes { Array($0[0..<4]) }
        #expect(Array(bytes[(8 + headerLength)...]) == expected, "tensor bytes differ after the round trip")
        func header(_ json: String, data: Int) -> [UInt8] {
            var h = Array(json.utf8)
            while h.count % 8 != 0 { h.append(0x20) }
            return (0..<8).map { UInt8(truncatingIfNeeded: h.count >> (8 * $0)) } + h + [UInt8](repeating: 0, count: data)
        }
        let bad: [([UInt8], String)] = [
            ([1, 2, 3], "shorter than the 8-byte"),
            ([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0] + [UInt8](repeating: 0x20, count: 16), "exceeds the 100 MB"),
            (header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data: 4), "truncated"),
            (header("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", data: 8), "overlaps"),
            (header("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data: 8), "needs 12 bytes"),
            (header("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", data: 8), "unknown dtype"),
            (header("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", data: 8), "gap before"),
            (header("{\"a\": [1, 2", data: 0), "not valid JSON"),
        ]
        for (b, message) in bad {
            #expect { try Safetensors.decode(b, path: "/x.safetensors") } throws: { "\($0)".contains(message) && "\($0)".contains("/x.safetensors") }
        }
    }
}

