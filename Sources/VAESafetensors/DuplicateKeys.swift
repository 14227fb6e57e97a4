// JSONSerialization keeps the last of two equal keys in an object; Python's safetensors (serde)
// refuses such a header, and a file that means two things to two readers is refused here too.
// This scanner walks the JSON once, before JSONSerialization parses it, and tracks the keys of
// every object at every depth. Keys compare as the UTF-16 code units their escapes decode to,
// so "a\u0062" and "ab" are the same key (not as Swift Strings, which would also equate
// canonically equivalent spellings that Python tells apart).

public enum JSONScanProblem: Error, Equatable {
    /// An object holds this key twice.
    case duplicateKey(String)
    /// Not well-formed JSON (JSONSerialization would say why not; this scanner does not).
    case malformed
    /// Deeper than `DuplicateKeys.maximumDepth` (a safetensors header is 3 deep).
    case tooDeep
}

public enum DuplicateKeys {
    public static let maximumDepth = 64

    /// Throws the first key an object holds twice.
    public static func check(_ json: ArraySlice<UInt8>) throws(JSONScanProblem) {
        var scanner = Scanner(bytes: json)
        try scanner.value(depth: 0)
        scanner.skipSpace()
        guard scanner.index == json.endIndex else { throw .malformed }
    }

    struct Scanner {
        let bytes: ArraySlice<UInt8>
        var index: Int

        init(bytes: ArraySlice<UInt8>) { self.bytes = bytes; index = bytes.startIndex }

        var next: UInt8? { index < bytes.endIndex ? bytes[index] : nil }

        mutating func skipSpace() {
            while let b = next, b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d { index += 1 }
        }

        mutating func expect(_ byte: UInt8) throws(JSONScanProblem) {
            skipSpace()
            guard next == byte else { throw .malformed }
            index += 1
        }

        mutating func value(depth: Int) throws(JSONScanProblem) {
            guard depth < DuplicateKeys.maximumDepth else { throw .tooDeep }
            skipSpace()
            switch next {
            case UInt8(ascii: "{"): try object(depth: depth)
            case UInt8(ascii: "["): try array(depth: depth)
            case UInt8(ascii: "\""): _ = try string()
            case nil: throw .malformed
            default:  // a number, true, false or null: JSONSerialization checks its spelling
                let start = index
                while let b = next, b == UInt8(ascii: "-") || b == UInt8(ascii: "+") || b == UInt8(ascii: ".")
                        || (b >= 0x30 && b <= 0x39) || (b | 0x20 >= 0x61 && b | 0x20 <= 0x7a) { index += 1 }
                guard index > start else { throw .malformed }
            }
        }

        mutating func object(depth: Int) throws(JSONScanProblem) {
            index += 1  // {
            var keys = Set<[UInt16]>()
            skipSpace()
            if next == UInt8(ascii: "}") { index += 1; return }
            while true {
                skipSpace()
                guard next == UInt8(ascii: "\"") else { throw .malformed }
                let key = try string()
                guard keys.insert(key).inserted else { throw .duplicateKey(String(decoding: key, as: UTF16.self)) }
                try expect(UInt8(ascii: ":"))
                try value(depth: depth + 1)
                skipSpace()
                switch next {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"): index += 1; return
                default: throw .malformed
                }
            }
        }

        mutating func array(depth: Int) throws(JSONScanProblem) {
            index += 1  // [
            skipSpace()
            if next == UInt8(ascii: "]") { index += 1; return }
            while true {
                try value(depth: depth + 1)
                skipSpace()
                switch next {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"): index += 1; return
                default: throw .malformed
                }
            }
        }

        /// A string's value as UTF-16 code units, escapes decoded.
        mutating func string() throws(JSONScanProblem) -> [UInt16] {
            index += 1  // "
            var units: [UInt16] = []
            var run = index  // start of the unescaped bytes not yet added
            func flush(_ end: Int) { units += String(decoding: bytes[run..<end], as: UTF8.self).utf16 }
            while let b = next {
                switch b {
                case UInt8(ascii: "\""):
                    flush(index)
                    index += 1
                    return units
                case UInt8(ascii: "\\"):
                    flush(index)
                    guard index + 1 < bytes.endIndex else { throw .malformed }
                    let escape = bytes[index + 1]
                    index += 2
                    switch escape {
                    case UInt8(ascii: "u"):
                        guard index + 4 <= bytes.endIndex,
                              let unit = UInt16(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16) else { throw .malformed }
                        units.append(unit)
                        index += 4
                    case UInt8(ascii: "b"): units.append(0x08)
                    case UInt8(ascii: "f"): units.append(0x0c)
                    case UInt8(ascii: "n"): units.append(0x0a)
                    case UInt8(ascii: "r"): units.append(0x0d)
                    case UInt8(ascii: "t"): units.append(0x09)
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): units.append(UInt16(escape))
                    default: throw .malformed
                    }
                    run = index
                default:
                    index += 1
                }
            }
            throw .malformed  // unterminated
        }
    }
}
