import Foundation
import Testing
import VAEData
import VAEKernels

/// Own data: the .npy, .npz and .safetensors readers, layouts, the held-out split.
@Suite struct OwnDataTests {
    /// [n, h, w, c] bytes with a value per (image, y, x, channel) that tells them apart.
    static func pattern(_ n: Int, _ h: Int, _ w: Int, _ c: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        for i in 0..<n { for y in 0..<h { for x in 0..<w { for k in 0..<c { bytes.append(UInt8((i * 37 + y * 11 + x * 3 + k * 101) % 256)) } } } }
        return bytes
    }

    /// The images of `set` as loadBatch gives them: [count, H * W * C] floats.
    static func floats(_ set: ImageSet) -> [Float] {
        var out = [Float](repeating: 0, count: set.count * set.pixelsPerImage)
        out.withUnsafeMutableBufferPointer {
            fillBatch($0.baseAddress!, from: set, range: 0..<set.count, binarize: false, generator: Philox4x32(seed: 0), epoch: 0)
        }
        return out
    }

    @Test func npyUint8MatchesTheSameImagesInMemory() throws {
        let dir = temporaryDirectory()
        let bytes = Self.pattern(5, 3, 4, 1)
        write(NPY.encode(descr: "|u1", shape: [5, 3, 4], bytes: bytes), dir + "/a.npy")
        let data = try Dataset.load(dir + "/a.npy", options: DataOptions(testData: dir + "/a.npy"))
        #expect(data.train.count == 5 && data.train.rows == 3 && data.train.columns == 4 && data.train.channels == 1)
        let memory = ImageSet(count: 5, rows: 3, columns: 4, pixels: bytes)
        #expect(Self.floats(data.train) == Self.floats(memory))
        // The fingerprint of a small array hashes every byte: the same as the images in memory.
        #expect(DataFingerprint(name: "a", images: data.train).hash == DataFingerprint(name: "b", images: memory).hash)
    }

    @Test func layoutsAndTypesGiveTheSameHWCImages() throws {
        let dir = temporaryDirectory()
        let (h, w) = (16, 16)
        let hwc = Self.pattern(4, h, w, 3)
        var chw = [UInt8](repeating: 0, count: hwc.count)
        for i in 0..<4 { for y in 0..<h { for x in 0..<w { for k in 0..<3 {
            chw[((i * 3 + k) * h + y) * w + x] = hwc[((i * h + y) * w + x) * 3 + k]
        } } } }
        let f32 = chw.flatMap { withUnsafeBytes(of: (Float($0) / 255).bitPattern.littleEndian) { Array($0) } }
        let f64 = hwc.flatMap { withUnsafeBytes(of: (Double($0) / 255).bitPattern.littleEndian) { Array($0) } }
        write(NPY.encode(descr: "|u1", shape: [4, h, w, 3], bytes: hwc), dir + "/hwc.npy")
        write(NPY.encode(descr: "<f4", shape: [4, 3, h, w], bytes: f32), dir + "/chw.npy")
        write(NPY.encode(descr: "<f8", shape: [4, h, w, 3], bytes: f64), dir + "/f64.npy")
        let options = DataOptions(testData: dir + "/hwc.npy")
        let reference = Self.floats(try Dataset.load(dir + "/hwc.npy", options: options).train)
        #expect(reference.count == 4 * h * w * 3)
        for name in ["chw", "f64"] {
            let set = try Dataset.load(dir + "/\(name).npy", options: options).train
            #expect(set.channels == 3 && set.rows == h && set.columns == w, "\(name)")
            let values = Self.floats(set)
            #expect(zip(values, reference).allSatisfy { abs($0 - $1) <= 1e-7 }, "\(name) differs from the uint8 HWC images")
        }
        // [N, 3, 4, 3] could be either: --layout decides, nothing guesses.
        write(NPY.encode(descr: "|u1", shape: [2, 3, 4, 3], bytes: Self.pattern(2, 3, 4, 3)), dir + "/ambiguous.npy")
        #expect { try Dataset.load(dir + "/ambiguous.npy") } throws: { "\($0)".contains("--layout nhwc or --layout nchw") }
        let nchw = try Dataset.load(dir + "/ambiguous.npy", options: DataOptions(layout: .nchw)).train
        #expect(nchw.rows == 4 && nchw.columns == 3 && nchw.channels == 3)
        let nhwc = try Dataset.load(dir + "/ambiguous.npy", options: DataOptions(layout: .nhwc)).train
        #expect(nhwc.rows == 3 && nhwc.columns == 4 && nhwc.channels == 3)
    }

    @Test func badArraysAreRefusedWithTheFileAndWhatToDo() {
        let dir = temporaryDirectory()
        let cases: [(String, [UInt8], String)] = [
            ("bigendian", NPY.encode(descr: ">f4", shape: [1, 2, 2], bytes: [UInt8](repeating: 0, count: 16)), "big-endian"),
            ("fortran", NPY.encode(descr: "|u1", shape: [1, 2, 2], bytes: [1, 2, 3, 4], fortran: true), "Fortran-order"),
            ("object", NPY.encode(descr: "|O", shape: [1], bytes: [0, 0, 0, 0, 0, 0, 0, 0]), "never unpickles"),
            ("int16", NPY.encode(descr: "<i2", shape: [1, 2, 2], bytes: [UInt8](repeating: 0, count: 8)), "holds images of int16"),
            ("complex", NPY.encode(descr: "<c8", shape: [1, 2, 2], bytes: [UInt8](repeating: 0, count: 32)), "dtype '<c8'"),
            ("rank2", NPY.encode(descr: "|u1", shape: [4, 4], bytes: [UInt8](repeating: 0, count: 16)), "rank 2"),
            ("channels", NPY.encode(descr: "|u1", shape: [1, 4, 4, 2], bytes: [UInt8](repeating: 0, count: 32)), "neither 1 nor 3 channels"),
            ("empty", NPY.encode(descr: "|u1", shape: [0, 4, 4], bytes: []), "holds no images"),
            ("truncated", Array(NPY.encode(descr: "|u1", shape: [3, 4, 4], bytes: [UInt8](repeating: 0, count: 48)).dropLast(5)), "truncated"),
            ("notnpy", Array("hello, world".utf8), "does not start with"),
            ("huge", NPY.encode(descr: "|u1", shape: [1 << 40, 1 << 20, 1 << 20], bytes: []), "too large"),
        ]
        for (name, bytes, message) in cases {
            let path = dir + "/\(name).npy"
            write(bytes, path)
            #expect { try Dataset.load(path, options: DataOptions(testData: path)) } throws: { error in
                "\(error)".hasPrefix(path) && "\(error)".contains(message)
            }
        }
    }

    @Test func floatsOutsideTheUnitIntervalAreNamedByIndex() throws {
        let dir = temporaryDirectory()
        var values = [Float](repeating: 0.5, count: 2 * 2 * 3)
        values[7] = 1.5  // image 1, row 0, column 1
        let bytes = values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }
        write(NPY.encode(descr: "<f4", shape: [2, 2, 3], bytes: bytes), dir + "/f.npy")
        let data = try Dataset.load(dir + "/f.npy", options: DataOptions(testData: dir + "/f.npy"))
        #expect { try data.checkPixelValues(unitInterval: true) } throws: { "\($0)".contains("value 1.5 at index [1, 0, 1]") && "\($0)".contains("--likelihood gaussian") }
        try data.checkPixelValues(unitInterval: false)  // Gaussian: any finite value
        values[7] = .nan
        write(NPY.encode(descr: "<f4", shape: [2, 2, 3], bytes: values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }), dir + "/n.npy")
        let nan = try Dataset.load(dir + "/n.npy", options: DataOptions(testData: dir + "/n.npy"))
        #expect { try nan.checkPixelValues(unitInterval: false) } throws: { "\($0)".contains("is not finite") }
    }

    @Test func theHeldOutSplitDependsOnlyOnTheSeed() throws {
        let (train, test) = Dataset.heldOut(count: 1000, fraction: 0.1, seed: 5)
        #expect(test.count == 100 && train.count == 900)
        #expect(Set(train).isDisjoint(with: test) && Set(train + test) == Set(0..<1000))
        #expect(train == train.sorted() && test == test.sorted())
        let again = Dataset.heldOut(count: 1000, fraction: 0.1, seed: 5)
        #expect(again.test == test, "the same seed holds out the same images")
        #expect(Dataset.heldOut(count: 1000, fraction: 0.1, seed: 6).test != test)
        #expect(Dataset.heldOut(count: 3, fraction: 0.1, seed: 1).test.count == 1, "at least one test image")
        // Through a file: labels follow their images.
        let dir = temporaryDirectory()
        write(NPY.encode(descr: "|u1", shape: [50, 2, 2], bytes: (0..<200).map { UInt8($0 / 4) }), dir + "/s.npy")
        let data = try Dataset.load(dir + "/s.npy", options: DataOptions(testFraction: 0.2, seed: 5))
        #expect(data.train.count == 40 && data.test.count == 10)
        let firstPixels = Self.floats(data.test).enumerated().filter { $0.offset % 4 == 0 }.map { Int(($0.element * 255).rounded()) }
        #expect(firstPixels == Dataset.heldOut(count: 50, fraction: 0.2, seed: 5).test.map(Int.init))
    }

    /// A zip file of `members` (name, bytes), stored or deflated, as numpy.savez writes it
    /// (without zip64 fields; numpy's own files are tested in Tests/integration/own_data_test.sh).
    static func zipFile(_ members: [(String, [UInt8])], deflated: Bool) -> [UInt8] {
        func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff)] }
        func le32(_ v: Int) -> [UInt8] { le16(v & 0xffff) + le16(v >> 16 & 0xffff) }
        var out: [UInt8] = [], directory: [UInt8] = []
        for (name, bytes) in members {
            var data = bytes
            if deflated { data = Array(deflate(bytes).dropFirst(2).dropLast(4)) }  // zlib framing off: raw deflate
            let crc = Int(crc32(bytes)), method = deflated ? 8 : 0, offset = out.count
            let common = le16(20) + le16(0) + le16(method) + le16(0) + le16(0) + le32(crc) + le32(data.count) + le32(bytes.count)
                + le16(name.utf8.count) + le16(0)
            out += le32(0x0403_4b50) + common + Array(name.utf8) + data
            directory += le32(0x0201_4b50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le32(0) + le32(offset) + Array(name.utf8)
        }
        let start = out.count
        out += directory
        out += le32(0x0605_4b50) + le16(0) + le16(0) + le16(members.count) + le16(members.count) + le32(directory.count) + le32(start) + le16(0)
        return out
    }

    @Test func npzWithKerasNamesStoredOrDeflated() throws {
        let dir = temporaryDirectory()
        let train = Self.pattern(6, 2, 3, 1), test = Self.pattern(2, 2, 3, 1).map { $0 &+ 1 }
        let members = [("x_train.npy", NPY.encode(descr: "|u1", shape: [6, 2, 3], bytes: train)),
                       ("y_train.npy", NPY.encode(descr: "<i8", shape: [6], bytes: (0..<6).flatMap { withUnsafeBytes(of: Int64($0 % 3)) { Array($0) } })),
                       ("x_test.npy", NPY.encode(descr: "|u1", shape: [2, 2, 3], bytes: test))]
        for deflated in [false, true] {
            let path = dir + "/k\(deflated).npz"
            write(Self.zipFile(members, deflated: deflated), path)
            let data = try Dataset.load(path)
            #expect(data.train.count == 6 && data.test.count == 2 && data.train.labels == [0, 1, 2, 0, 1, 2] && data.test.labels == nil)
            #expect(Self.floats(data.train) == Self.floats(ImageSet(count: 6, rows: 2, columns: 3, pixels: train)))
            #expect(Self.floats(data.test) == Self.floats(ImageSet(count: 2, rows: 2, columns: 3, pixels: test)))
        }
        write(Self.zipFile([("a.npy", members[0].1), ("b.npy", members[2].1)], deflated: false), dir + "/two.npz")
        #expect { try Dataset.load(dir + "/two.npz") } throws: { "\($0)".contains("no x_train") }
        var corrupt = Self.zipFile(members, deflated: true)
        corrupt[60] ^= 0xff
        write(corrupt, dir + "/corrupt.npz")
        #expect { try Dataset.load(dir + "/corrupt.npz") } throws: { "\($0)".hasPrefix(dir + "/corrupt.npz") }
        write(Array(Self.zipFile(members, deflated: false).prefix(100)), dir + "/short.npz")
        #expect { try Dataset.load(dir + "/short.npz") } throws: { "\($0)".contains("truncated") }
    }

    @Test func safetensorsImagesAndLabels() throws {
        let dir = temporaryDirectory()
        let images = Self.pattern(4, 2, 2, 3), labels: [UInt8] = [3, 1, 4, 1]
        let header = #"{"images":{"dtype":"U8","shape":[4,2,2,3],"data_offsets":[0,48]},"labels":{"dtype":"U8","shape":[4],"data_offsets":[48,52]}}"#
        var text = Array(header.utf8)
        while text.count % 8 != 0 { text.append(0x20) }
        let file = withUnsafeBytes(of: UInt64(text.count).littleEndian) { Array($0) } + text + images + labels
        write(file, dir + "/d.safetensors")
        let data = try Dataset.load(dir + "/d.safetensors", options: DataOptions(testFraction: 0.25, seed: 1))
        #expect(data.train.count == 3 && data.test.count == 1 && data.train.channels == 3)
        let held = Dataset.heldOut(count: 4, fraction: 0.25, seed: 1)
        #expect(data.test.labels == held.test.map { labels[Int($0)] })
        write(Array(file.dropLast(10)), dir + "/short.safetensors")
        #expect { try Dataset.load(dir + "/short.safetensors") } throws: { "\($0)".contains("truncated") }
        let noImages = #"{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#
        write(withUnsafeBytes(of: UInt64(noImages.utf8.count).littleEndian) { Array($0) } + Array(noImages.utf8) + [0], dir + "/x.safetensors")
        #expect { try Dataset.load(dir + "/x.safetensors") } throws: { "\($0)".contains("no tensor named 'images'") }
    }
}
