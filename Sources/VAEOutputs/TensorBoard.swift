import VAEFiles
import Foundation

// TensorBoard event files, written without TensorFlow or protobuf libraries: the format is
// small. A file is a sequence of TFRecords, each
//     uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes |
//     data (length bytes)           | uint32 masked CRC-32C of the data
// and every record's data is one serialized `tensorboard.Event` protocol buffer
// (tensorboard/compat/proto/event.proto and summary.proto). The fields written here:
//     Event      { double wall_time = 1; int64 step = 2; string file_version = 3;
//                  Summary summary = 5; SessionLog session_log = 7; }
//     SessionLog { SessionStatus status = 1; }                      START = 1
//     Summary    { repeated Value value = 1; }
//     Value      { string tag = 1; float simple_value = 2; Image image = 4; }
//     Image      { int32 height = 1; int32 width = 2; int32 colorspace = 3;
//                  bytes encoded_image_string = 4; }                grayscale = 1
// The first record of a file is an Event with file_version "brain.Event:2".

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecord framing uses it.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { byte in
        var crc = UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { table in
            for byte in bytes { crc = (crc >> 8) ^ table[Int((crc ^ UInt32(byte)) & 0xFF)] }
        }
        return ~crc
    }

    /// TFRecord stores CRCs rotated and offset, because a CRC of data that itself holds
    /// CRCs is weak (the same reason as in LevelDB's log format).
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

public enum TFRecord {
    /// One record: length, masked CRC of the length, data, masked CRC of the data.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var length = [UInt8]()
        littleEndian(UInt64(data.count), into: &length)
        var record = length
        littleEndian(CRC32C.masked(CRC32C.checksum(length)), into: &record)
        record += data
        littleEndian(CRC32C.masked(CRC32C.checksum(data)), into: &record)
        return record
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8]) {
        for i in 0..<(T.bitWidth / 8) { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * i))) }
    }
}

/// Protocol buffer wire format, just what the messages above need. Every field is written
/// even when it holds proto3's default: a scalar of 0 must still set the `simple_value`
/// member of Value's oneof, or readers see a value of no kind.
struct ProtobufWriter {
    private(set) var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 { bytes.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        bytes.append(UInt8(v))
    }
    mutating func key(_ field: Int, wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }
    /// int32 and int64 (wire type 0); negatives take ten bytes, as in every protobuf encoder.
    mutating func integer(_ field: Int, _ value: Int64) { key(field, wireType: 0); varint(UInt64(bitPattern: value)) }
    mutating func double(_ field: Int, _ value: Double) { key(field, wireType: 1); TFRecord.littleEndian(value.bitPattern, into: &bytes) }
    mutating func float(_ field: Int, _ value: Float) { key(field, wireType: 5); TFRecord.littleEndian(value.bitPattern, into: &bytes) }
    mutating func bytes(_ field: Int, _ value: [UInt8]) { key(field, wireType: 2); varint(UInt64(value.count)); bytes += value }
    mutating func string(_ field: Int, _ value: String) { bytes(field, Array(value.utf8)) }
}

/// Serialized Event messages.
public enum TensorBoardEvent {
    public enum Value {
        case scalar(tag: String, value: Float)
        /// A PNG file's bytes and its size.
        case image(tag: String, png: [UInt8], width: Int, height: Int, channels: Int = 1)
    }

    public static func fileVersion(wallTime: Double) -> [UInt8] {
        var event = ProtobufWriter()  // no step, as TensorFlow writes it
        event.double(1, wallTime)
        event.string(3, "brain.Event:2")
        return event.bytes
    }

    /// SessionLog START at `step`: TensorBoard drops every earlier event at `step` or later,
    /// which a run that crashed after logging an epoch and before checkpointing it left behind.
    public static func sessionStart(wallTime: Double, step: Int) -> [UInt8] {
        var log = ProtobufWriter()
        log.integer(1, 1)
        var event = header(wallTime: wallTime, step: step)
        event.bytes(7, log.bytes)
        return event.bytes
    }

    public static func summary(wallTime: Double, step: Int, values: [Value]) -> [UInt8] {
        var summary = ProtobufWriter()
        for value in values {
            var v = ProtobufWriter()
            switch value {
            case let .scalar(tag, number):
                v.string(1, tag)
                v.float(2, number)
            case let .image(tag, png, width, height, channels):
                var image = ProtobufWriter()
                image.integer(1, Int64(height))
                image.integer(2, Int64(width))
                image.integer(3, Int64(channels))  // colorspace: 1 grayscale, 3 RGB
                image.bytes(4, png)
                v.string(1, tag)
                v.bytes(4, image.bytes)
            }
            summary.bytes(1, v.bytes)
        }
        var event = header(wallTime: wallTime, step: step)
        event.bytes(5, summary.bytes)
        return event.bytes
    }

    static func header(wallTime: Double, step: Int) -> ProtobufWriter {
        var event = ProtobufWriter()
        event.double(1, wallTime)
        event.integer(2, Int64(step))
        return event
    }
}

/// One event file in a run folder, appended to by rank 0 and made durable once per epoch.
/// `tensorboard --logdir` reads every events.out.tfevents.* file of a folder as one run,
/// merged by step, so a resumed run simply starts another file.
public final class TensorBoardWriter {
    public let path: String
    private var pending: [UInt8] = []
    private let fd: Int32

    /// Creates OUT/events.out.tfevents.<seconds>.<hostname>.<pid> (the pid, as PyTorch's
    /// SummaryWriter adds it, keeps a resume within the same second from reusing a name).
    /// `startStep`: the first optimizer step this process will take; events of earlier files
    /// at that step or later are stale and TensorBoard is told to drop them.
    public init(directory: String, startStep: Int, wallTime: Double = Date().timeIntervalSince1970) throws(FileError) {
        let base = (directory as NSString).appendingPathComponent(
            "events.out.tfevents.\(Int(wallTime)).\(hostName()).\(getpid())")
        var candidate = base
        var fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        for suffix in 1..<100 where fd < 0 && errno == EEXIST {
            candidate = "\(base).\(suffix)"
            fd = open(candidate, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        }
        path = candidate
        guard fd >= 0 else { throw AtomicFile.failure(candidate, "cannot create the TensorBoard event file") }
        self.fd = fd
        pending += TFRecord.frame(TensorBoardEvent.fileVersion(wallTime: wallTime))
        pending += TFRecord.frame(TensorBoardEvent.sessionStart(wallTime: wallTime, step: startStep))
        try flush()
    }

    deinit { close(fd) }

    public func append(step: Int, values: [TensorBoardEvent.Value], wallTime: Double = Date().timeIntervalSince1970) {
        pending += TFRecord.frame(TensorBoardEvent.summary(wallTime: wallTime, step: step, values: values))
    }

    /// Writes what was appended and fsyncs, so a crash loses at most the current epoch. A
    /// failed write is cut off again, so the file still ends on a whole record.
    public func flush() throws(FileError) {
        let end = lseek(fd, 0, SEEK_END)
        var code: Int32 = 0
        pending.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; code = errno; return }
                offset += n
            }
        }
        let what = code != 0 ? "write" : "fsync"
        if code == 0 && fsync(fd) != 0 { code = errno }
        if code != 0 {
            if end >= 0 { _ = ftruncate(fd, end) }
            var reason = "\(what) failed: \(String(cString: strerror(code)))"
            if code == ENOSPC || code == EFBIG || code == EDQUOT {
                reason += " (the disk or a size limit is full: free space, then continue from the last checkpoint with --resume)"
            }
            throw FileError(path: path, reason: reason)
        }
        pending.removeAll(keepingCapacity: true)
    }

    /// The event file of a run starting (or resuming) in `directory`. A run that starts over
    /// first deletes the event files of the earlier one, as it empties metrics.jsonl.
    public static func start(in directory: String, resume: Bool, startStep: Int) throws(FileError) -> TensorBoardWriter {
        if !resume {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
            where name.hasPrefix("events.out.tfevents.") {
                try? FileManager.default.removeItem(atPath: (directory as NSString).appendingPathComponent(name))
            }
        }
        return try TensorBoardWriter(directory: directory, startStep: startStep)
    }

    /// TensorBoard's tag for a metrics.jsonl key: train_* and test_* become train/* and
    /// test/* (one chart group each, the way PyTorch users name them); the rest goes under run/.
    public static func tag(forMetric key: String) -> String {
        for group in ["train", "test"] where key.hasPrefix(group + "_") {
            return group + "/" + key.dropFirst(group.count + 1)
        }
        return "run/" + key
    }

    /// One epoch: every field of its metrics.jsonl line as a scalar (the number as the line
    /// prints it, so the two agree; null becomes NaN), and its image grids, at the epoch's
    /// last optimizer step. Durable on return.
    public func appendEpoch(_ metrics: EpochMetrics, images: [(tag: String, image: EncodedImage)]) throws(FileError) {
        var values = metrics.fields.map { TensorBoardEvent.Value.scalar(tag: Self.tag(forMetric: $0.0), value: Float(Double($0.1) ?? .nan)) }
        values += (metrics.latent?.scalars ?? []).map {
            // As metrics.jsonl prints them (6 significant digits), so the two agree.
            TensorBoardEvent.Value.scalar(tag: Self.tag(forMetric: $0.0), value: Float($0.1.flatMap { Double(jsonNumber($0)) } ?? .nan))
        }
        for (tag, image) in images {
            values.append(.image(tag: tag, png: image.png, width: image.width, height: image.height, channels: image.channels))
        }
        append(step: metrics.step, values: values)
        try flush()
    }
}

extension TensorBoardWriter {
    /// One step row's scalars at its global step (made durable with the epoch's events).
    public func appendStep(_ row: StepMetrics) {
        append(step: row.step, values: row.scalars.map { .scalar(tag: $0.tag, value: Float($0.value)) })
    }
}

/// This machine's name (gethostname; "localhost" when it has none).
public func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count - 1)
    let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return name.isEmpty ? "localhost" : name
}
