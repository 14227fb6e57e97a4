import Foundation
import Testing
import VAETraining
import VAEOutputs

// Known answers: the CRC-32C check value and RFC 3720's test vectors; records and Events
// as tensorboard's Python reader (masked_crc32c) and protobuf's serializer produce them.
@Suite struct TensorBoardTests {
    @Test func crc32cKnownAnswers() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.masked(CRC32C.checksum(Array("123456789".utf8))) == 0xC78A_B0E5)
    }

    @Test func recordFraming() {
        #expect(TFRecord.frame(Array("abc".utf8)) == [0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb0, 0x99, 0x49, 0x0e,
                                                      0x61, 0x62, 0x63, 0x6e, 0x57, 0xf1, 0x21])
        #expect(TFRecord.frame([]) == [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x29, 0x03, 0x98, 0x07,
                                       0xd8, 0xea, 0x82, 0xa2])
    }

    @Test func eventsMatchProtobufSerialization() {
        let wallTime: [UInt8] = [0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f]  // field 1, double 1.5
        let summary = TensorBoardEvent.summary(wallTime: 1.5, step: 300, values: [
            .scalar(tag: "test/nelbo", value: 0.25),
            .image(tag: "samples", png: [0x89, 0x50, 0x4e, 0x47], width: 3, height: 2),
        ])
        #expect(summary == wallTime + [0x10, 0xac, 0x02, 0x2a, 0x2c, 0x0a, 0x11, 0x0a, 0x0a, 0x74, 0x65, 0x73, 0x74, 0x2f,
                                       0x6e, 0x65, 0x6c, 0x62, 0x6f, 0x15, 0x00, 0x00, 0x80, 0x3e, 0x0a, 0x17, 0x0a, 0x07,
                                       0x73, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x73, 0x22, 0x0c, 0x08, 0x02, 0x10, 0x03, 0x18,
                                       0x01, 0x22, 0x04, 0x89, 0x50, 0x4e, 0x47])
        #expect(TensorBoardEvent.fileVersion(wallTime: 1.5) == wallTime + [0x1a, 0x0d] + Array("brain.Event:2".utf8))
        // A negative step takes ten varint bytes, as protobuf writes int64.
        #expect(TensorBoardEvent.sessionStart(wallTime: 1.5, step: -2) == wallTime + [0x10, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff,
                                                                                      0xff, 0xff, 0xff, 0x01, 0x3a, 0x02, 0x08, 0x01])
    }

    @Test func tagsGroupTrainAndTest() {
        #expect(TensorBoardWriter.tag(forMetric: "test_nelbo") == "test/nelbo")
        #expect(TensorBoardWriter.tag(forMetric: "train_loss") == "train/loss")
        #expect(TensorBoardWriter.tag(forMetric: "samples_per_second") == "run/samples_per_second")
        #expect(TensorBoardWriter.tag(forMetric: "step") == "run/step")
    }

    /// The file holds framed records: file_version, SessionLog START, then one per append.
    @Test func writerFramesEveryRecord() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let writer = try TensorBoardWriter(directory: directory, startStep: 5, wallTime: 1.5)
        let second = try TensorBoardWriter(directory: directory, startStep: 5, wallTime: 1.5)
        #expect(writer.path != second.path, "two writers in one second get two files")
        #expect((writer.path as NSString).lastPathComponent.hasPrefix("events.out.tfevents.1."))
        writer.append(step: 7, values: [.scalar(tag: "a", value: 1)], wallTime: 2)
        try writer.flush()
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: writer.path)))
        let expected = TFRecord.frame(TensorBoardEvent.fileVersion(wallTime: 1.5))
            + TFRecord.frame(TensorBoardEvent.sessionStart(wallTime: 1.5, step: 5))
            + TFRecord.frame(TensorBoardEvent.summary(wallTime: 2, step: 7, values: [.scalar(tag: "a", value: 1)]))
        #expect(bytes == expected)
        #expect { try TensorBoardWriter(directory: directory + "/missing", startStep: 1) }
            throws: { "\($0)".contains(directory + "/missing/events.out.tfevents.") && "\($0)".contains("No such file") }
    }
}
