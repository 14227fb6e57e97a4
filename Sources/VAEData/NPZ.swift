import CZlib
import Foundation

// numpy's .npz: a zip file of .npy members (numpy.savez: stored; savez_compressed: deflated).
// The central directory at the end of the file lists the members; a stored member's .npy is
// read in place from the mapping, a deflated one is inflated into memory (as large as the
// array: write large data with numpy.savez or numpy.save, not savez_compressed). numpy writes
// every member with zip64 fields, so those are read too.

public struct ZipMember: Sendable, Equatable {
    public var name: String
    /// 0: stored, 8: deflated.
    public var method: Int
    public var compressedSize: Int
    public var size: Int
    /// Of the member's local header.
    public var headerOffset: Int
}

public enum NPZ {
    /// The members listed in the central directory of the zip file `file`.
    public static func members(_ file: UnsafeRawBufferPointer, path: String) throws(DataError) -> [ZipMember] {
        func fail(_ reason: String) -> DataError { .invalid(path: path, reason: "not a valid .npz (zip) file: \(reason); write it with numpy.savez") }
        func u16(_ o: Int) -> Int { Int(file.loadUnaligned(fromByteOffset: o, as: UInt16.self).littleEndian) }
        func u32(_ o: Int) -> Int { Int(file.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian) }
        func u64(_ o: Int) -> Int { Int(truncatingIfNeeded: file.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian) }
        let n = file.count
        // End of central directory: 22 bytes plus a comment of up to 65535, at the very end.
        var eocd = -1
        var o = n - 22
        while o >= max(0, n - 22 - 65535) {
            if u32(o) == 0x0605_4b50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw fail("no end of central directory (truncated?)") }
        var entries = u16(eocd + 10), directorySize = u32(eocd + 12), directoryOffset = u32(eocd + 16)
        if (entries == 0xffff || directoryOffset == 0xffff_ffff || directorySize == 0xffff_ffff), eocd >= 20, u32(eocd - 20) == 0x0706_4b50 {
            let record = u64(eocd - 20 + 8)  // zip64 end of central directory record
            guard record >= 0, record + 56 <= n, u32(record) == 0x0606_4b50 else { throw fail("bad zip64 end of central directory") }
            entries = u64(record + 32); directorySize = u64(record + 40); directoryOffset = u64(record + 48)
        }
        guard directoryOffset >= 0, directorySize >= 0, directoryOffset <= n, directorySize <= n - directoryOffset, entries <= directorySize / 46 else {
            throw fail("its central directory lies outside the file (truncated?)")
        }
        var members: [ZipMember] = []
        var p = directoryOffset
        for _ in 0..<entries {
            guard p + 46 <= directoryOffset + directorySize, u32(p) == 0x0201_4b50 else { throw fail("bad central directory entry") }
            let flags = u16(p + 8), method = u16(p + 10)
            var compressed = u32(p + 20), size = u32(p + 24)
            let nameLength = u16(p + 28), extraLength = u16(p + 30), commentLength = u16(p + 32)
            var header = u32(p + 42)
            let end = p + 46 + nameLength + extraLength + commentLength
            guard end <= directoryOffset + directorySize else { throw fail("bad central directory entry") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: file[(p + 46)..<(p + 46 + nameLength)]), as: UTF8.self)
            // zip64 extra field (id 1): the 64-bit values of the fields that hold 0xffffffff, in order.
            var e = p + 46 + nameLength
            while e + 4 <= p + 46 + nameLength + extraLength {
                let id = u16(e), length = u16(e + 2)
                if id == 1 {
                    var q = e + 4
                    if size == 0xffff_ffff, q + 8 <= e + 4 + length { size = u64(q); q += 8 }
                    if compressed == 0xffff_ffff, q + 8 <= e + 4 + length { compressed = u64(q); q += 8 }
                    if header == 0xffff_ffff, q + 8 <= e + 4 + length { header = u64(q); q += 8 }
                }
                e += 4 + length
            }
            guard flags & 1 == 0 else { throw fail("member \(name) is encrypted") }
            guard compressed >= 0, size >= 0, header >= 0 else { throw fail("member \(name) has sizes out of range") }
            members.append(ZipMember(name: name, method: method, compressedSize: compressed, size: size, headerOffset: header))
            p = end
        }
        return members
    }

    /// Where `member`'s data starts in the file, checked to lie inside it.
    public static func dataRange(of member: ZipMember, in file: UnsafeRawBufferPointer, path: String) throws(DataError) -> Range<Int> {
        let o = member.headerOffset
        guard o <= file.count - 30, file.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian == 0x0403_4b50 else {
            throw .invalid(path: path, reason: "member \(member.name) has no local header where the directory says (truncated or corrupt); write the file again")
        }
        let start = o + 30 + Int(file.loadUnaligned(fromByteOffset: o + 26, as: UInt16.self).littleEndian)
            + Int(file.loadUnaligned(fromByteOffset: o + 28, as: UInt16.self).littleEndian)
        guard start <= file.count, member.compressedSize <= file.count - start else {
            throw .invalid(path: path, reason: "member \(member.name) ends after the end of the file (truncated); write the file again")
        }
        return start ..< start + member.compressedSize
    }

    /// A deflated member's data inflated, refused past `size` (what the directory promises):
    /// memory grows with the data actually inflated, not with the size claimed.
    public static func inflateRaw(_ input: UnsafeRawBufferPointer, size: Int, path: String, name: String) throws(DataError) -> [UInt8] {
        var stream = z_stream()
        guard vae_inflate_init_raw(&stream) == Z_OK else { throw .invalid(path: path, reason: "zlib cannot start inflating \(name)") }
        defer { inflateEnd(&stream) }
        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var consumed = 0
        while true {
            let (status, produced): (Int32, Int) = chunk.withUnsafeMutableBufferPointer { out in
                let left = input.count - consumed
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { ($0 + consumed).assumingMemoryBound(to: UInt8.self) })
                stream.avail_in = UInt32(min(left, Int(UInt32.max)))
                stream.next_out = out.baseAddress
                stream.avail_out = UInt32(out.count)
                let before = stream.avail_in
                let status = CZlib.inflate(&stream, Z_NO_FLUSH)
                consumed += Int(before - stream.avail_in)
                return (status, out.count - Int(stream.avail_out))
            }
            output.append(contentsOf: chunk[0..<produced])
            guard output.count <= size else {
                throw .invalid(path: path, reason: "member \(name) inflates to more than the \(size) bytes its directory entry says; write the file again")
            }
            if status == Z_STREAM_END { break }
            guard status == Z_OK || (status == Z_BUF_ERROR && produced > 0) else {
                throw .invalid(path: path, reason: "member \(name) is corrupt (\(stream.msg.map { String(cString: $0) } ?? "zlib error \(status)")); write the file again")
            }
            if produced == 0 && consumed >= input.count {
                throw .invalid(path: path, reason: "member \(name) ends early (truncated); write the file again")
            }
        }
        guard output.count == size else { throw .invalid(path: path, reason: "member \(name) inflates to \(output.count) bytes, not the \(size) its directory entry says") }
        return output
    }
}
