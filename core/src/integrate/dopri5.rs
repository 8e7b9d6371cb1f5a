//! Adaptive Dormand–Prince 5(4) with error control and dense output.
//!
//! The method, error estimate, step-size controller (with Gustafsson's PI stabilisation) and the
//! fourth-order continuous extension follow Hairer, Nørsett & Wanner, *Solving Ordinary
//! Differential Equations I*, §II.4–II.6 and their `DOPRI5` code. Outputs at requested times
//! come from the dense output, so output times never shorten the steps.

use super::{check_finite, StateVector, VectorField};
use crate::error::{Error, Result};
use crate::real::Real;

/// The Dormand–Prince 5(4) tableau (Hairer's `dopri5`): nodes `C*`, stage weights `A*` (the
/// 7th stage's are the 5th-order solution, FSAL), error weights `E*` (5th − 4th order) and the
/// dense-output weights `D*`. Public so that batched host integrators use the same numbers.
#[allow(missing_docs)] // The names are the tableau's own (C2, A21, …).
pub mod tableau {
    pub const C2: f64 = 1.0 / 5.0;
    pub const C3: f64 = 3.0 / 10.0;
    pub const C4: f64 = 4.0 / 5.0;
    pub const C5: f64 = 8.0 / 9.0;
    pub const A21: f64 = 1.0 / 5.0;
    pub const A31: f64 = 3.0 / 40.0;
    pub const A32: f64 = 9.0 / 40.0;
    pub const A41: f64 = 44.0 / 45.0;
    pub const A42: f64 = -56.0 / 15.0;
    pub const A43: f64 = 32.0 / 9.0;
    pub const A51: f64 = 19372.0 / 6561.0;
    pub const A52: f64 = -25360.0 / 2187.0;
    pub const A53: f64 = 64448.0 / 6561.0;
    pub const A54: f64 = -212.0 / 729.0;
    pub const A61: f64 = 9017.0 / 3168.0;
    pub const A62: f64 = -355.0 / 33.0;
    pub const A63: f64 = 46732.0 / 5247.0;
    pub const A64: f64 = 49.0 / 176.0;
    pub const A65: f64 = -5103.0 / 18656.0;
    pub const A71: f64 = 35.0 / 384.0;
    pub const A73: f64 = 500.0 / 1113.0;
    pub const A74: f64 = 125.0 / 192.0;
    pub const A75: f64 = -2187.0 / 6784.0;
    pub const A76: f64 = 11.0 / 84.0;
    // Difference between the 5th- and 4th-order solutions.
    pub const E1: f64 = 71.0 / 57600.0;
    pub const E3: f64 = -71.0 / 16695.0;
    pub const E4: f64 = 71.0 / 1920.0;
    pub const E5: f64 = -17253.0 / 339200.0;
    pub const E6: f64 = 22.0 / 525.0;
    pub const E7: f64 = -1.0 / 40.0;
    // Dense output (Hairer's `contd5`).
    pub const D1: f64 = -12715105075.0 / 11282082432.0;
    pub const D3: f64 = 87487479700.0 / 32700410799.0;
    pub const D4: f64 = -10690763975.0 / 1880347072.0;
    pub const D5: f64 = 701980252875.0 / 199316789632.0;
    pub const D6: f64 = -1453857185.0 / 822651844.0;
    pub const D7: f64 = 69997945.0 / 29380423.0;
}
use tableau::*;

/// Tunables of [`Dopri5`], with Hairer's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dopri5Params<T> {
    /// First trial step; `None` chooses one from the problem (Hairer's `hinit`).
    pub h_init: Option<T>,
    /// Largest step allowed.
    pub h_max: T,
    /// Steps allowed for one call of [`Dopri5Solver::advance_to`].
    pub max_steps: usize,
    /// Safety factor on the predicted step.
    pub safety: T,
    /// Smallest factor by which a step may shrink.
    pub fac_min: T,
    /// Largest factor by which a step may grow.
    pub fac_max: T,
    /// PI-controller exponent β (0 gives the classic controller).
    pub beta: T,
}

impl<T: Real> Default for Dopri5Params<T> {
    fn default() -> Self {
        Self {
            h_init: None,
            h_max: T::MAX,
            max_steps: 100_000,
            safety: T::from_f64(0.9),
            fac_min: T::from_f64(0.2),
            fac_max: T::from_f64(10.0),
            beta: T::from_f64(0.04),
        }
    }
}

/// Adaptive Dormand–Prince 5(4): each accepted step keeps the local error estimate below
/// `atol + rtol·|z|` in the RMS norm. Start a run with [`Dopri5::start`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dopri5<T> {
    /// Relative tolerance (> 0).
    pub rtol: T,
    /// Absolute tolerance (≥ 0).
    pub atol: T,
    /// Controller settings.
    pub params: Dopri5Params<T>,
}

impl<T: Real> Dopri5<T> {
    /// Tolerances with default controller settings.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] unless `rtol > 0`, `atol ≥ 0`, both finite.
    pub fn new(rtol: T, atol: T) -> Result<Self> {
        Self::with_params(rtol, atol, Dopri5Params::default())
    }

    /// Tolerances and controller settings.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] naming the first invalid setting.
    pub fn with_params(rtol: T, atol: T, params: Dopri5Params<T>) -> Result<Self> {
        let bad = |name, v: T| {
            Err(Error::InvalidParameter {
                name,
                value: v.as_f64(),
            })
        };
        if !(rtol > T::ZERO) || !rtol.is_finite() {
            return bad("rtol", rtol);
        }
        if !(atol >= T::ZERO) || !atol.is_finite() {
            return bad("atol", atol);
        }
        if let Some(h) = params.h_init {
            if !(h > T::ZERO) || !h.is_finite() {
                return bad("h_init", h);
            }
        }
        if !(params.h_max > T::ZERO) {
            return bad("h_max", params.h_max);
        }
        if !(params.safety > T::ZERO && params.safety < T::ONE) {
            return bad("safety", params.safety);
        }
        if !(params.fac_min > T::ZERO && params.fac_min < T::ONE) {
            return bad("fac_min", params.fac_min);
        }
        if !(params.fac_max > T::ONE) {
            return bad("fac_max", params.fac_max);
        }
        if !(params.beta >= T::ZERO && params.beta < T::from_f64(0.2)) {
            return bad("beta", params.beta);
        }
        if params.max_steps == 0 {
            return Err(Error::InvalidParameter {
                name: "max_steps",
                value: 0.0,
            });
        }
        Ok(Self { rtol, atol, params })
    }

    /// Starts integrating `f` from `(t0, z0)`. Evaluates `f` once (or three times when the
    /// initial step is chosen automatically).
    ///
    /// # Errors
    /// [`Error::NonFinite`] if `z0` is not finite; errors of the vector field.
    pub fn start<F: VectorField<T>>(
        &self,
        f: &F,
        t0: T,
        z0: F::State,
    ) -> Result<Dopri5Solver<T, F::State>> {
        check_finite(z0.as_slice(), t0)?;
        let mut k1 = F::State::zeroed();
        f.rate(t0, &z0, &mut k1)?;
        check_finite(k1.as_slice(), t0)?;
        let mut stats = Dopri5Stats {
            evaluations: 1,
            ..Dopri5Stats::default()
        };
        let h = match self.params.h_init {
            Some(h) => h,
            None => self.initial_step(f, t0, &z0, &k1, &mut stats)?,
        };
        Ok(Dopri5Solver {
            config: *self,
            t: t0,
            z: z0,
            k1,
            h: h.min(self.params.h_max),
            fac_old: T::from_f64(1e-4),
            last_rejected: false,
            t_old: t0,
            h_old: T::ZERO,
            dense: [z0; 5],
            stats,
        })
    }

    /// Hairer's starting-step heuristic (`hinit`).
    fn initial_step<F: VectorField<T>>(
        &self,
        f: &F,
        t0: T,
        z0: &F::State,
        f0: &F::State,
        stats: &mut Dopri5Stats,
    ) -> Result<T> {
        let sk = |y: T| self.atol + self.rtol * y.abs();
        let n = T::from_usize(z0.as_slice().len().max(1));
        let mut dnf = T::ZERO;
        let mut dny = T::ZERO;
        for (y, d) in z0.as_slice().iter().zip(f0.as_slice()) {
            let s = sk(*y);
            dnf += (*d / s) * (*d / s);
            dny += (*y / s) * (*y / s);
        }
        let tiny = T::from_f64(1e-10);
        let mut h = if dnf <= tiny || dny <= tiny {
            T::from_f64(1e-6)
        } else {
            T::from_f64(0.01) * (dny / dnf).sqrt()
        };
        h = h.min(self.params.h_max);
        let mut z1 = *z0;
        for ((o, y), d) in z1
            .as_mut_slice()
            .iter_mut()
            .zip(z0.as_slice())
            .zip(f0.as_slice())
        {
            *o = *y + h * *d;
        }
        let mut f1 = F::State::zeroed();
        f.rate(t0 + h, &z1, &mut f1)?;
        stats.evaluations += 1;
        let mut der2 = T::ZERO;
        for ((y, a), b) in z0.as_slice().iter().zip(f1.as_slice()).zip(f0.as_slice()) {
            let s = sk(*y);
            der2 += ((*a - *b) / s) * ((*a - *b) / s);
        }
        let der2 = (der2 / n).sqrt() / h;
        let der12 = der2.max((dnf / n).sqrt());
        let h1 = if der12 <= T::from_f64(1e-15) {
            (h * T::from_f64(1e-3)).max(T::from_f64(1e-6))
        } else {
            (T::from_f64(0.01) / der12).libm_powf(T::from_f64(0.2))
        };
        Ok((T::from_f64(100.0) * h).min(h1).min(self.params.h_max))
    }
}

/// Counters of a [`Dopri5Solver`] run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dopri5Stats {
    /// Vector-field evaluations.
    pub evaluations: usize,
    /// Accepted steps.
    pub accepted: usize,
    /// Rejected steps.
    pub rejected: usize,
}

/// A Dormand–Prince run in progress: the current time and state, the next trial step, and the
/// interpolant over the last accepted step.
#[derive(Clone, Debug)]
pub struct Dopri5Solver<T, S> {
    config: Dopri5<T>,
    t: T,
    z: S,
    /// f(t, z): first stage of the next step (first-same-as-last).
    k1: S,
    h: T,
    fac_old: T,
    last_rejected: bool,
    t_old: T,
    h_old: T,
    dense: [S; 5],
    stats: Dopri5Stats,
}

impl<T: Real, S: StateVector<T>> Dopri5Solver<T, S> {
    /// Current time (end of the last accepted step).
    pub fn t(&self) -> T {
        self.t
    }

    /// State at [`Dopri5Solver::t`].
    pub fn state(&self) -> &S {
        &self.z
    }

    /// The step size the next step will try.
    pub fn next_step_size(&self) -> T {
        self.h
    }

    /// Evaluation and step counters so far.
    pub fn stats(&self) -> Dopri5Stats {
        self.stats
    }

    /// Takes one accepted step (retrying with smaller steps after rejections).
    ///
    /// # Errors
    /// [`Error::StepSizeUnderflow`] if the step shrinks below the time resolution,
    /// [`Error::NonFinite`] if a stage is not finite even at the smallest step, errors of the
    /// vector field. On error the solver keeps its last accepted state.
    pub fn step<F: VectorField<T, State = S>>(&mut self, f: &F) -> Result<()> {
        let p = self.config.params;
        let expo1 = T::from_f64(0.2) - p.beta * T::from_f64(0.75);
        let facc1 = T::ONE / p.fac_min;
        let facc2 = T::ONE / p.fac_max;
        loop {
            let h = self.h;
            let t = self.t;
            if h.abs() <= T::from_f64(16.0) * T::EPSILON * t.abs().max(T::MIN_POSITIVE)
                || !h.is_finite()
            {
                return Err(Error::StepSizeUnderflow {
                    t: t.as_f64(),
                    h: h.as_f64(),
                });
            }
            let z = self.z.as_slice();
            let k1 = self.k1.as_slice();
            let c = T::from_f64;
            let mut k2 = S::zeroed();
            let mut k3 = S::zeroed();
            let mut k4 = S::zeroed();
            let mut k5 = S::zeroed();
            let mut k6 = S::zeroed();
            let mut k7 = S::zeroed();
            let mut y = self.z;
            stage(&mut y, z, h, &[(c(A21), k1)]);
            f.rate(t + c(C2) * h, &y, &mut k2)?;
            stage(&mut y, z, h, &[(c(A31), k1), (c(A32), k2.as_slice())]);
            f.rate(t + c(C3) * h, &y, &mut k3)?;
            stage(
                &mut y,
                z,
                h,
                &[
                    (c(A41), k1),
                    (c(A42), k2.as_slice()),
                    (c(A43), k3.as_slice()),
                ],
            );
            f.rate(t + c(C4) * h, &y, &mut k4)?;
            stage(
                &mut y,
                z,
                h,
                &[
                    (c(A51), k1),
                    (c(A52), k2.as_slice()),
                    (c(A53), k3.as_slice()),
                    (c(A54), k4.as_slice()),
                ],
            );
            f.rate(t + c(C5) * h, &y, &mut k5)?;
            stage(
                &mut y,
                z,
                h,
                &[
                    (c(A61), k1),
                    (c(A62), k2.as_slice()),
                    (c(A63), k3.as_slice()),
                    (c(A64), k4.as_slice()),
                    (c(A65), k5.as_slice()),
                ],
            );
            let t_new = t + h;
            f.rate(t_new, &y, &mut k6)?;
            let mut y_new = y;
            stage(
                &mut y_new,
                z,
                h,
                &[
                    (c(A71), k1),
                    (c(A73), k3.as_slice()),
                    (c(A74), k4.as_slice()),
                    (c(A75), k5.as_slice()),
                    (c(A76), k6.as_slice()),
                ],
            );
            f.rate(t_new, &y_new, &mut k7)?;
            self.stats.evaluations += 6;

            // Error estimate in the RMS norm weighted by atol + rtol·max(|z|, |z_new|).
            let mut err = T::ZERO;
            let n = z.len();
            for i in 0..n {
                let e = h
                    * (c(E1) * k1[i]
                        + c(E3) * k3.as_slice()[i]
                        + c(E4) * k4.as_slice()[i]
                        + c(E5) * k5.as_slice()[i]
                        + c(E6) * k6.as_slice()[i]
                        + c(E7) * k7.as_slice()[i]);
                let sk =
                    self.config.atol + self.config.rtol * z[i].abs().max(y_new.as_slice()[i].abs());
                let r = e / sk;
                err += r * r;
            }
            let err = (err / T::from_usize(n.max(1))).sqrt();
            let finite = err.is_finite() && y_new.as_slice().iter().all(|v| v.is_finite());

            if finite && err <= T::ONE {
                // Accept. PI step-size control (Hairer's DOPRI5).
                let fac11 = err.libm_powf(expo1);
                let fac = fac11 / self.fac_old.libm_powf(p.beta);
                let fac = facc2.max(facc1.min(fac / p.safety));
                let mut h_new = (h / fac).min(p.h_max);
                if self.last_rejected {
                    h_new = h_new.min(h);
                }
                self.fac_old = err.max(T::from_f64(1e-4));
                // Dense-output coefficients for [t, t + h].
                let [r1, r2, r3, r4, r5] = &mut self.dense;
                for i in 0..n {
                    let y0 = z[i];
                    let y1 = y_new.as_slice()[i];
                    let ydiff = y1 - y0;
                    let bspl = h * k1[i] - ydiff;
                    r1.as_mut_slice()[i] = y0;
                    r2.as_mut_slice()[i] = ydiff;
                    r3.as_mut_slice()[i] = bspl;
                    r4.as_mut_slice()[i] = ydiff - h * k7.as_slice()[i] - bspl;
                    r5.as_mut_slice()[i] = h
                        * (c(D1) * k1[i]
                            + c(D3) * k3.as_slice()[i]
                            + c(D4) * k4.as_slice()[i]
                            + c(D5) * k5.as_slice()[i]
                            + c(D6) * k6.as_slice()[i]
                            + c(D7) * k7.as_slice()[i]);
                }
                self.t_old = t;
                self.h_old = h;
                self.t = t_new;
                self.z = y_new;
                self.k1 = k7;
                self.h = h_new;
                self.last_rejected = false;
                self.stats.accepted += 1;
                return Ok(());
            }
            // Reject: shrink and retry.
            self.stats.rejected += 1;
            self.last_rejected = true;
            let shrink = if finite {
                facc1.min(err.libm_powf(expo1) / p.safety)
            } else {
                // A non-finite stage: back off hard and try again.
                T::from_f64(10.0)
            };
            self.h = h / shrink;
        }
    }

    /// Integrates until `t_out` (≥ the current time) and returns the state there, interpolated
    /// with the dense output; the solver itself may end up past `t_out`. Output times must be
    /// requested in increasing order.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] (`t_out`) if `t_out` lies before the last accepted step;
    /// [`Error::TooManySteps`] after `max_steps` steps; errors of [`Dopri5Solver::step`].
    pub fn advance_to<F: VectorField<T, State = S>>(&mut self, f: &F, t_out: T) -> Result<S> {
        if !t_out.is_finite() || t_out < self.t_old {
            return Err(Error::InvalidParameter {
                name: "t_out",
                value: t_out.as_f64(),
            });
        }
        let mut steps = 0;
        while self.t < t_out {
            if steps == self.config.params.max_steps {
                return Err(Error::TooManySteps {
                    t: self.t.as_f64(),
                    max_steps: self.config.params.max_steps,
                });
            }
            self.step(f)?;
            steps += 1;
        }
        Ok(self.interpolate(t_out))
    }

    /// The dense-output state at `t` within the last accepted step `[t_old, t]` (fourth order);
    /// the current state when no step has been taken yet.
    pub fn interpolate(&self, t: T) -> S {
        if t == self.t || self.h_old == T::ZERO {
            return self.z;
        }
        let theta = (t - self.t_old) / self.h_old;
        let theta1 = T::ONE - theta;
        let mut out = self.z;
        let [r1, r2, r3, r4, r5] = &self.dense;
        for (i, o) in out.as_mut_slice().iter_mut().enumerate() {
            *o = r1.as_slice()[i]
                + theta
                    * (r2.as_slice()[i]
                        + theta1
                            * (r3.as_slice()[i]
                                + theta * (r4.as_slice()[i] + theta1 * r5.as_slice()[i])));
        }
        out
    }
}

/// `y = z + h Σ aᵢ kᵢ`.
#[inline]
fn stage<T: Real, S: StateVector<T>>(y: &mut S, z: &[T], h: T, terms: &[(T, &[T])]) {
    super::combine(y.as_mut_slice(), z, h, terms);
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sho;
    impl VectorField<f64> for Sho {
        type State = [f64; 2];
        fn rate(&self, _t: f64, z: &[f64; 2], dz: &mut [f64; 2]) -> Result<()> {
            *dz = [z[1], -z[0]];
            Ok(())
        }
    }

    #[test]
    fn meets_tolerance_at_output_times() {
        for rtol in [1e-6, 1e-9, 1e-12] {
            let d = Dopri5::new(rtol, rtol).unwrap();
            let mut s = d.start(&Sho, 0.0, [1.0, 0.0]).unwrap();
            let mut worst = 0.0f64;
            for i in 1..=40 {
                let t = i as f64 * 0.25;
                let z = s.advance_to(&Sho, t).unwrap();
                worst = worst
                    .max((z[0] - t.libm_cos()).abs())
                    .max((z[1] + t.libm_sin()).abs());
            }
            // Global error is a modest multiple of the local tolerance over ~1.6 periods.
            assert!(worst < 50.0 * rtol, "rtol {rtol}: error {worst}");
            assert!(worst > 0.0);
        }
    }

    #[test]
    fn dense_output_is_continuous_and_exact_at_ends() {
        let d = Dopri5::new(1e-8, 1e-8).unwrap();
        let mut s = d.start(&Sho, 0.0, [1.0, 0.0]).unwrap();
        s.step(&Sho).unwrap();
        let (t0, t1) = (s.t_old, s.t);
        let a = s.interpolate(t0);
        assert!((a[0] - 1.0).abs() < 1e-15 && a[1].abs() < 1e-15);
        assert_eq!(s.interpolate(t1), *s.state());
        // Midpoint within the step's tolerance of the truth.
        let tm = 0.5 * (t0 + t1);
        let m = s.interpolate(tm);
        assert!((m[0] - tm.libm_cos()).abs() < 1e-8 && (m[1] + tm.libm_sin()).abs() < 1e-8);
    }

    #[test]
    fn dense_output_is_fourth_order() {
        // Interpolation error in one step with a forced step size h scales as h⁵.
        let err_for = |h: f64| {
            let params = Dopri5Params {
                h_init: Some(h),
                ..Default::default()
            };
            let d = Dopri5::with_params(1.0, 1.0, params).unwrap();
            let mut s = d.start(&Sho, 0.0, [1.0, 0.0]).unwrap();
            s.step(&Sho).unwrap();
            assert_eq!(s.t, h);
            let tm = 0.37 * h;
            let m = s.interpolate(tm);
            (m[0] - tm.libm_cos())
                .abs()
                .max((m[1] + tm.libm_sin()).abs())
        };
        let order = (err_for(0.2) / err_for(0.1)).log2();
        assert!(order > 4.5, "local interpolation order {order}");
    }

    #[test]
    fn invalid_tolerances_are_rejected() {
        assert!(Dopri5::new(0.0f64, 1e-9).is_err());
        assert!(Dopri5::new(1e-9f64, -1.0).is_err());
        assert!(Dopri5::new(f64::NAN, 1e-9).is_err());
    }

    #[test]
    fn finite_time_blow_up_is_a_step_size_underflow() {
        // ż = z², z(0) = 1 blows up at t = 1.
        struct Blow;
        impl VectorField<f64> for Blow {
            type State = [f64; 1];
            fn rate(&self, _t: f64, z: &[f64; 1], dz: &mut [f64; 1]) -> Result<()> {
                dz[0] = z[0] * z[0];
                Ok(())
            }
        }
        let d = Dopri5::new(1e-8, 1e-8).unwrap();
        let mut s = d.start(&Blow, 0.0, [1.0]).unwrap();
        let err = s.advance_to(&Blow, 2.0).unwrap_err();
        assert!(
            matches!(
                err,
                Error::StepSizeUnderflow { .. } | Error::TooManySteps { .. }
            ),
            "{err:?}"
        );
        // It follows the solution right up to the pole (t accumulates rounding, hence the slack).
        assert!(
            s.t() < 1.0 + 1e-6 && s.state()[0] > 1e6,
            "{err:?} at t = {}",
            s.t()
        );
    }
}
