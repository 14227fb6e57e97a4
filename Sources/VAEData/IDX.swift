import Foundation

// The IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
//   magic: 0x00 0x00 <type> <ndims>, then ndims big-endian UInt32 sizes, then the
//   elements row-major. Only type 0x08 (unsigned byte) is used by image datasets.

public struct IDXArray: Equatable, Sendable {
    public var shape: [Int]
    public var bytes: [UInt8]
    public init(shape: [Int], bytes: [UInt8]) { self.shape = shape; self.bytes = bytes }
}

public enum DataError: Error, CustomStringConvertible, Equatable {
    /// A file that should be there is not.
    case missing(path: String, hint: String)
    /// A file that is there but cannot be used.
    case invalid(path: String, reason: String)
    /// A bad --data argument or dataset combination.
    case configuration(String)

    public var description: String {
        switch self {
        case .missing(let path, let hint): "\(path): not found (\(hint))"
        case .invalid(let path, let reason): "\(path): \(reason)"
        case .configuration(let message): message
        }
    }
}

public enum IDX {
    public static let unsignedByte: UInt8 = 0x08

    /// Parses IDX bytes; `path` only names the source in errors.
    public static func decode(_ data: [UInt8], path: String) throws(DataError) -> IDXArray {
        func fail(_ reason: String) -> DataError { .invalid(path: path, reason: "not a valid IDX file: \(reason)") }
        guard data.count >= 4 else { throw fail("\(data.count) bytes is shorter than the 4-byte magic number") }
        guard data[0] == 0, data[1] == 0 else {
            throw fail(String(format: "bad magic number 0x%02x%02x%02x%02x (expected 0x0000 followed by type and rank)",
                              data[0], data[1], data[2], data[3]))
        }
        guard data[2] == unsignedByte else {
            throw fail(String(format: "element type 0x%02x is not supported (only 0x08, unsigned byte)", data[2]))
        }
        let rank = Int(data[3])
        guard (1...4).contains(rank) else { throw fail("rank \(rank) is not between 1 and 4") }
        let headerSize = 4 + 4 * rank
        guard data.count >= headerSize else { throw fail("header needs \(headerSize) bytes, file has \(data.count)") }
        var shape = [Int]()
        var total = 1
        for i in 0..<rank {
            let o = 4 + 4 * i
            let size = Int(data[o]) << 24 | Int(data[o + 1]) << 16 | Int(data[o + 2]) << 8 | Int(data[o + 3])
            shape.append(size)
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            guard !overflow, product <= 1 << 34 else { throw fail("dimensions \(shape) are too large") }
            total = product
        }
        let payload = data.count - headerSize
        guard payload == total else {
            throw fail(payload < total
                ? "truncated: dimensions \(shape) need \(total) bytes of data, found \(payload)"
                : "\(payload - total) unexpected bytes after the \(total) bytes that dimensions \(shape) describe")
        }
        return IDXArray(shape: shape, bytes: Array(data[headerSize...]))
    }

    public static func encode(_ array: IDXArray) -> [UInt8] {
        var out: [UInt8] = [0, 0, unsignedByte, UInt8(array.shape.count)]
        for size in array.shape {
            out += [UInt8(truncatingIfNeeded: size >> 24), UInt8(truncatingIfNeeded: size >> 16),
                    UInt8(truncatingIfNeeded: size >> 8), UInt8(truncatingIfNeeded: size)]
        }
        return out + array.bytes
    }

    /// Reads an IDX file, gunzipping it when the name ends in .gz or the data starts
    /// with the gzip magic bytes.
    public static func read(path: String) throws(DataError) -> IDXArray {
        let data: [UInt8]
        do {
            data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            if !FileManager.default.fileExists(atPath: path) {
                throw .missing(path: path, hint: "check the --data folder")
            }
            throw .invalid(path: path, reason: "cannot be read (\((error as NSError).localizedDescription))")
        }
        if data.count >= 2 && data[0] == 0x1f && data[1] == 0x8b {
            do {
                return try decode(try inflate(data), path: path)
            } catch let error as ZlibError {
                throw .invalid(path: path, reason: "\(error)")
            } catch let error as DataError {
                throw error
            } catch {
                throw .invalid(path: path, reason: "\(error)")
            }
        }
        if path.hasSuffix(".gz") { throw .invalid(path: path, reason: "named .gz but is not gzip data") }
        return try decode(data, path: path)
    }
}
