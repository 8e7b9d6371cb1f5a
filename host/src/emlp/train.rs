//! Training EMLP and the baselines (MLP, MLP with group augmentation) on the synthetic sets, as
//! the reference's `train_regression.py`: Adam at a constant 3e-3, batch 500, MSE in the data's
//! own units through the standardisation wrapper, best validation epoch kept.

use std::sync::Arc;
use std::time::Instant;

use keel_core::random::Xoshiro256PlusPlus;

use super::data::{generate, Dataset, Table};
use super::group::Group;
use super::mat::Mat;
use super::model::Emlp;
use super::rep::Rep;
use super::solve::Solver;
use crate::autodiff::no_grad;
use crate::backend::{DType, Device};
use crate::error::{Error, Result};
use crate::init::Init;
use crate::limits;
use crate::nn::{Activation, Mlp};
use crate::optim::{Optimizer, OptimizerKind};
use crate::params::Params;
use crate::progress::{Observer, Tick};
use crate::tensor::Tensor;
use crate::train;

/// Which model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// The equivariant MLP.
    Emlp,
    /// A plain MLP (swish), same widths, initialised as the reference's (Xavier-normal weights,
    /// zero biases).
    Mlp,
    /// The MLP trained with group augmentation: `f(x) ← ρ_out(g)⁻¹ f(ρ_in(g) x)`, fresh `g`
    /// per example (no averaging at test time).
    MlpAug,
}

impl ModelKind {
    /// Parse `emlp`, `mlp`, `mlp-aug`.
    pub fn parse(s: &str) -> Result<ModelKind> {
        match s {
            "emlp" => Ok(ModelKind::Emlp),
            "mlp" => Ok(ModelKind::Mlp),
            "mlp-aug" | "mlp+aug" => Ok(ModelKind::MlpAug),
            _ => Err(Error::invalid(
                "model",
                s,
                "unknown model (emlp, mlp, mlp-aug)",
            )),
        }
    }
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Emlp => "emlp",
            ModelKind::Mlp => "mlp",
            ModelKind::MlpAug => "mlp-aug",
        }
    }
}

/// `keel.kind` of EMLP training checkpoints.
const CHECKPOINT_KIND: &str = "emlp-checkpoint";

/// A training run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Data set.
    pub dataset: Dataset,
    /// Symmetry group (for EMLP, and for the augmentation).
    pub group: Arc<Group>,
    /// Model.
    pub model: ModelKind,
    /// Training rows.
    pub n_train: usize,
    /// Validation rows (best epoch kept).
    pub n_val: usize,
    /// Test rows.
    pub n_test: usize,
    /// Epochs (`None`: the reference's `min(900000 / n_train, 1000)`).
    pub epochs: Option<usize>,
    /// Hidden channels.
    pub ch: usize,
    /// Hidden layers.
    pub layers: usize,
    /// Learning rate (Adam).
    pub lr: f64,
    /// Batch size (capped at `n_train`).
    pub batch: usize,
    /// Seed for data, initialisation and batches.
    pub seed: u64,
    /// Checkpoints (parameters, best parameters, Adam moments, generator, batch order).
    pub checkpoint: crate::checkpoint::Options,
    /// Where the network trains (the data, the generator and the bases stay on the host; the
    /// initial parameters are drawn on the host, so every device starts from the same numbers).
    pub device: Device,
}

impl TrainConfig {
    /// The epochs a run trains: as set, or by default the reference's 900,000 gradient rows
    /// (`900_000 / n_train` epochs, between 1 and 1000).
    pub fn epochs_to_run(&self) -> usize {
        self.epochs
            .unwrap_or_else(|| (900_000 / self.n_train.max(1)).clamp(1, 1000))
    }

    /// Checks the sizes, rates and the group before anything is generated or allocated.
    ///
    /// # Errors
    /// The first invalid setting, named by its flag.
    pub fn validate(&self) -> Result<()> {
        for (setting, v) in [
            ("n_train", self.n_train),
            ("n_val", self.n_val),
            ("n_test", self.n_test),
            ("ch", self.ch),
            ("layers", self.layers),
            ("batch", self.batch),
            ("epochs", self.epochs.unwrap_or(1)),
        ] {
            limits::positive(setting, v)?;
        }
        let rows = self.n_train as u128 + self.n_val as u128 + self.n_test as u128;
        limits::memory(
            "n_train/n_val/n_test",
            format!("{}/{}/{}", self.n_train, self.n_val, self.n_test),
            "the generated data set",
            rows.saturating_mul((self.dataset.sizes().0 + self.dataset.sizes().1) as u128 * 8),
        )?;
        // Each layer's equivariant map has at most ch² basis coefficients per irreducible
        // pair; the data set's representation sizes bound them (checked when solved).
        limits::memory(
            "ch/layers",
            format!("{}/{}", self.ch, self.layers),
            "the layers' parameters",
            (self.ch as u128)
                .saturating_mul(self.ch as u128)
                .saturating_mul(self.layers as u128)
                .saturating_mul(4 * 4),
        )?;
        let epochs = self.epochs_to_run();
        limits::work(
            "n_train/epochs",
            format!("{}/{epochs}", self.n_train),
            (epochs as u128)
                .saturating_mul(self.n_train as u128)
                .saturating_mul((self.ch as u128).saturating_mul(self.ch as u128))
                .saturating_mul(self.layers as u128 * 3),
            "multiply-adds",
        )?;
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid("lr", self.lr, "must be a positive number"));
        }
        self.dataset.representations(&self.group).map(|_| ())
    }
}

/// A trained model with its test numbers.
pub struct Trained {
    /// Test MSE in the data's units.
    pub test_mse: f64,
    /// Best validation MSE.
    pub val_mse: f64,
    /// Epoch of the best validation MSE (1-based).
    pub best_epoch: usize,
    /// Epochs asked for.
    pub epochs: usize,
    /// Epochs done, counting those before a resumed checkpoint: fewer than `epochs` when the
    /// run stopped at `--stop-after`.
    pub epochs_run: usize,
    /// Seconds of training (solving bases included).
    pub train_seconds: f64,
    /// Trainable parameters.
    pub parameters: usize,
    /// The network (EMLP) if one was trained.
    pub emlp: Option<Emlp>,
    /// Parameters at the best validation epoch.
    pub params: Params,
    /// The data's standardisation.
    pub table_stats: (Vec<f64>, Vec<f64>, Vec<f64>),
    /// Hidden representation (EMLP), in the reference's notation.
    pub hidden: Option<String>,
}

enum Net {
    Emlp(Box<Emlp>),
    Mlp(Mlp),
}

impl Net {
    fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        match self {
            Net::Emlp(e) => e.forward(params, x),
            Net::Mlp(m) => Ok(m.forward(params, x)?),
        }
    }
}

/// The baseline MLP of widths `sizes` as the reference's `emlp.nn.MLP` builds it: objax
/// `nn.Linear` layers (Glorot/Xavier-normal weights `N(0, 2/(in+out))`, zero biases) with swish
/// between them.
///
/// The initialisation matters on O5Synthetic: with He-normal weights `N(0, 2/in)` (what Keel
/// used before) the first layer starts 6× larger (sd √(2/10) against √(2/394)), the network
/// overfits its 1000 training rows and its test MSE was 25× the reference's (2.00 against 0.078;
/// benches/RESULTS.md, "O5Synthetic: the MLP baseline's gap").
pub(crate) fn baseline_mlp(
    params: &mut Params,
    sizes: &[usize],
    dtype: DType,
    rng: &mut Xoshiro256PlusPlus,
) -> Result<Mlp> {
    let mlp = Mlp::new(
        params,
        sizes,
        Activation::Silu,
        Init::XavierNormal,
        dtype,
        rng,
    )?;
    for l in &mlp.layers {
        params.set(l.bias, Tensor::zeros(&[l.out], dtype)?)?;
    }
    Ok(mlp)
}

/// Standardised input rows `idx` of `t` as a tensor on `dev`.
fn inputs(t: &Table, idx: &[usize], x_override: Option<&[f64]>, dev: Device) -> Result<Tensor> {
    let mut v = Vec::with_capacity(idx.len() * t.n_in);
    for (k, &i) in idx.iter().enumerate() {
        let row = match x_override {
            Some(x) => &x[k * t.n_in..(k + 1) * t.n_in],
            None => &t.x[i * t.n_in..(i + 1) * t.n_in],
        };
        v.extend(row.iter().zip(&t.x_scale).map(|(a, s)| a / s));
    }
    Ok(Tensor::from_f64s(&v, &[idx.len(), t.n_in], DType::F32)?.to_device(dev)?)
}

/// Predictions in data units from standardised network outputs.
fn unstandardize(t: &Table, out: &Tensor) -> Result<Tensor> {
    let dev = out.device();
    let s = Tensor::from_f64s(&t.y_std, &[t.n_out], DType::F32)?.to_device(dev)?;
    let m = Tensor::from_f64s(&t.y_mean, &[t.n_out], DType::F32)?.to_device(dev)?;
    Ok(out.mul(&s)?.add(&m)?)
}

fn targets(t: &Table, idx: &[usize], dev: Device) -> Result<Tensor> {
    let v: Vec<f64> = idx
        .iter()
        .flat_map(|&i| t.y[i * t.n_out..(i + 1) * t.n_out].iter().copied())
        .collect();
    Ok(Tensor::from_f64s(&v, &[idx.len(), t.n_out], DType::F32)?.to_device(dev)?)
}

fn mse(net: &Net, params: &Params, t: &Table, idx: &[usize], dev: Device) -> Result<f64> {
    no_grad(|| {
        let mut total = 0.0;
        for chunk in idx.chunks(250) {
            let pred = unstandardize(t, &net.forward(params, &inputs(t, chunk, None, dev)?)?)?;
            let d = pred.sub(&targets(t, chunk, dev)?)?;
            total += d.square()?.sum_all()?.item()?;
        }
        Ok(total / (idx.len() * t.n_out) as f64)
    })
}

/// Train per `cfg`.
///
/// # Errors
/// Invalid sizes or rates; a group that does not act on the data; divergence.
pub fn train(cfg: &TrainConfig, solver: &Solver, progress: &mut Observer) -> Result<Trained> {
    cfg.validate()?;
    let (rep_in, rep_out) = cfg.dataset.representations(&cfg.group)?;
    let t0 = Instant::now();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
    let n = cfg.n_train + cfg.n_val + cfg.n_test;
    let table = generate(cfg.dataset, n, &mut rng);
    let train_idx: Vec<usize> = (0..cfg.n_train).collect();
    let val_idx: Vec<usize> = (cfg.n_train..cfg.n_train + cfg.n_val).collect();
    let test_idx: Vec<usize> = (cfg.n_train + cfg.n_val..n).collect();

    let mut params = Params::new();
    let mut hidden = None;
    let net = match cfg.model {
        ModelKind::Emlp => {
            let e = Emlp::new(
                &mut params,
                &cfg.group,
                &rep_in,
                &rep_out,
                cfg.ch,
                cfg.layers,
                solver,
                DType::F32,
                &mut rng,
            )?;
            hidden = Some(super::model::describe(&e.hidden[0]));
            Net::Emlp(Box::new(e))
        }
        ModelKind::Mlp | ModelKind::MlpAug => {
            let sizes = crate::nn::widths(table.n_in, cfg.ch, cfg.layers, table.n_out);
            Net::Mlp(baseline_mlp(&mut params, &sizes, DType::F32, &mut rng)?)
        }
    };
    let parameters = params.numel();
    let dev = cfg.device;
    let net = match net {
        Net::Emlp(e) if dev != Device::Cpu => Net::Emlp(Box::new(e.to_device(dev)?)),
        other => other,
    };
    let mut params = params.to_device(dev)?;
    let mut opt = Optimizer::new(OptimizerKind::adam(), &params)?;
    let epochs = cfg.epochs_to_run();
    let batch = cfg.batch.min(cfg.n_train);
    let eval_every = (epochs / 100).max(1);
    let mut best = (f64::INFINITY, 0usize, params.clone());
    let mut order = train_idx.clone();
    let fingerprint = format!(
        "{} {} {} n={}/{}/{} ch={} layers={} lr={:e} batch={} seed={} epochs={}",
        cfg.dataset.name(),
        cfg.group.name,
        cfg.model.name(),
        cfg.n_train,
        cfg.n_val,
        cfg.n_test,
        cfg.ch,
        cfg.layers,
        cfg.lr,
        batch,
        cfg.seed,
        epochs
    );
    let mut start = 0;
    if let Some(path) = cfg.checkpoint.resume_from() {
        let mut best_params = best.2.clone();
        let r = crate::checkpoint::load(
            path,
            CHECKPOINT_KIND,
            &fingerprint,
            &mut params,
            &mut opt,
            &mut rng,
            &mut order,
            &mut [("best", &mut best_params)],
        )?;
        let (best_val, best_epoch) = r.best(path)?;
        best = (best_val, best_epoch, best_params);
        start = r.epoch;
    }
    progress(&Tick {
        done: start,
        total: epochs,
        values: &[],
    });
    let mut last_val = None;
    let mut epochs_run = start;
    for epoch in start..epochs {
        crate::data::shuffle(&mut order, &mut rng);
        for idx in order.chunks(batch) {
            let vars = params.variables();
            let (x, y, rot) = if cfg.model == ModelKind::MlpAug {
                augmented(&table, idx, &rep_in, &rep_out, &cfg.group, &mut rng, dev)?
            } else {
                (
                    inputs(&table, idx, None, dev)?,
                    targets(&table, idx, dev)?,
                    None,
                )
            };
            let mut out = net.forward(&vars, &x)?;
            if let Some(r) = &rot {
                out = r
                    .matmul(&out.unsqueeze(-1)?)?
                    .reshape(&[idx.len(), table.n_out])?;
            }
            let loss = unstandardize(&table, &out)?.mse(&y)?;
            let l = train::step(&loss, &vars, &mut params, &mut opt, cfg.lr, None)?;
            if !l.is_finite() {
                return Err(train::diverged(l, epoch, cfg.lr, ""));
            }
        }
        epochs_run = epoch + 1;
        let stop = cfg.checkpoint.stops_at(epoch + 1);
        if (epoch + 1) % eval_every == 0 || epoch + 1 == epochs || stop {
            let v = mse(&net, &params, &table, &val_idx, dev)?;
            if v < best.0 {
                best = (v, epoch + 1, params.clone());
            }
            last_val = Some(v);
        }
        let due = cfg.checkpoint.due(epoch + 1, epochs);
        if let (Some(path), true) = (&cfg.checkpoint.path, due) {
            crate::checkpoint::save(
                path,
                &crate::checkpoint::Snapshot {
                    kind: CHECKPOINT_KIND,
                    fingerprint: &fingerprint,
                    epoch: epoch + 1,
                    params: &params,
                    opt: &opt,
                    rng: &rng,
                    order: &order,
                    extra_params: &[("best", &best.2)],
                    series: &[],
                    meta: crate::checkpoint::best_meta(best.0, best.1),
                },
            )?;
        }
        let shown = last_val.map(|v| [("val MSE", v), ("best", best.0)]);
        progress(&Tick {
            done: epoch + 1,
            total: epochs,
            values: shown.as_ref().map_or(&[], |v| &v[..]),
        });
        if stop {
            break;
        }
    }
    let (val_mse, best_epoch, best_params) = best;
    let test_mse = mse(&net, &best_params, &table, &test_idx, dev)?;
    Ok(Trained {
        test_mse,
        val_mse,
        best_epoch,
        epochs,
        epochs_run,
        train_seconds: t0.elapsed().as_secs_f64(),
        parameters,
        emlp: match net {
            Net::Emlp(e) => Some(*e),
            Net::Mlp(_) => None,
        },
        params: best_params,
        table_stats: (
            table.x_scale.clone(),
            table.y_mean.clone(),
            table.y_std.clone(),
        ),
        hidden,
    })
}

/// Inputs `ρ_in(g) x` and the per-example `ρ_out(g)⁻¹` (`None` for scalar outputs), fresh `g`
/// per example; targets unchanged.
fn augmented(
    t: &Table,
    idx: &[usize],
    rep_in: &Rep,
    rep_out: &Rep,
    g: &Arc<Group>,
    rng: &mut Xoshiro256PlusPlus,
    dev: Device,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let mut xs = Vec::with_capacity(idx.len() * t.n_in);
    let mut rots = Vec::new();
    let scalar_out = rep_out
        .terms()
        .map(|ts| ts.iter().all(|t| t.factors.is_empty()))
        .unwrap_or(false);
    for &i in idx {
        let h = g.sample(rng);
        let hinv = h.inverse().ok_or_else(|| Error::Solver {
            reason: "sampled a singular group element".into(),
        })?;
        let els = vec![(g.name.clone(), h.clone(), hinv.t())];
        let x = rep_in
            .apply(&els, &t.x[i * t.n_in..(i + 1) * t.n_in])
            .map_err(|reason| Error::Solver { reason })?;
        xs.extend(x);
        if !scalar_out {
            // ρ_out(g⁻¹) column by column.
            let inv = vec![(g.name.clone(), hinv.clone(), h.t())];
            let n = t.n_out;
            let mut m = Mat::zeros(n, n);
            for c in 0..n {
                let mut e = vec![0.0; n];
                e[c] = 1.0;
                let col = rep_out
                    .apply(&inv, &e)
                    .map_err(|reason| Error::Solver { reason })?;
                for r in 0..n {
                    *m.at_mut(r, c) = col[r];
                }
            }
            rots.extend(m.data);
        }
    }
    let n = idx.len();
    let x = Tensor::from_f64s(
        &xs.chunks_exact(t.n_in)
            .flat_map(|r| r.iter().zip(&t.x_scale).map(|(a, s)| a / s))
            .collect::<Vec<_>>(),
        &[n, t.n_in],
        DType::F32,
    )?
    .to_device(dev)?;
    let rot = if scalar_out {
        None
    } else {
        Some(Tensor::from_f64s(&rots, &[n, t.n_out, t.n_out], DType::F32)?.to_device(dev)?)
    };
    Ok((x, targets(t, idx, dev)?, rot))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The baseline starts as objax's `nn.Linear` (emlp's `MLP` uses its defaults): every bias
    /// zero, every weight matrix of sample variance 2/(in+out). The old He-normal start had
    /// variance 2/in (0.2 instead of 0.0051 in the first layer of the O5Synthetic widths).
    #[test]
    fn baseline_mlp_starts_as_the_reference() {
        let mut params = Params::new();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let sizes = [10, 384, 384, 384, 1];
        let mlp = baseline_mlp(&mut params, &sizes, DType::F32, &mut rng).unwrap();
        assert_eq!(mlp.sizes(), sizes);
        assert_eq!(mlp.activation, Activation::Silu);
        for l in &mlp.layers {
            let b = params.get(l.bias).to_vec_f64().unwrap();
            assert!(
                b.iter().all(|&v| v == 0.0),
                "layer {}→{} bias",
                l.inp,
                l.out
            );
            let w = params.get(l.weight).to_vec_f64().unwrap();
            let n = w.len() as f64;
            let mean = w.iter().sum::<f64>() / n;
            let var = w.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
            let want = 2.0 / (l.inp + l.out) as f64;
            // The sample variance of n normals has relative sd √(2/n): 6 sd, and at least 5 %.
            let tol = (6.0 * (2.0 / n).sqrt()).max(0.05);
            assert!(
                (var / want - 1.0).abs() < tol,
                "layer {}→{}: variance {var}, want {want} (±{tol} relative)",
                l.inp,
                l.out
            );
        }
    }
}
