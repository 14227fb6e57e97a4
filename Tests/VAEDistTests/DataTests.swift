import Foundation
import Testing
import VAEData
import VAEKernels

func temporaryDirectory(_ name: String = #function) -> String {
    let path = NSTemporaryDirectory() + "vae-dist-tests-\(getpid())-\(name.filter { $0.isLetter || $0.isNumber })"
    try? FileManager.default.removeItem(atPath: path)
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func write(_ bytes: [UInt8], _ path: String) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

@Suite struct IDXTests {
    let images = IDXArray(shape: [3, 2, 4], bytes: (0..<24).map { UInt8($0 * 10) })

    @Test func roundTripRawAndGzip() throws {
        let dir = temporaryDirectory()
        write(IDX.encode(images), dir + "/a-idx3-ubyte")
        write(gzip(IDX.encode(images)), dir + "/a-idx3-ubyte.gz")
        #expect(try IDX.read(path: dir + "/a-idx3-ubyte") == images)
        #expect(try IDX.read(path: dir + "/a-idx3-ubyte.gz") == images)
    }

    @Test func corruptFilesGiveErrorsThatNameTheFileAndProblem() {
        let good = IDX.encode(images)
        let cases: [([UInt8], String)] = [
            ([0, 0], "shorter than the 4-byte magic"),
            ([1, 2, 8, 3] + Array(good[4...]), "bad magic"),
            ([0, 0, 0x0D, 3] + Array(good[4...]), "element type"),
            ([0, 0, 8, 9] + Array(good[4...]), "rank 9"),
            (Array(good.dropLast(5)), "truncated"),
            (good + [1, 2], "unexpected bytes"),
        ]
        for (bytes, message) in cases {
            #expect {
                try IDX.decode(bytes, path: "/data/x-idx3-ubyte")
            } throws: { error in
                "\(error)".contains(message) && "\(error)".hasPrefix("/data/x-idx3-ubyte")
            }
        }
        let dir = temporaryDirectory()
        var gz = gzip(good)
        write(Array(gz.prefix(gz.count / 2)), dir + "/t.gz")
        #expect { try IDX.read(path: dir + "/t.gz") } throws: { "\($0)".contains("truncated") || "\($0)".contains("ends early") }
        gz[12] ^= 0xFF; gz[13] ^= 0xFF
        write(gz, dir + "/c.gz")
        #expect(throws: DataError.self) { try IDX.read(path: dir + "/c.gz") }
        #expect { try IDX.read(path: dir + "/missing") } throws: { "\($0)".contains("not found") }
    }

    @Test func loadsAFolderInThePublishedLayout() throws {
        let dir = temporaryDirectory()
        let train = IDXArray(shape: [5, 3, 3], bytes: (0..<45).map { UInt8($0) })
        let test = IDXArray(shape: [2, 3, 3], bytes: (0..<18).map { UInt8($0) })
        write(gzip(IDX.encode(train)), dir + "/train-images-idx3-ubyte.gz")
        write(IDX.encode(test), dir + "/t10k-images-idx3-ubyte")
        write(IDX.encode(IDXArray(shape: [5], bytes: [1, 2, 3, 4, 5])), dir + "/train-labels-idx1-ubyte")
        let dataset = try Dataset.load(dir)
        #expect(dataset.train.count == 5 && dataset.train.rows == 3 && dataset.test.count == 2)
        #expect(dataset.train.labels == [1, 2, 3, 4, 5] && dataset.test.labels == nil)
        #expect(dataset.train.pixels == train.bytes)
        // Wrong label count and mismatched image sizes are errors naming the file.
        write(IDX.encode(IDXArray(shape: [4], bytes: [1, 2, 3, 4])), dir + "/train-labels-idx1-ubyte")
        #expect { try Dataset.load(dir) } throws: { "\($0)".contains("train-labels-idx1-ubyte") && "\($0)".contains("expected 5 labels") }
        try FileManager.default.removeItem(atPath: dir + "/train-labels-idx1-ubyte")
        write(IDX.encode(IDXArray(shape: [2, 4, 4], bytes: [UInt8](repeating: 0, count: 32))), dir + "/t10k-images-idx3-ubyte")
        #expect { try Dataset.load(dir) } throws: { "\($0)".contains("3x3") && "\($0)".contains("4x4") }
        #expect { try Dataset.load(dir + "/nope") } throws: { "\($0)".contains("not found") }
    }
}

@Suite struct GzipTests {
    let images = IDXArray(shape: [3, 2, 4], bytes: (0..<24).map { UInt8($0 * 10) })

    /// A gzip file of a valid IDX header for `count` 28x28 images followed by `zeros` zero bytes.
    func bomb(count: Int, zeros: Int) -> [UInt8] {
        gzip(IDX.encode(IDXArray(shape: [count, 28, 28], bytes: [UInt8](repeating: 0, count: zeros))))
    }

    @Test func inflatesOnlyWhatIsAskedFor() throws {
        // 64 MB of zeros in 64 KB of gzip: reading 10 bytes inflates a chunk, not the file.
        let inflater = try Inflater(gzip([UInt8](repeating: 0, count: 64 << 20)))
        #expect(try inflater.read(10) == [UInt8](repeating: 0, count: 10))
        #expect(!inflater.atEnd)
        #expect(throws: ZlibError.tooLarge(1000)) { try inflate(gzip([UInt8](repeating: 7, count: 1001)), limit: 1000) }
        #expect(try inflate(gzip([UInt8](repeating: 7, count: 1000)), limit: 1000).count == 1000)
    }

    @Test func aBombIsRefusedAfterTheBytesItsHeaderPromises() throws {
        // The header promises 10 images (7,840 bytes); 200 MB follow. Refused without
        // inflating them: the error says so, and it comes fast.
        let dir = temporaryDirectory()
        write(bomb(count: 10, zeros: 200 << 20), dir + "/b.gz")
        let start = Date()
        #expect {
            try IDX.read(path: dir + "/b.gz")
        } throws: {
            "\($0)".contains("unexpected bytes after the 7840 bytes that dimensions [10, 28, 28] describe (not decompressed further)")
        }
        #expect(Date().timeIntervalSince(start) < 0.5, "inflating 200 MB takes longer than stopping after 7,841 bytes")
        // The exact amount the header promises is read.
        write(bomb(count: 10, zeros: 7840), dir + "/ok.gz")
        #expect(try IDX.read(path: dir + "/ok.gz").shape == [10, 28, 28])
    }

    @Test func multiMemberGzipIsOneStream() throws {
        // `cat a.gz b.gz` (pigz, bgzip): the members' data in order.
        let bytes = IDX.encode(images)
        let dir = temporaryDirectory()
        for cut in [1, 4, 10, 16, 30] {
            write(gzip(Array(bytes[..<cut])) + gzip(Array(bytes[cut...])), dir + "/m.gz")
            #expect(try IDX.read(path: dir + "/m.gz") == images, "members cut at \(cut)")
        }
        write(gzip(Array(bytes[..<10])) + gzip([]) + gzip(Array(bytes[10...])) + gzip([]), dir + "/e.gz")
        #expect(try IDX.read(path: dir + "/e.gz") == images, "empty members")
        #expect(try inflate(gzip([1, 2]) + gzip([3])) == [1, 2, 3])
        // A truncated second member is still truncated.
        let two = gzip(Array(bytes[..<10])) + gzip(Array(bytes[10...]))
        write(Array(two.dropLast(6)), dir + "/t.gz")
        #expect { try IDX.read(path: dir + "/t.gz") } throws: { "\($0)".contains("ends early") }
    }

    @Test func bytesAfterTheGzipDataAreRefused() throws {
        let dir = temporaryDirectory()
        for garbage: [UInt8] in [[0], [0x1f], [1, 2, 3, 4, 5], [UInt8](repeating: 0, count: 4096)] {
            write(gzip(IDX.encode(images)) + garbage, dir + "/g.gz")
            #expect {
                try IDX.read(path: dir + "/g.gz")
            } throws: {
                "\($0)" == "\(dir)/g.gz: \(garbage.count) bytes after the end of the gzip data (not another gzip member)"
            }
        }
        #expect(throws: ZlibError.trailingBytes(3)) { try inflate(gzip([1, 2]) + [9, 9, 9]) }
    }

    @Test func anythingButARegularFileGivesItsReason() throws {
        let dir = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: dir + "/folder", withIntermediateDirectories: false)
        #expect(mkfifo(dir + "/fifo", 0o600) == 0)
        try FileManager.default.createSymbolicLink(atPath: dir + "/zero", withDestinationPath: "/dev/zero")
        try FileManager.default.createSymbolicLink(atPath: dir + "/loop", withDestinationPath: dir + "/loop")
        let cases = [("folder", "is a folder"), ("fifo", "FIFO"), ("zero", "character device"), ("loop", "loop of symbolic links")]
        for (name, reason) in cases {
            #expect { try IDX.read(path: "\(dir)/\(name)") } throws: { "\($0)".hasPrefix("\(dir)/\(name): ") && "\($0)".contains(reason) }
        }
        // A raw file's header is checked against its size before its data is read.
        write(IDX.encode(IDXArray(shape: [1000, 28, 28], bytes: [])), dir + "/short")
        #expect { try IDX.read(path: dir + "/short") } throws: { "\($0)".contains("need 784000 bytes of data, found 0") }
    }
}

@Suite struct TestOnlyLoadTests {
    /// The test split of a full load, bit for bit, and no training images.
    func expectSameTestSplit(_ spec: String) throws {
        let full = try Dataset.load(spec), testOnly = try Dataset.load(spec, splits: .testOnly)
        #expect(testOnly.name == full.name)
        #expect(testOnly.test.count == full.test.count && testOnly.test.count > 0, "\(spec)")
        #expect(testOnly.test.rows == full.test.rows && testOnly.test.columns == full.test.columns)
        #expect(testOnly.test.pixelFormat == full.test.pixelFormat && testOnly.test.discreteFactors == full.test.discreteFactors)
        expectIdentical(testOnly.test.pixels, full.test.pixels, "\(spec): test pixels")
        #expect(testOnly.test.labels == full.test.labels, "\(spec): test labels")
        #expect(testOnly.test.factors == full.test.factors, "\(spec): test factors")
        #expect(testOnly.test.factorNames == full.test.factorNames)
        #expect(testOnly.train.count == 0 && testOnly.train.pixels.isEmpty, "\(spec): no training images")
        #expect(testOnly.train.rows == full.train.rows && testOnly.train.columns == full.train.columns)
    }

    @Test func syntheticAndDSpritesMakeTheSameTestImages() throws {
        for spec in ["synthetic:1", "synthetic:57", "synthetic:3000", "dsprites:2", "dsprites:500"] {
            try expectSameTestSplit(spec)
        }
    }

    @Test func anIDXFolderIsReadWithoutItsTrainingFiles() throws {
        let dir = temporaryDirectory()
        let test = IDXArray(shape: [2, 3, 3], bytes: (0..<18).map { UInt8($0) })
        write(IDX.encode(test), dir + "/t10k-images-idx3-ubyte")
        write(IDX.encode(IDXArray(shape: [2], bytes: [7, 9])), dir + "/t10k-labels-idx1-ubyte")
        write(IDX.encode(IDXArray(shape: [5, 3, 3], bytes: [UInt8](repeating: 1, count: 45))), dir + "/train-images-idx3-ubyte")
        try expectSameTestSplit(dir)
        // A training file that cannot be read stops a full load, not a test-only one.
        write([1, 2, 3], dir + "/train-images-idx3-ubyte")
        #expect(throws: DataError.self) { try Dataset.load(dir) }
        let testOnly = try Dataset.load(dir, splits: .testOnly)
        #expect(testOnly.test.pixels == test.bytes && testOnly.test.labels == [7, 9])
    }
}

@Suite struct SyntheticTests {
    @Test func deterministicWithFactorsAndSplit() {
        let a = Synthetic.generate(trainCount: 50, testCount: 10, seed: 3)
        let b = Synthetic.generate(trainCount: 50, testCount: 10, seed: 3)
        let c = Synthetic.generate(trainCount: 50, testCount: 10, seed: 4)
        expectIdentical(a.train.pixels, b.train.pixels, "synthetic, same seed: training pixels")
        expectIdentical(a.test.pixels, b.test.pixels, "synthetic, same seed: test pixels")
        #expect(a.train.pixels != c.train.pixels)
        #expect(a.train.count == 50 && a.test.count == 10 && a.train.rows == 28)
        #expect(a.train.factors?.count == 50 * 5 && a.train.factorNames == Synthetic.factorNames)
        // Every image shows a shape: some ink, not all ink; bigger scale, more ink on average.
        var inkBySize: [(Float, Int)] = []
        for i in 0..<50 {
            let ink = a.train.pixels[(i * 784)..<((i + 1) * 784)].reduce(0) { $0 + Int($1) }
            #expect(ink > 255 * 10 && ink < 255 * 600)
            inkBySize.append((a.train.factors![i * 5 + 1], ink))
        }
        inkBySize.sort { $0.0 < $1.0 }
        let small = inkBySize.prefix(15).reduce(0) { $0 + $1.1 }, large = inkBySize.suffix(15).reduce(0) { $0 + $1.1 }
        #expect(large > small * 2)
    }

    @Test func shardsCoverEveryExampleOnce() {
        for world in [1, 2, 3, 4] {
            var seen: [Int] = []
            for rank in 0..<world { seen += Array(shardRange(count: 10_001, rank: rank, worldSize: world)) }
            #expect(seen == Array(0..<10_001))
        }
        let g = Philox4x32(seed: 1)
        let one = EpochPlan(exampleCount: 1000, globalBatchSize: 64, rank: 0, worldSize: 1, generator: g, epoch: 1)
        let ranks = (0..<4).map { EpochPlan(exampleCount: 1000, globalBatchSize: 64, rank: $0, worldSize: 4, generator: g, epoch: 1) }
        #expect(one.steps == 15)
        for step in 0..<one.steps {
            #expect(Array(one.localIndices(step: step)) == ranks.flatMap { Array($0.localIndices(step: step)) })
        }
    }
}
