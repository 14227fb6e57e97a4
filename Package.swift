// swift-tools-version:6.0
// The package manifest is the architecture diagram: targets are listed lowest
// layer first, and each depends only on targets above it.
import PackageDescription

// The hot loops are SIMD on unsafe pointers. Without a CPU flag Swift emits SSE2
// only and every fused multiply-add becomes a call to fmaf, so the release build
// targets x86-64-v3 (AVX2 + FMA; every x86 server CPU since 2013). Set
// VAE_DIST_MARCH=native to build for exactly this machine (AVX-512 where present).
#if arch(x86_64)
import Foundation
let march = ProcessInfo.processInfo.environment["VAE_DIST_MARCH"] ?? "x86-64-v3"
let cpuFlags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=\(march)"])]
#else
let cpuFlags: [SwiftSetting] = []
#endif
let optimized: [SwiftSetting] = cpuFlags + [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

let package = Package(
    name: "vae-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "vae-dist", targets: ["vae-dist"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: System libraries (C)
        // Open MPI, with a header shim that turns the macros Swift cannot import
        // (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ...) into functions.
        .systemLibrary(name: "CMPI", pkgConfig: "ompi",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        // zlib: gzip-compressed IDX files and PNG compression.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // MARK: Kernels
        // Header-only C shims for vector operations Swift's SIMD types scalarize (sqrt).
        .target(name: "_VAEKernelShims"),
        // SIMD float kernels on unsafe pointers, each with a naive reference beside it.
        .target(name: "VAEKernels", dependencies: ["_VAEKernelShims"], swiftSettings: optimized),

        // MARK: Model
        // The VAE: one flat parameter buffer with named views, forward/backward pairs.
        .target(name: "VAEModel", dependencies: ["VAEKernels"], swiftSettings: optimized),

        // MARK: Data
        // IDX reader (gzip via zlib), the synthetic dSprites-like generator, batching.
        .target(name: "VAEData", dependencies: ["VAEKernels", "CZlib"], swiftSettings: optimized),

        // MARK: Distributed
        // The Communicator protocol with an Open MPI and a single-process implementation.
        .target(name: "VAEDistributed", dependencies: ["CMPI"], swiftSettings: optimized),

        // MARK: Training
        // The loop, Adam, evaluation, safetensors checkpoints, PNG images, metrics.
        .target(name: "VAETraining",
                dependencies: ["VAEKernels", "VAEModel", "VAEData", "VAEDistributed", "CZlib"],
                swiftSettings: optimized),

        // MARK: Executable
        // Parsing and printing only.
        .executableTarget(name: "vae-dist",
                          dependencies: ["VAETraining",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: optimized),

        // MARK: Tests
        .testTarget(name: "VAEDistTests",
                    dependencies: ["VAEKernels", "VAEModel", "VAEData", "VAEDistributed", "VAETraining"],
                    swiftSettings: optimized),
    ]
)
