// The shims are header-only (include/VAEKernelShims.h); SwiftPM needs one source file.
