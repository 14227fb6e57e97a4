import Foundation
import Testing
import VAEData
import VAEModel
import VAETraining
import VAESafetensors
import VAECheckpoint

/// Random mutations of valid files must give an error or a valid result, never a crash.
@Suite struct FuzzTests {
    struct Mutator {
        var state: UInt64
        mutating func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }

        /// Byte flips, overwrites with edge values, truncation, extension, splices.
        mutating func mutate(_ input: [UInt8]) -> [UInt8] {
            var b = input
            for _ in 0...below(4) {
                switch below(7) {
                case 0 where !b.isEmpty: b[below(b.count)] ^= UInt8(truncatingIfNeeded: 1 << below(8))
                case 1 where !b.isEmpty: b[below(b.count)] = [0, 0xff, 0x7f, 0x80, 0x30, 0x39, 0x22, 0x7b][below(8)]
                case 2: b = Array(b.prefix(below(b.count + 1)))
                case 3: b += (0..<below(64)).map { _ in UInt8(truncatingIfNeeded: next()) }
                case 4 where b.count > 8:  // a run of 4-8 bytes: lengths, dims, offsets
                    let at = below(b.count - 8)
                    for i in 0..<(4 + below(5)) { b[at + i] = UInt8(truncatingIfNeeded: next()) }
                case 5 where b.count > 16:  // splice a chunk elsewhere
                    let from = below(b.count - 8), to = below(b.count - 8), n = below(8)
                    for i in 0..<n { b[to + i] = b[from + i] }
                default: if !b.isEmpty { b.remove(at: below(b.count)) }
                }
            }
            return b
        }
    }

    @Test func idxReaderOnThousandsOfMutations() {
        let valid = IDX.encode(IDXArray(shape: [3, 5, 4], bytes: (0..<60).map { UInt8($0) }))
        let compressed = gzip(valid)
        var m = Mutator(state: 0x1234_5678)
        var errors = 0, successes = 0
        let dir = temporaryDirectory()
        for i in 0..<3000 {
            let raw = m.mutate(valid)
            do { _ = try IDX.decode(raw, path: "fuzz"); successes += 1 } catch { errors += 1 }
            if i % 3 == 0 {  // through the gzip path of the file reader
                let path = dir + "/f.gz"
                _ = FileManager.default.createFile(atPath: path, contents: Data(m.mutate(compressed)))
                do { _ = try IDX.read(path: path); successes += 1 } catch { errors += 1 }
            }
        }
        #expect(errors > 1000, "mutations should mostly be rejected (\(errors) errors, \(successes) accepted)")
    }

    @Test func safetensorsAndCheckpointReaderOnThousandsOfMutations() throws {
        let model = VAE(config: ModelConfig(imageHeight: 4, imageWidth: 4, hidden: [5], latent: 2))
        model.initialize(seed: 1)
        var o = TrainingOptions()
        o.data = "synthetic:100"
        let valid = Checkpoint.encode(model: model, optimizer: nil, config: CheckpointConfig(model: model.config, training: o),
                                      resume: ResumeState(epoch: 1), worldSize: 1, dataset: "fuzz")
        _ = try Checkpoint.decode(try Safetensors.decode(valid, path: "ok"), path: "ok")  // the unmutated file loads
        var m = Mutator(state: 0xDEAD_BEEF)
        var errors = 0, loaded = 0
        let headerLength = Int(valid[0]) | Int(valid[1]) << 8
        for _ in 0..<4000 {
            var bytes = m.mutate(valid)
            // Half the time, mutate only inside the JSON header, where the structure lives.
            if m.below(2) == 0 {
                bytes = valid
                let alphabet = Array("{}[],:\"0123456789-eE.ab ".utf8)
                for _ in 0...m.below(3) { bytes[8 + m.below(headerLength)] = alphabet[m.below(alphabet.count)] }
            }
            do {
                let checkpoint = try Checkpoint.decode(try Safetensors.decode(bytes, path: "fuzz"), path: "fuzz")
                _ = checkpoint.makeModel()
                loaded += 1
            } catch {
                errors += 1
            }
        }
        #expect(errors > 1000, "\(errors) errors, \(loaded) loaded")
    }
}
