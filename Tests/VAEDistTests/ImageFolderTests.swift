import Foundation
import Testing
import VAEData
import VAEOutputs

/// Image folders: the resize (centre crop + area averaging) against its naive reference, and the
/// folder scan (classes, labels, skipped files, the cache) through Dataset.load.
@Suite struct ImageFolderTests {
    @Test func resizeMatchesTheNaiveReferenceOnOddShapes() {
        var rounds = 0
        for (h, w) in [(1, 1), (7, 13), (13, 7), (33, 33), (28, 28), (64, 48)] {
            for (H, W) in [(1, 1), (5, 7), (7, 5), (28, 28), (40, 40), (3, 17)] {
                for c in [1, 3] {
                    let source: [UInt8] = (0..<(h * w * c)).map { (i: Int) -> UInt8 in UInt8(truncatingIfNeeded: i * 7919 + i / 3 * 31) }
                    var fast = [UInt8](repeating: 0, count: H * W * c), naive = fast
                    resizeImage(&fast, height: H, width: W, source, sourceHeight: h, sourceWidth: w, channels: c)
                    resizeImageNaive(&naive, height: H, width: W, source, sourceHeight: h, sourceWidth: w, channels: c)
                    #expect(fast == naive, "\(h)x\(w)x\(c) -> \(H)x\(W)")
                    rounds += 1
                }
            }
        }
        #expect(rounds == 72)
    }

    @Test func resizeByHand() {
        // 2x2 -> 1x1: the mean, rounded half up ((10 + 20 + 30 + 41) / 4 = 25.25 -> 25).
        var out: [UInt8] = [0]
        resizeImage(&out, height: 1, width: 1, [10, 20, 30, 41], sourceHeight: 2, sourceWidth: 2, channels: 1)
        #expect(out == [25])
        // 3x3 -> 2x2 (no crop): each output covers 1.5 x 1.5 source pixels; rows alike, so
        // (0 + 0.5 * 100) / 1.5 = 33.3 and (0.5 * 100 + 200) / 1.5 = 166.7.
        var two: [UInt8] = [0, 0, 0, 0]
        resizeImage(&two, height: 2, width: 2, [0, 100, 200, 0, 100, 200, 0, 100, 200], sourceHeight: 3, sourceWidth: 3, channels: 1)
        #expect(two == [33, 167, 33, 167])
        // A 4x8 image to 2x2: the centre 4x4 is kept (columns 2..<6).
        #expect(centreCrop(sourceHeight: 4, sourceWidth: 8, height: 2, width: 2) == (0, 2, 4, 4))
        #expect(centreCrop(sourceHeight: 9, sourceWidth: 4, height: 1, width: 2) == (3, 0, 2, 4))
        #expect(ImageSize("32x48") == ImageSize(height: 32, width: 48))
        #expect(ImageSize("64") == ImageSize(height: 64, width: 64))
        #expect(ImageSize("0x5") == nil && ImageSize("3x") == nil && ImageSize("axb") == nil)
    }

    /// A temporary folder, removed after `body`.
    static func withFolder(_ body: (String) throws -> Void) throws {
        let folder = NSTemporaryDirectory() + "image-folder-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try body(folder)
    }

    static func write(_ path: String, gray value: UInt8, height: Int = 4, width: Int = 4) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(PNG.encodeGray(width: width, height: height, pixels: [UInt8](repeating: value, count: height * width))).write(to: URL(fileURLWithPath: path))
    }

    @Test func classFoldersGiveSortedLabelsAndTheCacheIsReused() throws {
        try Self.withFolder { root in
            let data = root + "/data"
            // Class names sorted by bytes: "Zebra" < "apple" < "mango" (upper case first, as Python).
            try Self.write(data + "/mango/1.png", gray: 30)
            try Self.write(data + "/apple/x/2.png", gray: 20)        // nested: still class "apple"
            try Self.write(data + "/apple/1.png", gray: 21)
            try Self.write(data + "/Zebra/9.png", gray: 10)
            try Data("notes".utf8).write(to: URL(fileURLWithPath: data + "/README.txt"))
            var options = DataOptions(testFraction: 0.5)
            options.imageCache = root + "/cache"
            let first = try Dataset.load(data, options: options)
            #expect(first.notes.contains { $0.contains("skipped 1 non-image file") && $0.contains("README.txt") })
            #expect(first.notes.contains { $0.contains("decoded 4 images") })
            let all = [first.train, first.test]
            #expect(all.map(\.count).reduce(0, +) == 4)
            #expect(first.train.rows == 4 && first.train.columns == 4 && first.train.channels == 1)
            // Order: Zebra/9, apple/1, apple/x/2, mango/1; labels 0, 1, 1, 2.
            let labels = try String(contentsOfFile: try cacheFile(root + "/cache", "files.txt"), encoding: .utf8)
            #expect(labels == "Zebra/9.png\napple/1.png\napple/x/2.png\nmango/1.png\n")
            let pixels = (first.train.selection ?? []).map { Int($0) } + (first.test.selection ?? []).map { Int($0) }
            #expect(pixels.sorted() == [0, 1, 2, 3])
            var byIndex: [Int: UInt8] = [:]
            for set in all { for (i, e) in (set.selection ?? []).enumerated() { byIndex[Int(e)] = set.labels?[i] } }
            #expect(byIndex == [0: 0, 1: 1, 2: 1, 3: 2])

            let second = try Dataset.load(data, options: options)
            #expect(second.notes.contains { $0.contains("from the cache") })
            #expect(!second.notes.contains { $0.contains("decoded") })
            // A changed folder is decoded again, into another cache entry.
            try Self.write(data + "/mango/2.png", gray: 31)
            let third = try Dataset.load(data, options: options)
            #expect(third.notes.contains { $0.contains("decoded 5 images") })
            let entries = try FileManager.default.contentsOfDirectory(atPath: root + "/cache")
            #expect(entries.count == 2 && !entries.contains { $0.contains(".tmp") })
        }
    }

    /// The one file `name` in the cache's one entry.
    func cacheFile(_ cache: String, _ name: String) throws -> String {
        let entries = try FileManager.default.contentsOfDirectory(atPath: cache)
        #expect(entries.count == 1)
        return cache + "/" + entries[0] + "/" + name
    }

    @Test func badFoldersAreRefusedWithTheFileAndWhatToDo() throws {
        try Self.withFolder { root in
            var options = DataOptions()
            options.imageCache = root + "/cache"
            func refusal(_ path: String) -> String {
                do { _ = try Dataset.load(path, options: options); return "loaded" } catch { return error.description }
            }
            try Self.write(root + "/sizes/a.png", gray: 1)
            try Self.write(root + "/sizes/b.png", gray: 1, height: 5)
            #expect(refusal(root + "/sizes") == "\(root)/sizes/b.png: is 5x4 but a.png is 4x4: give images of one size, or pass --image-size HxW to resize them on load")
            try Self.write(root + "/empty/cat/a.png", gray: 1)
            try Self.write(root + "/empty/cat/b.png", gray: 1)
            try FileManager.default.createDirectory(atPath: root + "/empty/dog", withIntermediateDirectories: true)
            #expect(refusal(root + "/empty") == "\(root)/empty/dog: is a class folder with no PNG or JPEG images: add images to it or remove it")
            try FileManager.default.createDirectory(atPath: root + "/none", withIntermediateDirectories: true)
            try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/none/README.txt"))
            #expect(refusal(root + "/none").hasPrefix("\(root)/none: holds no PNG or JPEG images"))
            try Self.write(root + "/corrupt/a.png", gray: 1)
            let good = try Data(contentsOf: URL(fileURLWithPath: root + "/corrupt/a.png"))
            try good.prefix(good.count - 20).write(to: URL(fileURLWithPath: root + "/corrupt/b.png"))
            #expect(refusal(root + "/corrupt").hasPrefix("\(root)/corrupt/b.png: cannot be decoded as PNG (libpng: "))
            let left = (try? FileManager.default.contentsOfDirectory(atPath: root + "/cache")) ?? []
            #expect(left.isEmpty, "a failed decode leaves nothing in the cache")
        }
    }
}
