import Foundation
import VAEData
import VAESafetensors

// Every tensor's CRC-32 (zlib's, the IEEE polynomial of gzip and PNG; Python's zlib.crc32 gives
// the same number) in the checkpoint's __metadata__:
//   checksums          = JSON object, tensor name -> 8 lowercase hex digits
//   checksum_algorithm = crc32
// CRC-32 detects every single-bit flip and every burst of up to 32 bits, which a value check
// cannot: most flipped bits leave a finite, plausible float. Files written before checksums
// existed have neither key and load unverified.

public enum TensorChecksums {
    public static let key = "checksums"
    public static let algorithmKey = "checksum_algorithm"
    public static let algorithm = "crc32"

    /// The metadata entries for these tensors.
    public static func metadata(_ tensors: [(name: String, bytes: UnsafeRawBufferPointer)]) -> [String: String] {
        var sums: [String: String] = [:]
        for t in tensors { sums[t.name] = hex(crc32(t.bytes)) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json = String(decoding: (try? encoder.encode(sums)) ?? Data(), as: UTF8.self)
        return [key: json, algorithmKey: algorithm]
    }

    static func hex(_ crc: UInt32) -> String {
        let digits = String(crc, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }
}

extension SafetensorsFile {
    /// Whether the file records checksums (false: written by an older vae-dist).
    public var hasChecksums: Bool {
        metadata[TensorChecksums.key] != nil || metadata[TensorChecksums.algorithmKey] != nil
    }

    /// One line per failure, each completing "PATH: ...": a malformed record, an entry for a
    /// tensor the file does not hold, a tensor without an entry, a tensor whose bytes do not
    /// match. Empty when every tensor matches (or the file has no checksums: see hasChecksums).
    public func checksumFailures() -> [String] {
        guard hasChecksums else { return [] }
        let algorithm = metadata[TensorChecksums.algorithmKey]
        guard algorithm == TensorChecksums.algorithm else {
            return ["metadata \(TensorChecksums.algorithmKey) is \(algorithm.map { "'\($0)'" } ?? "missing"), expected '\(TensorChecksums.algorithm)'"]
        }
        let text = Array((metadata[TensorChecksums.key] ?? "").utf8)
        guard (try? DuplicateKeys.check(text[...])) != nil,
              let sums = try? JSONDecoder().decode([String: String].self, from: Data(text)) else {
            return ["metadata \(TensorChecksums.key) is not a JSON object of tensor name -> 8 hex digits (each key once)"]
        }
        let names = Set(tensors.map(\.name))
        var failures = sums.keys.filter { !names.contains($0) }.sorted().map {
            "metadata \(TensorChecksums.key) names tensor \($0), which the file does not hold"
        }
        for t in tensors {
            guard let stored = sums[t.name] else { failures.append("tensor \(t.name) has no checksum"); continue }
            guard stored.utf8.count == 8, stored.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
                failures.append("tensor \(t.name) has checksum '\(stored)', not 8 lowercase hex digits"); continue
            }
            let computed = TensorChecksums.hex(data.withUnsafeBytes { crc32(UnsafeRawBufferPointer(rebasing: $0[t.begin..<t.end])) })
            if computed != stored {
                failures.append("tensor \(t.name) fails its CRC-32 check (stored \(stored), computed \(computed)): the file is corrupt")
            }
        }
        return failures
    }

    /// F32 tensors holding NaN or infinity, one line each (for `inspect --verify`).
    public func nonFiniteFailures() -> [String] {
        tensors.filter { $0.dtype == "F32" }.compactMap { t in
            let (count, first) = data.withUnsafeBytes { raw -> (Int, Int?) in
                var count = 0
                var first: Int?
                for i in 0..<((t.end - t.begin) / 4) where !raw.loadUnaligned(fromByteOffset: t.begin + 4 * i, as: Float.self).isFinite {
                    count += 1
                    if first == nil { first = i }
                }
                return (count, first)
            }
            return first.map { "tensor \(t.name) holds \(count) non-finite value(s), the first at element \($0)" }
        }
    }
}
