//! The feature network of the image metrics: a stand-in for the Inception network of FID and
//! IS, which cannot be used on 8×8 digits or on data without downloads. An MLP
//! `pixels → 128 → 64 → classes` (ReLU) is trained on the run's own training images and labels
//! (Adam, learning rate 1e-3, batches of 128, [`EPOCHS`] passes, seeded); FID is computed on its
//! 64 penultimate activations (after the ReLU) and IS on its class probabilities. The numbers are
//! comparable between runs on the same data and seed, not with Inception-based ones.

use keel_core::random::Xoshiro256PlusPlus;

use crate::autodiff::no_grad;
use crate::backend::DType;
use crate::data::permutation;
use crate::error::{Error, Result};
use crate::init::Init;
use crate::nn::{Activation, Mlp};
use crate::optim::{Optimizer, OptimizerKind};
use crate::params::Params;
use crate::tensor::Tensor;

/// Training passes over the images.
pub const EPOCHS: usize = 30;
/// Width of the feature layer.
pub const FEATURES: usize = 64;

/// A trained feature network.
#[derive(Clone, Debug)]
pub struct FeatureNet {
    mlp: Mlp,
    params: Params,
    inputs: usize,
    /// Accuracy on the held-out images.
    pub test_accuracy: f64,
}

impl FeatureNet {
    /// Trains on `train` rows (`inputs` numbers each) with `labels` of `classes` classes and
    /// measures accuracy on `test`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `dataset`) for fewer than two classes or mismatched
    /// lengths.
    #[allow(clippy::too_many_arguments)]
    pub fn train(
        train: &[f64],
        labels: &[usize],
        test: &[f64],
        test_labels: &[usize],
        inputs: usize,
        classes: usize,
        seed: u64,
    ) -> Result<FeatureNet> {
        let n = labels.len();
        if classes < 2 || n * inputs != train.len() || test_labels.len() * inputs != test.len() {
            return Err(Error::invalid(
                "dataset",
                format!("{n} labelled images of {classes} classes"),
                "the image metrics need at least two classes and one label per image",
            ));
        }
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x6665_6174_7572_6573);
        let mut params = Params::new();
        let mlp = Mlp::new(
            &mut params,
            &[inputs, 128, FEATURES, classes],
            Activation::Relu,
            Init::PyTorchDefault,
            DType::F64,
            &mut rng,
        )?;
        let mut opt = Optimizer::new(OptimizerKind::adam(), &params)?;
        for _ in 0..EPOCHS {
            for idx in permutation(n, &mut rng).chunks(128) {
                let x: Vec<f64> = idx
                    .iter()
                    .flat_map(|&i| train[i * inputs..(i + 1) * inputs].iter().copied())
                    .collect();
                let y: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
                let x = Tensor::from_f64s(&x, &[idx.len(), inputs], DType::F64)?;
                let vars = params.variables();
                let loss = mlp.forward(&vars, &x)?.cross_entropy(&y)?;
                crate::train::step(&loss, &vars, &mut params, &mut opt, 1e-3, None)?;
            }
        }
        let mut net = FeatureNet {
            mlp,
            params,
            inputs,
            test_accuracy: 0.0,
        };
        let logits = net.logits(test)?;
        // The argmax of the logits is that of the probabilities.
        net.test_accuracy = crate::metrics::accuracy(&logits, classes, test_labels);
        Ok(net)
    }

    fn run(&self, rows: &[f64], features: bool) -> Result<Vec<f64>> {
        let n = rows.len() / self.inputs;
        let x = Tensor::from_f64s(rows, &[n, self.inputs], DType::F64)?;
        no_grad(|| -> Result<Vec<f64>> {
            let mut h = x;
            let last = self.mlp.layers.len() - 1;
            for (i, l) in self.mlp.layers.iter().enumerate() {
                if features && i == last {
                    break;
                }
                h = l.forward(&self.params, &h)?;
                if i < last {
                    h = h.relu()?;
                }
            }
            Ok(h.to_vec_f64()?)
        })
    }

    /// The [`FEATURES`] penultimate activations of each row.
    ///
    /// # Errors
    /// Shape errors for rows of the wrong width.
    pub fn features(&self, rows: &[f64]) -> Result<Vec<f64>> {
        self.run(rows, true)
    }

    /// The class logits of each row.
    ///
    /// # Errors
    /// As [`FeatureNet::features`].
    pub fn logits(&self, rows: &[f64]) -> Result<Vec<f64>> {
        self.run(rows, false)
    }
}
