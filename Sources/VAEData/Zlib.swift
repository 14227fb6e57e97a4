import CZlib

// zlib, for gzip-compressed IDX files (inflate) and PNG image data (deflate, crc32).

public enum ZlibError: Error, CustomStringConvertible, Equatable {
    case corrupt(String)
    case truncated
    case tooLarge(Int)
    /// Bytes after the end of the last gzip member that are not another member.
    case trailingBytes(Int)
    public var description: String {
        switch self {
        case .corrupt(let message): "compressed data is corrupt (zlib: \(message))"
        case .truncated: "compressed data ends early (truncated file)"
        case .tooLarge(let limit): "decompressed data exceeds \(limit) bytes"
        case .trailingBytes(let count): "\(count) bytes after the end of the gzip data (not another gzip member)"
        }
    }
}

/// Inflates gzip or zlib data (detected from the header) on demand: `read(_:)` inflates only
/// the bytes asked for, so a reader that knows how much to expect (an IDX header) never
/// inflates a bomb beyond that. A gzip file may hold several members one after the other
/// (`cat a.gz b.gz`, pigz, bgzip): their data is read as one stream.
public final class Inflater {
    private var stream = z_stream()
    private let input: [UInt8]
    /// The last member's end was reached and no input is left.
    public private(set) var atEnd = false

    public init(_ input: [UInt8]) throws(ZlibError) {
        self.input = input
        guard vae_inflate_init_gzip(&stream) == Z_OK else { throw .corrupt("inflateInit2 failed") }
    }

    deinit { inflateEnd(&stream) }

    /// Up to `count` bytes of the decompressed data; fewer only at its end.
    public func read(_ count: Int) throws(ZlibError) -> [UInt8] {
        precondition(count >= 0)
        // Appended chunk by chunk rather than allocated whole: `count` comes from a header
        // the data may not honour.
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: min(count, 1 << 18))
        while output.count < count && !atEnd {
            let wanted = min(count - output.count, chunk.count)
            let produced = try inflateStep(into: &chunk, count: wanted)
            output.append(contentsOf: chunk[0..<produced])
        }
        return output
    }

    /// One call of zlib's inflate into the first `count` bytes of `chunk`; the bytes it wrote.
    private func inflateStep(into chunk: inout [UInt8], count: Int) throws(ZlibError) -> Int {
        let offset = Int(stream.total_in)
        let (status, produced): (Int32, Int) = input.withUnsafeBufferPointer { inp in
            chunk.withUnsafeMutableBufferPointer { out in
                stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress.map { $0 + offset })
                stream.avail_in = UInt32(inp.count - offset)
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(count)
                let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                return (status, count - Int(stream.avail_out))
            }
        }
        switch status {
        case Z_STREAM_END: try endOfMember()
        case Z_OK: if produced == 0 && stream.avail_in == 0 { throw .truncated }
        case Z_BUF_ERROR: throw .truncated
        default: throw .corrupt(stream.msg.map { String(cString: $0) } ?? "error \(status)")
        }
        return produced
    }

    /// After a member's end: the next member, the end of the input, or trailing bytes.
    private func endOfMember() throws(ZlibError) {
        let consumed = Int(stream.total_in)
        let left = input.count - consumed
        if left == 0 { atEnd = true; return }
        guard left >= 2, input[consumed] == 0x1f, input[consumed + 1] == 0x8b else { throw .trailingBytes(left) }
        // inflateReset keeps total_in counting across members.
        let total = stream.total_in
        guard inflateReset(&stream) == Z_OK else { throw .corrupt("inflateReset failed") }
        stream.total_in = total
    }
}

/// Decompresses gzip or zlib data (detected from the header), at most `limit` bytes.
public func inflate(_ input: [UInt8], limit: Int = 1 << 32) throws(ZlibError) -> [UInt8] {
    let inflater = try Inflater(input)
    let output = try inflater.read(limit)
    if !inflater.atEnd, !(try inflater.read(1)).isEmpty { throw .tooLarge(limit) }
    return output
}
/// Compresses with zlib framing (what PNG's IDAT chunks hold).
public func deflate(_ input: [UInt8], level: Int32 = 6) -> [UInt8] {
    var size = compressBound(uLong(input.count))
    var output = [UInt8](repeating: 0, count: Int(size))
    let status = output.withUnsafeMutableBufferPointer { out in
        input.withUnsafeBufferPointer { inp in
            compress2(out.baseAddress, &size, inp.baseAddress, uLong(inp.count), level)
        }
    }
    precondition(status == Z_OK, "compress2 failed with \(status)")  // only fails on a too-small buffer
    return Array(output[0..<Int(size)])
}

/// CRC-32 (the one PNG and gzip use), continuing from `crc`.
public func crc32(_ bytes: [UInt8], crc: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { crc32($0, crc: crc) }
}

/// CRC-32 of raw memory (a tensor inside a larger buffer), in chunks zlib's 32-bit length takes.
public func crc32(_ bytes: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
    // zlib returns its initial value, not `crc`, for a null buffer: an empty one changes nothing.
    guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), !bytes.isEmpty else { return crc }
    var value = uLong(crc)
    var offset = 0
    while offset < bytes.count {
        let count = min(bytes.count - offset, 1 << 30)
        value = CZlib.crc32(value, base + offset, uInt(count))
        offset += count
    }
    return UInt32(value)
}

/// A gzip file (RFC 1952) of `input`, for writing test fixtures.
public func gzip(_ input: [UInt8]) -> [UInt8] {
    let zlibData = deflate(input)
    // A zlib stream is 2 header bytes + raw deflate + 4 bytes Adler-32; gzip wraps the raw deflate.
    let raw = zlibData[2..<(zlibData.count - 4)]
    var out: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]
    out += raw
    let crc = crc32(input)
    let size = UInt32(truncatingIfNeeded: input.count)
    for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: crc >> UInt32(shift))) }
    for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: size >> UInt32(shift))) }
    return out
}
