// swift-tools-version:6.0
// Another Swift package that uses vae-dist as a library: it depends on the repository by path,
// imports the VAECheckpoint product, loads a checkpoint and decodes latents with its VAE.
// Tests/integration/external_package_test.sh builds it and checks its pixels against `vae-dist sample`.
import PackageDescription

let package = Package(
    name: "decode-latent",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(name: "vae-dist", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "decode-latent",
                          dependencies: [.product(name: "VAECheckpoint", package: "vae-dist")]),
    ]
)
