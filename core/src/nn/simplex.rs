//! An ensemble of simplexes of ReLU MLPs (ESPRO: Benton, Maddox, Lotfi & Wilson, "Loss Surface
//! Simplexes for Mode Connecting Volumes and Fast Ensembling", ICML 2021; reference code
//! g-benton/loss-surface-simplexes, `simplex/models/simplex_models.py`), as exported by
//! `keel simplex train --export`.
//!
//! Component `k` is a simplex with `n` vertices `w_{k,0} … w_{k,n−1}`; a point of it is the
//! network with weights `Σ_j α_j w_{k,j}` for `α` on the probability simplex. The prediction
//! averages class probabilities over components and points:
//! `p(y | x) = (1/(K·S)) Σ_k Σ_s softmax(f(x; Σ_j α_{s,j} w_{k,j}))` — the reference released no
//! ensemble evaluation; averaging probabilities (not logits) over components × points is Keel's
//! documented choice, as for every other ensemble.
//!
//! The file (`keel.kind = "simplex"`, `keel.config` with `"model": "mlp"` and
//! `"activation": "relu"`) holds:
//! - `vertices` `[K, n, P]`: one flat parameter vector per component and vertex, layer by layer
//!   `W` (`[out, in]`, row-major) then `b` — the layout of [`super::Bma`]'s samples;
//! - `points` `[S, n]`: the fixed interior points `α` [`Simplex::predict`] uses (each row on the
//!   probability simplex);
//! - `sizes` `[L + 1]`: the widths `[in, h₁, …, classes]` (integers stored as floats);
//! - `input.mean`, `input.std` `[in]`: the input standardisation the simplexes were trained with.
//!
//! The combined weights are never formed: the pre-activation of a layer is linear in the weights,
//! so `(Σ_j α_j W_j) h + Σ_j α_j b_j = Σ_j α_j (W_j h + b_j)` is evaluated in place over the
//! vertices in flash, with the first layer's `n` pre-activations computed once per component and
//! shared by all its points. Cost per prediction: `K·n·P₀ + K·S·n·(P − P₀)` multiply–adds (`P₀`
//! the first layer's parameters); scratch `2·widest + n·h₁` values; nothing is allocated.

use rand_core::Rng;

use super::bma::widths;
use super::weights::Floats;
use crate::io::json::Parser;
use crate::io::SafeTensors;
use crate::{Error, Real, Result};

/// Most vertices per simplex (`α` lives on the stack).
pub const MAX_VERTICES: usize = 16;

/// The ensemble of simplexes of one file, networks of at most `L` layers.
#[derive(Clone, Copy, Debug)]
pub struct Simplex<'a, const L: usize> {
    vertices: Floats<'a>,
    points: Floats<'a>,
    mean: Floats<'a>,
    std: Floats<'a>,
    /// Widths `[in, h₁, …, out]`; the first `layers + 1` are used.
    sizes: [usize; 16],
    layers: usize,
    components: usize,
    vertex_count: usize,
    point_count: usize,
    params: usize,
    widest: usize,
}

impl<'a, const L: usize> Simplex<'a, L> {
    /// Reads and checks a `simplex` file.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for another `keel.kind`, a model other than a ReLU MLP, widths
    /// that are not positive integers, a parameter count that disagrees with them, or a point
    /// off the probability simplex; [`Error::CapacityExceeded`] for more than `L` layers (or 15)
    /// or more than [`MAX_VERTICES`] vertices; [`Error::TensorNotFound`] /
    /// [`Error::TensorShape`] for missing or misshapen tensors; [`Error::UnsupportedDtype`] for
    /// non-float data; [`Error::InvalidJson`] for a malformed `keel.config`.
    pub fn from_safetensors<const MAX: usize>(st: &SafeTensors<'a, MAX>) -> Result<Self> {
        match st.metadata("keel.kind") {
            Some(k) if k == "simplex" => {}
            _ => {
                return Err(Error::InvalidConfig {
                    what: "`keel.kind` is not `simplex`",
                })
            }
        }
        let config = st.metadata("keel.config").ok_or(Error::InvalidConfig {
            what: "a `simplex` file needs `keel.config`",
        })?;
        parse_config(config)?;
        let find = |name: &'static str| {
            st.tensor(name).map_err(|_| Error::TensorNotFound {
                role: name,
                layer: None,
            })
        };
        let vertices = find("vertices")?;
        let points = find("points")?;
        let sizes_t = find("sizes")?;
        let mean = find("input.mean")?;
        let std = find("input.std")?;
        let shape_err = |role| Error::TensorShape { role, layer: None };
        let vs = vertices.shape();
        if vertices.rank() != 3 || vs[0] == 0 || vs[1] == 0 {
            return Err(shape_err("vertices"));
        }
        let (components, vertex_count) = (vs[0], vs[1]);
        if vertex_count > MAX_VERTICES {
            return Err(Error::CapacityExceeded {
                what: "simplex vertices",
                capacity: MAX_VERTICES,
            });
        }
        if points.rank() != 2 || points.shape()[0] == 0 || points.shape()[1] != vertex_count {
            return Err(shape_err("points"));
        }
        if sizes_t.rank() != 1 || sizes_t.len() < 2 {
            return Err(shape_err("sizes"));
        }
        let (sizes, layers, params) = widths::<L>(&sizes_t, "simplex layers")?;
        if vs[2] != params {
            return Err(Error::InvalidConfig {
                what: "the vertices' length disagrees with `sizes`",
            });
        }
        for (t, role) in [(&mean, "input.mean"), (&std, "input.std")] {
            if t.rank() != 1 || t.len() != sizes[0] {
                return Err(shape_err(role));
            }
        }
        for i in 0..sizes[0] {
            let s = std.get_f64(i)?;
            if !(s > 0.0 && s.is_finite()) {
                return Err(Error::InvalidConfig {
                    what: "`input.std` must be positive",
                });
            }
        }
        let point_count = points.shape()[0];
        for s in 0..point_count {
            let mut total = 0.0;
            for j in 0..vertex_count {
                let a = points.get_f64(s * vertex_count + j)?;
                if !(0.0..=1.0).contains(&a) {
                    return Err(Error::InvalidConfig {
                        what: "every `points` weight must lie in [0, 1]",
                    });
                }
                total += a;
            }
            // f32 rounding of n weights summing to one: far inside 1e-4 for n ≤ 16.
            if (total - 1.0).abs() > 1e-4 {
                return Err(Error::InvalidConfig {
                    what: "every row of `points` must sum to 1",
                });
            }
        }
        Ok(Simplex {
            vertices: Floats::new(&vertices)?,
            points: Floats::new(&points)?,
            mean: Floats::new(&mean)?,
            std: Floats::new(&std)?,
            sizes,
            layers,
            components,
            vertex_count,
            point_count,
            params,
            widest: sizes[..=layers].iter().copied().max().unwrap_or(0),
        })
    }

    /// Number of simplexes `K`.
    pub fn components(&self) -> usize {
        self.components
    }

    /// Vertices per simplex `n`.
    pub fn vertices(&self) -> usize {
        self.vertex_count
    }

    /// Fixed interior points `S` per simplex.
    pub fn points(&self) -> usize {
        self.point_count
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// Classes (output width).
    pub fn classes(&self) -> usize {
        self.sizes[self.layers]
    }

    /// Parameters per vertex.
    pub fn parameters(&self) -> usize {
        self.params
    }

    /// Scratch the predictions need: two activation buffers of the widest layer and the first
    /// layer's pre-activations of every vertex.
    pub fn scratch_len(&self) -> usize {
        2 * self.widest + self.vertex_count * self.sizes[1]
    }

    fn check<T: Real>(&self, x: &[T], out: &[T], scratch: &[T]) -> Result<()> {
        if x.len() != self.inputs() {
            return Err(Error::ShapeMismatch {
                what: "x",
                expected: self.inputs(),
                got: x.len(),
            });
        }
        if out.len() != self.classes() {
            return Err(Error::ShapeMismatch {
                what: "probs",
                expected: self.classes(),
                got: out.len(),
            });
        }
        if scratch.len() < self.scratch_len() {
            return Err(Error::ScratchTooSmall {
                needed: self.scratch_len(),
                got: scratch.len(),
            });
        }
        Ok(())
    }

    /// The averaged class probabilities of raw (unstandardised) input `x` into `probs`, over
    /// every component and the file's fixed points.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for `x` or `probs` of the wrong length;
    /// [`Error::ScratchTooSmall`]; [`Error::NonFinite`] if an output is not finite.
    pub fn predict<T: Real>(&self, x: &[T], probs: &mut [T], scratch: &mut [T]) -> Result<()> {
        self.check(x, probs, scratch)?;
        let n = self.vertex_count;
        let points = self.points;
        self.average(x, probs, scratch, self.point_count, |s, alpha: &mut [T]| {
            for (j, a) in alpha[..n].iter_mut().enumerate() {
                *a = points.get(s * n + j);
            }
        })
    }

    /// As [`Simplex::predict`], over `draws` points per component drawn from Dirichlet(1, …, 1)
    /// with `rng` (`α_j = E_j / Σ E`, `E_j = −ln U_j`, as the reference's `vertex_weights`).
    ///
    /// # Errors
    /// As [`Simplex::predict`]; [`Error::InvalidParameter`] for `draws = 0`.
    pub fn predict_sampled<T: Real, R: Rng + ?Sized>(
        &self,
        x: &[T],
        draws: usize,
        rng: &mut R,
        probs: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.check(x, probs, scratch)?;
        if draws == 0 {
            return Err(Error::InvalidParameter {
                name: "draws",
                value: 0.0,
            });
        }
        let n = self.vertex_count;
        self.average(x, probs, scratch, draws, |_, alpha: &mut [T]| {
            dirichlet_ones(rng, &mut alpha[..n]);
        })
    }

    /// The logits of the single network at point `alpha` of simplex `component` for raw input
    /// `x` (a check against the host's combined weights).
    ///
    /// # Errors
    /// As [`Simplex::predict`]; [`Error::IndexOutOfRange`] for a component past the last;
    /// [`Error::ShapeMismatch`] for `alpha` not of length `n`.
    pub fn logits_at<T: Real>(
        &self,
        x: &[T],
        component: usize,
        alpha: &[T],
        logits: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.check(x, logits, scratch)?;
        if component >= self.components {
            return Err(Error::IndexOutOfRange {
                what: "component",
                index: component,
                len: self.components,
            });
        }
        if alpha.len() != self.vertex_count {
            return Err(Error::ShapeMismatch {
                what: "alpha",
                expected: self.vertex_count,
                got: alpha.len(),
            });
        }
        let (cache, rest) = scratch.split_at_mut(self.vertex_count * self.sizes[1]);
        self.first_layer(x, component, cache, rest);
        let out = self.point(component, alpha, cache, rest);
        logits.copy_from_slice(&out[..self.classes()]);
        Ok(())
    }

    /// `cache[j·h₁ ..]` ← `W₀_j a + b₀_j` for every vertex `j` of `component`, `a` the
    /// standardised `x` (in `rest`).
    fn first_layer<T: Real>(&self, x: &[T], component: usize, cache: &mut [T], rest: &mut [T]) {
        let (inp, h1) = (self.sizes[0], self.sizes[1]);
        let a = &mut rest[..inp];
        for (((ai, &xi), m), sd) in a
            .iter_mut()
            .zip(x)
            .zip(self.mean.iter::<T>())
            .zip(self.std.iter::<T>())
        {
            *ai = (xi - m) / sd;
        }
        for (j, pre) in cache.chunks_exact_mut(h1).enumerate() {
            let at = (component * self.vertex_count + j) * self.params;
            let weight = self.vertices.slice(at, h1 * inp);
            let bias = self.vertices.slice(at + h1 * inp, h1);
            for ((p, row), b) in pre.iter_mut().zip(weight.rows(inp)).zip(bias.iter::<T>()) {
                *p = row.dot(a) + b;
            }
        }
    }

    /// The network at `alpha` of `component` from its cached first-layer pre-activations; returns
    /// the buffer (in `rest`) whose first `classes` values are the logits.
    fn point<'s, T: Real>(
        &self,
        component: usize,
        alpha: &[T],
        cache: &[T],
        rest: &'s mut [T],
    ) -> &'s [T] {
        let n = self.vertex_count;
        let h1 = self.sizes[1];
        let (a, b) = rest[..2 * self.widest].split_at_mut(self.widest);
        let (mut cur, mut next) = (a, b);
        let hidden = self.layers > 1;
        for (i, c) in cur[..h1].iter_mut().enumerate() {
            let mut v = T::ZERO;
            for (j, &aj) in alpha.iter().enumerate().take(n) {
                v += aj * cache[j * h1 + i];
            }
            *c = if hidden && v < T::ZERO { T::ZERO } else { v };
        }
        let mut offset = h1 * self.sizes[0] + h1;
        for l in 1..self.layers {
            let (inp, out) = (self.sizes[l], self.sizes[l + 1]);
            let hidden = l + 1 < self.layers;
            next[..out].fill(T::ZERO);
            for (j, &aj) in alpha.iter().enumerate().take(n) {
                let at = (component * n + j) * self.params + offset;
                let weight = self.vertices.slice(at, out * inp);
                let bias = self.vertices.slice(at + out * inp, out);
                for ((nk, row), bk) in next[..out]
                    .iter_mut()
                    .zip(weight.rows(inp))
                    .zip(bias.iter::<T>())
                {
                    *nk += aj * (row.dot(&cur[..inp]) + bk);
                }
            }
            if hidden {
                for v in &mut next[..out] {
                    if *v < T::ZERO {
                        *v = T::ZERO;
                    }
                }
            }
            offset += out * inp + out;
            core::mem::swap(&mut cur, &mut next);
        }
        cur
    }

    /// Averages softmax over every component and `count` points per component, `fill(s, α)`
    /// giving point `s`.
    fn average<T: Real>(
        &self,
        x: &[T],
        probs: &mut [T],
        scratch: &mut [T],
        count: usize,
        mut fill: impl FnMut(usize, &mut [T]),
    ) -> Result<()> {
        let classes = self.classes();
        probs.fill(T::ZERO);
        let weight = T::ONE / T::from_f64((self.components * count) as f64);
        let mut alpha = [T::ZERO; MAX_VERTICES];
        let (cache, rest) = scratch.split_at_mut(self.vertex_count * self.sizes[1]);
        for k in 0..self.components {
            self.first_layer(x, k, cache, rest);
            for s in 0..count {
                fill(s, &mut alpha);
                let logits = &self.point(k, &alpha[..self.vertex_count], cache, rest)[..classes];
                // Stable softmax, accumulated. cannot fail: classes ≥ 1 (sizes checked).
                let mut max = logits[0];
                for &v in logits {
                    if v > max {
                        max = v;
                    }
                }
                let mut total = T::ZERO;
                for &v in logits {
                    total += (v - max).libm_exp();
                }
                if !total.is_finite() || !max.is_finite() {
                    return Err(Error::NonFinite {
                        index: k * count + s,
                        t: 0.0,
                    });
                }
                for (p, &v) in probs.iter_mut().zip(logits) {
                    *p += weight * (v - max).libm_exp() / total;
                }
            }
        }
        Ok(())
    }
}

/// One Dirichlet(1, …, 1) draw into `alpha`: normalised standard exponentials (`−ln U`, `U` in
/// `(0, 1]` so every weight is finite), computed in `f64`.
pub fn dirichlet_ones<T: Real, R: Rng + ?Sized>(rng: &mut R, alpha: &mut [T]) {
    let mut e = [0.0f64; MAX_VERTICES];
    let n = alpha.len().min(MAX_VERTICES);
    let mut total = 0.0;
    for ej in &mut e[..n] {
        let u = ((rng.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
        *ej = -libm::log(u);
        total += *ej;
    }
    // total > 0: with U ≤ 1 every E ≥ 0, and all n of them are 0 only if every U = 1 exactly —
    // then fall back to the centroid.
    for (a, &ej) in alpha.iter_mut().zip(&e[..n]) {
        *a = T::from_f64(if total > 0.0 {
            ej / total
        } else {
            1.0 / n as f64
        });
    }
}

/// `keel.config` must say `"model": "mlp"` and, when present, `"activation": "relu"`.
fn parse_config(config: crate::io::JsonStr<'_>) -> Result<()> {
    let mut p = Parser::new(config.bytes());
    if p.peek_token() != Some(b'{') {
        return Err(Error::InvalidConfig {
            what: "`keel.config` must be a JSON object",
        });
    }
    p.begin_object()?;
    let mut model = false;
    let mut first = true;
    while p.next_member(&mut first)? {
        let mut buf = [0u8; 32];
        let key = p.small_string(&mut buf)?;
        p.colon()?;
        match key {
            Some("model") => {
                let mut v = [0u8; 16];
                if p.small_string(&mut v)? != Some("mlp") {
                    return Err(Error::InvalidConfig {
                        what: "the core evaluates simplexes of MLPs only (`model` is not `mlp`)",
                    });
                }
                model = true;
            }
            Some("activation") => {
                let mut v = [0u8; 16];
                if p.small_string(&mut v)? != Some("relu") {
                    return Err(Error::InvalidConfig {
                        what: "the core evaluates simplexes of ReLU MLPs only",
                    });
                }
            }
            _ => p.skip_value()?,
        }
    }
    p.end()?;
    if !model {
        return Err(Error::InvalidConfig {
            what: "`keel.config` has no `model`",
        });
    }
    Ok(())
}
