import ArgumentParser
import Foundation
import VAECheckpoint
import VAETraining

// How the commands name their files. A checkpoint is named the same way everywhere:
// a .safetensors file, or the run folder that `train --out` wrote, which stands for its
// checkpoints/latest.safetensors (the layout every run folder has). Output images are
// checked before any work, so a wrong name costs nothing and gets one clear line.

/// `--checkpoint FILE|RUN_DIR`, shared by every command that reads a checkpoint.
struct CheckpointOption: ParsableArguments {
    @Option(help: ArgumentHelp("A checkpoint written by vae-dist train, or its run folder (reads RUN_DIR/checkpoints/latest.safetensors).",
                               valueName: "file|run-dir"))
    var checkpoint: String

    /// The checkpoint and the file it came from (for messages that name it). A checkpoint
    /// without checksums gets one note on stderr, from rank 0 only (`isRoot`) under mpirun.
    func load(isRoot: Bool = true) throws -> (checkpoint: Checkpoint, path: String) {
        let path = try checkpointFile(checkpoint)
        let loaded = try Checkpoint.load(path: path)
        if isRoot, let note = loaded.unverifiedNote(path: path) { FileHandle.standardError.write(Data((note + "\n").utf8)) }
        return (loaded, path)
    }
}

/// The file `--checkpoint` names: the path itself, or a run folder's latest checkpoint.
func checkpointFile(_ path: String) throws -> String {
    var isFolder: ObjCBool = false
    // A folder named like a checkpoint is not a run folder: the reader says it is a folder.
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue,
          !path.hasSuffix(".safetensors") else {
        return path  // a file, or missing: the reader names it
    }
    let latest = ((path as NSString).appendingPathComponent("checkpoints") as NSString).appendingPathComponent("latest.safetensors")
    guard FileManager.default.fileExists(atPath: latest) else {
        throw TrainingError.option("--checkpoint \(path): a folder without a checkpoint: \(latest) not found (pass a run folder written by vae-dist train, or a .safetensors file)")
    }
    return latest
}

/// Checks an image output before any work: vae-dist writes PNG only, into a folder that exists.
func checkImageOutput(_ path: String, option: String = "--out") throws {
    guard (path as NSString).pathExtension.lowercased() == "png" else {
        throw TrainingError.option("\(option) \(path): vae-dist writes PNG images only; give a file name ending in .png")
    }
    try checkOutputFolder(path, option: option)
}

/// The folder an output file goes into must exist (the file is written through a
/// temporary file beside it); the output itself must not be a folder.
func checkOutputFolder(_ path: String, option: String) throws {
    let fileManager = FileManager.default
    var isFolder: ObjCBool = false
    if fileManager.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue {
        throw TrainingError.option("\(option) \(path): is a folder; give a file name")
    }
    let parent = (path as NSString).deletingLastPathComponent
    let folder = parent.isEmpty ? "." : parent
    guard fileManager.fileExists(atPath: folder, isDirectory: &isFolder) else {
        throw TrainingError.option("\(option) \(path): folder \(folder) does not exist (create it first)")
    }
    guard isFolder.boolValue else {
        throw TrainingError.option("\(option) \(path): \(folder) is not a folder")
    }
}
