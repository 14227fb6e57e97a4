import Foundation
import VAEKernels
import VAEKernelsAVX2
import VAEKernelsAVX512

/// The kernels this process runs: chosen once, at first use, from CPUID and the
/// VAE_DIST_ISA environment variable (auto, avx2 or avx512; see KernelISA.select).
public enum Kernels {
    /// This CPU's features.
    public static let hostFeatures = CPUFeatures.host

    /// The decision, or why VAE_DIST_ISA cannot be honoured. The executable checks it at
    /// start and reports the error as one line.
    public static let selection: Result<KernelISA, ISASelectionError> = {
        do throws(ISASelectionError) {
            return .success(try KernelISA.select(features: hostFeatures, request: ProcessInfo.processInfo.environment["VAE_DIST_ISA"]))
        } catch {
            return .failure(error)
        }
    }()

    /// The strategy every caller uses. A bad VAE_DIST_ISA falls back to the automatic choice
    /// here (the executable has already refused it).
    public static let active: any KernelSet = kernels(for: (try? selection.get()) ?? KernelISA.best(for: hostFeatures))

    /// Every instantiation this CPU can run (for tests and benchmarks), best first.
    public static var runnable: [any KernelSet] {
        KernelISA.allCases.reversed().filter { $0 == .avx2 || $0.runs(on: hostFeatures) }.map { kernels(for: $0) }
    }

    /// The instantiation for `isa`. Only `selection` and `runnable` call this, and they
    /// hand out AVX-512 only where `KernelISA.runs(on:)` holds.
    private static func kernels(for isa: KernelISA) -> any KernelSet {
        switch isa {
        case .avx2: return AVX2Kernels()
        case .avx512: return AVX512Kernels()
        }
    }
}
