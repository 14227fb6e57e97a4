import Foundation
import VAEKernels
import VAEKernelsAVX2
import VAEKernelsAVX512

/// The kernels this process runs: chosen once, at first use, among those CPUID says this CPU
/// runs, by timing them on the workload given to `prepare` (KernelChoice.swift), or as the
/// VAE_DIST_ISA environment variable forces (auto, avx2, avx512 or avx512ymm; see KernelISA.select).
public enum Kernels {
    /// This CPU's features.
    public static let hostFeatures = CPUFeatures.host

    /// Whether VAE_DIST_ISA can be honoured here. The executable checks it at start and reports
    /// the error as one line.
    public static let selection: Result<KernelISA, ISASelectionError> = {
        do throws(ISASelectionError) {
            return .success(try KernelISA.select(features: hostFeatures, request: ProcessInfo.processInfo.environment["VAE_DIST_ISA"]))
        } catch {
            return .failure(error)
        }
    }()

    nonisolated(unsafe) private static var workload: KernelWorkload?
    nonisolated(unsafe) private static var chosen = false

    /// Names the GEMMs the kernels are chosen on (one training step of the model at the per-rank
    /// batch). Only the call before the first use of `choice` or `active` counts; false after.
    @discardableResult
    public static func prepare(_ workload: KernelWorkload) -> Bool {
        if chosen { return false }
        self.workload = workload
        return true
    }

    /// The decision and why (the start-up lines print it). A bad VAE_DIST_ISA falls back to the
    /// measured choice here (the executable has already refused it).
    public static let choice: KernelChoice = {
        chosen = true
        let environment = ProcessInfo.processInfo.environment
        let request = (try? selection.get()) == nil ? nil : environment["VAE_DIST_ISA"]
        let workload = Kernels.workload
        return (try? KernelChoice.choose(request: request, features: hostFeatures, cpuModel: hostCPUModel(), workload: workload,
                                         cache: KernelCache.standard(environment),
                                         measure: { measure($0, on: workload!) }))
            ?? KernelChoice(isa: KernelISA.best(for: hostFeatures), basis: .unmeasured)
    }()

    /// The strategy every caller uses.
    public static let active: any KernelSet = kernels(for: choice.isa)

    /// Every instantiation this CPU can run (for tests and benchmarks), widest first.
    public static var runnable: [any KernelSet] {
        KernelISA.preferenceOrder.filter { $0.runs(on: hostFeatures) }.map { kernels(for: $0) }
    }

    /// Median seconds per pass over `workload`'s GEMMs of each of `candidates`: after one pass
    /// each to warm up, rounds of one pass per candidate, in alternating order, until about
    /// `budget` seconds have passed (at least `minimumRounds`). A pass at 128 rows of the
    /// default model takes 3-6 ms on one core.
    public static func measure(_ candidates: [KernelISA], on workload: KernelWorkload, budget: Double = 0.1,
                               minimumRounds: Int = 5) -> [KernelISA: Double] {
        precondition(candidates.allSatisfy { $0.runs(on: hostFeatures) }, "measuring kernels this CPU cannot run")
        let shapes = workload.shapes
        let aCount = shapes.map { $0.m * $0.k }.max() ?? 1, bCount = shapes.map { $0.k * $0.n }.max() ?? 1
        let cCount = shapes.map { $0.m * $0.n }.max() ?? 1
        let a = allocateAligned(aCount), b = allocateAligned(bCount), c = allocateAligned(cCount)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<aCount { a[i] = Float(i % 7) * 0.1 - 0.3 }
        for i in 0..<bCount { b[i] = Float(i % 5) * 0.1 - 0.2 }
        let workspace = GEMMWorkspace()
        let sets = candidates.map { kernels(for: $0) }
        func pass(_ kernels: any KernelSet) -> Double {
            let start = monotonicSeconds()
            for shape in shapes { kernels.run(shape, c: c, a: a, b: b, workspace: workspace) }
            return monotonicSeconds() - start
        }
        for kernels in sets { _ = pass(kernels) }
        var times = [[Double]](repeating: [], count: sets.count)
        let start = monotonicSeconds()
        var round = 0
        while round < minimumRounds || (monotonicSeconds() - start < budget && round < 100) {
            for i in round % 2 == 0 ? Array(sets.indices) : sets.indices.reversed() { times[i].append(pass(sets[i])) }
            round += 1
        }
        var result: [KernelISA: Double] = [:]
        for (i, isa) in candidates.enumerated() {
            let sorted = times[i].sorted()
            result[isa] = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        return result
    }

    /// The instantiation for `isa`. Only `choice`, `runnable` and `measure` call this, and they
    /// hand out AVX-512 only where `KernelISA.runs(on:)` holds.
    private static func kernels(for isa: KernelISA) -> any KernelSet {
        switch isa {
        case .avx2: return AVX2Kernels()
        case .avx512: return AVX512Kernels()
        case .avx512ymm: return AVX512YMMKernels()
        }
    }

    /// The instantiation for `isa` if this CPU runs it (tests and benchmarks).
    public static func runnable(_ isa: KernelISA) -> (any KernelSet)? {
        isa.runs(on: hostFeatures) ? kernels(for: isa) : nil
    }
}

