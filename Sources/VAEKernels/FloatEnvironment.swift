#if canImport(Glibc)
import Glibc
#endif

// Denormal floats (magnitudes below 2^-126) cost a microcode assist on x86 each time an FMA
// reads or makes one: a hundred cycles instead of a half. They arise in training as soon as a
// model is confident: a Bernoulli decoder's logit of -90 for a black pixel gives the output
// gradient sigmoid(-90) = 8e-40, and every GEMM of the decoder's backward then reads such
// values. Measured on an Intel Xeon (family 6, model 207) training the conv model on dSprites:
// 550-700 samples/s in the first steps, 143 samples/s by step 6000, 67% of the time in the
// decoder's backward GEMMs.
//
// So every thread that computes runs with flush-to-zero (FTZ: a denormal result becomes 0) and
// denormals-are-zero (DAZ: a denormal input reads as 0), as TensorFlow and XLA's CPU backends do
// by default (PyTorch offers it as torch.set_flush_denormal(True)). Values below 1.2e-38 then
// count as 0: no loss, gradient or parameter the trainer reports is that small. Every thread
// sets the same mode, so the threads, ranks and ISAs stay bit-identical to each other.

/// Sets FTZ and DAZ in this thread's MXCSR (x86-64; elsewhere nothing). New threads inherit it
/// from their creator; the kernel threads set it again themselves.
public func flushDenormals() {
    #if arch(x86_64) && canImport(Glibc)
    var environment = fenv_t()
    guard fegetenv(&environment) == 0 else { return }
    environment.__mxcsr |= 0x8040  // bit 15: flush to zero; bit 6: denormals are zero
    _ = fesetenv(&environment)
    #endif
}

/// Whether this thread flushes denormals (FTZ and DAZ both set); false off x86-64.
public func flushesDenormals() -> Bool {
    #if arch(x86_64) && canImport(Glibc)
    var environment = fenv_t()
    guard fegetenv(&environment) == 0 else { return false }
    return environment.__mxcsr & 0x8040 == 0x8040
    #else
    return false
    #endif
}
