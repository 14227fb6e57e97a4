import Foundation
import VAEKernels

// Which kernel set runs, chosen by measurement. The ISA flags do not tell which is faster: on a
// Zen 4 (AVX-512 on 256-bit units) the AVX2 6 x 16 tile trained at 75% of the core's peak and the
// AVX-512 12 x 32 tile at 65%; on a Zen 5 or an Intel core with 512-bit units the wide tile wins.
// So at start every candidate the CPU runs is timed on the GEMMs of one training step of this
// model at this per-rank batch, in alternating rounds, and the fastest runs. Every candidate
// computes each output element as the same chain of FMAs over the same K blocks, so the choice
// changes speed only, never a bit (Tests/VAEDistTests/KernelTests.swift).
//
// The result is cached per machine in $XDG_CACHE_HOME/vae-dist/kernels.json (default
// ~/.cache/vae-dist), keyed by the CPU model, the candidates and the workload; a cache that
// cannot be read or written is ignored and the candidates are measured at every start.

/// The GEMMs the kernels are chosen on: one training step's (`trainingGEMMShapes`).
public struct KernelWorkload: Sendable, Equatable {
    /// Names the workload in the cache, such as "784-400-20 x 128 rows".
    public var name: String
    public var shapes: [GEMMShape]

    public init(name: String, shapes: [GEMMShape]) {
        self.name = name
        self.shapes = shapes
    }
}

/// The kernels chosen, and why.
public struct KernelChoice: Sendable, Equatable, CustomStringConvertible {
    public enum Basis: Sendable, Equatable {
        /// VAE_DIST_ISA named them.
        case forced(request: String)
        /// Timed at this start (and written to `cachePath` when it is not nil).
        case measured
        /// Timed at an earlier start on this CPU model, read from `cachePath`.
        case cached
        /// The only candidate this CPU runs.
        case onlyCandidate
        /// No workload was given before the kernels were first used (tests): the widest.
        case unmeasured
    }

    public var isa: KernelISA
    public var basis: Basis
    /// Seconds per step of the workload's GEMMs for each candidate, fastest first (empty when not timed).
    public var timings: [(isa: KernelISA, seconds: Double)]
    public var cachePath: String?

    public init(isa: KernelISA, basis: Basis, timings: [(isa: KernelISA, seconds: Double)] = [], cachePath: String? = nil) {
        self.isa = isa
        self.basis = basis
        self.timings = timings.sorted { $0.seconds < $1.seconds }
        self.cachePath = cachePath
    }

    public static func == (a: KernelChoice, b: KernelChoice) -> Bool {
        a.isa == b.isa && a.basis == b.basis && a.cachePath == b.cachePath
            && a.timings.map(\.isa) == b.timings.map(\.isa) && a.timings.map(\.seconds) == b.timings.map(\.seconds)
    }

    /// A tie: candidates whose times are within this fraction of the fastest count as equally fast,
    /// and the first of them in preference order (`KernelISA.preferenceOrder`: the widest tile)
    /// wins. Short timings on a shared machine move by a few percent between rounds; the widest
    /// is what CPUID alone would pick, so a measurement that cannot tell the candidates apart
    /// changes nothing.
    public static let tieTolerance = 0.02

    /// The fastest of `timings`, with ties (`tieTolerance`) going to the earliest in `KernelISA.preferenceOrder`.
    public static func fastest(_ timings: [KernelISA: Double]) -> KernelISA? {
        guard let best = timings.values.min() else { return nil }
        return KernelISA.preferenceOrder.first { timings[$0].map { $0 <= best * (1 + tieTolerance) } ?? false }
    }

    /// The decision. `request`: VAE_DIST_ISA (nil, "" or "auto": measure); `cpuModel` keys the
    /// cache; `workload` nil: nothing to measure on, take the widest; `measure` times the
    /// candidates it is given (seconds per step of the workload).
    public static func choose(request: String?, features: CPUFeatures, cpuModel: String, workload: KernelWorkload?,
                              cache: KernelCache?, measure: ([KernelISA]) -> [KernelISA: Double]) throws(ISASelectionError) -> KernelChoice {
        let name = (request ?? "").lowercased()
        if name != "" && name != "auto" {
            return KernelChoice(isa: try KernelISA.select(features: features, request: request), basis: .forced(request: request!))
        }
        let candidates = KernelISA.preferenceOrder.filter { $0.runs(on: features) }
        guard candidates.count > 1, let workload else {
            return KernelChoice(isa: candidates.first ?? .avx2, basis: candidates.count > 1 ? .unmeasured : .onlyCandidate)
        }
        let key = KernelCache.Key(cpu: cpuModel, candidates: candidates.map(\.rawValue), workload: workload.name)
        if let cache, let stored = cache.lookup(key), let isa = fastest(stored) {
            return KernelChoice(isa: isa, basis: .cached, timings: stored.map { ($0.key, $0.value) }, cachePath: cache.path)
        }
        let timings = measure(candidates)
        let isa = fastest(timings) ?? candidates[0]
        let written = cache?.store(key, timings: timings) == true
        return KernelChoice(isa: isa, basis: .measured, timings: timings.map { ($0.key, $0.value) },
                            cachePath: written ? cache?.path : nil)
    }

    /// For the start-up lines: "AVX2+FMA 6x16 ymm (measured: 0.81 ms/step vs AVX-512 12x32 zmm 0.93 ms; cached in ~/.cache/vae-dist/kernels.json)".
    public var description: String {
        let others = timings.filter { $0.isa != isa }.map { "\($0.isa) " + String(format: "%.2f ms", $0.seconds * 1e3) }
        let mine = timings.first { $0.isa == isa }.map { String(format: "%.2f ms/step", $0.seconds * 1e3) } ?? "?"
        let versus = "\(mine) vs " + others.joined(separator: ", ")
        switch basis {
        case .forced(let request): return "\(isa) (VAE_DIST_ISA=\(request))"
        case .onlyCandidate: return "\(isa) (the only kernels this CPU runs)"
        case .unmeasured: return "\(isa) (widest this CPU runs; not measured)"
        case .measured:
            return "\(isa) (measured: \(versus)" + (cachePath.map { "; cached in \(abbreviatingHome($0)))" } ?? ")")
        case .cached:
            return "\(isa) (measured earlier: \(versus); from \(abbreviatingHome(cachePath ?? "?")))"
        }
    }
}

func abbreviatingHome(_ path: String) -> String {
    guard let home = ProcessInfo.processInfo.environment["HOME"], !home.isEmpty, home != "/", path.hasPrefix(home + "/") else { return path }
    return "~" + path.dropFirst(home.count)
}

/// The per-machine record of measured choices: a small JSON file of entries, each the
/// candidates' seconds per step for one (CPU model, candidate set, workload).
public struct KernelCache: Sendable {
    public struct Key: Codable, Equatable, Sendable {
        public var cpu: String
        public var candidates: [String]
        public var workload: String
    }

    struct Entry: Codable {
        var key: Key
        var secondsPerStep: [String: Double]
    }

    struct File: Codable {
        var version = 1
        var entries: [Entry] = []
    }

    public let path: String
    /// Entries kept: the newest (a run of bench with many batch sizes adds one each).
    static let capacity = 64

    public init(path: String) { self.path = path }

    /// $XDG_CACHE_HOME/vae-dist/kernels.json, or ~/.cache/vae-dist/kernels.json; nil without either.
    public static func standard(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> KernelCache? {
        if let xdg = environment["XDG_CACHE_HOME"], xdg.hasPrefix("/") { return KernelCache(path: xdg + "/vae-dist/kernels.json") }
        if let home = environment["HOME"], home.hasPrefix("/") { return KernelCache(path: home + "/.cache/vae-dist/kernels.json") }
        return nil
    }

    func read() -> File? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let file = try? JSONDecoder().decode(File.self, from: data), file.version == 1 else { return nil }
        return file
    }

    /// The stored timings of `key`, only if every candidate has one.
    public func lookup(_ key: Key) -> [KernelISA: Double]? {
        guard let entry = read()?.entries.last(where: { $0.key == key }) else { return nil }
        var timings: [KernelISA: Double] = [:]
        for name in key.candidates {
            guard let isa = KernelISA(rawValue: name), let t = entry.secondsPerStep[name], t > 0, t.isFinite else { return nil }
            timings[isa] = t
        }
        return timings
    }

    /// Records `timings` under `key` (replacing an older record); false when the file cannot be
    /// written. Atomic (a temporary file renamed over it): ranks starting together may race, and
    /// the last one wins whole.
    @discardableResult
    public func store(_ key: Key, timings: [KernelISA: Double]) -> Bool {
        var file = read() ?? File()
        file.entries.removeAll { $0.key == key }
        file.entries.append(Entry(key: key, secondsPerStep: Dictionary(uniqueKeysWithValues: timings.map { ($0.key.rawValue, $0.value) })))
        file.entries = Array(file.entries.suffix(Self.capacity))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        guard let data = try? encoder.encode(file) else { return false }
        let folder = (path as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
            return true
        } catch {
            return false
        }
    }
}

/// This CPU's model for the cache key: /proc/cpuinfo's model name with its family, model and
/// stepping (virtual machines often report a generic name such as "Intel(R) Xeon(R) Processor").
public func hostCPUModel() -> String {
    guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
    var fields: [String: String] = [:]
    for line in text.split(separator: "\n") {
        if line.isEmpty { break }  // the first processor only
        let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.count == 2 { fields[parts[0]] = parts[1] }
    }
    let name = fields["model name"] ?? "unknown CPU"
    return "\(name) (family \(fields["cpu family"] ?? "?") model \(fields["model"] ?? "?") stepping \(fields["stepping"] ?? "?"))"
}
