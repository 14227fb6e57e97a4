import Foundation
import VAEFiles

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
        var offset = 0
        return try parse(path: path, available: data.count) { count in
            let bytes = Array(data[offset..<min(data.count, offset + count)])
            offset += bytes.count
            return bytes
        }
    }

    /// The IDX array whose bytes `next(n)` hands out in order (up to n at a time, fewer only at
    /// the end). The header is read first and nothing past what its dimensions describe plus
    /// one byte is asked for, so a gzip bomb is not inflated beyond that. `available`, when
    /// known (a raw file's size), is checked against the header before the data is read.
    static func parse(path: String, available: Int?,
                      next: (Int) throws(DataError) -> [UInt8]) throws(DataError) -> IDXArray {
        func fail(_ reason: String) -> DataError { .invalid(path: path, reason: "not a valid IDX file: \(reason)") }
        let magic = try next(4)
        guard magic.count == 4 else { throw fail("\(magic.count) bytes is shorter than the 4-byte magic number") }
        guard magic[0] == 0, magic[1] == 0 else {
            throw fail(String(format: "bad magic number 0x%02x%02x%02x%02x (expected 0x0000 followed by type and rank)",
                              magic[0], magic[1], magic[2], magic[3]))
        }
        guard magic[2] == unsignedByte else {
            throw fail(String(format: "element type 0x%02x is not supported (only 0x08, unsigned byte)", magic[2]))
        }
        let rank = Int(magic[3])
        guard (1...4).contains(rank) else { throw fail("rank \(rank) is not between 1 and 4") }
        let headerSize = 4 + 4 * rank
        let sizes = try next(4 * rank)
        guard sizes.count == 4 * rank else { throw fail("header needs \(headerSize) bytes, file has \(4 + sizes.count)") }
        let (shape, total) = try dimensions(sizes, fail: fail)
        // `count` nil: the data goes on, and was not read further to count how far.
        func excess(_ count: Int?) -> DataError {
            fail((count.map { "\($0) " } ?? "") + "unexpected bytes after the \(total) bytes that dimensions \(shape) describe"
                 + (count == nil ? " (not decompressed further)" : ""))
        }
        if let available {
            let payload = available - headerSize
            if payload > total { throw excess(payload - total) }
            if payload < total { throw fail("truncated: dimensions \(shape) need \(total) bytes of data, found \(payload)") }
        }
        let bytes = try next(total)
        guard bytes.count == total else {
            throw fail("truncated: dimensions \(shape) need \(total) bytes of data, found \(bytes.count)")
        }
        // One more byte tells excess data apart without reading (or inflating) the rest of it.
        if available == nil, !(try next(1)).isEmpty { throw excess(nil) }
        return IDXArray(shape: shape, bytes: bytes)
    }

    /// The big-endian UInt32 sizes and their product (at most 2^34 elements).
    static func dimensions(_ sizes: [UInt8], fail: (String) -> DataError) throws(DataError) -> (shape: [Int], total: Int) {
        var shape = [Int]()
        var total = 1
        for o in stride(from: 0, to: sizes.count, by: 4) {
            let size = Int(sizes[o]) << 24 | Int(sizes[o + 1]) << 16 | Int(sizes[o + 2]) << 8 | Int(sizes[o + 3])
            shape.append(size)
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            guard !overflow, product <= 1 << 34 else { throw fail("dimensions \(shape) are too large") }
            total = product
        }
        return (shape, total)
    }

    public static func encode(_ array: IDXArray) -> [UInt8] {
        var out: [UInt8] = [0, 0, unsignedByte, UInt8(array.shape.count)]
        for size in array.shape {
            out += [UInt8(truncatingIfNeeded: size >> 24), UInt8(truncatingIfNeeded: size >> 16),
                    UInt8(truncatingIfNeeded: size >> 8), UInt8(truncatingIfNeeded: size)]
        }
        return out + array.bytes
    }

    /// Reads an IDX file, gunzipping it when the data starts with the gzip magic bytes. The
    /// file must be a regular file (`RegularFile`); a raw file's header is checked against its
    /// size before its data is read, a gzip file is inflated only as far as its header allows.
    public static func read(path: String) throws(DataError) -> IDXArray {
        let file: RegularFile
        do {
            file = try RegularFile(path: path)
        } catch .notFound {
            throw .missing(path: path, hint: "check the --data folder")
        } catch {
            throw .invalid(path: path, reason: "\(error)")
        }
        func fileError(_ problem: FileProblem) -> DataError { .invalid(path: path, reason: "\(problem)") }
        let start: [UInt8]
        do { start = try file.read(offset: 0, count: min(2, file.size)) } catch { throw fileError(error) }
        if start == [0x1f, 0x8b] {
            // The compressed file is read whole: its size is all it can hold.
            let compressed: [UInt8]
            do { compressed = try file.readAll(limit: file.size) } catch { throw fileError(error) }
            return try readGzip(compressed, path: path)
        }
        if path.hasSuffix(".gz") { throw .invalid(path: path, reason: "named .gz but is not gzip data") }
        var offset = 0
        return try parse(path: path, available: file.size) { count throws(DataError) in
            let n = min(count, file.size - offset)
            do throws(FileProblem) {
                let bytes = try file.read(offset: offset, count: n)
                offset += n
                return bytes
            } catch { throw fileError(error) }
        }
    }

    /// The IDX array in gzip data, inflated only as far as its header says it reaches (and
    /// one byte more, to notice excess without inflating it).
    static func readGzip(_ compressed: [UInt8], path: String) throws(DataError) -> IDXArray {
        let inflater: Inflater
        do { inflater = try Inflater(compressed) } catch { throw .invalid(path: path, reason: "\(error)") }
        return try parse(path: path, available: nil) { count throws(DataError) in
            do throws(ZlibError) { return try inflater.read(count) } catch { throw .invalid(path: path, reason: "\(error)") }
        }
    }
}
