//! EMLP layers on Keel's engine (the reference's `emlp/nn/objax.py`): the projected equivariant
//! Linear layer, the cheap BiLinear layer, gated nonlinearities, `uniform_rep` channel allocation,
//! EMLP blocks and the EMLP network.
//!
//! Weights are stored as the reference stores them — an unconstrained `N_out × N_in` matrix `w`
//! and bias `b` — and projected on every forward pass, `W = P_W w`, `b_eff = P_b b`. The
//! projection never forms `P`: per distinct monomial key of `rep_in → rep_out` it gathers the
//! entries of all terms with that key into an `n × m` matrix `G`, computes `Q (Qᵀ G)` with the
//! monomial's orthonormal basis `Q` (`n × r`), and scatters back.

use std::collections::BTreeMap;
use std::sync::Arc;

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};

use super::group::Group;
use super::rep::{Rep, Term};
use super::solve::Solver;
use crate::backend::DType;
use crate::error::{Error, Result};
use crate::export::f32_bytes;
use crate::init;
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// A hidden representation: a direct sum of `T(p, q)` of one group, in order.
pub type Summands = Vec<(usize, usize)>;

/// The reference's `uniform_rep`: spread `ch` channels over tensor ranks so that each rank gets a
/// similar share of the dimension, splitting rank-r tensors between `T(k, r−k)` binomially
/// (leftovers drawn from Binomial(r, ½) with `rng`). Ordered by rank, then by the number of duals.
pub fn uniform_rep(ch: usize, g: &Group, rng: &mut Xoshiro256PlusPlus) -> Result<Summands> {
    let d = g.d;
    if ch == 0 {
        return Err(Error::invalid("ch", ch, "must be positive"));
    }
    let lambert = |ch: usize| -> usize {
        let mut r = 0usize;
        while (r + 2).saturating_mul(d.saturating_pow(r as u32 + 1)) <= ch {
            r += 1;
        }
        r
    };
    let mut counts: Vec<usize> = vec![0; lambert(ch) + 1];
    let mut left = ch;
    while left > 0 {
        let r = lambert(left);
        for (k, c) in counts.iter_mut().enumerate().take(r + 1) {
            *c += d.pow((r - k) as u32);
        }
        left -= (r + 1) * d.pow(r as u32);
    }
    let mut out: Summands = Vec::new();
    for (r, &n) in counts.iter().enumerate() {
        let per = n >> r;
        for k in 0..=r {
            let binom = (0..k).fold(1usize, |a, i| a * (r - i) / (i + 1));
            out.extend(std::iter::repeat_n((k, r - k), per * binom));
        }
        for _ in 0..n % (1 << r) {
            let p = (0..r).filter(|_| uniform::<f64, _>(rng) < 0.5).count();
            out.push((p, r - p));
        }
    }
    if g.orthogonal {
        // V* ≡ V: every rank-r summand is T(r).
        out.iter_mut().for_each(|s| *s = (s.0 + s.1, 0));
    }
    out.sort_by_key(|&(p, q)| (p + q, q));
    Ok(out)
}

/// `summands` in the reference's notation, e.g. `122*Scalar+40*V+12*V**2` (`V.T` for duals).
pub fn describe(s: &Summands) -> String {
    let mut parts: Vec<(String, usize)> = Vec::new();
    for &(p, q) in s {
        let name = match (p, q) {
            (0, 0) => "Scalar".to_string(),
            (1, 0) => "V".to_string(),
            (p, 0) => format!("V**{p}"),
            (0, 1) => "V.T".to_string(),
            (p, q) => format!("T({p},{q})"),
        };
        match parts.last_mut() {
            Some((n, c)) if *n == name => *c += 1,
            _ => parts.push((name, 1)),
        }
    }
    parts
        .iter()
        .map(|(n, c)| {
            if *c == 1 {
                n.clone()
            } else {
                format!("{c}*{n}")
            }
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// The representation of `summands`.
pub fn summands_rep(g: &Arc<Group>, s: &Summands) -> Rep {
    Rep::Sum(s.iter().map(|&(p, q)| Rep::t(g, p, q)).collect())
}

/// `gated(rep)`: one extra scalar per non-scalar summand, unless the group acts by permutations
/// (then swish needs no gate).
pub fn gated(g: &Group, s: &Summands) -> Summands {
    let mut out = s.clone();
    if !g.permutation {
        out.extend(std::iter::repeat_n(
            (0, 0),
            s.iter().filter(|&&(p, q)| p + q > 0).count(),
        ));
    }
    out
}

/// Gate index of every channel of `s` within `gated(s)`.
pub fn gate_indices(g: &Group, s: &Summands) -> Vec<usize> {
    let size: usize = s.iter().map(|&(p, q)| g.d.pow((p + q) as u32)).sum();
    let mut idx = Vec::with_capacity(size);
    let mut gate = size;
    for &(p, q) in s {
        let n = g.d.pow((p + q) as u32);
        if p + q == 0 || g.permutation {
            let start = idx.len();
            idx.extend(start..start + n);
        } else {
            idx.extend(std::iter::repeat_n(gate, n));
            gate += 1;
        }
    }
    idx
}

/// `v ↦ P v` for a vector laid out as a representation's terms, without forming `P`.
#[derive(Clone, Debug)]
pub struct Projection {
    size: usize,
    /// Per key: basis `Q` (`n × r`, constant), `n`, `m`.
    blocks: Vec<(Tensor, usize, usize)>,
    /// Positions of every block's `n × m` entries, concatenated.
    gather: Vec<usize>,
    /// Dense `Q` per block (f64), for export.
    dense: Vec<(Arc<super::Mat>, Vec<usize>)>,
}

/// Terms grouped by key, in first-seen order.
fn by_key(terms: Vec<Term>) -> Vec<(String, Vec<Term>)> {
    let mut order: Vec<String> = Vec::new();
    let mut map: BTreeMap<String, Vec<Term>> = BTreeMap::new();
    for t in terms {
        let k = t.key();
        if !map.contains_key(&k) {
            order.push(k.clone());
        }
        map.entry(k).or_default().push(t);
    }
    order
        .into_iter()
        .map(|k| {
            let v = map.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect()
}

impl Projection {
    /// The projection onto the invariant vectors of `rep`.
    pub fn new(rep: &Rep, solver: &Solver, dtype: DType) -> Result<Projection> {
        let terms = rep
            .terms()
            .map_err(|what| Error::TooLarge { what, bytes: 0 })?;
        let mut blocks = Vec::new();
        let mut gather = Vec::new();
        let mut dense = Vec::new();
        for (_, ts) in by_key(terms) {
            let q = solver.term_basis(&ts[0])?;
            if q.cols == 0 {
                continue;
            }
            let (n, m) = (q.rows, ts.len());
            let mut idx = Vec::with_capacity(n * m);
            for k in 0..n {
                for t in &ts {
                    idx.push(t.indices[k]);
                }
            }
            let qt = Tensor::from_f64s(&q.data, &[q.rows, q.cols], dtype)?;
            blocks.push((qt, n, m));
            dense.push((q, idx.clone()));
            gather.extend(idx);
        }
        Ok(Projection {
            size: rep.size(),
            blocks,
            gather,
            dense,
        })
    }

    /// The projection with its constant bases on `device`.
    ///
    /// # Errors
    /// Device errors.
    pub fn to_device(&self, device: crate::backend::Device) -> Result<Projection> {
        self.map_bases(|q| Ok(q.to_device(device)?))
    }

    /// The projection with its constant bases in `dtype`.
    ///
    /// # Errors
    /// Conversion errors.
    pub fn to_dtype(&self, dtype: DType) -> Result<Projection> {
        self.map_bases(|q| Ok(q.to_dtype(dtype)?))
    }

    fn map_bases(&self, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Projection> {
        let blocks = self
            .blocks
            .iter()
            .map(|(q, n, m)| Ok((f(q)?, *n, *m)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Projection {
            blocks,
            ..self.clone()
        })
    }

    /// Number of free parameters the projection leaves (the basis dimension).
    pub fn dim(&self) -> usize {
        self.blocks.iter().map(|(q, _, m)| q.dims()[1] * m).sum()
    }

    /// `P v` for `v` of shape `[size]`.
    pub fn apply(&self, v: &Tensor) -> Result<Tensor> {
        if self.blocks.is_empty() {
            return Ok(v.zeros_like()?);
        }
        let g = v.index_select(0, &self.gather)?;
        let mut parts = Vec::with_capacity(self.blocks.len());
        let mut off = 0;
        for (q, n, m) in &self.blocks {
            let blk = g.narrow(0, off, n * m)?.reshape(&[*n, *m])?;
            let coef = q.matmul_t(&blk, true, false)?;
            parts.push(q.matmul(&coef)?.reshape(&[n * m])?);
            off += n * m;
        }
        let flat = if parts.len() == 1 {
            parts.pop().unwrap_or_else(|| unreachable!())
        } else {
            Tensor::concat(&parts, 0)?
        };
        Ok(flat.index_add(0, &self.gather, self.size)?)
    }

    /// `P v` in f64 on plain vectors (for export).
    pub fn apply_f64(&self, v: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.size];
        for (q, idx) in &self.dense {
            let (n, r) = (q.rows, q.cols);
            let m = idx.len() / n;
            for j in 0..m {
                let mut coef = vec![0.0; r];
                for k in 0..n {
                    let x = v[idx[k * m + j]];
                    for c in 0..r {
                        coef[c] += q.at(k, c) * x;
                    }
                }
                for k in 0..n {
                    out[idx[k * m + j]] = (0..r).map(|c| q.at(k, c) * coef[c]).sum();
                }
            }
        }
        out
    }
}

/// The equivariant linear layer `rep_in → rep_out`: `y = (P_W w) x + P_b b`.
#[derive(Clone, Debug)]
pub struct EquivLinear {
    /// `w` (`[N_out, N_in]`).
    pub w: ParamId,
    /// `b` (`[N_out]`).
    pub b: ParamId,
    /// Sizes.
    pub n_in: usize,
    /// Output size.
    pub n_out: usize,
    /// Weight projection.
    pub pw: Projection,
    /// Bias projection.
    pub pb: Projection,
}

impl EquivLinear {
    /// A layer initialised as the reference's: `w` orthogonal, `b ~ U(0,1)/√N_out`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: &mut Params,
        name: &str,
        rep_in: &Rep,
        rep_out: &Rep,
        solver: &Solver,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<EquivLinear> {
        let (n_in, n_out) = (rep_in.size(), rep_out.size());
        let pw = Projection::new(&rep_in.maps_to(rep_out), solver, dtype)?;
        let pb = Projection::new(rep_out, solver, dtype)?;
        let w = init::weight(
            init::Init::Orthogonal { gain: 1.0 },
            n_out,
            n_in,
            dtype,
            rng,
        )?;
        let bv: Vec<f64> = (0..n_out)
            .map(|_| uniform::<f64, _>(rng) / (n_out as f64).sqrt())
            .collect();
        let b = Tensor::from_f64s(&bv, &[n_out], dtype)?;
        Ok(EquivLinear {
            w: params.insert(format!("{name}.w"), w)?,
            b: params.insert(format!("{name}.b"), b)?,
            n_in,
            n_out,
            pw,
            pb,
        })
    }

    /// The effective (projected) weight `[N_out, N_in]` and bias `[N_out]`.
    pub fn effective(&self, params: &Params) -> Result<(Tensor, Tensor)> {
        let w = self
            .pw
            .apply(&params.get(self.w).reshape(&[self.n_out * self.n_in])?)?;
        let b = self.pb.apply(params.get(self.b))?;
        Ok((w.reshape(&[self.n_out, self.n_in])?, b))
    }

    /// `x [B, N_in] → [B, N_out]`.
    pub fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        let (w, b) = self.effective(params)?;
        Ok(x.matmul_t(&w, false, true)?.add(&b)?)
    }
}

/// One bilinear part: the W-terms of one monomial type filled with chosen x-copies of that type.
#[derive(Clone, Debug)]
pub struct BiPart {
    /// `B_ρ` (`[W_mult, n]`).
    pub param: ParamId,
    /// Positions in x of the chosen copies (`n` copies × `n_ρ` entries).
    pub x_idx: Vec<usize>,
    /// Positions in vec(W) of the W-terms (`W_mult` × `n_ρ`).
    pub w_idx: Vec<usize>,
    /// `W_mult`.
    pub w_mult: usize,
    /// Copies chosen.
    pub n: usize,
    /// Entries of the monomial.
    pub n_rho: usize,
    /// Which x-copies were chosen (indices among the x-terms of this type), saved with a model.
    pub chosen: Vec<usize>,
}

/// The reference's cheap bilinear layer: an input-dependent equivariant matrix `W(x)` whose
/// ρ-typed blocks are learned combinations of ρ-typed channels of `x`; output `0.1 · W(x) x`.
#[derive(Clone, Debug)]
pub struct BiLinear {
    /// Parts per monomial type present in both W and x (non-scalar).
    pub parts: Vec<BiPart>,
    /// Input size.
    pub n_in: usize,
    /// Output size.
    pub n_out: usize,
    /// For every filled entry of W(x), in the parts' order: its column (input channel)…
    cols: Vec<usize>,
    /// …and its row (output channel).
    rows: Vec<usize>,
}

impl BiLinear {
    /// Build with the channel choice drawn from `rng` (with replacement, as the reference).
    pub fn new(
        params: &mut Params,
        name: &str,
        rep_in: &Rep,
        rep_out: &Rep,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<BiLinear> {
        let w_terms = by_key(
            rep_in
                .maps_to(rep_out)
                .terms()
                .map_err(|what| Error::TooLarge { what, bytes: 0 })?,
        );
        let x_terms = by_key(
            rep_in
                .terms()
                .map_err(|what| Error::TooLarge { what, bytes: 0 })?,
        );
        let mut parts = Vec::new();
        for (key, wts) in &w_terms {
            if key == "1" {
                continue;
            }
            let Some((_, xts)) = x_terms.iter().find(|(k, _)| k == key) else {
                continue;
            };
            let n_rho = wts[0].indices.len();
            let n = xts.len().min(n_rho);
            let chosen: Vec<usize> = (0..n)
                .map(|_| ((uniform::<f64, _>(rng) * xts.len() as f64) as usize).min(xts.len() - 1))
                .collect();
            let x_idx: Vec<usize> = chosen
                .iter()
                .flat_map(|&c| xts[c].indices.iter().copied())
                .collect();
            let w_idx: Vec<usize> = wts.iter().flat_map(|t| t.indices.iter().copied()).collect();
            let vals: Vec<f64> = (0..wts.len() * n)
                .map(|_| standard_normal::<f64, _>(rng))
                .collect();
            let param = params.insert(
                format!("{name}.{}", parts.len()),
                Tensor::from_f64s(&vals, &[wts.len(), n], dtype)?,
            )?;
            parts.push(BiPart {
                param,
                x_idx,
                w_idx,
                w_mult: wts.len(),
                n,
                n_rho,
                chosen,
            });
        }
        let n_in = rep_in.size();
        let w_idx = parts.iter().flat_map(|p| p.w_idx.iter().copied());
        let (rows, cols) = w_idx.map(|p| (p / n_in, p % n_in)).unzip();
        Ok(BiLinear {
            parts,
            n_in,
            n_out: rep_out.size(),
            cols,
            rows,
        })
    }

    /// `x [B, N_in] → 0.1 · W(x) x`.
    pub fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        let b = x.dims()[0];
        if self.parts.is_empty() {
            return Ok(Tensor::zeros(&[b, self.n_out], x.dtype())?.to_device(x.device())?);
        }
        let mut blocks = Vec::with_capacity(self.parts.len());
        for p in &self.parts {
            let feats = x.index_select(1, &p.x_idx)?.reshape(&[b, p.n, p.n_rho])?;
            let blk = params.get(p.param).matmul(&feats)?; // [B, W_mult, n_ρ]
            blocks.push(blk.reshape(&[b, p.w_mult * p.n_rho])?);
        }
        let vals = if blocks.len() == 1 {
            blocks.pop().unwrap_or_else(|| unreachable!())
        } else {
            Tensor::concat(&blocks, 1)?
        };
        // W(x) x without forming W(x): each nonzero entry W[o, i] contributes W[o, i]·x[i] to
        // output o.
        let y = vals
            .mul(&x.index_select(1, &self.cols)?)?
            .index_add(1, &self.rows, self.n_out)?;
        Ok(y.mul_scalar(0.1)?)
    }
}

/// `Linear(rin, gated(rout))` → `BiLinear(gated, gated) + shortcut` → gated nonlinearity.
#[derive(Clone, Debug)]
pub struct EmlpBlock {
    /// The linear layer.
    pub linear: EquivLinear,
    /// The bilinear layer.
    pub bilinear: BiLinear,
    /// Gate index per output channel (into the gated channels).
    pub gates: Vec<usize>,
    /// Output size (without gates).
    pub size: usize,
}

impl EmlpBlock {
    /// `x → block(x)`.
    pub fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        let lin = self.linear.forward(params, x)?;
        let pre = self.bilinear.forward(params, &lin)?.add(&lin)?;
        let g = pre.index_select(1, &self.gates)?.sigmoid()?;
        Ok(g.mul(&pre.narrow(1, 0, self.size)?)?)
    }
}

/// The EMLP network: blocks, then a final equivariant linear layer.
#[derive(Clone, Debug)]
pub struct Emlp {
    /// The group.
    pub group: Arc<Group>,
    /// Input representation.
    pub rep_in: Rep,
    /// Output representation.
    pub rep_out: Rep,
    /// Hidden representation of each block.
    pub hidden: Vec<Summands>,
    /// The blocks.
    pub blocks: Vec<EmlpBlock>,
    /// The final layer.
    pub head: EquivLinear,
}

impl Emlp {
    /// `num_layers` blocks of `uniform_rep(ch)` (as the reference: one allocation, reused).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: &mut Params,
        group: &Arc<Group>,
        rep_in: &Rep,
        rep_out: &Rep,
        ch: usize,
        num_layers: usize,
        solver: &Solver,
        dtype: DType,
        rng: &mut Xoshiro256PlusPlus,
    ) -> Result<Emlp> {
        let h = uniform_rep(ch, group, rng)?;
        let hidden = vec![h; num_layers];
        let mut blocks = Vec::new();
        let mut rin = rep_in.clone();
        for (l, h) in hidden.iter().enumerate() {
            let gated_rep = summands_rep(group, &gated(group, h));
            let linear = EquivLinear::new(
                params,
                &format!("block{l}.linear"),
                &rin,
                &gated_rep,
                solver,
                dtype,
                rng,
            )?;
            let bilinear = BiLinear::new(
                params,
                &format!("block{l}.bilinear"),
                &gated_rep,
                &gated_rep,
                dtype,
                rng,
            )?;
            let out = summands_rep(group, h);
            blocks.push(EmlpBlock {
                linear,
                bilinear,
                gates: gate_indices(group, h),
                size: out.size(),
            });
            rin = out;
        }
        let head = EquivLinear::new(params, "head", &rin, rep_out, solver, dtype, rng)?;
        Ok(Emlp {
            group: group.clone(),
            rep_in: rep_in.clone(),
            rep_out: rep_out.clone(),
            hidden,
            blocks,
            head,
        })
    }

    /// `x [B, N_in] → [B, N_out]`.
    pub fn forward(&self, params: &Params, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for b in &self.blocks {
            h = b.forward(params, &h)?;
        }
        self.head.forward(params, &h)
    }
}

fn u32_bytes(v: &[usize]) -> Result<Vec<u8>> {
    v.iter()
        .map(|&x| u32::try_from(x).map(u32::to_le_bytes))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map(|v| v.concat())
        .map_err(|_| Error::TooLarge {
            what: "an index past 2^32 in an exported EMLP".into(),
            bytes: 0,
        })
}

impl Emlp {
    /// The network with its constant tensors (the projection bases) on `device`; parameters
    /// move separately ([`Params::to_device`]).
    ///
    /// # Errors
    /// Device errors.
    pub fn to_device(&self, device: crate::backend::Device) -> Result<Emlp> {
        self.map_bases(|p| p.to_device(device))
    }

    /// The network with its constant tensors in `dtype`; parameters convert separately
    /// ([`Params::to_dtype`]).
    ///
    /// # Errors
    /// Conversion errors.
    pub fn to_dtype(&self, dtype: DType) -> Result<Emlp> {
        self.map_bases(|p| p.to_dtype(dtype))
    }

    fn map_bases(&self, f: impl Fn(&Projection) -> Result<Projection>) -> Result<Emlp> {
        let linear = |l: &EquivLinear| -> Result<EquivLinear> {
            Ok(EquivLinear {
                pw: f(&l.pw)?,
                pb: f(&l.pb)?,
                ..l.clone()
            })
        };
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(EmlpBlock {
                    linear: linear(&b.linear)?,
                    ..b.clone()
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Emlp {
            blocks,
            head: linear(&self.head)?,
            ..self.clone()
        })
    }

    /// The safetensors file `keel_core::nn::Emlp` loads: effective (projected) weights in f32,
    /// the bilinear coefficients and index maps, gates, and the data's standardisation;
    /// `keel.kind = "emlp"` and `keel.config` (group, representations, hidden representation,
    /// the bilinear channel choices) in the metadata.
    pub fn to_safetensors(
        &self,
        params: &Params,
        x_scale: &[f64],
        y_mean: &[f64],
        y_std: &[f64],
        extra: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>> {
        let mut t: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = Vec::new();
        t.push((
            "input.scale".into(),
            "F32",
            vec![x_scale.len()],
            f32_bytes(x_scale),
        ));
        t.push((
            "target.mean".into(),
            "F32",
            vec![y_mean.len()],
            f32_bytes(y_mean),
        ));
        t.push((
            "target.std".into(),
            "F32",
            vec![y_std.len()],
            f32_bytes(y_std),
        ));
        let mut chosen = Vec::new();
        for (l, b) in self.blocks.iter().enumerate() {
            let (w, bias) = b.linear.effective(params)?;
            t.push((
                format!("block{l}.weight"),
                "F32",
                vec![b.linear.n_out, b.linear.n_in],
                f32_bytes(&w.to_vec_f64()?),
            ));
            t.push((
                format!("block{l}.bias"),
                "F32",
                vec![b.linear.n_out],
                f32_bytes(&bias.to_vec_f64()?),
            ));
            t.push((
                format!("block{l}.gates"),
                "U32",
                vec![b.gates.len()],
                u32_bytes(&b.gates)?,
            ));
            let mut block_chosen = Vec::new();
            for (p, part) in b.bilinear.parts.iter().enumerate() {
                let coef = params.get(part.param).to_vec_f64()?;
                t.push((
                    format!("block{l}.bilinear{p}.coef"),
                    "F32",
                    vec![part.w_mult, part.n],
                    f32_bytes(&coef),
                ));
                t.push((
                    format!("block{l}.bilinear{p}.x"),
                    "U32",
                    vec![part.x_idx.len()],
                    u32_bytes(&part.x_idx)?,
                ));
                t.push((
                    format!("block{l}.bilinear{p}.w"),
                    "U32",
                    vec![part.w_idx.len()],
                    u32_bytes(&part.w_idx)?,
                ));
                block_chosen.push(part.chosen.clone());
            }
            chosen.push(block_chosen);
        }
        let (w, bias) = self.head.effective(params)?;
        t.push((
            "head.weight".into(),
            "F32",
            vec![self.head.n_out, self.head.n_in],
            f32_bytes(&w.to_vec_f64()?),
        ));
        t.push((
            "head.bias".into(),
            "F32",
            vec![self.head.n_out],
            f32_bytes(&bias.to_vec_f64()?),
        ));
        let config = serde_json::json!({
            "group": self.group.name,
            "rep_in": self.rep_in.to_string(),
            "rep_out": self.rep_out.to_string(),
            "hidden": self.hidden.iter().map(describe).collect::<Vec<_>>(),
            "blocks": self.blocks.len(),
            "bilinear_chosen": chosen,
        });
        let mut meta = extra.clone();
        meta.insert("keel.kind".into(), "emlp".into());
        meta.insert("keel.config".into(), config.to_string());
        Ok(crate::export::safetensors_bytes_typed(&t, &meta))
    }
}
