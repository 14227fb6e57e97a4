import Foundation

// Images held in an array file (.npy, .npz, .safetensors) and read from it one image at a
// time, never copied whole into the process: each rank reads only the examples it loads.
//
// Pixel layout inside the model: HWC, interleaved (pixel (y, x) channel c at (y * W + x) * C + c),
// as PIL and numpy hold images. An NCHW array is transposed per image as it is loaded.
//
// How an image is read: pread into a buffer of one image, then converted to floats; the value
// scan and the fingerprint pread too. The file is memory-mapped for its headers only: reading
// through the mapping was measured and rejected: mapped pages count as resident once read, an
// epoch's random permutation reads them all, and on this kernel (6.18, large page-cache folios)
// one fault maps far more than the image. With madvise(MADV_DONTNEED) over the whole mapping
// after every ~2,000 images, a 2.16 GB .npy still peaked at 1.9 GB resident (RssFile growing
// ~1.7 GB between releases), and the fingerprint's 256 sampled 64 KB blocks alone took it to
// 573 MB. pread leaves nothing mapped: the peak is the process's own
// buffers, whatever the kernel's folio policy, and from the page cache a 784-byte pread costs
// about a microsecond.

/// How a 4-d array holds channels.
public enum ArrayLayout: String, Sendable, Codable, CaseIterable {
    /// [N, H, W, C] (numpy, PIL, TensorFlow).
    case nhwc
    /// [N, C, H, W] (PyTorch).
    case nchw
}

/// The images of one array in a file.
public final class ArrayImages: @unchecked Sendable {
    public let path: String
    public let store: any ByteStore
    /// The image bytes: `array.byteCount` bytes from `array.offset` of `store`.
    public let array: StoredArray
    public let count: Int, height: Int, width: Int, channels: Int
    public let layout: ArrayLayout
    public var elementsPerImage: Int { height * width * channels }
    public var bytesPerImage: Int { elementsPerImage * array.elementType.size }

    /// `array` [N, H, W] (one channel), [N, H, W, C] or [N, C, H, W] with C in {1, 3};
    /// `layout` decides a 4-d shape both could read ([N, 3, 5, 3]) and must agree with any other.
    public init(path: String, store: any ByteStore, array: StoredArray, layout: ArrayLayout?) throws(DataError) {
        guard array.elementType.isPixel else {
            throw .invalid(path: path, reason: "holds images of \(array.elementType.rawValue); vae-dist reads uint8 (0..255), float32 or float64 (0..1)")
        }
        let s = array.shape
        let channelCounts: Set = [1, 3]
        var chosen: ArrayLayout = .nhwc
        switch s.count {
        case 3: break
        case 4:
            let last = channelCounts.contains(s[3]), second = channelCounts.contains(s[1])
            switch (layout, last, second) {
            case (.nhwc?, true, _), (nil, true, false): chosen = .nhwc
            case (.nchw?, _, true), (nil, false, true): chosen = .nchw
            case (nil, true, true):
                throw .invalid(path: path, reason: "images of shape \(s) could be [N, H, W, C] or [N, C, H, W]: pass --layout nhwc or --layout nchw")
            case (let given?, _, _):
                throw .invalid(path: path, reason: "shape \(s) has no 1 or 3 channels where --layout \(given.rawValue) puts them (\(given == .nhwc ? "last" : "second") axis)")
            default:
                throw .invalid(path: path, reason: "shape \(s) has neither 1 nor 3 channels in the last axis ([N, H, W, C]) or the second ([N, C, H, W]); vae-dist reads grayscale and RGB")
            }
        default:
            throw .invalid(path: path, reason: "holds an array of rank \(s.count) (shape \(s)); images are [N, H, W], [N, H, W, C] or [N, C, H, W]")
        }
        count = s[0]
        (height, width, channels) = s.count == 3 ? (s[1], s[2], 1) : chosen == .nhwc ? (s[1], s[2], s[3]) : (s[2], s[3], s[1])
        guard count > 0 else { throw .invalid(path: path, reason: "holds no images (shape \(s)); give a file with at least one") }
        guard height > 0, width > 0 else { throw .invalid(path: path, reason: "holds images of size \(height)x\(width) (shape \(s))") }
        self.path = path
        self.store = store
        self.array = array
        self.layout = chosen
    }

    /// Image `example` into row [H * W * C] as floats, HWC: uint8 as byte / 255 (the same
    /// table as IDX images, so the same images give the same bits), floats as stored. Read with
    /// pread into a buffer of one image (on the stack up to a few KB).
    public func fill(_ row: UnsafeMutablePointer<Float>, example: Int) {
        let start = array.offset + example * bytesPerImage
        withUnsafeTemporaryAllocation(byteCount: bytesPerImage, alignment: 16) { buffer in
            store.copy(start ..< start + bytesPerImage, to: buffer.baseAddress!)
            convert(row, from: UnsafeRawPointer(buffer.baseAddress!))
        }
    }

    @inline(__always)
    func convert(_ row: UnsafeMutablePointer<Float>, from source: UnsafeRawPointer) {
        let n = elementsPerImage
        if layout == .nhwc || channels == 1 {
            switch array.elementType {
            case .uint8:
                let bytes = source.assumingMemoryBound(to: UInt8.self)
                byteToUnit.withUnsafeBufferPointer { table in for i in 0..<n { row[i] = table[Int(bytes[i])] } }
            case .float32: for i in 0..<n { row[i] = source.loadUnaligned(fromByteOffset: 4 * i, as: Float.self) }
            default: for i in 0..<n { row[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            }
            return
        }
        // NCHW: plane c, pixel p goes to p * C + c.
        let plane = height * width, c = channels
        for k in 0..<c {
            for p in 0..<plane {
                row[p * c + k] = value(source, k * plane + p)
            }
        }
    }

    @inline(__always)
    func value(_ source: UnsafeRawPointer, _ i: Int) -> Float {
        switch array.elementType {
        case .uint8: Float(source.load(fromByteOffset: i, as: UInt8.self)) / 255
        case .float32: source.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
        default: Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
        }
    }

    /// Bytes `range` of the array (from its first element) into `out`.
    func read(_ range: Range<Int>, into out: UnsafeMutableRawPointer) {
        store.copy(array.offset + range.lowerBound ..< array.offset + range.upperBound, to: out)
    }

    /// Calls `body` on consecutive chunks of the image bytes (at most 16 MB, read into one
    /// buffer): a scan of a file larger than memory stays small.
    func scan(_ body: (UnsafeRawBufferPointer, _ firstByte: Int) -> Bool) {
        let chunk = 16 << 20 / array.elementType.size * array.elementType.size
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: min(chunk, array.byteCount), alignment: 16)
        defer { buffer.deallocate() }
        var start = 0
        while start < array.byteCount {
            let end = min(start + chunk, array.byteCount)
            read(start ..< end, into: buffer)
            if !body(UnsafeRawBufferPointer(start: buffer, count: end - start), start) { return }
            start = end
        }
    }

    /// The first value that is not finite or (with `unitInterval`) outside [0, 1], as its index
    /// in the array ("[12, 3, 4]") and value; nil when every value is fine. uint8 always is.
    public func firstBadValue(unitInterval: Bool) -> (index: [Int], value: Double)? {
        guard array.elementType.isFloat else { return nil }
        var found: (Int, Double)?
        let size = array.elementType.size
        scan { bytes, first in
            let n = bytes.count / size
            for i in 0..<n {
                let v = size == 4 ? Double(bytes.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
                                  : bytes.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)
                if !v.isFinite || (unitInterval && !(0...1).contains(v)) { found = (first / size + i, v); return false }
            }
            return true
        }
        guard let (flat, value) = found else { return nil }
        var index: [Int] = [], rest = flat
        for dimension in array.shape.reversed() {
            index.insert(rest % dimension, at: 0)
            rest /= dimension
        }
        return (index, value)
    }

    /// Pixel data small enough to hash every byte: below this, fingerprints hash all of it.
    public static let fullHashLimit = 64 << 20

    /// A 64-bit hash of the images `selection` (nil: all), for `DataFingerprint`. Up to
    /// `fullHashLimit` bytes, every byte of the selected images in order (uint8 HWC images then
    /// hash as the same images loaded from IDX files do). Above it, reading the whole file at
    /// every start would cost seconds to minutes, so the hash covers the array's type and
    /// shape, the selection, and 256 blocks of 64 KB at fixed, evenly spaced offsets of the
    /// array's bytes (the first and the last block included): 16 MB read whatever the size.
    public func contentHash(selection: [Int32]?) -> UInt64 {
        let selected = selection?.count ?? count
        if selected * bytesPerImage <= Self.fullHashLimit {
            var bytes = [UInt8](repeating: 0, count: selected * bytesPerImage)
            bytes.withUnsafeMutableBytes { out in
                for i in 0..<selected {
                    let example = selection.map { Int($0[i]) } ?? i
                    read(example * bytesPerImage ..< (example + 1) * bytesPerImage, into: out.baseAddress! + i * bytesPerImage)
                }
            }
            return bytes.withUnsafeBytes { fnv1a64Lanes($0) }
        }
        var summary = Array("sampled|\(array.elementType.rawValue)|\(array.shape)|\(layout.rawValue)|".utf8)
        if let selection { selection.withUnsafeBytes { summary += withUnsafeBytes(of: fnv1a64Lanes($0)) { Array($0) } } }
        let block = 1 << 16, blocks = 256
        let span = array.byteCount - block
        var bytes = [UInt8](repeating: 0, count: block)
        for k in 0..<blocks {
            let start = span * k / (blocks - 1)
            bytes.withUnsafeMutableBytes { read(start ..< start + block, into: $0.baseAddress!) }
            let hash = bytes.withUnsafeBytes { fnv1a64Lanes($0) }
            withUnsafeBytes(of: hash) { summary += $0 }
        }
        return summary.withUnsafeBytes { fnv1a64Lanes($0) }
    }
}

/// uint8 pixel b as b / 255 (shared with `fillImage`, so IDX and array images give the same bits).
let byteToUnit: [Float] = (0..<256).map { Float($0) / 255 }
