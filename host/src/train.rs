//! The step every training loop takes: loss → finite check → gradients → optimiser step.

use crate::autodiff::{backward, no_grad};
use crate::error::{Error, Result};
use crate::optim::{clip_grad_norm, Optimizer};
use crate::params::Params;
use crate::tensor::Tensor;

/// One optimiser step on the scalar `loss`, computed from `vars` (`params.variables()`): when
/// its value is finite, the gradient with respect to `vars` — its global norm clipped to `clip`
/// when given — moves `params` by `opt` at learning rate `lr`. Returns the loss's value; a
/// non-finite value is returned without a step, for the caller to report ([`diverged`]).
///
/// # Errors
/// Engine errors (a loss that is not a scalar, mismatched optimizer state).
pub fn step(
    loss: &Tensor,
    vars: &Params,
    params: &mut Params,
    opt: &mut Optimizer,
    lr: f64,
    clip: Option<f64>,
) -> Result<f64> {
    let value = loss.item()?;
    if !value.is_finite() {
        return Ok(value);
    }
    let refs: Vec<&Tensor> = vars.values().iter().collect();
    let mut grads = no_grad(|| backward(loss, &refs))?;
    if let Some(c) = clip {
        clip_grad_norm(&mut grads, c)?;
    }
    no_grad(|| opt.step(params, &grads, lr))?;
    Ok(value)
}

/// The failure of a run whose training loss became `loss` (non-finite) in `epoch` (counted from
/// 0), with the remedy: a learning rate below `lr`; `note` is appended to the remedy.
pub fn diverged(loss: f64, epoch: usize, lr: f64, note: &str) -> Error {
    Error::failed(
        format!("training diverged (loss {loss}) in epoch {}", epoch + 1),
        format!("lower the learning rate `lr` ({lr}){note}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::DType;
    use crate::optim::OptimizerKind;

    fn problem() -> (Params, Optimizer) {
        let mut params = Params::new();
        params
            .insert(
                "w",
                Tensor::from_f64s(&[3.0, -4.0], &[2], DType::F64).unwrap(),
            )
            .unwrap();
        let opt = Optimizer::new(
            OptimizerKind::Sgd {
                momentum: 0.0,
                nesterov: false,
                weight_decay: 0.0,
            },
            &params,
        )
        .unwrap();
        (params, opt)
    }

    #[test]
    fn a_finite_loss_steps_along_its_clipped_gradient() {
        let (mut params, mut opt) = problem();
        let vars = params.variables();
        // loss = ½‖w‖², gradient w = (3, −4) of norm 5, clipped to norm 1: (0.6, −0.8) (up to
        // PyTorch's 1e-6 added to the norm, a relative 2e-7).
        let w = &vars.values()[0];
        let loss = w
            .square()
            .unwrap()
            .sum_all()
            .unwrap()
            .mul_scalar(0.5)
            .unwrap();
        let value = step(&loss, &vars, &mut params, &mut opt, 0.5, Some(1.0)).unwrap();
        assert_eq!(value, 12.5);
        let w = params.values()[0].to_vec_f64().unwrap();
        assert!(
            (w[0] - 2.7).abs() < 1e-7 && (w[1] + 3.6).abs() < 1e-7,
            "{w:?}"
        );
    }

    #[test]
    fn a_non_finite_loss_is_returned_and_nothing_moves() {
        let (mut params, mut opt) = problem();
        let vars = params.variables();
        let w = &vars.values()[0];
        let loss = w.sum_all().unwrap().mul_scalar(f64::INFINITY).unwrap();
        let value = step(&loss, &vars, &mut params, &mut opt, 0.5, None).unwrap();
        assert!(value.is_nan() || value.is_infinite());
        assert_eq!(params.values()[0].to_vec_f64().unwrap(), vec![3.0, -4.0]);
        let e = diverged(value, 2, 0.1, "").to_string();
        assert!(
            e.starts_with("training diverged (loss ") && e.contains("in epoch 3"),
            "{e}"
        );
        assert!(e.ends_with("lower the learning rate `lr` (0.1)"), "{e}");
    }
}
