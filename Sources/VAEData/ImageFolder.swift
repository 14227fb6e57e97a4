import Foundation

// --data FOLDER of PNG and JPEG files (a folder without IDX files), searched recursively.
// First-level subfolders are classes: their names, sorted (byte order, as Python's sorted() on
// str orders them), give labels 0, 1, 2 ... as torchvision's ImageFolder does; a folder with no
// subfolders holds unlabelled images. Files are taken by extension (.png, .jpg, .jpeg, any
// case) and decoded by their content; every other file is skipped and counted in one note.
// The images are decoded once into a cache (ImageCache.swift) that is then read like a .npy.

/// --image-size HxW: the size images of a folder are resized to on load.
public struct ImageSize: Sendable, Equatable, Codable, LosslessStringConvertible {
    public var height: Int
    public var width: Int

    public init(height: Int, width: Int) {
        self.height = height
        self.width = width
    }

    /// "HxW" (or "N" for N x N), each 1...4096.
    public init?(_ description: String) {
        let parts = description.lowercased().split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2,
              let height = Int(parts[0]), let width = Int(parts.last!),
              (1...4096).contains(height), (1...4096).contains(width) else { return nil }
        self.init(height: height, width: width)
    }

    public var description: String { "\(height)x\(width)" }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let size = ImageSize(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "image size '\(text)' is not HxW"))
        }
        self = size
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// The images of a folder, in order, with their labels, and the files skipped.
struct ImageFolderScan: Sendable {
    struct File: Sendable {
        /// The path under the folder ("cat/001.png").
        var relativePath: String
        var size: Int
        /// Modification time, nanoseconds since 1970.
        var modified: Int
    }
    var root: String
    /// Sorted by relative path within each class, the classes in order.
    var files: [File]
    /// Per file: the index of its class (nil: no class folders).
    var labels: [UInt8]?
    var classes: [String]
    /// Files that are not PNG or JPEG (by extension), relative paths.
    var skipped: [String]

    func path(_ index: Int) -> String { (root as NSString).appendingPathComponent(files[index].relativePath) }
}

enum ImageFolder {
    static let extensions: Set = ["png", "jpg", "jpeg"]

    /// `path` is a folder that is not an IDX folder (no train- or t10k-images-idx3-ubyte).
    static func isImageFolder(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else { return false }
        return Dataset.find(path, stem: "train-images", kind: "idx3-ubyte") == nil
            && Dataset.find(path, stem: "t10k-images", kind: "idx3-ubyte") == nil
    }

    /// Byte order of the UTF-8 (code point order, as Python's sorted()).
    static func sortedNames(_ names: [String]) -> [String] {
        names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// Every PNG and JPEG under `root`, classes from its first-level folders.
    static func scan(_ root: String) throws(DataError) -> ImageFolderScan {
        var result = ImageFolderScan(root: root, files: [], labels: nil, classes: [], skipped: [])
        let top = try entries(root, relative: "")
        let classes = top.filter(\.isFolder).map(\.relative)
        let topImages = top.filter { !$0.isFolder && isImage($0.relative) }
        result.skipped = top.filter { !$0.isFolder && !isImage($0.relative) }.map(\.relative)
        if classes.isEmpty {
            result.files = topImages.map(\.file)
            return result
        }
        if let stray = topImages.first {
            throw .invalid(path: (root as NSString).appendingPathComponent(stray.relative),
                           reason: "is an image at the top of a folder of class folders (\(classes.count) of them, e.g. \(classes[0])/): move it into its class folder, or the class folders' images up")
        }
        guard classes.count <= 256 else {
            throw .invalid(path: root, reason: "has \(classes.count) class folders, more than the 256 labels 0...255 can number: group them into at most 256")
        }
        var labels: [UInt8] = []
        for (label, name) in classes.enumerated() {
            var images: [ImageFolderScan.File] = []
            try walk(root, relative: name, images: &images, skipped: &result.skipped)
            guard !images.isEmpty else {
                throw .invalid(path: (root as NSString).appendingPathComponent(name),
                               reason: "is a class folder with no PNG or JPEG images: add images to it or remove it")
            }
            result.files += images
            labels += [UInt8](repeating: UInt8(label), count: images.count)
        }
        result.classes = classes
        result.labels = labels
        return result
    }

    static func isImage(_ name: String) -> Bool { extensions.contains((name as NSString).pathExtension.lowercased()) }

    private struct Entry {
        var relative: String
        var isFolder: Bool
        var file: ImageFolderScan.File
    }

    /// The entries of folder `relative` under `root`, sorted: real folders (not links to
    /// folders, which could loop) and files (links followed); anything else is left out.
    private static func entries(_ root: String, relative: String) throws(DataError) -> [Entry] {
        let folder = relative.isEmpty ? root : (root as NSString).appendingPathComponent(relative)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder) } catch {
            throw .invalid(path: folder, reason: "cannot be listed (\(error.localizedDescription)): check its permissions")
        }
        var result: [Entry] = []
        for name in sortedNames(names) {
            let path = (folder as NSString).appendingPathComponent(name)
            let child = relative.isEmpty ? name : (relative as NSString).appendingPathComponent(name)
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFDIR {
                result.append(Entry(relative: child, isFolder: true, file: .init(relativePath: child, size: 0, modified: 0)))
                continue
            }
            if info.st_mode & S_IFMT == S_IFLNK { guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue } }
            guard info.st_mode & S_IFMT == S_IFREG else { continue }
            let modified = Int(info.st_mtim.tv_sec) * 1_000_000_000 + Int(info.st_mtim.tv_nsec)
            result.append(Entry(relative: child, isFolder: false, file: .init(relativePath: child, size: Int(info.st_size), modified: modified)))
        }
        return result
    }

    /// Every image under folder `relative`, depth first, each folder's entries sorted.
    private static func walk(_ root: String, relative: String, images: inout [ImageFolderScan.File],
                             skipped: inout [String]) throws(DataError) {
        for entry in try entries(root, relative: relative) {
            if entry.isFolder { try walk(root, relative: entry.relative, images: &images, skipped: &skipped) }
            else if isImage(entry.relative) { images.append(entry.file) }
            else { skipped.append(entry.relative) }
        }
    }

    /// The cache's name for this folder's images at `size`: a 64-bit FNV-1a hash (16 hex digits)
    /// of the sorted relative paths, sizes and modification times and the --image-size.
    static func cacheKey(_ scan: ImageFolderScan, size: ImageSize?) -> String {
        var text = "vae-dist image cache 1\nimage-size \(size?.description ?? "as stored")\n"
        for file in scan.files { text += "\(file.relativePath)\u{0}\(file.size)\u{0}\(file.modified)\n" }
        let hash = text.utf8.withContiguousStorageIfAvailable { fnv1a64(UnsafeRawBufferPointer($0)) }
            ?? Array(text.utf8).withUnsafeBytes { fnv1a64($0) }
        return String(hash, radix: 16).leftPadded(to: 16)
    }

    /// $XDG_CACHE_HOME/vae-dist/images, else ~/.cache/vae-dist/images.
    static var cacheRoot: String {
        let environment = ProcessInfo.processInfo.environment
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.hasPrefix("/") ? $0 : nil }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
        return ((base as NSString).appendingPathComponent("vae-dist") as NSString).appendingPathComponent("images")
    }
}

extension String {
    func leftPadded(to count: Int) -> String { String(repeating: "0", count: max(0, count - self.count)) + self }
}
