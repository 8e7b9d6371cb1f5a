//! Equivariant MLPs (Finzi, Welling & Wilson 2021) evaluated in place from a file the host wrote
//! (`keel.kind = "emlp"`): each block's projected linear layer as a dense effective weight, the
//! cheap bilinear layer as its learned coefficients and two index maps, the gate index of every
//! channel, and a final equivariant linear layer. Nothing is copied or allocated; the bilinear
//! matrix `W(x)` is never formed — each of its nonzero entries is computed and used once.
//!
//! Tensors (names fixed; `l` = block, `p` = bilinear part):
//! - `input.scale [n_in]`, `target.mean [n_out]`, `target.std [n_out]` (float);
//! - `block{l}.weight [g_l, w_l]`, `block{l}.bias [g_l]` (float; `g_l` the gated width);
//! - `block{l}.gates [s_l]` (`U32`): for channel `i < s_l`, the index of its gate in `0..g_l`;
//! - `block{l}.bilinear{p}.coef [m, n]` (float), `block{l}.bilinear{p}.x [n·r]` (`U32`: the
//!   chosen input copies, `r` entries each) and `block{l}.bilinear{p}.w [m·r]` (`U32`: positions
//!   `o·g_l + i` in the `g_l × g_l` bilinear matrix);
//! - `head.weight [n_out, s_L]`, `head.bias [n_out]`.
//!
//! Forward: `h = x / scale`; per block `a = W h + b`, `p = a + 0.1·B(a) a`,
//! `h_i = σ(p_{gate(i)}) · p_i`; then `y = std · (W_head h + b_head) + mean` (the reference's
//! `EMLPBlock` and `BiLinear` in `emlp/nn/objax.py`).
//!
//! [`Emlp::vjp`] and [`Emlp::gradient`] run reverse mode through the whole network to the input
//! — what a Hamiltonian EMLP (the reference's `EMLPH`, whose symplectic gradient `J∇H` is the
//! dynamics) needs on the controller; [`crate::dynamics::HamiltonianEmlp`] is that vector field.
//! The forward pass keeps each block's linear output `a` and bilinear output `p` for the
//! backward pass, so the scratch is `2·Σ_l g_l + 3·widest` scalars
//! ([`Emlp::gradient_scratch_len`]). With `d_l = g_l·w_l` the dense multiply–adds of block
//! `l`, `b_l = Σ_p m_p·r_p·(n_p + 1)` those of its bilinear layer and `s_l` its gated
//! channels, a forward pass costs `Σ_l (d_l + b_l) + n_out·s_L` multiply–adds and `Σ_l s_l`
//! sigmoids, a gradient about `Σ_l (2·d_l + 3·b_l) + 2·n_out·s_L` and `2·Σ_l s_l` (the
//! bilinear layer's derivative reads each coefficient twice). The bilinear layers dominate
//! wide models: for the double spring pendulum's O2eR3 EMLP with `ch = 384` and three blocks
//! (`g = 432`), `Σ d_l = 337k` against `Σ b_l = 2.1M`. Keeping `p` rather than recomputing it
//! from `a` costs `Σ_l g_l` scalars and saves one bilinear pass (a quarter of the gradient's
//! work there).
//!
//! The bilinear loops walk `coef` and `w` a row (`t`) at a time and `x` by column (`e`),
//! decoding indices and coefficients in place with the float dtype matched once per part, not
//! per element; every sum and update keeps the order of the plain loop `for t, for e, for c`,
//! so results are bit-identical to decoding each element by its index. One RK4 step of the
//! firmware's 3 × 32 EMLPH (four gradients) takes about half the Cortex-M4 instructions of that
//! plain loop (`benches/RESULTS.md`, "The EMLP bilinear loop"). No scratch; the loop state
//! spilled on a Cortex-M4 adds 80 bytes to each of the two stack frames the passes run in.

use super::activation::sigmoid;
use super::dense::Dense;
use super::digits;
use super::weights::Floats;
use crate::io::{from_f32, read_f32, read_f64, Dtype, JsonStr, SafeTensors, TensorView};
use crate::{Error, Real, Result};
use core::num::NonZeroUsize;
use core::slice::ChunksExact;

/// A run of `U32` values borrowed from a file.
#[derive(Clone, Copy, Debug)]
struct Indices<'a> {
    bytes: &'a [u8],
}

impl<'a> Indices<'a> {
    const EMPTY: Indices<'static> = Indices { bytes: &[] };

    /// The view's values, each checked to be below `bound`.
    fn new(view: &TensorView<'a>, len: usize, bound: usize, role: &'static str) -> Result<Self> {
        if view.dtype() != Dtype::U32 {
            return Err(Error::UnsupportedDtype {
                dtype: view.dtype(),
            });
        }
        if view.len() != len {
            return Err(Error::TensorShape { role, layer: None });
        }
        let ix = Indices { bytes: view.data() };
        if ix.iter().any(|k| k >= bound) {
            return Err(Error::InvalidConfig {
                what: "an index tensor points past its layer",
            });
        }
        Ok(ix)
    }

    /// The values in order.
    #[inline]
    fn iter(&self) -> impl Iterator<Item = usize> + 'a {
        self.bytes.chunks_exact(4).map(index)
    }
}

/// The `U32` in four little-endian bytes (0 for any other length: callers pass exact chunks).
#[inline]
fn index(bytes: &[u8]) -> usize {
    match *bytes {
        [a, b, c, d] => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    }
}

/// `val = Σ_c coef[t, c]·lin[x[c·r + e]]` for one entry, in order `c`: `coef` is row `t` (`S`
/// bytes per element, decoded by `read`), `x_rows` the rows of `x` and `at = 4·e` the entry's
/// byte offset in each.
#[inline(always)]
fn entry_value<T: Real, const S: usize>(
    read: &impl Fn(&[u8]) -> T,
    coef: &[u8],
    x_rows: ChunksExact<'_, u8>,
    at: usize,
    lin: &[T],
) -> T {
    let mut val = T::ZERO;
    for (c, x) in coef.chunks_exact(S).zip(x_rows) {
        let xi = x.get(at..at + 4).map_or(0, index);
        val += read(c) * lin.get(xi).copied().unwrap_or(T::ZERO);
    }
    val
}

/// One part of a bilinear layer.
#[derive(Clone, Copy, Debug)]
struct Part<'a> {
    coef: Floats<'a>,
    x: Indices<'a>,
    w: Indices<'a>,
    m: usize,
    n: usize,
    r: usize,
}

impl<'a> Part<'a> {
    const EMPTY: Part<'static> = Part {
        coef: Floats::EMPTY,
        x: Indices::EMPTY,
        w: Indices::EMPTY,
        m: 0,
        n: 0,
        r: 0,
    };

    /// `pre[o] += 0.1·val·lin_i` for each entry `(t, e)`, at `pos = w[t·r + e] = o·g + i`, with
    /// `val = Σ_c coef[t, c]·lin[x[c·r + e]]` (the reference's `BiLinear`: `W(x)` applied to
    /// `x` without forming it), entries in order `t`, then `e`; each sum in order `c`.
    fn forward<T: Real>(&self, g: usize, lin: &[T], pre: &mut [T]) {
        // The dtype matched once per part, not per element.
        if self.coef.element_size() == 8 {
            self.forward_with::<T, 8>(|b| T::from_f64(read_f64(b)), g, lin, pre);
        } else {
            self.forward_with::<T, 4>(|b| from_f32(read_f32(b)), g, lin, pre);
        }
    }

    /// [`forward`](Part::forward) with coefficients of `S` bytes each, decoded by `read`.
    #[inline(always)]
    fn forward_with<T: Real, const S: usize>(
        &self,
        read: impl Fn(&[u8]) -> T,
        g: usize,
        lin: &[T],
        pre: &mut [T],
    ) {
        // A layer has at least one output (checked when the model was built); dividing by a
        // `NonZeroUsize` leaves no division-by-zero panic in the loop.
        let Some(g) = NonZeroUsize::new(g) else {
            return;
        };
        let tenth = T::from_f64(0.1);
        let (x_rows, rows) = self.rows::<S>();
        for (coef, w) in rows {
            for (e, w) in w.chunks_exact(4).enumerate() {
                // e < r and the r·4-byte rows exist: no overflow.
                let at = 4 * e;
                let val = entry_value::<T, S>(&read, coef, x_rows.clone(), at, lin);
                let pos = index(w);
                let (o, i) = (pos / g, pos % g);
                let xi = lin.get(i).copied().unwrap_or(T::ZERO);
                if let Some(po) = pre.get_mut(o) {
                    *po += tenth * val * xi;
                }
            }
        }
    }

    /// The reverse of [`forward`](Part::forward) at `lin`, given `dpre = ∂/∂p`: for each entry,
    /// `∂/∂a_i += 0.1·dp_o·val`, then each `∂/∂a_{x(c)} += 0.1·dp_o·a_i·coef[t, c]` in order
    /// `c` (into `dlin`, which starts as `dpre`: `p = a + …`).
    fn backward<T: Real>(&self, g: usize, lin: &[T], dpre: &[T], dlin: &mut [T]) {
        if self.coef.element_size() == 8 {
            self.backward_with::<T, 8>(|b| T::from_f64(read_f64(b)), g, lin, dpre, dlin);
        } else {
            self.backward_with::<T, 4>(|b| from_f32(read_f32(b)), g, lin, dpre, dlin);
        }
    }

    /// [`backward`](Part::backward) with coefficients of `S` bytes each, decoded by `read`.
    #[inline(always)]
    fn backward_with<T: Real, const S: usize>(
        &self,
        read: impl Fn(&[u8]) -> T,
        g: usize,
        lin: &[T],
        dpre: &[T],
        dlin: &mut [T],
    ) {
        // A layer has at least one output (checked when the model was built); dividing by a
        // `NonZeroUsize` leaves no division-by-zero panic in the loop.
        let Some(g) = NonZeroUsize::new(g) else {
            return;
        };
        let tenth = T::from_f64(0.1);
        let (x_rows, rows) = self.rows::<S>();
        for (coef, w) in rows {
            for (e, w) in w.chunks_exact(4).enumerate() {
                // e < r and the r·4-byte rows exist: no overflow.
                let at = 4 * e;
                let pos = index(w);
                let (o, i) = (pos / g, pos % g);
                let d = tenth * dpre.get(o).copied().unwrap_or(T::ZERO);
                let val = entry_value::<T, S>(&read, coef, x_rows.clone(), at, lin);
                if let Some(di) = dlin.get_mut(i) {
                    *di += d * val;
                }
                let dai = d * lin.get(i).copied().unwrap_or(T::ZERO);
                for (c, x) in coef.chunks_exact(S).zip(x_rows.clone()) {
                    let xi = x.get(at..at + 4).map_or(0, index);
                    if let Some(dx) = dlin.get_mut(xi) {
                        *dx += dai * read(c);
                    }
                }
            }
        }
    }

    /// The `n` rows of `x` (`r` indices, `4·r` bytes each) and, for `t < m`, the pairs (row `t`
    /// of `coef`: `n` elements of `S` bytes; row `t` of `w`: `r` indices) — exact chunks of
    /// lengths checked when the model was built (`r, n ≥ 1`; the `max(1)` only keeps
    /// `chunks_exact` from a zero size, which would panic).
    #[inline(always)]
    fn rows<const S: usize>(
        &self,
    ) -> (
        ChunksExact<'a, u8>,
        impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a,
    ) {
        let row = self.r.saturating_mul(4).max(1);
        let coef = self
            .coef
            .bytes()
            .chunks_exact(self.n.saturating_mul(S).max(1));
        let w = self.w.bytes.chunks_exact(row);
        (self.x.bytes.chunks_exact(row), coef.zip(w).take(self.m))
    }
}

/// One EMLP block.
#[derive(Clone, Copy, Debug)]
struct Block<'a, const P: usize> {
    linear: Dense<'a>,
    gates: Indices<'a>,
    size: usize,
    parts: [Part<'a>; P],
    n_parts: usize,
}

/// An exported EMLP with at most `B` blocks of at most `P` bilinear parts each.
#[derive(Clone, Copy, Debug)]
pub struct Emlp<'a, const B: usize, const P: usize> {
    blocks: [Option<Block<'a, P>>; B],
    n_blocks: usize,
    head: Dense<'a>,
    scale: Floats<'a>,
    mean: Floats<'a>,
    std: Floats<'a>,
    n_in: usize,
    n_out: usize,
    widest: usize,
    /// `Σ_l g_l`: the size of the block outputs `a` (and of the `p`) that [`Emlp::vjp`]
    /// keeps for the backward pass.
    stored: usize,
}

/// Does `name` read `{a}{i}{b}`, or `{a}{i}{b}{j}{c}` when `j = Some((j, c))`?
fn name_is(name: JsonStr<'_>, a: &str, i: usize, b: &str, j: Option<(usize, &str)>) -> bool {
    let mut bi = [0u8; 20];
    let di = digits(i, &mut bi);
    let mut bj = [0u8; 20];
    let (dj, c) = match j {
        Some((j, c)) => (digits(j, &mut bj), c),
        None => (&[][..], ""),
    };
    let expected = a
        .bytes()
        .chain(di.iter().copied())
        .chain(b.bytes())
        .chain(dj.iter().copied())
        .chain(c.bytes());
    name.bytes().eq(expected)
}

fn find<'a, const MAX: usize>(
    st: &SafeTensors<'a, MAX>,
    role: &'static str,
    pred: impl FnMut(JsonStr<'a>) -> bool,
) -> Result<TensorView<'a>> {
    st.find(pred)
        .ok_or(Error::TensorNotFound { role, layer: None })
}

fn floats_of_len<'a>(v: &TensorView<'a>, len: usize, role: &'static str) -> Result<Floats<'a>> {
    if v.len() != len || v.rank() != 1 {
        return Err(Error::TensorShape { role, layer: None });
    }
    Floats::new(v)
}

impl<'a, const B: usize, const P: usize> Emlp<'a, B, P> {
    /// Builds the model from a file's tensors (borrowed), checking every shape and index.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] unless `keel.kind` is `emlp`, for an index past its layer or
    /// gated widths that do not chain; [`Error::CapacityExceeded`] for more than `B` blocks or
    /// `P` parts; [`Error::TensorNotFound`], [`Error::TensorShape`], [`Error::UnsupportedDtype`].
    pub fn from_safetensors<const MAX: usize>(st: &SafeTensors<'a, MAX>) -> Result<Self> {
        match st.metadata("keel.kind") {
            Some(kind) if kind == "emlp" => {}
            Some(_) => {
                return Err(Error::InvalidConfig {
                    what: "`keel.kind` is not `emlp`",
                })
            }
            None => {
                return Err(Error::InvalidConfig {
                    what: "no `keel.kind` metadata",
                })
            }
        }
        let scale_v = find(st, "input.scale", |n| n == "input.scale")?;
        let n_in = scale_v.len();
        let mut blocks: [Option<Block<'a, P>>; B] = [None; B];
        let mut width = n_in;
        let mut widest = n_in;
        let mut n_blocks = 0;
        let mut stored = 0usize;
        for l in 0.. {
            let Some(w) = st.find(|n| name_is(n, "block", l, ".weight", None)) else {
                break;
            };
            if l >= B {
                return Err(Error::CapacityExceeded {
                    what: "EMLP blocks",
                    capacity: B,
                });
            }
            let b = find(st, "bias", |n| name_is(n, "block", l, ".bias", None))?;
            let linear = Dense::new(&w, &b)?;
            if linear.inputs() != width {
                return Err(Error::InvalidConfig {
                    what: "block input width does not chain",
                });
            }
            let g = linear.outputs();
            let gv = find(st, "gates", |n| name_is(n, "block", l, ".gates", None))?;
            let size = gv.len();
            if size == 0 || size > g {
                return Err(Error::TensorShape {
                    role: "gates",
                    layer: Some(l),
                });
            }
            let gates = Indices::new(&gv, size, g, "gates")?;
            let mut parts = [Part::EMPTY; P];
            let mut n_parts = 0;
            for p in 0.. {
                let Some(cv) = st.find(|n| name_is(n, "block", l, ".bilinear", Some((p, ".coef"))))
                else {
                    break;
                };
                if p >= P {
                    return Err(Error::CapacityExceeded {
                        what: "bilinear parts",
                        capacity: P,
                    });
                }
                let (m, nn) = match *cv.shape() {
                    [m, nn] if m >= 1 && nn >= 1 => (m, nn),
                    _ => {
                        return Err(Error::TensorShape {
                            role: "bilinear coef",
                            layer: Some(l),
                        })
                    }
                };
                let xv = find(st, "bilinear x", |n| {
                    name_is(n, "block", l, ".bilinear", Some((p, ".x")))
                })?;
                let wv = find(st, "bilinear w", |n| {
                    name_is(n, "block", l, ".bilinear", Some((p, ".w")))
                })?;
                let r = xv.len() / nn;
                // nn·r ≤ xv.len() cannot overflow; m·r can (on 32 bits, m = r = 2¹⁶ from a
                // 512 kB file): checked, an overflow is a shape that cannot match.
                let mr = m.checked_mul(r);
                if r == 0 || xv.len() != nn * r || mr != Some(wv.len()) {
                    return Err(Error::TensorShape {
                        role: "bilinear indices",
                        layer: Some(l),
                    });
                }
                let slot = parts.get_mut(p).ok_or(Error::CapacityExceeded {
                    what: "bilinear parts",
                    capacity: P,
                })?;
                *slot = Part {
                    coef: Floats::new(&cv)?,
                    x: Indices::new(&xv, nn * r, g, "bilinear x")?,
                    w: Indices::new(&wv, wv.len(), g.saturating_mul(g), "bilinear w")?,
                    m,
                    n: nn,
                    r,
                };
                n_parts += 1;
            }
            if let Some(slot) = blocks.get_mut(l) {
                *slot = Some(Block {
                    linear,
                    gates,
                    size,
                    parts,
                    n_parts,
                });
            }
            widest = widest.max(g);
            stored = stored.saturating_add(g);
            width = size;
            n_blocks += 1;
        }
        let hw = find(st, "head.weight", |n| n == "head.weight")?;
        let hb = find(st, "head.bias", |n| n == "head.bias")?;
        let head = Dense::new(&hw, &hb)?;
        if head.inputs() != width {
            return Err(Error::InvalidConfig {
                what: "head input width does not chain",
            });
        }
        let n_out = head.outputs();
        let mean = floats_of_len(
            &find(st, "target.mean", |n| n == "target.mean")?,
            n_out,
            "target.mean",
        )?;
        let std = floats_of_len(
            &find(st, "target.std", |n| n == "target.std")?,
            n_out,
            "target.std",
        )?;
        let scale = floats_of_len(&scale_v, n_in, "input.scale")?;
        Ok(Emlp {
            blocks,
            n_blocks,
            head,
            scale,
            mean,
            std,
            n_in,
            n_out,
            widest: widest.max(n_out),
            stored,
        })
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.n_in
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.n_out
    }

    /// Blocks.
    pub fn blocks(&self) -> usize {
        self.n_blocks
    }

    /// Scratch scalars [`forward`](Emlp::forward) needs: three times the widest layer.
    pub fn scratch_len(&self) -> usize {
        self.widest.saturating_mul(3)
    }

    /// `out = f(x)` in the data's units.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for wrong `x`/`out` lengths; [`Error::ScratchTooSmall`].
    pub fn forward<T: Real>(&self, x: &[T], out: &mut [T], scratch: &mut [T]) -> Result<()> {
        self.check_len("x", self.n_in, x.len())?;
        self.check_len("out", self.n_out, out.len())?;
        let too_small = Error::ScratchTooSmall {
            needed: self.scratch_len(),
            got: scratch.len(),
        };
        let (h, rest) = scratch.split_at_mut_checked(self.widest).ok_or(too_small)?;
        let (a, rest) = rest.split_at_mut_checked(self.widest).ok_or(too_small)?;
        let pre = rest.get_mut(..self.widest).ok_or(too_small)?;
        for ((hk, &xk), s) in h.iter_mut().zip(x).zip(self.scale.iter::<T>()) {
            *hk = xk / s;
        }
        let mut width = self.n_in;
        for block in self.blocks.iter().take(self.n_blocks).flatten() {
            let g = block.linear.outputs();
            let lin = a.get_mut(..g).ok_or(BROKEN)?;
            block.linear.forward(h.get(..width).ok_or(BROKEN)?, lin)?;
            block.gated(lin, pre, h)?;
            width = block.size;
        }
        self.output(h.get(..width).ok_or(BROKEN)?, out)
    }

    /// Scratch scalars [`vjp`](Emlp::vjp) and [`gradient`](Emlp::gradient) need: every block's
    /// linear output `a` and bilinear output `p` (`2·Σ_l g_l`, kept from the forward pass for
    /// the backward pass) plus three times the widest layer (the activations, then their
    /// derivatives). With `f32` that is `4·(2·Σ_l g_l + 3·widest)` bytes: 15.6 kB (3888
    /// scalars) for the O2eR3 EMLP with `ch = 384` and three blocks (`g_l = 432`).
    pub fn gradient_scratch_len(&self) -> usize {
        self.stored
            .saturating_mul(2)
            .saturating_add(self.scratch_len())
    }

    /// `out = f(x)` and the vector–Jacobian product `grad = cotangentᵀ·∂f/∂x`, in the data's
    /// units (the output's `std` and the input's `1/scale` included), by reverse mode through
    /// every block: the gate `h_i = σ(p_{gate(i)})·p_i`, the bilinear layer — whose value
    /// `0.1·(Σ_c coef_{tc}·a_{x(c)})·a_i` depends on `a` through both factors, each
    /// differentiated — and the linear layers (`Wᵀ`). Exact up to rounding: no finite
    /// differences.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless `x.len() == grad.len() == inputs()` and
    /// `cotangent.len() == out.len() == outputs()`; [`Error::ScratchTooSmall`] below
    /// [`gradient_scratch_len`](Emlp::gradient_scratch_len).
    pub fn vjp<T: Real>(
        &self,
        x: &[T],
        cotangent: &[T],
        out: &mut [T],
        grad: &mut [T],
        scratch: &mut [T],
    ) -> Result<()> {
        self.check_len("x", self.n_in, x.len())?;
        self.check_len("gradient", self.n_in, grad.len())?;
        self.check_len("cotangent", self.n_out, cotangent.len())?;
        self.check_len("out", self.n_out, out.len())?;
        let too_small = Error::ScratchTooSmall {
            needed: self.gradient_scratch_len(),
            got: scratch.len(),
        };
        // [a₀ p₀ a₁ p₁ … | h, then ∂/∂h | ∂/∂a | ∂/∂p]
        let (kept, rest) = scratch
            .split_at_mut_checked(self.stored.saturating_mul(2))
            .ok_or(too_small)?;
        let (h, rest) = rest.split_at_mut_checked(self.widest).ok_or(too_small)?;
        let (dlin, rest) = rest.split_at_mut_checked(self.widest).ok_or(too_small)?;
        let dpre = rest.get_mut(..self.widest).ok_or(too_small)?;

        // Forward, keeping each block's `a` and `p`.
        for ((hk, &xk), s) in h.iter_mut().zip(x).zip(self.scale.iter::<T>()) {
            *hk = xk / s;
        }
        let mut width = self.n_in;
        let mut offset = 0usize;
        for block in self.blocks.iter().take(self.n_blocks).flatten() {
            let g = block.linear.outputs();
            let end = g
                .checked_mul(2)
                .and_then(|n| n.checked_add(offset))
                .ok_or(BROKEN)?;
            let (lin, pre) = kept
                .get_mut(offset..end)
                .ok_or(BROKEN)?
                .split_at_mut_checked(g)
                .ok_or(BROKEN)?;
            block.linear.forward(h.get(..width).ok_or(BROKEN)?, lin)?;
            block.gated(lin, pre, h)?;
            offset = end;
            width = block.size;
        }
        self.output(h.get(..width).ok_or(BROKEN)?, out)?;

        // Backward: ∂/∂h of the head's input is W_headᵀ (std ⊙ cotangent).
        let seed = dpre.get_mut(..self.n_out).ok_or(BROKEN)?;
        for ((sk, &ck), s) in seed.iter_mut().zip(cotangent).zip(self.std.iter::<T>()) {
            *sk = ck * s;
        }
        let dh = h;
        self.head
            .backward(seed, dh.get_mut(..width).ok_or(BROKEN)?)?;
        for block in self.blocks.iter().take(self.n_blocks).rev().flatten() {
            let g = block.linear.outputs();
            let end = offset;
            offset = g
                .checked_mul(2)
                .and_then(|n| offset.checked_sub(n))
                .ok_or(BROKEN)?;
            let (lin, pre) = kept
                .get(offset..end)
                .ok_or(BROKEN)?
                .split_at_checked(g)
                .ok_or(BROKEN)?;
            let dpre = dpre.get_mut(..g).ok_or(BROKEN)?;
            let dlin = dlin.get_mut(..g).ok_or(BROKEN)?;
            // Through the gates: h_k = σ(p_gate)·p_k.
            dpre.fill(T::ZERO);
            for ((k, &dhk), gi) in dh
                .iter()
                .take(block.size)
                .enumerate()
                .zip(block.gates.iter())
            {
                let gate = pre.get(gi).copied().unwrap_or(T::ZERO);
                let pk = pre.get(k).copied().unwrap_or(T::ZERO);
                let s = sigmoid(gate);
                if let Some(d) = dpre.get_mut(k) {
                    *d += s * dhk;
                }
                if let Some(d) = dpre.get_mut(gi) {
                    *d += s * (T::ONE - s) * pk * dhk;
                }
            }
            // Through p = a + 0.1·Σ val·a_i with val = Σ_c coef·a_{x(c)}: ∂/∂a_i gets
            // 0.1·dp_o·val and each ∂/∂a_{x(c)} gets 0.1·dp_o·a_i·coef.
            dlin.copy_from_slice(dpre);
            for part in block.parts.iter().take(block.n_parts) {
                part.backward(g, lin, dpre, dlin);
            }
            let w_in = block.linear.inputs();
            block
                .linear
                .backward(dlin, dh.get_mut(..w_in).ok_or(BROKEN)?)?;
        }
        for ((gk, &dk), s) in grad.iter_mut().zip(dh.iter()).zip(self.scale.iter::<T>()) {
            *gk = dk / s;
        }
        Ok(())
    }

    /// `f(x)` and `grad = ∇f(x)` for a model with one output (e.g. a Hamiltonian), in the
    /// data's units: [`vjp`](Emlp::vjp) with cotangent 1.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] if the model has other than one output (`what = "outputs"`) or
    /// unless `x.len() == grad.len() == inputs()`; [`Error::ScratchTooSmall`] below
    /// [`gradient_scratch_len`](Emlp::gradient_scratch_len).
    pub fn gradient<T: Real>(&self, x: &[T], grad: &mut [T], scratch: &mut [T]) -> Result<T> {
        self.check_len("outputs", 1, self.n_out)?;
        let mut out = [T::ZERO];
        self.vjp(x, &[T::ONE], &mut out, grad, scratch)?;
        Ok(out[0])
    }

    /// `out = std ⊙ (W_head h + b_head) + mean`.
    fn output<T: Real>(&self, h: &[T], out: &mut [T]) -> Result<()> {
        self.head.forward(h, out)?;
        for ((y, m), s) in out
            .iter_mut()
            .zip(self.mean.iter::<T>())
            .zip(self.std.iter::<T>())
        {
            *y = *y * s + m;
        }
        Ok(())
    }

    fn check_len(&self, what: &'static str, expected: usize, got: usize) -> Result<()> {
        if expected == got {
            Ok(())
        } else {
            Err(Error::ShapeMismatch {
                what,
                expected,
                got,
            })
        }
    }
}

/// Widths never exceed `widest` nor the kept activations `stored` (checked when the model is
/// built); the lookups report a broken model instead of panicking.
const BROKEN: Error = Error::InvalidConfig {
    what: "a layer is wider than the model's widest layer",
};

impl<const P: usize> Block<'_, P> {
    /// `pre[..g] = lin + 0.1·B(lin)·lin`, each nonzero entry of `B` computed and used once.
    fn bilinear<T: Real>(&self, lin: &[T], pre: &mut [T]) {
        let g = self.linear.outputs();
        for (p, &a) in pre.iter_mut().zip(lin).take(g) {
            *p = a;
        }
        for part in self.parts.iter().take(self.n_parts) {
            part.forward(g, lin, pre);
        }
    }

    /// `h_i = σ(p_{gate(i)})·p_i` for the block's `size` channels, `p` (in `pre`) from `lin`.
    fn gated<T: Real>(&self, lin: &[T], pre: &mut [T], h: &mut [T]) -> Result<()> {
        let pre = pre.get_mut(..self.linear.outputs()).ok_or(BROKEN)?;
        self.bilinear(lin, pre);
        for ((k, hk), gi) in h
            .iter_mut()
            .take(self.size)
            .enumerate()
            .zip(self.gates.iter())
        {
            let gate = pre.get(gi).copied().unwrap_or(T::ZERO);
            *hk = sigmoid(gate) * pre.get(k).copied().unwrap_or(T::ZERO);
        }
        Ok(())
    }
}
