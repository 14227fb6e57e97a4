import Foundation
import VAEFiles

// The images of a folder, decoded once into $XDG_CACHE_HOME/vae-dist/images/<key>/ (else
// ~/.cache/vae-dist/images/<key>/), key = ImageFolder.cacheKey (the sorted relative paths, sizes,
// modification times and --image-size):
//   images.npy   uint8 [N, H, W, C], HWC, read like any own .npy (ArrayImages: pread, bounded memory)
//   labels.npy   uint8 [N], the class of each image (only with class folders)
//   files.txt    the relative path of each image, in order (image i is line i + 1)
// Decoding runs on one thread per core, in two passes over the files: their headers (the size
// check and whether any is colour: then all are colour, gray replicated to RGB), then the pixels,
// each image written at its place in images.npy. The folder is built under a temporary name and
// renamed into place when complete, so a killed decode leaves no half cache (only a
// <key>.tmp-<pid> folder, removed by the next decode of the same key once that process is gone); ranks that decode at once each rename a
// complete folder, and the later ones find it there and discard theirs.

enum ImageCache {
    /// The image folder `root` as arrays, decoding it into the cache first unless it is there;
    /// `notes` says which, and what was skipped.
    static func read(_ root: String, size: ImageSize?, cacheRoot: String? = nil, notes: inout [String]) throws(DataError) -> ArraySplits {
        let scan = try ImageFolder.scan(root)
        if !scan.skipped.isEmpty {
            notes.append("vae-dist: skipped \(scan.skipped.count) non-image file\(scan.skipped.count == 1 ? "" : "s") in \(root) (e.g. \(scan.skipped[0])); images are .png, .jpg, .jpeg")
        }
        guard !scan.files.isEmpty else {
            throw .invalid(path: root, reason: "holds no PNG or JPEG images (and no IDX files such as train-images-idx3-ubyte): give a folder of images, or of class folders of images")
        }
        let key = ImageFolder.cacheKey(scan, size: size)
        let folder = ((cacheRoot ?? ImageFolder.cacheRoot) as NSString).appendingPathComponent(key)
        let imagesPath = (folder as NSString).appendingPathComponent("images.npy")
        if FileManager.default.fileExists(atPath: imagesPath) {
            notes.append("vae-dist: read the \(scan.files.count) images of \(root) from the cache \(folder) (no decoding)")
        } else {
            let started = Date()
            let threads = ProcessInfo.processInfo.activeProcessorCount
            let shape = try decode(scan, size: size, into: folder, threads: threads)
            notes.append(String(format: "vae-dist: decoded %d images of %@ (%@) in %.1f s on %d threads into the cache %@",
                                scan.files.count, root, imageSize(height: shape.height, width: shape.width, channels: shape.channels),
                                Date().timeIntervalSince(started), threads, folder))
        }
        var splits = try Dataset.readArrayFile(imagesPath, layout: .nhwc)
        if scan.labels != nil {
            let labelsPath = (folder as NSString).appendingPathComponent("labels.npy")
            let mapped: MappedFile
            do { mapped = try MappedFile(path: labelsPath) } catch {
                throw .invalid(path: labelsPath, reason: "\(error.description): delete the folder \(folder) and run again")
            }
            let file = UnsafeRawBufferPointer(start: mapped.base, count: mapped.size)
            let array = try NPY.parse(file, path: labelsPath)
            splits.train.labels = try Dataset.readLabels(array, file: file, count: splits.train.images.count, path: labelsPath, name: "labels")
        }
        return splits
    }

    /// Decodes every image of `scan` into a new cache folder `folder`; returns the image shape.
    static func decode(_ scan: ImageFolderScan, size: ImageSize?, into folder: String, threads: Int) throws(DataError) -> ImageHeader {
        let count = scan.files.count
        let failures = Failures()
        let (headers, shape) = try readHeaders(scan, size: size, threads: threads, failures: failures)

        // Pass 2: pixels, into images.npy under a temporary name.
        let parent = (folder as NSString).deletingLastPathComponent
        let temporary = folder + ".tmp-\(getpid())"
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
            removeAbandoned(folder)
            try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: false)
        } catch {
            throw .invalid(path: parent, reason: "cannot hold the image cache (\(error.localizedDescription)): set XDG_CACHE_HOME to a writable folder")
        }
        var keep = false
        defer { if !keep { try? FileManager.default.removeItem(atPath: temporary) } }
        let imageBytes = shape.height * shape.width * shape.channels
        let header = NPY.header(uint8Shape: [count, shape.height, shape.width, shape.channels])
        let imagesPath = (temporary as NSString).appendingPathComponent("images.npy")
        let fd = open(imagesPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .invalid(path: imagesPath, reason: "cannot be created (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        guard writeAll(fd, header, at: 0), ftruncate(fd, off_t(header.count + count * imageBytes)) == 0 else {
            throw .invalid(path: imagesPath, reason: "cannot be written (\(String(cString: strerror(errno)))): free space in \(parent)")
        }
        parallel(count: count, threads: threads) { i in
            if let reason = decodeOne(scan.path(i), header: headers[i], shape: shape, fd: fd, at: header.count + i * imageBytes,
                                      imagesPath: imagesPath, parent: parent) {
                failures.record(i, reason)
            }
        }
        if let (i, reason) = failures.first { throw .invalid(path: scan.path(i), reason: reason) }
        // Test hook: a decode killed here must leave no cache (image_folder_test).
        let stall = faultStallSeconds("stall-decode")
        if stall > 0 { Thread.sleep(forTimeInterval: stall) }
        guard fsync(fd) == 0 else { throw .invalid(path: imagesPath, reason: "cannot be written (fsync: \(String(cString: strerror(errno))))") }

        try writeListing(scan, count: count, into: temporary, parent: parent)
        if rename(temporary, folder) != 0 {
            // Another process (a rank of the same run) renamed its complete copy first: use it.
            guard errno == EEXIST || errno == ENOTEMPTY else {
                throw .invalid(path: folder, reason: "cannot be made (\(String(cString: strerror(errno))))")
            }
        } else { keep = true }
        return shape
    }

    /// Pass 1 of `decode`: every image's header, and the shape of the cache (`size`, or the one
    /// size every image has; colour when any image is).
    fileprivate static func readHeaders(_ scan: ImageFolderScan, size: ImageSize?, threads: Int,
                            failures: Failures) throws(DataError) -> (SharedBuffer<ImageHeader>, ImageHeader) {
        let count = scan.files.count
        let headers = SharedBuffer<ImageHeader>(count: count)
        parallel(count: count, threads: threads) { i in
            switch readFile(scan.path(i), { ImageCodec.header($0) }) {
            case .success(let header): headers[i] = header
            case .failure(let failure): failures.record(i, failure.reason)
            }
        }
        if let (i, reason) = failures.first { throw .invalid(path: scan.path(i), reason: reason) }
        let first = headers[0]
        if size == nil, let other = (0..<count).first(where: { headers[$0].height != first.height || headers[$0].width != first.width }) {
            throw .invalid(path: scan.path(other), reason: "is \(headers[other].height)x\(headers[other].width) but \(scan.files[0].relativePath) is \(first.height)x\(first.width): give images of one size, or pass --image-size HxW to resize them on load")
        }
        let channels = headers.contains(where: { $0.channels == 3 }) ? 3 : 1
        return (headers, ImageHeader(height: size?.height ?? first.height, width: size?.width ?? first.width, channels: channels))
    }

    /// Pass 2 of `decode` for one image: decodes the file at `path` (whose header was `h`), makes
    /// it `shape` (gray to RGB, resized) and writes it at byte `offset` of `fd` (the file
    /// `imagesPath` in `parent`). Returns nil, or the reason it failed.
    static func decodeOne(_ path: String, header h: ImageHeader, shape: ImageHeader, fd: Int32, at offset: Int,
                          imagesPath: String, parent: String) -> String? {
        let imageBytes = shape.height * shape.width * shape.channels
        var decoded = [UInt8](repeating: 0, count: h.height * h.width * h.channels)
        var image = [UInt8](repeating: 0, count: imageBytes)
        let result = decoded.withUnsafeMutableBufferPointer { out in
            readFile(path) { ImageCodec.decode($0, into: out.baseAddress!, capacity: out.count) }
        }
        switch result {
        case .failure(let failure): return failure.reason
        case .success(let got) where got != h:
            return "changed while being decoded (its header now says \(got.height)x\(got.width)): run again"
        case .success: break
        }
        if h.channels == 1 && shape.channels == 3 {       // gray in a colour folder: R = G = B
            decoded = decoded.flatMap { [$0, $0, $0] }
        }
        image.withUnsafeMutableBufferPointer { out in
            decoded.withUnsafeBufferPointer { source in
                if h.height == shape.height && h.width == shape.width {
                    out.baseAddress!.update(from: source.baseAddress!, count: imageBytes)
                } else {
                    resizeImage(out.baseAddress!, height: shape.height, width: shape.width,
                                source.baseAddress!, sourceHeight: h.height, sourceWidth: h.width, channels: shape.channels)
                }
            }
        }
        if writeAll(fd, image, at: offset) { return nil }
        return "could not be written to \(imagesPath) (\(String(cString: strerror(errno)))): free space in \(parent)"
    }

    /// The cache's labels.npy and classes.txt (when the folder has classes) and files.txt.
    static func writeListing(_ scan: ImageFolderScan, count: Int, into temporary: String, parent: String) throws(DataError) {
        do {
            if let labels = scan.labels {
                try Data(NPY.header(uint8Shape: [count]) + labels).write(to: URL(fileURLWithPath: (temporary as NSString).appendingPathComponent("labels.npy")))
                try Data(scan.classes.enumerated().map { "\($0.offset) \($0.element)\n" }.joined().utf8)
                    .write(to: URL(fileURLWithPath: (temporary as NSString).appendingPathComponent("classes.txt")))
            }
            try Data(scan.files.map { $0.relativePath + "\n" }.joined().utf8)
                .write(to: URL(fileURLWithPath: (temporary as NSString).appendingPathComponent("files.txt")))
        } catch {
            throw .invalid(path: temporary, reason: "cannot be written (\(error.localizedDescription)): free space in \(parent)")
        }
    }

    /// Removes the temporary folders `<folder>.tmp-<pid>` of decodes whose process is gone
    /// (killed): this one's own, and those no process of that id holds any more.
    static func removeAbandoned(_ folder: String) {
        let parent = (folder as NSString).deletingLastPathComponent, prefix = (folder as NSString).lastPathComponent + ".tmp-"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where name.hasPrefix(prefix) {
            guard let pid = Int32(name.dropFirst(prefix.count)) else { continue }
            if pid == getpid() || (kill(pid, 0) != 0 && errno == ESRCH) {
                try? FileManager.default.removeItem(atPath: (parent as NSString).appendingPathComponent(name))
            }
        }
    }

    /// `body` applied to the whole of file `path`, read into memory (an image file; at most 1 GB).
    static func readFile<T>(_ path: String, _ body: (UnsafeRawBufferPointer) -> Result<T, ImageDecodingError>) -> Result<T, ImageFileFailure> {
        let bytes: [UInt8]
        do { bytes = try RegularFile(path: path).readAll(limit: 1 << 30) } catch { return .failure(ImageFileFailure(reason: error.description)) }
        return bytes.withUnsafeBytes { body($0) }.mapError { ImageFileFailure(reason: $0.description) }
    }

    /// body(0 ..< count), interleaved over `threads` threads.
    static func parallel(count: Int, threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let workers = max(1, min(threads, count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for i in stride(from: worker, to: count, by: workers) { body(i) }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int) -> Bool {
        bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return true
        }
    }
}

/// Why an image file cannot be used, completing "PATH: ...".
struct ImageFileFailure: Error {
    var reason: String
}

/// A buffer the threads of `ImageCache.parallel` fill, each at its own indices.
private final class SharedBuffer<Element>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    let count: Int
    init(count: Int) {
        self.count = count
        base = .allocate(capacity: count)
    }
    deinit { base.deallocate() }
    subscript(i: Int) -> Element {
        get { base[i] }
        set { base[i] = newValue }
    }
    func contains(where predicate: (Element) -> Bool) -> Bool { (0..<count).contains { predicate(base[$0]) } }
}

/// The failure of the lowest-numbered file, from any thread (the same message whatever the timing).
private final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var failure: (Int, String)?

    func record(_ index: Int, _ reason: String) {
        lock.lock(); defer { lock.unlock() }
        if failure == nil || index < failure!.0 { failure = (index, reason) }
    }

    var first: (Int, String)? { lock.lock(); defer { lock.unlock() }; return failure }
}

extension NPY {
    /// A version 1.0 header for a C-order uint8 array of `shape`, padded to 64 bytes.
    static func header(uint8Shape shape: [Int]) -> [UInt8] {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var text = "{'descr': '|u1', 'fortran_order': False, 'shape': \(dims), }"
        let unpadded = 10 + text.utf8.count + 1
        text += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let length = text.utf8.count
        return [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(text.utf8)
    }
}
