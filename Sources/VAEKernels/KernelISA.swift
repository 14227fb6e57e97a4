import _VAEKernelShims

// Which instruction set the kernels run with. The kernels are compiled once per ISA
// (thin targets VAEKernelsAVX2 and VAEKernelsAVX512 instantiate the generic kernels
// of this module). CPUID says which of them this CPU can run (as OpenBLAS's DYNAMIC_ARCH
// does); which of those runs is measured at start (VAEKernelDispatch/KernelChoice.swift).

public enum KernelISA: String, Sendable, CaseIterable, CustomStringConvertible {
    /// x86-64-v3: AVX2 + FMA, 16 ymm registers. The floor of the build (every other
    /// target is compiled for it), so it is also the choice on other architectures.
    case avx2
    /// x86-64-v4: AVX-512 F/BW/DQ/VL/CD, 32 zmm registers.
    case avx512
    /// x86-64-v4 with the GEMM on ymm registers (AVX-512VL: 32 of them, so a 12 x 16 tile):
    /// for CPUs that execute AVX-512 on 256-bit units (Zen 4).
    case avx512ymm

    /// The name and GEMM tile, as the start-up lines print them.
    public var description: String {
        #if arch(x86_64)
        switch self {
        case .avx2: return "AVX2+FMA 6x16 ymm"
        case .avx512: return "AVX-512 12x32 zmm"
        case .avx512ymm: return "AVX-512VL 12x16 ymm"
        }
        #else
        return "portable SIMD"
        #endif
    }

    /// The candidates of the measured choice (KernelChoice) in the order a tie between them is
    /// broken: the widest tile first, as the choice by CPUID alone (`best(for:)`) would be.
    public static let preferenceOrder: [KernelISA] = [.avx512, .avx512ymm, .avx2]

    /// Whether a CPU with `features` (and its OS) can run code built for this ISA.
    public func runs(on features: CPUFeatures) -> Bool {
        switch self {
        case .avx2: return features.isSuperset(of: CPUFeatures.x86_64v3)
        case .avx512, .avx512ymm: return features.isSuperset(of: CPUFeatures.x86_64v4)
        }
    }

    /// The widest ISA a CPU with `features` runs (not necessarily the fastest: KernelChoice
    /// measures). AVX2 is the floor: the rest of the binary is built for it.
    public static func best(for features: CPUFeatures) -> KernelISA {
        KernelISA.avx512.runs(on: features) ? .avx512 : .avx2
    }

    /// The ISA to use: `request` (the VAE_DIST_ISA environment variable: nil, "", "auto",
    /// "avx2", "avx512" or "avx512ymm") on a CPU with `features`. Asking for an ISA the CPU lacks is
    /// an error, never a silent fallback and never an illegal instruction.
    public static func select(features: CPUFeatures, request: String?) throws(ISASelectionError) -> KernelISA {
        let name = (request ?? "").lowercased()
        if name == "" || name == "auto" { return best(for: features) }
        guard let isa = KernelISA(rawValue: name) else {
            throw ISASelectionError(message: "VAE_DIST_ISA=\(request!): expected auto, avx2, avx512 or avx512ymm")
        }
        if !isa.runs(on: features) {
            throw ISASelectionError(message: "VAE_DIST_ISA=\(isa.rawValue): this CPU or its OS lacks AVX-512 "
                                    + "(needs avx512f/bw/dq/vl/cd and zmm state enabled); use avx2 or auto")
        }
        return isa
    }
}

public struct ISASelectionError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { message }
}

/// The CPU features the dispatch looks at, from CPUID and XGETBV.
public struct CPUFeatures: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let avx = CPUFeatures(rawValue: 1 << 0)
    public static let fma = CPUFeatures(rawValue: 1 << 1)
    public static let avx2 = CPUFeatures(rawValue: 1 << 2)
    public static let avx512f = CPUFeatures(rawValue: 1 << 3)
    public static let avx512bw = CPUFeatures(rawValue: 1 << 4)
    public static let avx512dq = CPUFeatures(rawValue: 1 << 5)
    public static let avx512vl = CPUFeatures(rawValue: 1 << 6)
    public static let avx512cd = CPUFeatures(rawValue: 1 << 7)
    /// The OS saves the ymm state (XCR0 bits 1 and 2).
    public static let osYMM = CPUFeatures(rawValue: 1 << 8)
    /// The OS saves the opmask and zmm states (XCR0 bits 5, 6 and 7).
    public static let osZMM = CPUFeatures(rawValue: 1 << 9)

    public static let x86_64v3: CPUFeatures = [.avx, .fma, .avx2, .osYMM]
    public static let x86_64v4: CPUFeatures = x86_64v3.union([.avx512f, .avx512bw, .avx512dq, .avx512vl, .avx512cd, .osZMM])

    /// Decodes CPUID leaf 1 ECX, leaf 7 (subleaf 0) EBX and XCR0.
    public init(leaf1ECX: UInt32, leaf7EBX: UInt32, xcr0: UInt64) {
        var f: CPUFeatures = []
        func bit(_ register: UInt32, _ index: Int, _ feature: CPUFeatures) { if register & (1 << index) != 0 { f.insert(feature) } }
        bit(leaf1ECX, 12, .fma)
        bit(leaf1ECX, 28, .avx)
        bit(leaf7EBX, 5, .avx2)
        bit(leaf7EBX, 16, .avx512f)
        bit(leaf7EBX, 17, .avx512dq)
        bit(leaf7EBX, 28, .avx512cd)
        bit(leaf7EBX, 30, .avx512bw)
        bit(leaf7EBX, 31, .avx512vl)
        let osXSAVE = leaf1ECX & (1 << 27) != 0
        if osXSAVE && xcr0 & 0x6 == 0x6 { f.insert(.osYMM) }
        if osXSAVE && xcr0 & 0xE6 == 0xE6 { f.insert(.osZMM) }
        self = f
    }

    /// This machine's features.
    public static var host: CPUFeatures {
        var ecx: UInt32 = 0, ebx: UInt32 = 0, xcr0: UInt64 = 0
        vae_cpu_registers(&ecx, &ebx, &xcr0)
        return CPUFeatures(leaf1ECX: ecx, leaf7EBX: ebx, xcr0: xcr0)
    }

    public var description: String {
        let names: [(CPUFeatures, String)] = [(.avx, "avx"), (.fma, "fma"), (.avx2, "avx2"), (.avx512f, "avx512f"),
                                              (.avx512bw, "avx512bw"), (.avx512dq, "avx512dq"), (.avx512vl, "avx512vl"),
                                              (.avx512cd, "avx512cd"), (.osYMM, "os-ymm"), (.osZMM, "os-zmm")]
        return names.filter { contains($0.0) }.map(\.1).joined(separator: " ")
    }
}

extension KernelISA {
    /// The GEMM register tile of this ISA's kernels (the per-ISA targets' `ISATag.tile`).
    public var tile: GEMMTile {
        switch self {
        case .avx2: return .avx2x6x16
        case .avx512: return .avx512x12x32
        case .avx512ymm: return .avx512ymm12x16
        }
    }
}
