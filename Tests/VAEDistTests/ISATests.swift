import Foundation
import Testing
import VAEKernelDispatch
import VAEKernels

/// The kernel dispatch: AVX-512 only where CPUID and the OS allow it, overrides honoured
/// or refused, and the host's features read correctly.
@Suite struct ISADispatchTests {
    static let v3: CPUFeatures = [.avx, .fma, .avx2, .osYMM]
    static let v4: CPUFeatures = v3.union([.avx512f, .avx512bw, .avx512dq, .avx512vl, .avx512cd, .osZMM])

    @Test func picksAVX512OnlyWithEveryFeatureAndOSSupport() throws {
        #expect(try KernelISA.select(features: Self.v4, request: nil) == .avx512)
        #expect(try KernelISA.select(features: Self.v3, request: nil) == .avx2)
        #expect(try KernelISA.select(features: [], request: nil) == .avx2)  // the build's floor
        // Each missing piece, CPU or OS, keeps AVX-512 off.
        let pieces: [CPUFeatures] = [.avx512f, .avx512bw, .avx512dq, .avx512vl, .avx512cd, .osZMM, .osYMM, .avx2, .fma]
        for piece in pieces {
            #expect(try KernelISA.select(features: Self.v4.subtracting(piece), request: "auto") == .avx2, "without \(piece)")
            #expect(!KernelISA.avx512.runs(on: Self.v4.subtracting(piece)), "without \(piece)")
        }
    }

    @Test func environmentOverride() throws {
        #expect(try KernelISA.select(features: Self.v4, request: "avx2") == .avx2)
        #expect(try KernelISA.select(features: Self.v4, request: "AVX512") == .avx512)
        #expect(try KernelISA.select(features: Self.v4, request: "") == .avx512)
        #expect(try KernelISA.select(features: Self.v4, request: "avx512ymm") == .avx512ymm)
        #expect(throws: ISASelectionError.self) { try KernelISA.select(features: Self.v3, request: "avx512ymm") }
        #expect(!KernelISA.avx512ymm.runs(on: Self.v4.subtracting(.avx512vl)))
        #expect(throws: ISASelectionError.self) { try KernelISA.select(features: Self.v3, request: "avx512") }
        #expect(throws: ISASelectionError.self) { try KernelISA.select(features: Self.v4, request: "sse") }
    }

    @Test func decodesCPUIDRegisters() {
        // Leaf 1 ECX: FMA (12), OSXSAVE (27), AVX (28). Leaf 7 EBX: AVX2 (5), F (16), DQ (17),
        // CD (28), BW (30), VL (31). XCR0: SSE|AVX (0x6), opmask|zmm (0xE0).
        let ecx: UInt32 = 1 << 12 | 1 << 27 | 1 << 28
        let ebx: UInt32 = 1 << 5 | 1 << 16 | 1 << 17 | 1 << 28 | 1 << 30 | 1 << 31
        #expect(CPUFeatures(leaf1ECX: ecx, leaf7EBX: ebx, xcr0: 0xE7) == Self.v4)
        // The OS does not save zmm state: not AVX-512.
        #expect(CPUFeatures(leaf1ECX: ecx, leaf7EBX: ebx, xcr0: 0x7) == Self.v4.subtracting(.osZMM))
        // No OSXSAVE: XCR0 cannot be read, so no OS support at all.
        #expect(CPUFeatures(leaf1ECX: ecx & ~(1 << 27), leaf7EBX: ebx, xcr0: 0xE7).isDisjoint(with: [.osYMM, .osZMM]))
        // An AVX2 CPU under an OS that saves zmm state (as on any AVX-512 machine's kernel).
        let avx2Only = CPUFeatures(leaf1ECX: ecx, leaf7EBX: 1 << 5, xcr0: 0xE7)
        #expect(avx2Only == Self.v3.union(.osZMM))
        #expect(KernelISA.best(for: avx2Only) == .avx2)
    }

    /// CPUID as this process reads it agrees with the kernel's /proc/cpuinfo flags, and the
    /// dispatch follows it: AVX-512 kernels are offered exactly when the CPU has them.
    @Test func hostFeaturesMatchProcCpuinfo() throws {
        let host = Kernels.hostFeatures
        let runnable = Kernels.runnable.map(\.isa)
        #expect(runnable.contains(.avx512) == KernelISA.avx512.runs(on: host))
        #expect(runnable.contains(.avx512ymm) == KernelISA.avx512.runs(on: host))
        // The kernels in use are the choice; unmeasured (no test prepared a workload first) it is
        // the widest, else the fastest timed on this CPU (any set it runs: timing decides).
        #expect(Kernels.active.isa == Kernels.choice.isa && runnable.contains(Kernels.active.isa))
        if ProcessInfo.processInfo.environment["VAE_DIST_ISA"] == nil, Kernels.choice.basis == .unmeasured {
            #expect(Kernels.active.isa == KernelISA.best(for: host))
        }
        #if arch(x86_64) && os(Linux)
        let text = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix("flags") })
        let flags = Set(line.split(separator: ":")[1].split(separator: " ").map(String.init))
        let named: [(String, CPUFeatures)] = [("avx", .avx), ("fma", .fma), ("avx2", .avx2), ("avx512f", .avx512f),
                                              ("avx512bw", .avx512bw), ("avx512dq", .avx512dq), ("avx512vl", .avx512vl),
                                              ("avx512cd", .avx512cd)]
        for (name, feature) in named {
            #expect(flags.contains(name) == host.contains(feature), "\(name): /proc/cpuinfo \(flags.contains(name)), CPUID \(host.contains(feature))")
        }
        // Without AVX-512 in /proc/cpuinfo, only the AVX2 kernels run.
        #expect(flags.contains("avx512f") || Kernels.active.isa == .avx2)
        #endif
    }

    @Test func fmaPeakLoopCountsItsWork() {
        for kernels in Kernels.runnable {
            let lanes: Double = kernels.isa == .avx512 ? 16 : 8  // avx512ymm: the ymm peak
            let r = kernels.fmaPeakLoop(iterations: 1000, seed: 0.25)
            #expect(r.flops == 1000 * 16 * lanes * 2)
            #expect(r.checksum.isFinite && r.checksum > 0)
        }
    }
}
