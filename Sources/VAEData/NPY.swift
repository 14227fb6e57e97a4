import Foundation

// numpy's .npy format (numpy.lib.format): the magic "\x93NUMPY", a version (1.0: a 2-byte
// header length; 2.0 and 3.0: 4 bytes), then a Python dict literal such as
//   {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }
// padded with spaces to an alignment of 64, then the raw elements. The header is parsed as
// text, never evaluated, so nothing is ever unpickled: object arrays ('|O') are refused.
// Big-endian ('>f4') and Fortran-order arrays are refused (not converted), with the numpy line
// that rewrites them: converting would mean a copy of the whole array in memory, which is
// what a memory-mapped array is for avoiding.

public enum NPY {
    /// The longest header accepted (numpy's own limit for a safe load is 10,000 bytes).
    public static let maximumHeaderLength = 1 << 16

    /// The array of the .npy file whose bytes are `region` (a mapped file or an .npz member).
    public static func parse(_ region: UnsafeRawBufferPointer, path: String) throws(DataError) -> StoredArray {
        func fail(_ reason: String) -> DataError { .invalid(path: path, reason: "not a valid .npy file: \(reason)") }
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        guard region.count >= 10, Array(region[0..<6]) == magic else {
            throw fail("it does not start with \\x93NUMPY (write it with numpy.save)")
        }
        let major = region[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1:
            headerLength = Int(region[8]) | Int(region[9]) << 8
            headerStart = 10
        case 2, 3:
            guard region.count >= 12 else { throw fail("it ends inside its header") }
            headerLength = Int(region[8]) | Int(region[9]) << 8 | Int(region[10]) << 16 | Int(region[11]) << 24
            headerStart = 12
        default: throw fail("format version \(major) is not supported (1, 2 or 3)")
        }
        guard headerLength <= maximumHeaderLength else { throw fail("its header claims \(headerLength) bytes, more than \(maximumHeaderLength)") }
        guard headerStart + headerLength <= region.count else { throw fail("it ends inside its header (truncated)") }
        let header = String(decoding: region[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        let (descr, fortran, shape) = try parseHeader(header, fail: fail)
        if fortran && shape.count > 1 {
            throw .invalid(path: path, reason: "is a Fortran-order (column-major) array, which vae-dist does not convert; save it in C order: numpy.save(path, numpy.ascontiguousarray(a))")
        }
        let type = try elementType(descr, path: path)
        let offset = headerStart + headerLength
        return try StoredArray(elementType: type, shape: shape, offset: offset, available: region.count - offset,
                               path: path, describe: "the array")
    }

    /// descr, fortran_order and shape from the header dict.
    static func parseHeader(_ header: String, fail: (String) -> DataError) throws(DataError) -> (String, Bool, [Int]) {
        func value(of key: String) -> Substring? {
            guard let keyRange = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
            var rest = header[keyRange.upperBound...].drop { $0 == " " }
            guard rest.first == ":" else { return nil }
            rest = rest.dropFirst().drop { $0 == " " }
            return rest
        }
        guard let descrText = value(of: "descr") else { throw fail("its header has no 'descr'") }
        guard let quote = descrText.first, quote == "'" || quote == "\"" else {
            throw fail("'descr' is a structured type (\(descrText.prefix(40))...): save a plain array of uint8 or float32")
        }
        let descrBody = descrText.dropFirst()
        guard let close = descrBody.firstIndex(of: quote) else { throw fail("'descr' is not closed") }
        let descr = String(descrBody[..<close])
        guard let fortranText = value(of: "fortran_order") else { throw fail("its header has no 'fortran_order'") }
        let fortran: Bool
        if fortranText.hasPrefix("True") { fortran = true } else if fortranText.hasPrefix("False") { fortran = false } else {
            throw fail("'fortran_order' is neither True nor False")
        }
        guard let shapeText = value(of: "shape"), shapeText.first == "(", let end = shapeText.firstIndex(of: ")") else {
            throw fail("its header has no 'shape' tuple")
        }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<end].split(separator: ",") {
            let digits = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            if digits.isEmpty { continue }
            guard let n = Int(digits), n >= 0 else { throw fail("'shape' holds '\(part)', not a size") }
            shape.append(n)
        }
        return (descr, fortran, shape)
    }

    /// The element type of a numpy descr: '|u1', '<f4', '<f8', labels' integers.
    static func elementType(_ descr: String, path: String) throws(DataError) -> ElementType {
        let order = descr.first, code = descr.dropFirst()
        if code.hasPrefix("O") {
            throw .invalid(path: path, reason: "is an array of Python objects (dtype object), which vae-dist never unpickles; save a numeric array: numpy.save(path, a.astype(numpy.uint8))")
        }
        let types: [Substring: ElementType] = ["u1": .uint8, "i1": .int8, "u2": .uint16, "i2": .int16, "u4": .uint32,
                                               "i4": .int32, "u8": .uint64, "i8": .int64, "f4": .float32, "f8": .float64]
        guard let type = types[code], order == "<" || order == "|" || order == "=" else {
            if order == ">", types[code] != nil {
                throw .invalid(path: path, reason: "is a big-endian array (dtype '\(descr)'), which vae-dist does not convert; save it little-endian: numpy.save(path, a.astype(a.dtype.newbyteorder('<')))")
            }
            throw .invalid(path: path, reason: "has dtype '\(descr)', which vae-dist does not read: save images as uint8 (0..255) or float32 (0..1): numpy.save(path, a.astype(numpy.float32))")
        }
        return type
    }

    /// The bytes of an .npy file holding `bytes` [shape] of `descr` (tests; numpy's own layout).
    public static func encode(descr: String, shape: [Int], bytes: [UInt8], fortran: Bool = false) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let n = header.utf8.count
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(n & 0xff), UInt8(n >> 8)] + Array(header.utf8) + bytes
    }
}
