import Foundation
import VAEModel

/// The line printed after each epoch. A VAE reports its negative ELBO split into its two
/// terms; a plain autoencoder has no posterior, so no KL and no ELBO: it reports the
/// reconstruction loss it does optimize and says what it is, rather than "kl 0.00".
/// (metrics.jsonl keeps the same keys for both, so tools read every run alike.)
public func epochLine(_ metrics: EpochMetrics, epochs: Int, config: ModelConfig, seconds: Double) -> String {
    let loss = config.autoencoder
        ? String(format: "test_recon %.2f (autoencoder: reconstruction loss only)", metrics.testRecon)
        : String(format: "test_nelbo %.2f (recon %.2f + kl %.2f)", metrics.testNELBO, metrics.testRecon, metrics.testKL)
    return String(format: "epoch %d/%d  train_loss %.2f  ", metrics.epoch, epochs, metrics.trainLoss) + loss
        + String(format: "  %.0f samples/s  %.1fs", metrics.samplesPerSecond, seconds)
}
