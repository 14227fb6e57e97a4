import Foundation

// The tensors of a .safetensors file as arrays of images: an 8-byte little-endian header
// length, a JSON header {"name": {"dtype": "U8", "shape": [...], "data_offsets": [begin, end]}},
// then the data. Only the header is read; the tensors stay in the mapping.

public enum SafetensorsArrays {
    public static let maximumHeaderLength = 16 << 20

    /// Every tensor of the file `file` (offsets from the start of the file).
    public static func tensors(_ file: UnsafeRawBufferPointer, path: String) throws(DataError) -> [String: StoredArray] {
        func fail(_ reason: String) -> DataError { .invalid(path: path, reason: "not a valid .safetensors file: \(reason)") }
        guard file.count >= 8 else { throw fail("\(file.count) bytes is shorter than the 8-byte header length") }
        let length = file.loadUnaligned(as: UInt64.self).littleEndian
        guard length <= UInt64(min(maximumHeaderLength, file.count - 8)) else {
            throw fail("its header claims \(length) bytes, more than the file holds or \(maximumHeaderLength)")
        }
        let headerBytes = Data(UnsafeRawBufferPointer(rebasing: file[8..<(8 + Int(length))]))
        guard let header = try? JSONSerialization.jsonObject(with: headerBytes) as? [String: Any] else {
            throw fail("its header is not a JSON object")
        }
        let dataStart = 8 + Int(length), available = file.count - dataStart
        let types: [String: ElementType] = ["U8": .uint8, "I8": .int8, "U16": .uint16, "I16": .int16, "U32": .uint32,
                                            "I32": .int32, "U64": .uint64, "I64": .int64, "F32": .float32, "F64": .float64]
        var tensors: [String: StoredArray] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let entry = value as? [String: Any], let dtype = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int], let offsets = entry["data_offsets"] as? [Int], offsets.count == 2 else {
                throw fail("tensor '\(name)' lacks dtype, shape or data_offsets")
            }
            guard let type = types[dtype] else {
                throw .invalid(path: path, reason: "tensor '\(name)' has dtype \(dtype), which vae-dist does not read: store images as U8 (0..255) or F32 (0..1)")
            }
            guard offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= available else {
                throw .invalid(path: path, reason: "tensor '\(name)' lies outside the file (data_offsets \(offsets), \(available) bytes of data): it is truncated; write it again")
            }
            let array = try StoredArray(elementType: type, shape: shape, offset: dataStart + offsets[0],
                                        available: offsets[1] - offsets[0], path: path, describe: "tensor '\(name)'")
            guard array.byteCount == offsets[1] - offsets[0] else {
                throw .invalid(path: path, reason: "tensor '\(name)' of shape \(shape) should span \(array.byteCount) bytes, its data_offsets give \(offsets[1] - offsets[0])")
            }
            tensors[name] = array
        }
        return tensors
    }
}
