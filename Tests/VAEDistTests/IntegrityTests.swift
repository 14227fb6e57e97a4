import Foundation
import Testing
import VAEData
import VAEKernels
import VAEModel
import VAETraining
import VAESafetensors
import VAECheckpoint

/// Checkpoints under corruption and hostile headers: every tensor's CRC-32 is verified on load,
/// duplicate JSON keys are refused, and a file's config cannot make the reader allocate a model
/// the file does not hold.
@Suite(.serialized) struct IntegrityTests {
    /// A small checkpoint with Adam moments: 220 parameters, 660 floats of data.
    static func smallCheckpoint() -> [UInt8] {
        let model = VAE(config: ModelConfig(imageHeight: 4, imageWidth: 4, hidden: [5], latent: 2))
        model.initialize(seed: 7)
        let optimizer = AdamOptimizer(count: model.parameterCount, hyper: AdamHyperparameters(learningRate: 1e-3))
        for i in 0..<model.parameterCount {
            optimizer.firstMoment[i] = Float(i) * 1e-3 - 0.1
            optimizer.secondMoment[i] = Float(i) * 1e-5
        }
        var options = TrainingOptions()
        options.data = "synthetic:100"
        return Checkpoint.encode(model: model, optimizer: optimizer, config: CheckpointConfig(model: model.config, training: options),
                                 resume: ResumeState(epoch: 1), worldSize: 1, dataset: "integrity")
    }

    static func headerEnd(_ bytes: [UInt8]) -> Int { 8 + (0..<8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) } }

    /// zlib's CRC-32 is the standard one (check value of "123456789"), whole or in pieces.
    @Test func crc32OfRawMemory() {
        let text = Array("123456789".utf8)
        text.withUnsafeBytes { raw in
            #expect(crc32(raw) == 0xcbf4_3926)
            #expect(crc32(UnsafeRawBufferPointer(rebasing: raw[4...]), crc: crc32(UnsafeRawBufferPointer(rebasing: raw[..<4]))) == 0xcbf4_3926)
            #expect(crc32(UnsafeRawBufferPointer(rebasing: raw[0..<0]), crc: 0x1234) == 0x1234)
        }
    }

    /// Every tensor has an entry of 8 lowercase hex digits that matches its bytes; the file loads verified.
    @Test func checksumRoundTrip() throws {
        let bytes = Self.smallCheckpoint()
        let file = try Safetensors.decode(bytes, path: "c")
        #expect(file.metadata["checksum_algorithm"] == "crc32")
        let sums = try JSONDecoder().decode([String: String].self, from: Data(file.metadata["checksums"]!.utf8))
        #expect(Set(sums.keys) == Set(file.tensors.map(\.name)) && file.tensors.count == 30)
        for t in file.tensors {
            let crc = Array(file.data[t.begin..<t.end]).withUnsafeBytes { crc32($0) }
            #expect(sums[t.name] == String(format: "%08x", crc), "\(t.name)")
        }
        #expect(file.checksumFailures().isEmpty && file.nonFiniteFailures().isEmpty)
        let checkpoint = try Checkpoint.decode(file, path: "c")
        #expect(checkpoint.verified && checkpoint.unverifiedNote(path: "c") == nil)
        #expect(checkpoint.firstMoment?[10] == Float(10) * 1e-3 - 0.1)
    }

    /// Each of the data region's bits flipped alone is refused, by a message naming the tensor.
    @Test func everySingleBitFlipInTheDataIsDetected() {
        let valid = Self.smallCheckpoint()
        let dataStart = Self.headerEnd(valid)
        var flipped = 0, detected = 0
        for byte in dataStart..<valid.count {
            for bit in 0..<8 {
                var bytes = valid
                bytes[byte] ^= UInt8(1 << bit)
                flipped += 1
                do {
                    _ = try Checkpoint.decode(try Safetensors.decode(bytes, path: "/f.safetensors"), path: "/f.safetensors")
                } catch {
                    let text = "\(error)"
                    if text.contains("/f.safetensors: tensor ") && text.contains("fails its CRC-32 check") { detected += 1 }
                }
            }
        }
        #expect(flipped == 660 * 4 * 8)
        #expect(detected == flipped, "\(flipped - detected) of \(flipped) bit flips in the data loaded or gave another error")
    }

    /// A bit flipped in the header (length or JSON) is refused, or loads the same tensors: no flip
    /// changes a parameter or a moment unnoticed (the metadata text itself is not checksummed).
    /// One bit per byte, bit `byte % 8`, keeps it fast and reaches every bit position.
    @Test func headerBitFlipsNeverChangeTheTensors() throws {
        let valid = Self.smallCheckpoint()
        let original = try Checkpoint.decode(try Safetensors.decode(valid, path: "h"), path: "h")
        var flipped = 0, refused = 0, accepted = 0
        for byte in 0..<Self.headerEnd(valid) {
            for bit in [byte % 8] {
                var bytes = valid
                bytes[byte] ^= UInt8(1 << bit)
                flipped += 1
                guard let c = try? Checkpoint.decode(try Safetensors.decode(bytes, path: "h"), path: "h") else { refused += 1; continue }
                #expect(c.parameters == original.parameters && c.firstMoment! == original.firstMoment! && c.secondMoment! == original.secondMoment!,
                        "a flip of bit \(bit) of header byte \(byte) changed the tensors")
                accepted += 1
            }
        }
        #expect(flipped == Self.headerEnd(valid) && refused + accepted == flipped && refused > flipped / 2,
                "\(refused) refused, \(accepted) accepted of \(flipped)")
    }

    /// A wrong, missing or extra checksum entry is an error naming the tensor.
    @Test func checksumEntriesMustMatchTheTensors() throws {
        var file = try Safetensors.decode(Self.smallCheckpoint(), path: "/e.safetensors")
        var sums = try JSONDecoder().decode([String: String].self, from: Data(file.metadata["checksums"]!.utf8))
        func expectRefused(_ edit: ([String: String]) -> [String: String], _ message: String) throws {
            var copy = file
            copy.metadata["checksums"] = String(decoding: try JSONEncoder().encode(edit(sums)), as: UTF8.self)
            #expect { try Checkpoint.decode(copy, path: "/e.safetensors") } throws: { "\($0)".contains(message) && "\($0)".contains("/e.safetensors") }
        }
        try expectRefused({ var s = $0; s["encoder.mu.bias"] = nil; return s }, "tensor encoder.mu.bias has no checksum")
        try expectRefused({ var s = $0; s["encoder.9.bias"] = "00000000"; return s }, "names tensor encoder.9.bias, which the file does not hold")
        try expectRefused({ var s = $0; s["decoder.out.bias"] = s["decoder.out.bias"]!.uppercased(); return s }, "not 8 lowercase hex digits")
        sums["decoder.0.bias"] = "00000000"
        try expectRefused({ $0 }, "tensor decoder.0.bias fails its CRC-32 check (stored 00000000")
        file.metadata["checksum_algorithm"] = "md5"
        #expect { try Checkpoint.decode(file, path: "e") } throws: { "\($0)".contains("checksum_algorithm is 'md5', expected 'crc32'") }
    }

    /// A checkpoint of an older vae-dist (no checksums) loads, marked unverified, with one note.
    @Test func olderCheckpointWithoutChecksumsLoadsUnverified() throws {
        var file = try Safetensors.decode(Self.smallCheckpoint(), path: "old")
        file.metadata["checksums"] = nil
        file.metadata["checksum_algorithm"] = nil
        let checkpoint = try Checkpoint.decode(file, path: "old")
        #expect(!checkpoint.verified && !file.hasChecksums)
        #expect(checkpoint.unverifiedNote(path: "old") == "vae-dist: note: old has no checksums (written by an older vae-dist); its tensors are not verified")
    }

    /// Non-finite values are refused, naming the tensor and the element.
    @Test func nonFiniteParameterNamesItsTensor() throws {
        var file = try Safetensors.decode(Self.smallCheckpoint(), path: "n")
        file.metadata["checksums"] = nil  // as an older file would be: nothing else catches it
        file.metadata["checksum_algorithm"] = nil
        let t = file.tensor("encoder.mu.weight")!
        withUnsafeBytes(of: Float.infinity) { for i in 0..<4 { file.data[t.begin + 12 + i] = $0[i] } }
        #expect { try Checkpoint.decode(file, path: "n") } throws: { "\($0)".contains("tensor encoder.mu.weight holds a non-finite value at element 3") }
        #expect(file.nonFiniteFailures() == ["tensor encoder.mu.weight holds 1 non-finite value(s), the first at element 3"])
    }

    /// One JSON key twice in any object of the header is refused, naming the key.
    @Test func duplicateKeysAtEveryLevel() throws {
        let entry = "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}"
        let cases: [(String, String)] = [
            ("{\"a\":\(entry),\"a\":\(entry)}", "\"a\""),                                       // tensor names
            ("{\"__metadata__\":{\"format\":\"x\",\"format\":\"y\"},\"a\":\(entry)}", "\"format\""), // metadata keys
            ("{\"__metadata__\":{},\"__metadata__\":{},\"a\":\(entry)}", "\"__metadata__\""),
            ("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "\"dtype\""),  // inside an entry
            ("{\"a\\u0062\":\(entry),\"ab\":\(entry)}", "\"ab\""),                              // escapes decode to the same key
            ("{\"a\":\(entry),\"x\":[{\"k\":1,\"k\":2}]}", "\"k\""),                            // nested in an array
        ]
        for (json, key) in cases {
            var header = Array(json.utf8)
            while header.count % 8 != 0 { header.append(0x20) }
            let bytes = (0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) } + header + [0, 0, 0, 0]
            #expect { try Safetensors.decode(bytes, path: "/d.safetensors") } throws: {
                "\($0)".contains("/d.safetensors") && "\($0)".contains("holds the key \(key) twice")
            }
        }
        // The same key in different objects, and keys that differ only after an escape, are fine.
        #expect(throws: Never.self) { try DuplicateKeys.check(Array("{\"a\":{\"a\":1},\"b\":{\"a\":[{\"a\":2}]},\"a\\u0063\":3,\"ab\":\"a\\\"b\"}".utf8)[...]) }
        #expect(throws: JSONScanProblem.malformed) { try DuplicateKeys.check(Array("{\"a\":1,}".utf8)[...]) }
        #expect(throws: JSONScanProblem.tooDeep) { try DuplicateKeys.check(Array(String(repeating: "[", count: 100).utf8)[...]) }
        // The checkpoint's own checksums record is held to the same rule.
        var file = try Safetensors.decode(Self.smallCheckpoint(), path: "k")
        let sums = file.metadata["checksums"]!
        file.metadata["checksums"] = "{\"encoder.0.bias\":\"00000000\"," + sums.dropFirst()
        #expect { try Checkpoint.decode(file, path: "k") } throws: { "\($0)".contains("metadata checksums is not a JSON object") }
    }

    /// A file of 1 KB whose config describes a model of 150 million parameters (600 MB) is refused,
    /// naming the first tensor it lacks, before the parameters are allocated.
    @Test func tinyFileClaimingAHugeModelAllocatesNothing() throws {
        var file = try Safetensors.decode(Self.smallCheckpoint(), path: "huge")
        var config = try JSONDecoder().decode(CheckpointConfig.self, from: Data(file.metadata["config"]!.utf8))
        config.model = ModelConfig(hidden: [8192, 8192], latent: 20)
        file.metadata["config"] = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        file.metadata["checksums"] = nil
        file.metadata["checksum_algorithm"] = nil
        file.tensors = []
        file.data = []
        let bytes = Safetensors.encode(metadata: file.metadata, tensors: [])
        #expect(bytes.count < 2000)
        let peakBefore = Self.resetPeakResidentBytes()
        #expect { try Checkpoint.decode(try Safetensors.decode(bytes, path: "/huge"), path: "/huge") } throws: {
            "\($0)".contains("/huge: has no tensor encoder.0.weight")
        }
        let grown = Self.peakResidentBytes() - peakBefore
        #expect(grown < 256 << 20, "peak resident memory grew by \(grown >> 20) MB")
    }

    /// What is not a regular file is refused with one accurate reason, without blocking or reading.
    @Test func onlyRegularFilesAreRead() throws {
        let dir = temporaryDirectory()
        #expect(mkfifo(dir + "/fifo", 0o600) == 0)
        try FileManager.default.createSymbolicLink(atPath: dir + "/zero", withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: dir + "/loop1", withDestinationPath: dir + "/loop2")
        try FileManager.default.createSymbolicLink(atPath: dir + "/loop2", withDestinationPath: dir + "/loop1")
        let zeros = dir + "/zeros.safetensors"
        #expect(FileManager.default.createFile(atPath: zeros, contents: nil) && truncate(zeros, 500_000_000) == 0)
        let cases = [("fifo", "is a FIFO (named pipe), not a regular file"), ("zero", "is a character device (such as /dev/zero)"),
                     ("", "is a folder, not a file"), ("loop1", "is a loop of symbolic links"), ("missing", "not found"),
                     ("zeros.safetensors", "header length 0 is too short")]
        for (name, reason) in cases {
            let path = dir + "/" + name
            #expect { try Checkpoint.load(path: path) } throws: { "\($0)".contains(path) && "\($0)".contains(reason) }
            #expect { try Safetensors.readBytes(path: path) } throws: { "\($0)".contains(reason) }
        }
    }

    /// Resets the peak resident size (Linux: /proc/self/clear_refs) and returns the current one.
    static func resetPeakResidentBytes() -> Int {
        try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
        return peakResidentBytes()
    }

    /// VmHWM of /proc/self/status, in bytes.
    static func peakResidentBytes() -> Int {
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
    }
}
