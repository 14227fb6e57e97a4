// decode-latent CHECKPOINT Z1,Z2,...[;Z1,Z2,...]
// Loads a vae-dist checkpoint, decodes each latent (one per ';'-separated group, `latent` values
// each) and prints the mean image of each as one line of pixel floats, written with "%a" (hex),
// so a reader recovers the exact bits.
import Foundation
import VAECheckpoint
import VAEModel

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: decode-latent CHECKPOINT Z1,Z2,...[;Z1,Z2,...]\n".utf8))
    exit(2)
}
do {
    let checkpoint = try Checkpoint.load(path: arguments[1])
    let model = checkpoint.makeModel()
    let groups = arguments[2].split(separator: ";")
    let values = groups.flatMap { $0.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) } }
    let latents = values.compactMap { $0 }
    let l = model.config.latent
    guard latents.count == values.count, latents.count == groups.count * l else {
        FileHandle.standardError.write(Data("decode-latent: each latent needs \(l) numbers\n".utf8))
        exit(2)
    }
    let images = decodeLatents(model: model, latents: latents, count: groups.count)
    let d = model.config.inputDimension
    for i in 0..<groups.count {
        print(images[(i * d)..<((i + 1) * d)].map { String(format: "%a", $0) }.joined(separator: " "))
    }
} catch {
    FileHandle.standardError.write(Data("decode-latent: \(error)\n".utf8))
    exit(1)
}
