/// The small learned-dynamics configuration the CHNN tests train: 60 epochs of 40 trajectories,
/// batch 20, 2 × 32 tanh, seed 0.
pub fn chnn_config(
    system: keel::chnn::data::SystemSpec,
    model: keel::chnn::model::ModelKind,
) -> keel::chnn::train::TrainConfig {
    keel::chnn::train::TrainConfig {
        system,
        model,
        n_train: 40,
        epochs: 60,
        batch: 20,
        lr: 3e-3,
        weight_decay: 1e-4,
        hidden: 32,
        layers: 2,
        seed: 0,
        checkpoint: keel::checkpoint::Options::default(),
        device: keel::Device::Cpu,
    }
}
