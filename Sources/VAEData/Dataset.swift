import Foundation
import VAEFiles

/// How `ImageSet.pixels` holds an image.
public enum PixelFormat: Sendable {
    /// One byte per pixel [count, rows * columns], 0 = background, 255 = full ink.
    case bytes
    /// One bit per pixel [count, ceil(rows * columns / 8)], pixel p in bit p % 8 of byte p / 8
    /// (binary images such as dSprites: 1 = ink, read as 1.0).
    case bits
}

/// Images, labels and ground-truth factors.
public struct ImageSet: Sendable {
    public var count: Int
    public var rows: Int
    public var columns: Int
    public var pixels: [UInt8]
    public var pixelFormat: PixelFormat
    public var labels: [UInt8]?
    /// Ground-truth factors of variation [count, factorNames.count] (synthetic data, dSprites).
    public var factors: [Float]?
    public var factorNames: [String]
    /// The factors take a few discrete values each (dSprites' grid), so MIG applies; the
    /// synthetic set's are continuous draws.
    public var discreteFactors = false
    /// Channels per pixel: 1 (gray) or 3 (RGB), interleaved (HWC) in each image.
    public var channels = 1
    /// Images read from an array file (ArrayImages.swift) instead of `pixels` (then empty);
    /// `selection` maps this set's example i to the array's example selection[i] (a split).
    public var array: ArrayImages?
    public var selection: [Int32]?

    public init(count: Int, rows: Int, columns: Int, pixels: [UInt8], labels: [UInt8]? = nil,
                factors: [Float]? = nil, factorNames: [String] = []) {
        precondition(pixels.count == count * rows * columns)
        self.count = count
        self.rows = rows
        self.columns = columns
        self.pixels = pixels
        self.labels = labels
        self.factors = factors
        self.factorNames = factorNames
        pixelFormat = .bytes
    }

    /// Binary images packed at one bit per pixel (`PixelFormat.bits`).
    public init(count: Int, rows: Int, columns: Int, packedBits: [UInt8], labels: [UInt8]? = nil,
                factors: [Float]? = nil, factorNames: [String] = []) {
        self.init(count: 0, rows: rows, columns: columns, pixels: [], labels: labels, factors: factors, factorNames: factorNames)
        precondition(packedBits.count == count * ((rows * columns + 7) / 8))
        self.count = count
        pixels = packedBits
        pixelFormat = .bits
    }

    /// No images, the same image size, pixel format and factor names (the training split of
    /// a test-only load).
    public var empty: ImageSet {
        var set = self
        set.count = 0
        set.pixels = []
        set.labels = labels.map { _ in [] }
        set.factors = factors.map { _ in [] }
        set.selection = array.map { _ in [] }
        return set
    }

    public var pixelsPerImage: Int { rows * columns * channels }
    /// Bytes of `pixels` per image.
    public var bytesPerImage: Int { pixelFormat == .bytes ? rows * columns * channels : (rows * columns + 7) / 8 }
}

/// Which splits `Dataset.load` builds.
public enum DatasetSplits: Sendable {
    case all
    /// Only the test set (eval, latent-map, ...: a run on synthetic:10000000 has 8 GB of
    /// training images and 784 MB of test images). `train` is then empty: no images, the test
    /// set's image size.
    case testOnly
}

/// A train/test split of one dataset.
public struct Dataset: Sendable {
    public var name: String
    public var train: ImageSet
    public var test: ImageSet
    /// What loading did that a run's log should say (an image folder's cache, skipped files).
    public var notes: [String] = []

    public static let defaultDirectory = "/usr/share/datasets/fashion-mnist"

    /// `spec` as a checkpoint records it: a path made absolute, so that --resume, eval and the
    /// other commands find the data from any folder; the built-in sets as given.
    public static func recordedSpec(_ spec: String) -> String {
        if spec == "synthetic" || spec.hasPrefix("synthetic:") || spec == "dsprites" || spec.hasPrefix("dsprites:") { return spec }
        return URL(fileURLWithPath: spec).standardizedFileURL.path
    }

    /// `error` from loading the --data that `checkpoint` recorded, saying where the path came
    /// from and how to give another.
    public static func fromCheckpoint(_ error: DataError, spec: String, checkpoint: String) -> DataError {
        .configuration("\(error) (--data \(spec) is the data \(checkpoint) was trained on; pass --data to read the images from elsewhere)")
    }

    /// `spec` is a folder of IDX files, `synthetic` (20,000 + 2,000 images),
    /// `synthetic:N` (N training images and N/10 test images, at least 1), `dsprites`
    /// (737,280 images, 10% test) or `dsprites:N` (a fixed subset of N, 10% test). With
    /// `.testOnly` the test set holds the same images as in a full load.
    public static func load(_ spec: String, splits: DatasetSplits = .all, options: DataOptions = DataOptions()) throws(DataError) -> Dataset {
        if isArrayFile(spec) || ImageFolder.isImageFolder(spec) { return try loadArrayData(spec, splits: splits, options: options) }
        if let size = options.imageSize {
            throw .configuration("--image-size \(size) resizes the images of a folder of PNG and JPEG files; --data \(spec) is not one")
        }
        if let test = options.testData {
            throw .configuration("--test-data \(test) gives the test set of an array file or image folder; --data \(spec) has its own test split (leave --test-data out)")
        }
        if spec == "dsprites" { return DSprites.generate(splits: splits) }
        if spec.hasPrefix("dsprites:") {
            guard let n = Int(spec.dropFirst("dsprites:".count)), n >= 2, n <= DSprites.count else {
                throw .configuration("--data \(spec): expected dsprites:N with N a count from 2 to \(DSprites.count)")
            }
            return DSprites.generate(count: n, splits: splits)
        }
        if spec == "synthetic" || spec.hasPrefix("synthetic:") {
            var trainCount = 20_000
            if spec.hasPrefix("synthetic:") {
                guard let n = Int(spec.dropFirst("synthetic:".count)), n >= 1, n <= 10_000_000 else {
                    throw .configuration("--data \(spec): expected synthetic:N with N a count from 1 to 10000000")
                }
                trainCount = n
            }
            return Synthetic.generate(trainCount: trainCount, testCount: max(trainCount / 10, 1), seed: Synthetic.defaultSeed, splits: splits)
        }
        if !FileManager.default.fileExists(atPath: spec),
           let near = nearestName(String(spec.prefix { $0 != ":" }), among: ["synthetic", "dsprites"]) {
            throw .missing(path: spec, hint: "did you mean --data \(near)\(spec.contains(":") ? ":" + spec.drop { $0 != ":" }.dropFirst() : "")?")
        }
        return try loadIDXDirectory(spec, splits: splits)
    }

    /// Loads train-images-idx3-ubyte and t10k-images-idx3-ubyte (each raw or .gz, also
    /// the train-images.idx3-ubyte spelling) and the label files when present; with `.testOnly`
    /// the training files are not read.
    public static func loadIDXDirectory(_ directory: String, splits: DatasetSplits = .all) throws(DataError) -> Dataset {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw .missing(path: directory,
                           hint: directory == defaultDirectory
                               ? "install it with: apt-get install dataset-fashion-mnist, or pass --data DIR or --data synthetic"
                               : "pass --data with a folder of IDX files, or --data synthetic")
        }
        guard isDirectory.boolValue else {
            throw .invalid(path: directory, reason: "is not a folder (--data takes the folder that holds train-images-idx3-ubyte[.gz])")
        }
        let name = URL(fileURLWithPath: directory).lastPathComponent
        if splits == .testOnly {
            let test = try loadSplit(directory, prefix: "t10k")
            return Dataset(name: name, train: test.empty, test: test)
        }
        let train = try loadSplit(directory, prefix: "train")
        let test = try loadSplit(directory, prefix: "t10k")
        guard train.rows == test.rows, train.columns == test.columns else {
            throw .invalid(path: directory, reason: "training images are \(train.rows)x\(train.columns) but test images are \(test.rows)x\(test.columns)")
        }
        return Dataset(name: name, train: train, test: test)
    }

    static func find(_ directory: String, stem: String, kind: String) -> String? {
        let candidates = ["\(stem)-\(kind)", "\(stem)-\(kind.replacingOccurrences(of: "-idx", with: ".idx"))"]
        for name in candidates {
            for suffix in ["", ".gz"] {
                let path = (directory as NSString).appendingPathComponent(name + suffix)
                // lstat: a symbolic link loop or a dangling link is there too, and
                // RegularFile names what is wrong with it (fileExists would call it missing).
                var info = stat()
                if lstat(path, &info) == 0 { return path }
            }
        }
        return nil
    }

    static func loadSplit(_ directory: String, prefix: String) throws(DataError) -> ImageSet {
        guard let imagePath = find(directory, stem: "\(prefix)-images", kind: "idx3-ubyte") else {
            let path = (directory as NSString).appendingPathComponent("\(prefix)-images-idx3-ubyte[.gz]")
            throw .missing(path: path, hint: "a data folder holds train-images-idx3-ubyte and t10k-images-idx3-ubyte, gzipped or not")
        }
        let images = try IDX.read(path: imagePath)
        guard images.shape.count == 3, images.shape[0] > 0, images.shape[1] > 0, images.shape[2] > 0 else {
            throw .invalid(path: imagePath, reason: "expected images of shape [count, rows, columns], found \(images.shape)")
        }
        let count = images.shape[0]
        var labels: [UInt8]?
        if let labelPath = find(directory, stem: "\(prefix)-labels", kind: "idx1-ubyte") {
            let array = try IDX.read(path: labelPath)
            guard array.shape == [count] else {
                throw .invalid(path: labelPath, reason: "expected \(count) labels (one per image), found shape \(array.shape)")
            }
            labels = array.bytes
        }
        return ImageSet(count: count, rows: images.shape[1], columns: images.shape[2], pixels: images.bytes, labels: labels)
    }
}
