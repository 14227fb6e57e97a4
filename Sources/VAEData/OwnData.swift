import Foundation
import VAEKernels

// --data PATH for your own data, by what PATH is:
//   FILE.npy          one array of images;
//   FILE.npz          Keras' names x_train (y_train, x_test, y_test optional) or one array;
//   FILE.safetensors  `images` (`labels`, `test_images`, `test_labels` optional);
//   FOLDER            PNG and JPEG files (class folders optional), decoded once into a cached
//                     .npy (ImageFolder.swift, ImageCache.swift);
// and, for data without a test split, the held-out subset of `--test-fraction` (or the images
// of `--test-data PATH`). Arrays are memory-mapped (ArrayImages.swift); labels are read whole.

/// How own data is split and read; the defaults live here, TrainingOptions records them.
public struct DataOptions: Sendable, Equatable {
    /// The test set's images: a file's test split (x_test, test_images) or else all its images.
    public var testData: String?
    /// The fraction of a dataset without a test split held out as its test set.
    public var testFraction = 0.1
    /// How to read an ambiguous 4-d array.
    public var layout: ArrayLayout?
    /// Chooses the held-out subset (the run's --seed).
    public var seed: UInt64 = 1
    /// The size the images of an image folder are resized to (nil: as stored, all one size).
    public var imageSize: ImageSize?
    /// Where image folders are decoded to (nil: $XDG_CACHE_HOME/vae-dist/images, else
    /// ~/.cache/vae-dist/images; `ImageFolder.cacheRoot`).
    public var imageCache: String?

    public init(testData: String? = nil, testFraction: Double = 0.1, layout: ArrayLayout? = nil, seed: UInt64 = 1,
                imageSize: ImageSize? = nil) {
        self.testData = testData
        self.testFraction = testFraction
        self.layout = layout
        self.seed = seed
        self.imageSize = imageSize
    }
}

/// The images and labels an array file holds, by split (test: nil when it has none).
struct ArraySplits {
    var train: (images: ArrayImages, labels: [UInt8]?)
    var test: (images: ArrayImages, labels: [UInt8]?)?
}

/// "28x28" for gray images, "32x32x3" for colour.
public func imageSize(height: Int, width: Int, channels: Int) -> String {
    channels == 1 ? "\(height)x\(width)" : "\(height)x\(width)x\(channels)"
}

extension ImageSet {
    /// "28x28" or "32x32x3".
    public var sizeDescription: String { imageSize(height: rows, width: columns, channels: channels) }

    /// The images `selection` (nil: all) of `array`, with their labels (of all the array's images).
    public init(array: ArrayImages, selection: [Int32]?, labels: [UInt8]?) {
        self.init(count: 0, rows: array.height, columns: array.width, pixels: [])
        count = selection?.count ?? array.count
        channels = array.channels
        self.array = array
        self.selection = selection
        self.labels = labels.map { all in selection.map { $0.map { all[Int($0)] } } ?? all }
    }
}

extension Dataset {
    /// PATH names an array file (by its extension).
    public static func isArrayFile(_ spec: String) -> Bool {
        ["npy", "npz", "safetensors"].contains(URL(fileURLWithPath: spec).pathExtension.lowercased())
    }

    /// The held-out split of `count` examples: test = round(count * fraction) (at least 1)
    /// examples drawn by a permutation that depends only on `seed` (not on the rank count),
    /// training = the rest; both in file order.
    public static func heldOut(count: Int, fraction: Double, seed: UInt64) -> (train: [Int32], test: [Int32]) {
        let testCount = max(1, Int((Double(count) * fraction).rounded()))
        let permutation = epochPermutation(count: count, generator: Philox4x32(seed: seed ^ 0x7e57_5e7_0f_da7a), epoch: 0)
        return (permutation[testCount...].sorted(), permutation[..<testCount].sorted())
    }

    /// An array file's or image folder's data (and `options.testData`'s), split.
    public static func loadArrayData(_ path: String, splits: DatasetSplits, options: DataOptions) throws(DataError) -> Dataset {
        let name = URL(fileURLWithPath: path).lastPathComponent
        var notes: [String] = []
        if options.imageSize != nil && isArrayFile(path) {
            throw .configuration("--image-size \(options.imageSize!) resizes the images of a folder of PNG and JPEG files; --data \(path) is an array file")
        }
        let data = try isArrayFile(path) ? readArrayFile(path, layout: options.layout)
            : ImageCache.read(path, size: options.imageSize, cacheRoot: options.imageCache, notes: &notes)
        var train = ImageSet(array: data.train.images, selection: nil, labels: data.train.labels)
        var test: ImageSet
        if let testPath = options.testData {
            let other = try isArrayFile(testPath) ? readArrayFile(testPath, layout: options.layout).testOrAll
                : ImageFolder.isImageFolder(testPath) ? ImageCache.read(testPath, size: options.imageSize, cacheRoot: options.imageCache, notes: &notes).testOrAll
                : try loadIDXDirectory(testPath, splits: .testOnly).test
            test = other
        } else if let own = data.test {
            test = ImageSet(array: own.images, selection: nil, labels: own.labels)
        } else {
            guard options.testFraction > 0, options.testFraction < 1 else {
                throw .configuration("--test-fraction \(options.testFraction): \(path) has no test split, so a fraction between 0 and 1 (exclusive) of it is held out; or give --test-data PATH")
            }
            guard train.count >= 2 else {
                throw .invalid(path: path, reason: "holds 1 image, too few to hold out a test set; give --test-data PATH")
            }
            let (trainIndices, testIndices) = heldOut(count: train.count, fraction: options.testFraction, seed: options.seed)
            guard !trainIndices.isEmpty else {
                throw .configuration("--test-fraction \(options.testFraction) leaves no training images of the \(train.count) in \(path)")
            }
            test = ImageSet(array: data.train.images, selection: testIndices, labels: data.train.labels)
            train = ImageSet(array: data.train.images, selection: trainIndices, labels: data.train.labels)
        }
        guard test.rows == train.rows, test.columns == train.columns, test.channels == train.channels else {
            throw .invalid(path: options.testData ?? path, reason: "test images are \(test.sizeDescription) but training images are \(train.sizeDescription): give images of one size")
        }
        return Dataset(name: name, train: splits == .testOnly ? test.empty : train, test: test, notes: notes)
    }

    /// The arrays of FILE.npy, FILE.npz or FILE.safetensors, mapped.
    static func readArrayFile(_ path: String, layout: ArrayLayout?) throws(DataError) -> ArraySplits {
        let mapped: MappedFile
        do { mapped = try MappedFile(path: path) } catch {
            throw error == .notFound ? .missing(path: path, hint: "pass --data with a .npy, .npz or .safetensors file, or a folder of IDX files")
                : .invalid(path: path, reason: error.description)
        }
        guard let base = mapped.base else { throw .invalid(path: path, reason: "is empty (0 bytes); write the array again") }
        let file = UnsafeRawBufferPointer(start: base, count: mapped.size)
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "npy":
            return ArraySplits(train: (try ArrayImages(path: path, store: mapped, array: NPY.parse(file, path: path), layout: layout), nil), test: nil)
        case "safetensors":
            return try readSafetensorsArrays(file, mapped: mapped, path: path, layout: layout)
        case "npz":
            return try readNPZArrays(file, mapped: mapped, path: path, layout: layout)
        default:
            throw .configuration("--data \(path): expected a folder of IDX files or a .npy, .npz or .safetensors file")
        }
    }

    /// The images (and labels, test_images, test_labels) of a safetensors file.
    static func readSafetensorsArrays(_ file: UnsafeRawBufferPointer, mapped: MappedFile, path: String,
                                      layout: ArrayLayout?) throws(DataError) -> ArraySplits {
        let tensors = try SafetensorsArrays.tensors(file, path: path)
        guard let images = tensors["images"] else {
            throw .invalid(path: path, reason: "has no tensor named 'images' (it holds \(tensors.keys.sorted().joined(separator: ", "))); store the images as 'images' [N, H, W] or [N, H, W, C]")
        }
        let train = try ArrayImages(path: path, store: mapped, array: images, layout: layout)
        let trainLabels = try tensors["labels"].map { (a) throws(DataError) in try readLabels(a, file: file, count: train.count, path: path, name: "labels") }
        var test: (ArrayImages, [UInt8]?)?
        if let testArray = tensors["test_images"] {
            let images = try ArrayImages(path: path, store: mapped, array: testArray, layout: layout)
            test = (images, try tensors["test_labels"].map { (a) throws(DataError) in try readLabels(a, file: file, count: images.count, path: path, name: "test_labels") })
        }
        return ArraySplits(train: (train, trainLabels), test: test)
    }

    /// The arrays of an .npz file: x_train (and x_test, y_train, y_test), or its one array.
    static func readNPZArrays(_ file: UnsafeRawBufferPointer, mapped: MappedFile, path: String,
                              layout: ArrayLayout?) throws(DataError) -> ArraySplits {
        let members = try NPZ.members(file, path: path)
        func array(_ member: ZipMember) throws(DataError) -> (store: any ByteStore, array: StoredArray) {
            let range = try NPZ.dataRange(of: member, in: file, path: path)
            let memberPath = "\(path) (\(member.name))"
            switch member.method {
            case 0:
                var array = try NPY.parse(UnsafeRawBufferPointer(rebasing: file[range]), path: memberPath)
                array.offset += range.lowerBound
                return (mapped, array)
            case 8:
                let bytes = HeapBytes(try NPZ.inflateRaw(UnsafeRawBufferPointer(rebasing: file[range]), size: member.size,
                                                         path: path, name: member.name))
                return (bytes, try NPY.parse(UnsafeRawBufferPointer(start: bytes.base, count: bytes.size), path: memberPath))
            default:
                throw .invalid(path: path, reason: "member \(member.name) uses zip compression method \(member.method); write the file with numpy.savez or numpy.savez_compressed")
            }
        }
        func images(_ member: ZipMember) throws(DataError) -> ArrayImages {
            let (store, stored) = try array(member)
            return try ArrayImages(path: "\(path) (\(member.name))", store: store, array: stored, layout: layout)
        }
        func labels(_ name: String, count: Int) throws(DataError) -> [UInt8]? {
            guard let member = members.first(where: { $0.name == name + ".npy" }) else { return nil }
            let (store, stored) = try array(member)
            return try readLabels(stored, file: UnsafeRawBufferPointer(start: store.base, count: store.size), count: count, path: path, name: name)
        }
        let npy = members.filter { $0.name.hasSuffix(".npy") }
        if let trainMember = npy.first(where: { $0.name == "x_train.npy" }) {
            let train = try images(trainMember)
            var test: (ArrayImages, [UInt8]?)?
            if let testMember = npy.first(where: { $0.name == "x_test.npy" }) {
                let images = try images(testMember)
                test = (images, try labels("y_test", count: images.count))
            }
            return ArraySplits(train: (train, try labels("y_train", count: train.count)), test: test)
        }
        guard npy.count == 1 else {
            throw .invalid(path: path, reason: "holds \(npy.isEmpty ? "no arrays" : "the arrays \(npy.map(\.name).joined(separator: ", "))") but no x_train: save the images as x_train (and x_test, y_train, y_test) or save a single array")
        }
        return ArraySplits(train: (try images(npy[0]), nil), test: nil)
    }

    /// Labels [count] of integers 0...255, read whole.
    static func readLabels(_ array: StoredArray, file: UnsafeRawBufferPointer, count: Int, path: String, name: String) throws(DataError) -> [UInt8] {
        guard array.shape == [count] else {
            throw .invalid(path: path, reason: "\(name) has shape \(array.shape) but there are \(count) images: give one label per image")
        }
        guard !array.elementType.isFloat else { throw .invalid(path: path, reason: "\(name) holds floats; labels are integers 0...255") }
        var labels = [UInt8](repeating: 0, count: count)
        let base = file.baseAddress! + array.offset
        for i in 0..<count {
            guard let value = array.elementType.integer(base, i), (0...255).contains(value) else {
                throw .invalid(path: path, reason: "\(name)[\(i)] is outside 0...255; labels are class numbers 0...255")
            }
            labels[i] = UInt8(value)
        }
        return labels
    }

    /// Refuses pixel values the likelihood cannot use: not finite, or (Bernoulli) outside
    /// [0, 1]; the message names the file and the first bad index. uint8 images always pass.
    public func checkPixelValues(unitInterval: Bool) throws(DataError) {
        var seen = Set<ObjectIdentifier>()
        for set in [train, test] {
            guard let array = set.array, seen.insert(ObjectIdentifier(array)).inserted else { continue }
            if let (index, value) = array.firstBadValue(unitInterval: unitInterval) {
                throw .invalid(path: array.path, reason: unitInterval
                    ? "value \(value) at index \(index) is outside [0, 1], which the Bernoulli likelihood needs: scale the images to [0, 1] (uint8 0..255 are read as /255), or train with --likelihood gaussian"
                    : "value \(value) at index \(index) is not finite: fix or drop that image")
            }
        }
    }
}

extension ArraySplits {
    /// The test split when the file has one, else all its images (what --test-data reads).
    var testOrAll: ImageSet {
        if let test { return ImageSet(array: test.images, selection: nil, labels: test.labels) }
        return ImageSet(array: train.images, selection: nil, labels: train.labels)
    }
}
