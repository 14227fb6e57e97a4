// swift-tools-version:6.0
// The package manifest is the architecture diagram: targets are listed lowest
// layer first, and each depends only on targets above it. docs/ARCHITECTURE.md has the map.
import PackageDescription

// The hot loops are SIMD on unsafe pointers. Without a CPU flag Swift emits SSE2
// only and every fused multiply-add becomes a call to fmaf, so the release build
// targets x86-64-v3 (AVX2 + FMA; every x86 server CPU since 2013). The kernels are
// also compiled a second time for x86-64-v4 (AVX-512) in their own thin target, and
// the binary picks one at start from CPUID (VAEKernelDispatch): one build serves both.
#if arch(x86_64)
func cpuFlags(_ march: String) -> [SwiftSetting] { [.unsafeFlags(["-Xcc", "-march=\(march)"])] }
#else
func cpuFlags(_ march: String) -> [SwiftSetting] { [] }
#endif
let release: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]
let optimized = cpuFlags("x86-64-v3") + release

let package = Package(
    name: "vae-dist",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "vae-dist", targets: ["vae-dist"]),
        // For other Swift packages: load a vae-dist checkpoint (VAECheckpoint), build its VAE and
        // decode latents (VAEModel: decodeLatents). Tests/ExternalPackage is such a package.
        .library(name: "VAECheckpoint", targets: ["VAECheckpoint", "VAEModel"]),
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
        // libpng and libjpeg(-turbo): image folders (--data FOLDER of PNG and JPEG files). Each
        // shim.h catches the library's longjmp / error_exit and returns an error code and message.
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),

        // MARK: Files
        // Reading hostile files (RegularFile: regular files only, bounded reads) and crash-safe
        // writes (AtomicFile); the VAE_DIST_FAULT file stalls the tests use.
        .target(name: "VAEFiles"),

        // MARK: Kernels
        // Header-only C shims for vector operations Swift's SIMD types scalarize (sqrt).
        .target(name: "_VAEKernelShims"),
        // SIMD float kernels on unsafe pointers, each with a naive reference beside it. The hot
        // ones are @inlinable generics over an ISA tag, compiled by the per-ISA targets below.
        .target(name: "VAEKernels", dependencies: ["_VAEKernelShims"], swiftSettings: optimized),
        // The kernels instantiated for AVX2 + FMA (6x16 GEMM tile) and for AVX-512 (12x32 tile).
        .target(name: "VAEKernelsAVX2", dependencies: ["VAEKernels"], swiftSettings: optimized),
        .target(name: "VAEKernelsAVX512", dependencies: ["VAEKernels"],
                swiftSettings: cpuFlags("x86-64-v4") + release),
        // The choice of one of them at start, from CPUID (and VAE_DIST_ISA).
        .target(name: "VAEKernelDispatch", dependencies: ["VAEKernels", "VAEKernelsAVX2", "VAEKernelsAVX512"],
                swiftSettings: optimized),

        // MARK: Model
        // The VAE: one flat parameter buffer with named views, forward/backward pairs.
        .target(name: "VAEModel", dependencies: ["VAEKernels", "VAEKernelDispatch"], swiftSettings: optimized),

        // MARK: Data
        // IDX reader (gzip via zlib), the synthetic generator, dSprites generated in code, batching;
        // zlib's CRC-32 and deflate for the formats below; image folders decoded into a cache.
        .target(name: "VAEData", dependencies: ["VAEFiles", "VAEKernels", "CZlib", "CPNG", "CJPEG"], swiftSettings: optimized),

        // MARK: Distributed
        // The Communicator protocol with an Open MPI and a single-process implementation.
        .target(name: "VAEDistributed", dependencies: ["CMPI"], swiftSettings: optimized),

        // MARK: Checkpoints
        // The safetensors format on its own: strict parsing, bounded reads, encoding; no vae-dist types.
        .target(name: "VAESafetensors", dependencies: ["VAEFiles"]),
        // A vae-dist checkpoint (a library product): the stored options and resume state, the
        // checksums, loading and verifying a file and building its VAE.
        .target(name: "VAECheckpoint", dependencies: ["VAESafetensors", "VAEModel", "VAEData"]),

        // MARK: Analysis
        // Test NELBO, the IW bound, the aggregate posterior, latent measures, sampling and image grids.
        .target(name: "VAEAnalysis",
                dependencies: ["VAEKernels", "VAEKernelDispatch", "VAEModel", "VAEData", "VAEDistributed"],
                swiftSettings: optimized),

        // MARK: Outputs
        // What vae-dist writes for people and tools: PNG images, image grids and the latent map,
        // TensorBoard events, metrics lines.
        .target(name: "VAEOutputs", dependencies: ["VAEFiles", "VAEData", "VAEModel", "VAEAnalysis"],
                swiftSettings: optimized),

        // MARK: Training
        // The trainer and its step, the gradient reductions, Adam, the regimes, the run lock, interruption.
        .target(name: "VAETraining",
                dependencies: ["VAEKernels", "VAEKernelDispatch", "VAEModel", "VAEData", "VAEDistributed", "VAEFiles",
                               "VAECheckpoint", "VAEOutputs", "VAEAnalysis"],
                swiftSettings: optimized),
        // Timing the kernels, a training step, evaluation and the collectives (vae-dist bench).
        .target(name: "VAEBenchmark",
                dependencies: ["VAETraining", "VAEAnalysis", "VAEOutputs", "VAECheckpoint", "VAEModel", "VAEData",
                               "VAEDistributed", "VAEKernels", "VAEKernelDispatch"],
                swiftSettings: optimized),

        // MARK: Executable
        // The source commit, written by Launch/setup.sh before the build ("unknown" without it).
        .target(name: "_VAEBuildInfo"),
        // Parsing and printing only.
        .executableTarget(name: "vae-dist",
                          dependencies: ["_VAEBuildInfo", "VAETraining", "VAEBenchmark", "VAEAnalysis", "VAEOutputs", "VAECheckpoint",
                                         "VAESafetensors", "VAEFiles", "VAEData", "VAEModel", "VAEDistributed", "VAEKernelDispatch",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: optimized),

        // MARK: Tests
        .testTarget(name: "VAEDistTests",
                    dependencies: ["VAEKernels", "VAEKernelDispatch", "VAEKernelsAVX2", "VAEKernelsAVX512",
                                 "VAEModel", "VAEData", "VAEDistributed", "VAEFiles", "VAESafetensors", "VAECheckpoint",
                                 "VAEOutputs", "VAEAnalysis", "VAETraining", "VAEBenchmark"],
                    swiftSettings: optimized),
    ]
)
