import Foundation

// An n-dimensional array inside a file (.npy, a member of an .npz, a tensor of a .safetensors
// file): its element type, its shape and where its bytes are. Parsing never allocates from a
// size the file claims: a shape is checked against the bytes the file holds first.

/// Element types vae-dist reads: uint8 and float images, integer labels. All little-endian.
public enum ElementType: String, Sendable, Equatable {
    case uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64

    public var size: Int {
        switch self {
        case .uint8, .int8: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        }
    }

    public var isFloat: Bool { self == .float32 || self == .float64 }
    /// Image pixels: uint8 (0..255) or floats (0..1 for the Bernoulli likelihood).
    public var isPixel: Bool { self == .uint8 || isFloat }

    /// The element at `index` of `base`, as a label (an integer), or nil when it is not one.
    func integer(_ base: UnsafeRawPointer, _ index: Int) -> Int64? {
        let p = base + index * size
        switch self {
        case .uint8: return Int64(p.load(as: UInt8.self))
        case .int8: return Int64(p.load(as: Int8.self))
        case .uint16: return Int64(p.loadUnaligned(as: UInt16.self))
        case .int16: return Int64(p.loadUnaligned(as: Int16.self))
        case .uint32: return Int64(p.loadUnaligned(as: UInt32.self))
        case .int32: return Int64(p.loadUnaligned(as: Int32.self))
        case .uint64: return Int64(exactly: p.loadUnaligned(as: UInt64.self))
        case .int64: return p.loadUnaligned(as: Int64.self)
        case .float32, .float64: return nil
        }
    }
}

/// An array in a file: `byteCount` bytes from `offset`, row-major (C order).
public struct StoredArray: Sendable, Equatable {
    public var elementType: ElementType
    public var shape: [Int]
    /// Of the first element, from the start of the region the array was parsed from.
    public var offset: Int
    public var byteCount: Int
    public var elementCount: Int { byteCount / elementType.size }

    /// Checks `shape` against the `available` bytes after `offset`: the product of the shape
    /// must not overflow and must fit. `describe` names the array in the error.
    public init(elementType: ElementType, shape: [Int], offset: Int, available: Int, path: String,
                describe: String) throws(DataError) {
        var bytes = elementType.size
        for dimension in shape {
            guard dimension >= 0 else { throw .invalid(path: path, reason: "\(describe) has a negative dimension in shape \(shape)") }
            let (product, overflow) = bytes.multipliedReportingOverflow(by: dimension)
            guard !overflow else { throw .invalid(path: path, reason: "\(describe) has shape \(shape), too large to address") }
            bytes = product
        }
        guard bytes <= available else {
            throw .invalid(path: path, reason: "\(describe) of shape \(shape) (\(elementType.rawValue)) needs \(bytes) bytes but the file holds \(max(available, 0)): it is truncated; write it again")
        }
        self.elementType = elementType
        self.shape = shape
        self.offset = offset
        self.byteCount = bytes
    }
}

/// Bytes that an `ArrayImages` reads from: a mapped file, or memory of the process (an inflated
/// .npz member).
public protocol ByteStore: AnyObject, Sendable {
    var base: UnsafeRawPointer? { get }
    var size: Int { get }
    /// Gives back the pages of `range` (a mapping); nothing for memory of the process.
    func release(_ range: Range<Int>)
    /// Bytes `range` into `out` (a mapped file: with pread, so no page stays mapped).
    func copy(_ range: Range<Int>, to out: UnsafeMutableRawPointer)
}

extension MappedFile: ByteStore {}

/// Bytes owned by the process.
public final class HeapBytes: ByteStore, @unchecked Sendable {
    public let base: UnsafeRawPointer?
    public let size: Int

    public init(_ bytes: [UInt8]) {
        size = bytes.count
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(memory), byteCount: bytes.count) }
        base = UnsafeRawPointer(memory)
    }

    deinit { base.map { UnsafeMutableRawPointer(mutating: $0).deallocate() } }
    public func release(_ range: Range<Int>) {}
    public func copy(_ range: Range<Int>, to out: UnsafeMutableRawPointer) {
        out.copyMemory(from: base! + range.lowerBound, byteCount: range.count)
    }
}
