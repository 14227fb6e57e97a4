import CZlib

// zlib, for gzip-compressed IDX files (inflate) and PNG image data (deflate, crc32).

public enum ZlibError: Error, CustomStringConvertible {
    case corrupt(String)
    case truncated
    case tooLarge(Int)
    public var description: String {
        switch self {
        case .corrupt(let message): "compressed data is corrupt (zlib: \(message))"
        case .truncated: "compressed data ends early (truncated file)"
        case .tooLarge(let limit): "decompressed data exceeds \(limit) bytes"
        }
    }
}

/// Decompresses gzip or zlib data (detected from the header).
public func inflate(_ input: [UInt8], limit: Int = 1 << 32) throws(ZlibError) -> [UInt8] {
    var stream = z_stream()
    guard vae_inflate_init_gzip(&stream) == Z_OK else { throw .corrupt("inflateInit2 failed") }
    defer { inflateEnd(&stream) }
    var output = [UInt8]()
    output.reserveCapacity(max(input.count * 4, 1024))
    var chunk = [UInt8](repeating: 0, count: 1 << 18)
    var status: Int32 = Z_OK
    var failure: ZlibError?
    input.withUnsafeBufferPointer { inp in
        stream.next_in = UnsafeMutablePointer(mutating: inp.baseAddress)
        stream.avail_in = UInt32(inp.count)
        while status != Z_STREAM_END {
            chunk.withUnsafeMutableBufferPointer { out in
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                status = CZlib.inflate(&stream, Z_NO_FLUSH)
                output.append(contentsOf: out[0..<(out.count - Int(stream.avail_out))])
            }
            if status == Z_STREAM_END { break }
            if status == Z_BUF_ERROR || (status == Z_OK && stream.avail_in == 0 && stream.avail_out != 0) {
                failure = .truncated; return
            }
            if status != Z_OK {
                let message = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                failure = .corrupt(message); return
            }
            if output.count > limit { failure = .tooLarge(limit); return }
        }
    }
    if let failure { throw failure }
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
