//! Generic CPU kernels on contiguous row-major buffers. Every kernel writes a fresh buffer taken
//! from the pool ([`Float::take`]); shapes are validated by the caller.

use rayon::prelude::*;

use super::float::Float;
use crate::tensor::{Shape, MAX_RANK};

/// Elementwise counts from which kernels split work across threads. Below 2¹⁸ waking rayon's
/// pool costs more than a second thread saves on 2 vCPUs: with 2¹⁶ the HMC leapfrog step on the
/// digits MLP (`leapfrog/f64/digits-mlp64`, its activations 1,617 × 64) spent a quarter of its
/// samples in the kernel's `sched_yield` and futex calls and took 646–653 µs; with 2¹⁸ (or
/// 2²⁰) 516–519 µs (AMD EPYC Zen 5, 2 vCPUs; `cnn_step` and `keel rl train` unchanged within
/// their noise).
const PAR_THRESHOLD: usize = 1 << 18;

/// Unary elementwise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// −x
    Neg,
    /// eˣ
    Exp,
    /// ln x
    Log,
    /// ln(1 + x)
    Log1p,
    /// tanh x
    Tanh,
    /// 1/(1 + e⁻ˣ)
    Sigmoid,
    /// ln(1 + eˣ), computed stably
    Softplus,
    /// max(x, 0)
    Relu,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// √x
    Sqrt,
    /// x²
    Square,
    /// |x|
    Abs,
    /// 1 where x > 0, else 0 (not differentiable)
    Step,
    /// sign(x) ∈ {−1, 0, 1} (not differentiable)
    Sign,
}

#[inline]
fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

#[inline]
fn apply<T: Float>(op: UnaryOp, x: T) -> T {
    match op {
        UnaryOp::Neg => -x,
        // Keel's own (`exp.rs`): vectorisable, the same bits at every vector width.
        UnaryOp::Exp => T::from_f64(super::exp::exp(x.to_f64())),
        UnaryOp::Log => x.ln(),
        UnaryOp::Log1p => x.ln_1p(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Softplus => {
            let m = if x > T::ZERO { x } else { T::ZERO };
            m + (-(x.abs())).exp().ln_1p()
        }
        UnaryOp::Relu => {
            if x > T::ZERO {
                x
            } else {
                T::ZERO
            }
        }
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Square => x * x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Step => {
            if x > T::ZERO {
                T::ONE
            } else {
                T::ZERO
            }
        }
        UnaryOp::Sign => {
            if x > T::ZERO {
                T::ONE
            } else if x < T::ZERO {
                -T::ONE
            } else {
                T::ZERO
            }
        }
    }
}

/// Maps every element with `f`, in parallel for large buffers; inlined, so that a
/// `multiversion!` caller runs the loop at its vector width.
#[inline(always)]
pub fn map<T: Float>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    let mut out = T::take(x.len());
    if x.len() >= PAR_THRESHOLD {
        // Written straight into the buffer's spare capacity (no zero fill first).
        out.par_extend(x.par_iter().map(|v| f(*v)));
    } else {
        push_all(&mut out, x.iter().map(|v| f(*v)));
    }
    out
}

super::simd::multiversion! {
    /// `op(x)` elementwise. The operation is chosen once per call, so each loop is a tight,
    /// monomorphised map the compiler can vectorise, as wide as the CPU allows (the same bits at
    /// every width; the exponential is Keel's, `exp.rs`, for that).
    pub fn unary<T: Float>(op: UnaryOp, x: &[T]) -> Vec<T> {
        macro_rules! each {
            ($($variant:ident),*) => {
                match op {
                    $(UnaryOp::$variant => map(x, |v| apply(UnaryOp::$variant, v)),)*
                }
            };
        }
        each!(
            Neg, Exp, Log, Log1p, Tanh, Sigmoid, Softplus, Relu, Sin, Cos, Sqrt, Square, Abs,
            Step, Sign
        )
    }
}

/// Binary elementwise operations (with broadcasting).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a − b
    Sub,
    /// a · b
    Mul,
    /// a / b
    Div,
    /// max(a, b) (not differentiated through)
    Max,
    /// 1 where a > b (not differentiable)
    Gt,
    /// 1 where a == b (not differentiable)
    Eq,
    /// relu(a + b): a dense layer's bias and activation in one pass
    AddRelu,
    /// a · step(b), step(b) = 1 where b > 0, else 0: the ReLU's vector–Jacobian product in one pass
    MulStep,
}

#[inline]
fn apply2<T: Float>(op: BinaryOp, a: T, b: T) -> T {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Max => {
            if a >= b || b.is_nan() {
                a
            } else {
                b
            }
        }
        BinaryOp::Gt => {
            if a > b {
                T::ONE
            } else {
                T::ZERO
            }
        }
        BinaryOp::Eq => {
            if a == b {
                T::ONE
            } else {
                T::ZERO
            }
        }
        // Exactly `Add` then the unary `Relu`, and `Mul` by the unary `Step`: the same bits.
        BinaryOp::AddRelu => {
            let s = a + b;
            if s > T::ZERO {
                s
            } else {
                T::ZERO
            }
        }
        BinaryOp::MulStep => a * if b > T::ZERO { T::ONE } else { T::ZERO },
    }
}

/// Iterates the row-major indices of `shape` (rank ≤ 4, padded) calling
/// `f(offset_a, offset_b, offset_c, run)` for each contiguous run of the last axis.
fn for_each_row(
    shape: &Shape,
    strides: [[usize; MAX_RANK]; 3],
    mut f: impl FnMut([usize; 3], usize),
) {
    let r = shape.rank();
    if r == 0 {
        f([0, 0, 0], 1);
        return;
    }
    let mut dims = [1usize; MAX_RANK];
    let mut st = [[0usize; MAX_RANK]; 3];
    // Right-align into 4 slots.
    for i in 0..r {
        dims[MAX_RANK - r + i] = shape.dim(i);
        for k in 0..3 {
            st[k][MAX_RANK - r + i] = strides[k][i];
        }
    }
    // Merge an axis into the next inner one wherever every operand steps through both as one
    // (the `[h, w]` of a per-channel broadcast over `[n, c, h, w]`), so that runs are long; the
    // innermost axis keeps its strides, which the callers read as the run's step.
    let (mut cd, mut cs) = ([1usize; MAX_RANK], [[0usize; MAX_RANK]; 3]);
    let mut p = MAX_RANK - 1;
    cd[p] = dims[p];
    for k in 0..3 {
        cs[k][p] = st[k][p];
    }
    for j in (0..MAX_RANK - 1).rev() {
        if dims[j] == 1 {
            continue;
        }
        if (0..3).all(|k| st[k][j] == cs[k][p] * cd[p]) {
            cd[p] *= dims[j];
        } else {
            p -= 1;
            cd[p] = dims[j];
            for k in 0..3 {
                cs[k][p] = st[k][j];
            }
        }
    }
    let (dims, st) = (cd, cs);
    let last = dims[3];
    for i0 in 0..dims[0] {
        for i1 in 0..dims[1] {
            for i2 in 0..dims[2] {
                let off = |k: usize| i0 * st[k][0] + i1 * st[k][1] + i2 * st[k][2];
                f([off(0), off(1), off(2)], last);
            }
        }
    }
}

super::simd::multiversion! {
    /// `op(a, b)` with numpy broadcasting to `out_shape`. The operation is chosen once per call;
    /// its loops run as wide as the CPU allows (the same bits at every width).
    pub fn binary<T: Float>(
        op: BinaryOp,
        a: &[T],
        sa: &Shape,
        b: &[T],
        sb: &Shape,
        out_shape: &Shape,
    ) -> Vec<T> {
        macro_rules! each {
            ($($variant:ident),*) => {
                match op {
                    $(BinaryOp::$variant => binary_with(a, sa, b, sb, out_shape, |x, y| apply2(BinaryOp::$variant, x, y)),)*
                }
            };
        }
        each!(Add, Sub, Mul, Div, Max, Gt, Eq, AddRelu, MulStep)
    }
}

/// Whether `s` broadcasts to `out` only along leading axes, i.e. `out` is `[outer…, s…]` with
/// `s`'s dimensions as its trailing ones (a bias row added to every row of a batch).
fn is_trailing(s: &Shape, out: &Shape) -> bool {
    let (r, ro) = (s.rank(), out.rank());
    r <= ro && (0..r).all(|i| s.dim(i) == out.dim(ro - r + i))
}

/// Appends `values` to `out` straight into its spare capacity (as many as it has room for; the
/// callers take buffers of the full length). Unlike `Vec::extend`, whose loop is a function of
/// its own compiled for the baseline, this loop is inlined into the `multiversion!` copy that
/// calls it and runs at that copy's vector width.
#[inline(always)]
pub(crate) fn push_all<T: Float>(out: &mut Vec<T>, values: impl Iterator<Item = T>) {
    let start = out.len();
    debug_assert!(
        out.capacity() - start >= values.size_hint().0,
        "a buffer too short"
    );
    let mut written = 0;
    for (slot, v) in out.spare_capacity_mut().iter_mut().zip(values) {
        slot.write(v);
        written += 1;
    }
    // SAFETY: the first `written` slots after `start` were initialised just above.
    unsafe { out.set_len(start + written) };
}

/// Whether `s` is `out` with its last axis 1 (`[…, 1]` against `[…, k]`).
fn is_column(s: &Shape, out: &Shape) -> bool {
    let r = out.rank();
    r > 0 && s.rank() == r && s.dim(r - 1) == 1 && (0..r - 1).all(|i| s.dim(i) == out.dim(i))
}

#[inline(always)]
fn binary_with<T: Float>(
    a: &[T],
    sa: &Shape,
    b: &[T],
    sb: &Shape,
    out_shape: &Shape,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Vec<T> {
    let n = out_shape.numel();
    let mut out = T::take(n);
    if sa == out_shape && sb == out_shape {
        if n >= PAR_THRESHOLD {
            out.par_extend(a.par_iter().zip(b.par_iter()).map(|(x, y)| f(*x, *y)));
        } else {
            push_all(&mut out, a.iter().zip(b).map(|(x, y)| f(*x, *y)));
        }
        return out;
    }
    if b.len() == 1 && sa == out_shape {
        let y = b[0];
        push_all(&mut out, a.iter().map(|x| f(*x, y)));
        return out;
    }
    if a.len() == 1 && sb == out_shape {
        let x = a[0];
        push_all(&mut out, b.iter().map(|y| f(x, *y)));
        return out;
    }
    if sa == out_shape && !b.is_empty() && is_trailing(sb, out_shape) {
        for row in a.chunks_exact(b.len()) {
            push_all(&mut out, row.iter().zip(b).map(|(x, y)| f(*x, *y)));
        }
        return out;
    }
    if sb == out_shape && !a.is_empty() && is_trailing(sa, out_shape) {
        for row in b.chunks_exact(a.len()) {
            push_all(&mut out, a.iter().zip(row).map(|(x, y)| f(*x, *y)));
        }
        return out;
    }
    // One value per row of the other operand (a row's maximum or log-sum taken off its logits).
    let k = out_shape.dims().last().copied().unwrap_or(1);
    if sa == out_shape && k > 0 && is_column(sb, out_shape) {
        for (row, y) in a.chunks_exact(k).zip(b) {
            push_all(&mut out, row.iter().map(|x| f(*x, *y)));
        }
        return out;
    }
    if sb == out_shape && k > 0 && is_column(sa, out_shape) {
        for (x, row) in a.iter().zip(b.chunks_exact(k)) {
            push_all(&mut out, row.iter().map(|y| f(*x, *y)));
        }
        return out;
    }
    let ta = sa.broadcast_strides(out_shape);
    let tb = sb.broadcast_strides(out_shape);
    let r = out_shape.rank();
    let (la, lb) = (ta[r - 1], tb[r - 1]);
    for_each_row(
        out_shape,
        [ta, tb, [0; MAX_RANK]],
        |[oa, ob, _], run| match (la, lb) {
            (1, 1) => push_all(
                &mut out,
                a[oa..oa + run]
                    .iter()
                    .zip(&b[ob..ob + run])
                    .map(|(x, y)| f(*x, *y)),
            ),
            (1, 0) => {
                let y = b[ob];
                push_all(&mut out, a[oa..oa + run].iter().map(|x| f(*x, y)));
            }
            (0, 1) => {
                let x = a[oa];
                push_all(&mut out, b[ob..ob + run].iter().map(|y| f(x, *y)));
            }
            _ => push_all(
                &mut out,
                (0..run).map(|j| f(a[oa + j * la], b[ob + j * lb])),
            ),
        },
    );
    out
}

/// `mask ? a : b` with broadcasting of all three to `out_shape` (`mask` nonzero = true).
#[allow(clippy::too_many_arguments)]
pub fn where_<T: Float>(
    mask: &[T],
    sm: &Shape,
    a: &[T],
    sa: &Shape,
    b: &[T],
    sb: &Shape,
    out_shape: &Shape,
) -> Vec<T> {
    let mut out = T::take(out_shape.numel());
    let (tm, ta, tb) = (
        sm.broadcast_strides(out_shape),
        sa.broadcast_strides(out_shape),
        sb.broadcast_strides(out_shape),
    );
    let r = out_shape.rank();
    if r == 0 {
        out.push(if mask[0] != T::ZERO { a[0] } else { b[0] });
        return out;
    }
    let (lm, la, lb) = (tm[r - 1], ta[r - 1], tb[r - 1]);
    for_each_row(out_shape, [tm, ta, tb], |[om, oa, ob], run| {
        for j in 0..run {
            out.push(if mask[om + j * lm] != T::ZERO {
                a[oa + j * la]
            } else {
                b[ob + j * lb]
            });
        }
    });
    out
}

/// `a·x + b` elementwise.
pub fn affine<T: Float>(x: &[T], a: T, b: T) -> Vec<T> {
    map(x, |v| a * v + b)
}

/// `xᶜ` elementwise.
pub fn powf<T: Float>(x: &[T], c: T) -> Vec<T> {
    map(x, |v| v.powf(c))
}

/// Sum over `axis` of a tensor viewed as `[outer, dim, inner]` → `[outer, inner]`.
pub fn sum_axis<T: Float>(x: &[T], outer: usize, dim: usize, inner: usize) -> Vec<T> {
    let mut out = T::take(outer * inner);
    out.resize(outer * inner, T::ZERO);
    if inner == 0 || dim == 0 {
        return out; // nothing to sum (and `chunks_exact(0)` is not allowed)
    }
    if inner == 1 {
        fold_rows(&x[..outer * dim], dim, &mut out, false, |s, v| s + v);
        return out;
    }
    sum_columns(&x[..outer * dim * inner], dim, inner, &mut out);
    out
}

super::simd::multiversion! {
    /// `dst[o·inner + i] = Σ_d x[(o·dim + d)·inner + i]`, each column added in order of `d`,
    /// as wide as the CPU allows.
    fn sum_columns<T: Float>(x: &[T], dim: usize, inner: usize, dst: &mut [T]) {
        for (dst, src) in dst.chunks_exact_mut(inner).zip(x.chunks_exact(dim * inner)) {
            for row in src.chunks_exact(inner) {
                for (d, v) in dst.iter_mut().zip(row) {
                    *d += *v;
                }
            }
        }
    }
}

/// Rows the last-axis reductions take side by side.
const FOLD_ROWS: usize = 8;

/// `out[r] = f(…f(f(init, row[s]), row[s + 1])…)` for each row `r` of `x` (`dim > 0` long),
/// where `init` and `s` are `0` and 0, or (`from_first`) the row's first element and 1. Each row
/// is folded in its own order, [`FOLD_ROWS`] rows at a time: a row's chain of dependent
/// operations (a sum's additions, 4 cycles each) then overlaps with the others' — the
/// log-softmax of 1,617 rows of 10 logits was bound by those chains.
fn fold_rows<T: Float>(
    x: &[T],
    dim: usize,
    out: &mut [T],
    from_first: bool,
    f: impl Fn(T, T) -> T,
) {
    let start = usize::from(from_first);
    let init = |row: &[T]| if from_first { row[0] } else { T::ZERO };
    let mut dst = out.chunks_exact_mut(FOLD_ROWS);
    let mut src = x.chunks_exact(FOLD_ROWS * dim);
    for (d, block) in (&mut dst).zip(&mut src) {
        let mut acc = [T::ZERO; FOLD_ROWS];
        for (r, a) in acc.iter_mut().enumerate() {
            *a = init(&block[r * dim..]);
        }
        for j in start..dim {
            for (r, a) in acc.iter_mut().enumerate() {
                *a = f(*a, block[r * dim + j]);
            }
        }
        d.copy_from_slice(&acc);
    }
    for (d, row) in dst
        .into_remainder()
        .iter_mut()
        .zip(src.remainder().chunks_exact(dim))
    {
        *d = row[start..].iter().fold(init(row), |a, v| f(a, *v));
    }
}

/// Maximum over `axis` (`[outer, dim, inner]` → `[outer, inner]`); NaN propagates.
pub fn max_axis<T: Float>(x: &[T], outer: usize, dim: usize, inner: usize) -> Vec<T> {
    let larger = |m: T, v: T| if v > m || v.is_nan() { v } else { m };
    if inner == 1 && dim > 0 {
        let mut out = T::take(outer);
        out.resize(outer, T::ZERO);
        fold_rows(&x[..outer * dim], dim, &mut out, true, larger);
        return out;
    }
    let mut out = T::take(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut m = x[o * dim * inner + i];
            for d in 1..dim {
                m = larger(m, x[(o * dim + d) * inner + i]);
            }
            out.push(m);
        }
    }
    out
}

/// Index of the maximum over `axis` (first on ties) as floats.
pub fn argmax_axis<T: Float>(x: &[T], outer: usize, dim: usize, inner: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0;
            let mut m = x[o * dim * inner + i];
            for d in 1..dim {
                let v = x[(o * dim + d) * inner + i];
                if v > m {
                    m = v;
                    best = d;
                }
            }
            out.push(best);
        }
    }
    out
}

/// Broadcasts `x` of shape `s` to `target`.
pub fn broadcast_to<T: Float>(x: &[T], s: &Shape, target: &Shape) -> Vec<T> {
    let mut out = T::take(target.numel());
    let t = s.broadcast_strides(target);
    let r = target.rank();
    if r == 0 {
        out.push(x[0]);
        return out;
    }
    let l = t[r - 1];
    for_each_row(
        target,
        [t, [0; MAX_RANK], [0; MAX_RANK]],
        |[o, _, _], run| {
            if l == 1 {
                out.extend_from_slice(&x[o..o + run]);
            } else {
                let v = x[o];
                out.extend(std::iter::repeat_n(v, run));
            }
        },
    );
    out
}

/// Permutes axes: output axis `i` is input axis `perm[i]`.
pub fn permute<T: Float>(x: &[T], s: &Shape, perm: &[usize]) -> (Vec<T>, Shape) {
    let r = s.rank();
    let in_strides = s.strides();
    let mut dims = [1usize; MAX_RANK];
    let mut strides = [0usize; MAX_RANK];
    for i in 0..r {
        dims[i] = s.dim(perm[i]);
        strides[i] = in_strides[perm[i]];
    }
    let out_shape = Shape::new(&dims[..r]).unwrap_or(*s);
    let mut out = T::take(s.numel());
    if r == 0 {
        out.push(x[0]);
        return (out, out_shape);
    }
    let l = strides[r - 1];
    for_each_row(
        &out_shape,
        [strides, [0; MAX_RANK], [0; MAX_RANK]],
        |[o, _, _], run| {
            if l == 1 {
                out.extend_from_slice(&x[o..o + run]);
            } else {
                out.extend((0..run).map(|j| x[o + j * l]));
            }
        },
    );
    (out, out_shape)
}

/// `x[..., start..start+len, ...]` along the middle axis of `[outer, dim, inner]`.
pub fn narrow<T: Float>(
    x: &[T],
    outer: usize,
    dim: usize,
    inner: usize,
    start: usize,
    len: usize,
) -> Vec<T> {
    let mut out = T::take(outer * len * inner);
    for o in 0..outer {
        let base = (o * dim + start) * inner;
        out.extend_from_slice(&x[base..base + len * inner]);
    }
    out
}

/// Places `x` (`[outer, len, inner]`) at `start` of a zero tensor `[outer, full, inner]`.
pub fn pad<T: Float>(
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
    start: usize,
    full: usize,
) -> Vec<T> {
    let mut out = T::take(outer * full * inner);
    for o in 0..outer {
        out.extend(std::iter::repeat_n(T::ZERO, start * inner));
        out.extend_from_slice(&x[o * len * inner..(o + 1) * len * inner]);
        out.extend(std::iter::repeat_n(T::ZERO, (full - start - len) * inner));
    }
    out
}

/// Concatenates `[outer, dᵢ, inner]` pieces along the middle axis.
pub fn concat<T: Float>(parts: &[(&[T], usize)], outer: usize, inner: usize) -> Vec<T> {
    let total: usize = parts.iter().map(|p| p.1).sum();
    let mut out = T::take(outer * total * inner);
    for o in 0..outer {
        for (x, d) in parts {
            out.extend_from_slice(&x[o * d * inner..(o + 1) * d * inner]);
        }
    }
    out
}

/// Gathers `idx` along the middle axis: `[outer, dim, inner]` → `[outer, idx.len(), inner]`.
pub fn index_select<T: Float>(
    x: &[T],
    outer: usize,
    dim: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = T::take(outer * idx.len() * inner);
    if inner == 1 {
        // Gathering single elements (feature columns): one tight loop per row, rows in parallel
        // when there is enough work.
        out.resize(outer * idx.len(), T::ZERO);
        let n = idx.len();
        if n == 0 {
            return out;
        }
        let gather = |(row, dst): (&[T], &mut [T])| {
            for (d, &i) in dst.iter_mut().zip(idx) {
                *d = row[i];
            }
        };
        if outer * n >= PAR_MIN {
            x.par_chunks(dim)
                .zip(out.par_chunks_mut(n))
                .for_each(gather);
        } else {
            x.chunks(dim).zip(out.chunks_mut(n)).for_each(gather);
        }
        return out;
    }
    for o in 0..outer {
        for &i in idx {
            let base = (o * dim + i) * inner;
            out.extend_from_slice(&x[base..base + inner]);
        }
    }
    out
}

/// Elements of work from which the gather/scatter kernels split rows across threads (as
/// [`PAR_THRESHOLD`], measured with it).
const PAR_MIN: usize = 1 << 18;

/// Scatter-adds `src` (`[outer, idx.len(), inner]`) into zeros `[outer, dim, inner]` at `idx`.
pub fn index_add<T: Float>(
    src: &[T],
    outer: usize,
    dim: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = T::take(outer * dim * inner);
    out.resize(outer * dim * inner, T::ZERO);
    let n = idx.len();
    if inner == 1 {
        if n == 0 || dim == 0 {
            return out;
        }
        // Rows are independent: each accumulates in index order, as the serial loop does.
        let scatter = |(row, dst): (&[T], &mut [T])| {
            for (&v, &i) in row.iter().zip(idx) {
                dst[i] += v;
            }
        };
        if outer * n >= PAR_MIN {
            src.par_chunks(n)
                .zip(out.par_chunks_mut(dim))
                .for_each(scatter);
        } else {
            src.chunks(n).zip(out.chunks_mut(dim)).for_each(scatter);
        }
        return out;
    }
    for o in 0..outer {
        for (j, &i) in idx.iter().enumerate() {
            let dst = (o * dim + i) * inner;
            let s = (o * n + j) * inner;
            for k in 0..inner {
                out[dst + k] += src[s + k];
            }
        }
    }
    out
}

/// Converts between element types.
pub fn cast<A: Float, B: Float>(x: &[A]) -> Vec<B> {
    let mut out = B::take(x.len());
    out.extend(x.iter().map(|v| B::from_f64(v.to_f64())));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values with signed zeros, a NaN and ties among them, deterministic.
    fn values(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| match i % 23 {
                5 => -0.0,
                11 => 0.0,
                17 if i % 3 == 0 => f64::NAN,
                _ => ((i * 7919) % 97) as f64 / 13.0 - 3.0,
            })
            .collect()
    }

    /// Last-axis sums and maxima taken rows side by side equal each row folded alone, bit for
    /// bit, for row counts on either side of the block of rows.
    #[test]
    fn last_axis_reductions_fold_each_row_in_order() {
        for outer in [0, 1, 7, 8, 9, 17, 64] {
            for dim in [1, 2, 10, 33] {
                let x = values(outer * dim);
                let sums = sum_axis(&x, outer, dim, 1);
                let maxima = max_axis(&x, outer, dim, 1);
                for (r, row) in x.chunks_exact(dim).enumerate() {
                    let mut s = 0.0;
                    for v in row {
                        s += *v;
                    }
                    let mut m = row[0];
                    for &v in &row[1..] {
                        if v > m || v.is_nan() {
                            m = v;
                        }
                    }
                    let at = format!("row {r} of {outer} × {dim}");
                    assert_eq!(sums[r].to_bits(), s.to_bits(), "sum, {at}");
                    assert_eq!(maxima[r].to_bits(), m.to_bits(), "max, {at}");
                }
                assert_eq!((sums.len(), maxima.len()), (outer, outer));
            }
        }
    }
}
