import VAECheckpoint
import VAEData
import VAEModel

extension Checkpoint {
    /// Serializes the model and, when given, the optimizer's Adam moments.
    public static func encode(model: VAE, optimizer: AdamOptimizer?, config: CheckpointConfig,
                              resume: ResumeState, worldSize: Int, dataset: String,
                              data: DataFingerprint? = nil, run: String? = nil) -> [UInt8] {
        encode(model: model, moments: optimizer.map { ($0.firstMoment, $0.secondMoment) }, config: config,
               resume: resume, worldSize: worldSize, dataset: dataset, data: data, run: run)
    }
}
