import VAEData
import VAEFiles

// Minimal PNG encoder (8-bit grayscale or RGB, tEXt captions, no interlace) and image grids in the
// manner of torchvision.utils.make_grid: tiles with padding, upscaled so 28x28
// digits are visible without zooming.

public enum PNG {
    /// pixels [height, width], row-major.
    public static func encodeGray(width: Int, height: Int, pixels: [UInt8]) -> [UInt8] {
        encode(width: width, height: height, channels: 1, pixels: pixels)
    }

    /// pixels [height, width, 3] (red, green, blue), row-major; `text` becomes tEXt chunks
    /// (keyword, Latin-1 text: what a picture without a font says about itself).
    public static func encodeRGB(width: Int, height: Int, pixels: [UInt8], text: [(String, String)] = []) -> [UInt8] {
        encode(width: width, height: height, channels: 3, pixels: pixels, text: text)
    }

    static func encode(width: Int, height: Int, channels: Int, pixels: [UInt8], text: [(String, String)] = []) -> [UInt8] {
        precondition(pixels.count == width * height * channels)
        let stride = width * channels
        var raw = [UInt8]()
        raw.reserveCapacity((stride + 1) * height)
        for y in 0..<height {
            raw.append(0)  // filter type: none
            raw += pixels[(y * stride)..<((y + 1) * stride)]
        }
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header = bigEndian(UInt32(width)) + bigEndian(UInt32(height))
        // bit depth 8, grayscale (0) or RGB (2), deflate, adaptive filter, no interlace
        header += [8, channels == 3 ? 2 : 0, 0, 0, 0]
        chunk(&out, "IHDR", header)
        for (keyword, value) in text {
            chunk(&out, "tEXt", Array(keyword.utf8.prefix(79)) + [0] + value.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
        }
        chunk(&out, "IDAT", deflate(raw, level: 9))
        chunk(&out, "IEND", [])
        return out
    }

    static func chunk(_ out: inout [UInt8], _ type: String, _ data: [UInt8]) {
        out += bigEndian(UInt32(data.count))
        let typed = Array(type.utf8) + data
        out += typed
        out += bigEndian(crc32(typed))
    }

    static func bigEndian(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
    }
}

/// An encoded PNG file and its size (what TensorBoard's image summaries carry).
public struct EncodedImage: Sendable {
    public var width: Int
    public var height: Int
    public var png: [UInt8]
    /// 1 (gray) or 3 (RGB).
    public var channels = 1
}

/// Tiles of `rows` x `columns` images, each [tileHeight, tileWidth, channels] in [0, 1] (HWC),
/// upscaled by `scale`, separated by `padding` pixels (before scaling) of gray; pixels
/// [height, width, channels].
public func imageGrid(_ images: [Float], count: Int, tileHeight: Int, tileWidth: Int, channels: Int = 1, columns: Int,
                      scale: Int = 2, padding: Int = 2) -> (width: Int, height: Int, pixels: [UInt8]) {
    let gridColumns = max(1, min(columns, count))
    let gridRows = max(1, (count + gridColumns - 1) / gridColumns)
    let cellW = tileWidth + padding, cellH = tileHeight + padding
    let width = (gridColumns * cellW + padding) * scale, height = (gridRows * cellH + padding) * scale
    let c = channels
    var pixels = [UInt8](repeating: 96, count: width * height * c)
    for index in 0..<count {
        let originX = (padding + (index % gridColumns) * cellW) * scale
        let originY = (padding + (index / gridColumns) * cellH) * scale
        for y in 0..<(tileHeight * scale) {
            for x in 0..<(tileWidth * scale) {
                for k in 0..<c {
                    let v = images[((index * tileHeight + y / scale) * tileWidth + x / scale) * c + k]
                    let clamped = v.isFinite ? min(max(v, 0), 1) : 0
                    pixels[((originY + y) * width + originX + x) * c + k] = UInt8((clamped * 255).rounded())
                }
            }
        }
    }
    return (width, height, pixels)
}

/// Writes images [count, h*w*channels] in [0, 1] as a PNG grid (gray, or RGB for 3 channels); returns the file's bytes.
@discardableResult
public func writeImageGrid(_ images: [Float], count: Int, height: Int, width: Int, channels: Int = 1, columns: Int,
                           to path: String) throws(FileError) -> EncodedImage {
    let grid = imageGrid(images, count: count, tileHeight: height, tileWidth: width, channels: channels, columns: columns)
    let image = EncodedImage(width: grid.width, height: grid.height,
                             png: PNG.encode(width: grid.width, height: grid.height, channels: channels, pixels: grid.pixels),
                             channels: channels)
    try AtomicFile.write(image.png, to: path)
    return image
}
