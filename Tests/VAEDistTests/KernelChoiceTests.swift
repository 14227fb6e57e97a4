import Foundation
import Testing
import VAEKernelDispatch
import VAEKernels

/// The measured choice of kernels (KernelChoice.swift) with injected timings: the fastest wins,
/// a tie within `tieTolerance` keeps the widest, VAE_DIST_ISA forces one without timing, a cache
/// hit skips timing, and a cache written on another CPU model (or for other candidates) is not used.
@Suite struct KernelChoiceTests {
    static let v3: CPUFeatures = [.avx, .fma, .avx2, .osYMM]
    static let v4: CPUFeatures = v3.union([.avx512f, .avx512bw, .avx512dq, .avx512vl, .avx512cd, .osZMM])
    static let workload = KernelWorkload(name: "784-400-20 x 128 rows", shapes: [GEMMShape(layer: "l", form: .nt, m: 128, n: 400, k: 784)])

    /// A fresh cache file in a new temporary folder (the folder is created by the first store).
    static func temporaryCache() -> KernelCache {
        KernelCache(path: NSTemporaryDirectory() + "vae-dist-kernel-cache-\(UUID().uuidString)/vae-dist/kernels.json")
    }

    /// Runs the choice with `timings` injected; returns it and the candidates the measurement was asked for.
    static func choose(_ timings: [KernelISA: Double], request: String? = nil, features: CPUFeatures = v4, cpu: String = "CPU A",
                       workload: KernelWorkload? = workload, cache: KernelCache? = nil) throws -> (KernelChoice, [[KernelISA]]) {
        // A candidate given no time is a slow one (1 s), so each test names only those it is about.
        var timings = timings
        if !timings.isEmpty { for isa in KernelISA.preferenceOrder where timings[isa] == nil { timings[isa] = 1 } }
        var calls: [[KernelISA]] = []
        let choice = try KernelChoice.choose(request: request, features: features, cpuModel: cpu, workload: workload, cache: cache) {
            candidates in
            calls.append(candidates)
            return timings.filter { candidates.contains($0.key) }
        }
        return (choice, calls)
    }

    @Test func fastestWinsWhicheverItIs() throws {
        let (narrow, calls) = try Self.choose([.avx512: 0.93e-3, .avx2: 0.81e-3])
        #expect(narrow.isa == .avx2 && narrow.basis == .measured)
        #expect(calls.count == 1 && Set(calls[0]) == Set(KernelISA.preferenceOrder), "every candidate timed once: \(calls)")
        #expect(narrow.timings.map(\.isa).first == .avx2)
        let (wide, _) = try Self.choose([.avx512: 0.70e-3, .avx2: 0.81e-3])
        #expect(wide.isa == .avx512)
        #expect(narrow.description.contains("measured: 0.81 ms/step vs AVX-512 12x32 zmm 0.93 ms, AVX-512VL 12x16 ymm 1000.00 ms"), "\(narrow)")
    }

    @Test func tieWithinNoiseKeepsTheWidest() throws {
        // The AVX2 tile 1% faster: within the tolerance, so the widest (AVX-512) stays.
        #expect(try Self.choose([.avx512: 1.00e-3, .avx2: 0.99e-3]).0.isa == .avx512)
        #expect(try Self.choose([.avx512: 1.00e-3, .avx2: 1.00e-3]).0.isa == .avx512)
        // 3% faster is beyond it.
        #expect(try Self.choose([.avx512: 1.00e-3, .avx2: 0.97e-3]).0.isa == .avx2)
        #expect(KernelChoice.tieTolerance == 0.02)
    }

    @Test func environmentForcesWithoutTiming() throws {
        let (avx2, calls) = try Self.choose([.avx512: 0.5e-3, .avx2: 0.9e-3], request: "avx2")
        #expect(avx2.isa == .avx2 && avx2.basis == .forced(request: "avx2") && calls.isEmpty)
        #expect(avx2.description == "AVX2+FMA 6x16 ymm (VAE_DIST_ISA=avx2)")
        let (avx512, calls512) = try Self.choose([.avx512: 0.9e-3, .avx2: 0.5e-3], request: "AVX512")
        #expect(avx512.isa == .avx512 && calls512.isEmpty)
        #expect(try Self.choose([.avx512: 0.9e-3, .avx2: 0.5e-3], request: "auto").0.isa == .avx2)
        #expect(throws: ISASelectionError.self) { try Self.choose([:], request: "avx512", features: Self.v3) }
        #expect(throws: ISASelectionError.self) { try Self.choose([:], request: "sse") }
    }

    @Test func nothingToChooseOrNothingToMeasureOn() throws {
        let (only, calls) = try Self.choose([.avx2: 1e-3], features: Self.v3)
        #expect(only.isa == .avx2 && only.basis == .onlyCandidate && calls.isEmpty)
        let (unmeasured, none) = try Self.choose([.avx2: 1e-3, .avx512: 2e-3], workload: nil)
        #expect(unmeasured.isa == .avx512 && unmeasured.basis == .unmeasured && none.isEmpty)
    }

    @Test func cacheHitSkipsTimingAndOtherCPUModelsAreIgnored() throws {
        let cache = Self.temporaryCache()
        defer { try? FileManager.default.removeItem(atPath: ((cache.path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent) }
        let (first, calls1) = try Self.choose([.avx512: 0.9e-3, .avx2: 0.8e-3], cache: cache)
        #expect(first.basis == .measured && first.cachePath == cache.path && calls1.count == 1)
        #expect(first.description.hasSuffix("; cached in \(cache.path))"), "\(first)")
        // The same CPU model, candidates and workload: read back, not timed (the injected timings now disagree).
        let (second, calls2) = try Self.choose([.avx512: 0.1e-3, .avx2: 0.8e-3], cache: cache)
        #expect(second.isa == .avx2 && second.basis == .cached && calls2.isEmpty)
        #expect(second.timings.map(\.seconds) == [0.8e-3, 0.9e-3, 1])
        // Another CPU model: its own measurement, and both entries kept.
        let (other, calls3) = try Self.choose([.avx512: 0.1e-3, .avx2: 0.8e-3], cpu: "CPU B", cache: cache)
        #expect(other.isa == .avx512 && other.basis == .measured && calls3.count == 1)
        #expect(try Self.choose([:], cache: cache).0.isa == .avx2)
        #expect(try Self.choose([:], cpu: "CPU B", cache: cache).0.isa == .avx512)
        // Another workload (model or per-rank batch): measured again.
        let workload = KernelWorkload(name: "784-400-20 x 64 rows", shapes: Self.workload.shapes)
        #expect(try Self.choose([.avx512: 0.1e-3, .avx2: 0.8e-3], workload: workload, cache: cache).0.basis == .measured)
    }

    @Test func unreadableOrUnwritableCacheMeasuresSilently() throws {
        // A path under a regular file cannot be created: measured every time, no error, no cache named.
        let blocker = NSTemporaryDirectory() + "vae-dist-kernel-cache-blocker-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: blocker, contents: Data("not a folder".utf8))
        defer { try? FileManager.default.removeItem(atPath: blocker) }
        let cache = KernelCache(path: blocker + "/vae-dist/kernels.json")
        for _ in 0..<2 {
            let (choice, calls) = try Self.choose([.avx512: 0.9e-3, .avx2: 0.8e-3], cache: cache)
            #expect(choice.basis == .measured && choice.cachePath == nil && calls.count == 1)
            #expect(!choice.description.contains("cached"), "\(choice)")
        }
        // A corrupt file is measured over and replaced.
        let corrupt = Self.temporaryCache()
        try FileManager.default.createDirectory(atPath: (corrupt.path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: corrupt.path, contents: Data("{ not json".utf8))
        #expect(try Self.choose([.avx512: 0.9e-3, .avx2: 0.8e-3], cache: corrupt).0.basis == .measured)
        #expect(try Self.choose([:], cache: corrupt).0.basis == .cached)
    }

    @Test func standardCacheLocation() {
        #expect(KernelCache.standard(["XDG_CACHE_HOME": "/x/cache", "HOME": "/home/u"])?.path == "/x/cache/vae-dist/kernels.json")
        #expect(KernelCache.standard(["HOME": "/home/u"])?.path == "/home/u/.cache/vae-dist/kernels.json")
        #expect(KernelCache.standard(["XDG_CACHE_HOME": "relative", "HOME": "/home/u"])?.path == "/home/u/.cache/vae-dist/kernels.json")
        #expect(KernelCache.standard([:]) == nil)
        #expect(hostCPUModel().contains("family"))
    }

    /// The real measurement on this CPU: every runnable set gets a positive time.
    @Test func measuresEveryRunnableKernelSet() {
        let candidates = Kernels.runnable.map(\.isa)
        let timings = Kernels.measure(candidates, on: Self.workload, budget: 0.01, minimumRounds: 3)
        #expect(Set(timings.keys) == Set(candidates))
        #expect(timings.values.allSatisfy { $0 > 0 && $0.isFinite })
    }
}
