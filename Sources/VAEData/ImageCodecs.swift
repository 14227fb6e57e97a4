import CJPEG
import CPNG

// PNG and JPEG decoding through Debian's libpng and libjpeg-turbo (Sources/CPNG, Sources/CJPEG:
// each shim.h catches the library's longjmp and returns an error code and message). An image
// comes out as bytes [height, width, channels], HWC, channels 1 (gray) or 3 (RGB): alpha
// composited on black, palettes expanded, 16 bits scaled to 8.

/// The format of an image file, told by its first bytes (not its name).
enum ImageFormat: String {
    case png = "PNG", jpeg = "JPEG"

    init?(signature bytes: UnsafeRawBufferPointer) {
        if bytes.count >= 8, bytes[0] == 0x89, bytes[1] == 0x50, bytes[2] == 0x4E, bytes[3] == 0x47 { self = .png }
        else if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { self = .jpeg }
        else { return nil }
    }
}

/// An image's size and channels (1 or 3), from its header.
struct ImageHeader: Equatable, Sendable {
    var height: Int, width: Int, channels: Int
}

enum ImageCodec {
    /// The header of the image in `bytes`, or why it cannot be read.
    static func header(_ bytes: UnsafeRawBufferPointer) -> Result<ImageHeader, ImageDecodingError> {
        run(bytes, out: nil, capacity: 0)
    }

    /// Decodes `bytes` into `out` (at least height * width * channels bytes of `header`).
    static func decode(_ bytes: UnsafeRawBufferPointer, into out: UnsafeMutablePointer<UInt8>, capacity: Int) -> Result<ImageHeader, ImageDecodingError> {
        run(bytes, out: out, capacity: capacity)
    }

    private static func run(_ bytes: UnsafeRawBufferPointer, out: UnsafeMutablePointer<UInt8>?, capacity: Int) -> Result<ImageHeader, ImageDecodingError> {
        guard let base = bytes.baseAddress, let format = ImageFormat(signature: bytes) else {
            return .failure(ImageDecodingError(format: nil, message: "neither a PNG nor a JPEG file (no PNG or JPEG signature)"))
        }
        var width: Int32 = 0, height: Int32 = 0, channels: Int32 = 0
        var message = [CChar](repeating: 0, count: 256)
        let data = base.assumingMemoryBound(to: UInt8.self)
        let code = message.withUnsafeMutableBufferPointer { text in
            switch format {
            case .png: vae_png_decode(data, bytes.count, out, capacity, &width, &height, &channels, text.baseAddress, text.count)
            case .jpeg: vae_jpeg_decode(data, bytes.count, out, capacity, &width, &height, &channels, text.baseAddress, text.count)
            }
        }
        guard code == 0 else {
            let text = message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            return .failure(ImageDecodingError(format: format, message: text))
        }
        return .success(ImageHeader(height: Int(height), width: Int(width), channels: Int(channels)))
    }
}

/// Why an image file cannot be decoded: libpng's or libjpeg's message.
struct ImageDecodingError: Error {
    var format: ImageFormat?
    var message: String

    var description: String {
        guard let format else { return "cannot be decoded: \(message); replace or remove the file" }
        return "cannot be decoded as \(format.rawValue) (\(format == .png ? "libpng" : "libjpeg"): \(message)): the file is corrupt or truncated; replace or remove it"
    }
}
