import Foundation
import VAEFiles

// The safetensors format (https://github.com/huggingface/safetensors):
//   8 bytes   little-endian UInt64 N, the header length
//   N bytes   UTF-8 JSON: {"__metadata__": {str: str}, name: {"dtype": "F32",
//             "shape": [..], "data_offsets": [begin, end]}, ...}, padded with
//             spaces so the data starts 8-byte aligned
//   the data  tensors back to back; offsets are relative to the data's start and
//             must tile it exactly (no gaps, no overlap).

/// Why a file is not a safetensors file this reader accepts; `description` is the whole line,
/// "PATH: REASON".
public enum SafetensorsError: Error, CustomStringConvertible {
    /// The bytes break the format (the reason says where).
    case invalid(path: String, reason: String)
    /// The file cannot be opened or read (not found, a folder, a FIFO ...).
    case file(path: String, problem: FileProblem)
    /// A tensor a reader asked for is absent, or not F32 of the shape it needs.
    case tensor(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalid(let path, let reason): "\(path): not a valid safetensors file: \(reason)"
        case .file(let path, let problem): "\(path): \(problem)"
        case .tensor(let path, let reason): "\(path): \(reason)"
        }
    }
}

public struct SafetensorsTensor: Equatable, Sendable {
    public var name: String
    public var dtype: String
    public var shape: [Int]
    /// Byte range in the data section.
    public var begin: Int
    public var end: Int
}

public struct SafetensorsFile: Sendable {
    public var metadata: [String: String]
    /// Sorted by offset.
    public var tensors: [SafetensorsTensor]
    /// The data section.
    public var data: [UInt8]

    public func tensor(_ name: String) -> SafetensorsTensor? { tensors.first { $0.name == name } }

    /// The tensor's values; it must be F32 of the given shape.
    public func floats(_ name: String, shape: [Int], path: String) throws(SafetensorsError) -> ArraySlice<UInt8> {
        guard let t = tensor(name) else { throw .tensor(path: path, reason: "has no tensor \(name)") }
        guard t.dtype == "F32" else { throw .tensor(path: path, reason: "tensor \(name) is \(t.dtype), expected F32") }
        guard t.shape == shape else {
            throw .tensor(path: path, reason: "tensor \(name) has shape \(t.shape), this model needs \(shape) (another architecture?)")
        }
        return data[t.begin..<t.end]
    }
}

public enum Safetensors {
    /// The reference implementation refuses headers above 100 MB.
    public static let maximumHeaderLength = 100_000_000
    static let elementSizes: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
    ]

    /// Serializes F32 tensors given as (name, shape, bytes) in file order.
    public static func encode(metadata: [String: String], tensors: [(name: String, shape: [Int], bytes: UnsafeRawBufferPointer)]) -> [UInt8] {
        encode(metadata: metadata, typedTensors: tensors.map { ($0.name, "F32", $0.shape, $0.bytes) })
    }

    /// Serializes tensors of any dtype given as (name, dtype, shape, little-endian bytes) in file order.
    public static func encode(metadata: [String: String],
                              typedTensors tensors: [(name: String, dtype: String, shape: [Int], bytes: UnsafeRawBufferPointer)]) -> [UInt8] {
        for t in tensors {
            precondition(t.bytes.count == (elementSizes[t.dtype] ?? -1) * t.shape.reduce(1, *), "tensor \(t.name): bytes do not match \(t.dtype) \(t.shape)")
        }
        var header = "{\"__metadata__\":{"
        header += metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }.joined(separator: ",")
        header += "}"
        var offset = 0
        for t in tensors {
            let end = offset + t.bytes.count
            header += ",\(jsonString(t.name)):{\"dtype\":\"\(t.dtype)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        header += "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out = [UInt8]()
        out.reserveCapacity(8 + headerBytes.count + offset)
        let n = UInt64(headerBytes.count)
        for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: n >> (8 * UInt64(i)))) }
        out += headerBytes
        for t in tensors { out.append(contentsOf: t.bytes) }
        return out
    }

    /// Parses and validates strictly; `path` names the file in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws(SafetensorsError) -> SafetensorsFile {
        let fail = failure(path)
        guard bytes.count >= 8 else { throw fail("\(bytes.count) bytes is shorter than the 8-byte header length") }
        let headerEnd = try headerEnd(lengthBytes: bytes[0..<8], fileSize: bytes.count, path: path)
        let (metadata, tensors) = try parseHeader(bytes[8..<headerEnd], dataSize: bytes.count - headerEnd, path: path)
        return SafetensorsFile(metadata: metadata, tensors: tensors, data: Array(bytes[headerEnd...]))
    }

    private static func failure(_ path: String) -> (String) -> SafetensorsError {
        { reason in .invalid(path: path, reason: reason) }
    }

    /// Where the header ends (8 + its length), from the first 8 bytes of a file of `fileSize` bytes.
    static func headerEnd(lengthBytes: ArraySlice<UInt8>, fileSize: Int, path: String) throws(SafetensorsError) -> Int {
        let fail = failure(path)
        var n: UInt64 = 0
        for (i, byte) in lengthBytes.enumerated() { n |= UInt64(byte) << (8 * UInt64(i)) }
        guard n <= UInt64(maximumHeaderLength) else { throw fail("header length \(n) exceeds the 100 MB limit") }
        guard n >= 2 else { throw fail("header length \(n) is too short for a JSON object (not a safetensors file?)") }
        guard 8 + Int(n) <= fileSize else {
            throw fail("header length \(n) does not fit in the file's \(fileSize) bytes (truncated?)")
        }
        return 8 + Int(n)
    }

    /// The metadata and the tensors (sorted by offset) of a header whose data section holds
    /// `dataSize` bytes: every tensor's range must lie inside it, and the ranges tile it exactly.
    static func parseHeader(_ header: ArraySlice<UInt8>, dataSize: Int, path: String) throws(SafetensorsError)
        -> (metadata: [String: String], tensors: [SafetensorsTensor]) {
        let fail = failure(path)
        do {
            try DuplicateKeys.check(header)
        } catch .duplicateKey(let key) {
            throw fail("header holds the key \(jsonString(key)) twice in one object (readers would disagree on which counts)")
        } catch .tooDeep {
            throw fail("header nests deeper than \(DuplicateKeys.maximumDepth) levels")
        } catch {
            throw fail("header is not valid JSON")
        }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(header), options: [])
        } catch {
            throw fail("header is not valid JSON")
        }
        guard let entries = object as? [String: Any] else { throw fail("header is not a JSON object") }
        var metadata: [String: String] = [:]
        var tensors: [SafetensorsTensor] = []
        for (name, value) in entries {
            if name == "__metadata__" {
                guard let dict = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in dict {
                    guard let s = v as? String else { throw fail("__metadata__ value for \(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            tensors.append(try tensor(name, value, fail: fail))
        }
        tensors.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var expected = 0
        for t in tensors {
            guard t.begin == expected else {
                throw fail(t.begin < expected ? "tensor \(t.name) overlaps the tensor before it" : "gap before tensor \(t.name) at byte \(expected)")
            }
            expected = t.end
        }
        guard expected == dataSize else {
            throw fail(expected > dataSize
                ? "tensors need \(expected) bytes of data but the file holds \(dataSize) (truncated?)"
                : "\(dataSize - expected) bytes of data after the last tensor")
        }
        return (metadata, tensors)
    }

    /// One tensor's header entry, its dtype, shape and byte count checked against each other.
    private static func tensor(_ name: String, _ value: Any, fail: (String) -> SafetensorsError) throws(SafetensorsError) -> SafetensorsTensor {
        guard let info = value as? [String: Any],
              let dtype = info["dtype"] as? String,
              let shapeValues = info["shape"] as? [Any],
              let offsetValues = info["data_offsets"] as? [Any] else {
            throw fail("tensor \(name) lacks dtype, shape or data_offsets")
        }
        guard let size = elementSizes[dtype] else { throw fail("tensor \(name) has unknown dtype \(dtype)") }
        let shape = try shapeValues.map { v throws(SafetensorsError) -> Int in
            guard let i = exactInteger(v), i >= 0, i <= 1 << 40 else { throw fail("tensor \(name) has a bad shape") }
            return i
        }
        guard offsetValues.count == 2, let begin = exactInteger(offsetValues[0]), let end = exactInteger(offsetValues[1]),
              begin >= 0, end >= begin else {
            throw fail("tensor \(name) has bad data_offsets")
        }
        var count = 1
        for s in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: s)
            guard !overflow, product <= 1 << 40 else { throw fail("tensor \(name) shape \(shape) is too large") }
            count = product
        }
        guard count * size == end - begin else {
            throw fail("tensor \(name): shape \(shape) of \(dtype) needs \(count * size) bytes but data_offsets span \(end - begin)")
        }
        return SafetensorsTensor(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// Reads `path` in bounded steps (RegularFile): the 8-byte length, checked against the
    /// file's size and the 100 MB limit; the header, every tensor's range checked against the
    /// size; only then the data, once. A file that is not a safetensors file is refused having
    /// read at most its header.
    public static func read(path: String) throws(SafetensorsError) -> SafetensorsFile {
        let (file, headerEnd, metadata, tensors) = try openValidated(path: path)
        let data = try mapProblem(path) { () throws(FileProblem) in try file.read(offset: headerEnd, count: file.size - headerEnd) }
        return SafetensorsFile(metadata: metadata, tensors: tensors, data: data)
    }

    /// The bytes of a whole safetensors file whose header has been validated as `read` does (for
    /// the resume broadcast, where every rank decodes the same bytes).
    public static func readBytes(path: String) throws(SafetensorsError) -> [UInt8] {
        let (file, _, _, _) = try openValidated(path: path)
        return try mapProblem(path) { () throws(FileProblem) in try file.read(offset: 0, count: file.size) }
    }

    private static func openValidated(path: String) throws(SafetensorsError)
        -> (RegularFile, headerEnd: Int, metadata: [String: String], tensors: [SafetensorsTensor]) {
        let file = try mapProblem(path) { () throws(FileProblem) in try RegularFile(path: path) }
        guard file.size >= 8 else {
            throw failure(path)("\(file.size) bytes is shorter than the 8-byte header length")
        }
        let lengthBytes = try mapProblem(path) { () throws(FileProblem) in try file.read(offset: 0, count: 8) }
        let headerEnd = try headerEnd(lengthBytes: lengthBytes[...], fileSize: file.size, path: path)
        let header = try mapProblem(path) { () throws(FileProblem) in try file.read(offset: 8, count: headerEnd - 8) }
        let (metadata, tensors) = try parseHeader(header[...], dataSize: file.size - headerEnd, path: path)
        return (file, headerEnd, metadata, tensors)
    }

    /// A file problem as the one-line error the commands print ("PATH: is a folder, not a file").
    private static func mapProblem<T>(_ path: String, _ body: () throws(FileProblem) -> T) throws(SafetensorsError) -> T {
        do { return try body() } catch { throw .file(path: path, problem: error) }
    }

    private static func exactInteger(_ value: Any) -> Int? {
        if let n = value as? NSNumber, String(cString: n.objCType) != "c" {  // "c": a JSON boolean
            let d = n.doubleValue
            guard d.rounded() == d, abs(d) < 9e15 else { return nil }
            return n.intValue
        }
        return nil
    }
}

/// A JSON string literal.
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}
