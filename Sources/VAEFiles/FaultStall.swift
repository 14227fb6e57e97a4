import Foundation

/// Test hooks of file access (VAE_DIST_FAULT, comma-separated): "KIND:SECONDS" pauses that long;
/// KIND is stall-write (halfway through writing a checkpoint) or stall-read (before reading
/// one, as on a hung filesystem), stall-decode (before an image folder's decoded cache is
/// completed and renamed into place), or step-delay (before every training step, so the test
/// suites can run on a slower machine than the one they run on). 0 when not set.
public func faultStallSeconds(_ kind: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> Double {
    guard let spec = environment["VAE_DIST_FAULT"] else { return 0 }
    for item in spec.split(separator: ",") where item.hasPrefix(kind + ":") {
        return Double(item.dropFirst(kind.count + 1)) ?? 0
    }
    return 0
}
