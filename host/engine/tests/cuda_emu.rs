//! Keel's CUDA kernels (`cuda/*.cu`), compiled as C++ and run on the CPU by `keel-cuda-emu`,
//! against the CPU backend (`keel_engine::backend::cpu::kernels`, `backend::cpu::conv` for the
//! patch kernels, and `keel_engine::optim::Optimizer` for the fused updates): every kernel, f32
//! and f64, on seeded random inputs with the special values (±0, ±∞, NaN, subnormals, overflow
//! edges), sizes that are not multiples of the block, shapes of rank 0–4 with broadcasting, and
//! several launch geometries — the GPU launcher's own ([`launch_dims`]) and small grids that
//! force the grid-stride loop.
//!
//! The `info` layouts are built the way the GPU launcher builds them: per output axis, each
//! operand's element stride from [`Shape::broadcast_strides`] (0 on broadcast axes) or, for
//! views, [`Shape::strides`] permuted or offset.
//!
//! # Tolerances
//! Bit-for-bit ([`Tol::Exact`]; any NaN matches any NaN, as NaN payloads are not portable)
//! wherever the kernel does the CPU's arithmetic in the CPU's order: copies, selects,
//! comparisons, +−×÷, √ (correctly rounded everywhere), sums in axis order, affine, casts, the
//! optimizer updates. The emulation is compiled with `-ffp-contract=off`, as Rust never fuses
//! `a·b + c`; NVRTC does by default (`--fmad=true`), so on a GPU affine and the optimizers may
//! differ from these results in the last bit.
//!
//! Relative [`Tol::Libm`] (1e-6 for f32, 1e-14 for f64) where the result comes from a math
//! library function — exp, log, log1p, tanh, sin, cos, pow, and sigmoid/softplus built on them:
//! the C library that the emulated kernel calls and the one behind Rust's float methods are
//! free to round differently by an ulp or so (on a GPU it is libdevice). ±∞ and NaN must
//! still match.
//!
//! im2col and col2im (`cuda/conv.cu`, twin `backend::cpu::conv`) are exact too, col2im's sums
//! included: a pixel receives at most one patch entry per kernel tap `(ki, kj)` of its channel
//! (`oi = (iy + ph − ki·dh)/sh` is then determined), the kernel's thread per pixel gathers them
//! in ascending `(ki, kj)` from +0, and the CPU scatters with `(ki, kj)` as its outer loops —
//! the same additions in the same order. Their geometries are drawn at random as
//! `tensor::conv`'s `geometry` admits them (see `conv`).
//!
//! index_add with repeated indices: atomic adds land in thread order, not the CPU's ascending
//! order, so each element may differ by the reordering bound of recursive summation,
//! 2(m − 1)·ε·Σ|terms| for m terms ([`Report::check_reordered`]).
//!
//! Run with `-- --nocapture` to see, per test, the launches and elements compared and the
//! largest difference seen where a tolerance applies.

use keel_core::random::{standard_normal, uniform, Xoshiro256PlusPlus};
use keel_cuda_emu::{self as emu, AdamArgs, Launch, Scalar, SgdMomentumArgs, Split};
use keel_engine::backend::cpu::kernels::{self, BinaryOp, UnaryOp};
use keel_engine::backend::cpu::{conv as cpu_conv, hmc as hmc_twin, Float};
use keel_engine::backend::hmc::{add_partials, LeapfrogArgs, PriorArgs, PriorKind, CHUNK};
use keel_engine::backend::launch::{
    column_parts, launch_dims, row_chunk, row_dims, BLOCK, MAX_GRID,
};
use keel_engine::backend::ops::{PatchGeom, PatchLayout};
use keel_engine::optim::{Optimizer, OptimizerKind};
use keel_engine::params::{ParamId, Params};
use keel_engine::tensor::{Element, Shape, Tensor};

/// The two element types, with what the comparisons need.
trait Num: Float + Element + Scalar {
    /// Relative tolerance for math-library results ([`Tol::Libm`]).
    const RTOL: f64;
    /// Machine epsilon.
    const EPS: f64;
    /// Smallest positive normal value.
    const MIN_NORMAL: f64;
    /// The bits, widened.
    fn bits(self) -> u64;
    /// The bits as an integer that orders like the value (for ulp distances).
    fn ordered(self) -> i64;
}

impl Num for f32 {
    const RTOL: f64 = 1e-6;
    const EPS: f64 = f32::EPSILON as f64;
    const MIN_NORMAL: f64 = f32::MIN_POSITIVE as f64;
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
    fn ordered(self) -> i64 {
        let b = i64::from(self.to_bits() as i32);
        if b < 0 {
            i64::from(i32::MIN) - b
        } else {
            b
        }
    }
}

impl Num for f64 {
    const RTOL: f64 = 1e-14;
    const EPS: f64 = f64::EPSILON;
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn ordered(self) -> i64 {
        let b = self.to_bits() as i64;
        if b < 0 {
            i64::MIN - b
        } else {
            b
        }
    }
}

/// The bound on a sum of `m` terms whose absolute values sum to `abs` when its terms are added
/// in another order: 2(m − 1)·ε·Σ|terms| (recursive summation, twice: each order is within
/// (m − 1)·ε·Σ|terms| of the exact sum).
fn reorder_bound<T: Num>(m: usize, abs: f64) -> f64 {
    2.0 * m.saturating_sub(1) as f64 * T::EPS * abs
}

/// How a kernel's output is compared with the CPU backend's (see the crate doc for why).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Tol {
    /// Same bits; NaN matches NaN.
    Exact,
    /// |got − want| ≤ RTOL·|want| for finite values; non-finite ones exactly.
    Libm,
}

/// Launch geometries every kernel runs under for `n` work items: the GPU launcher's, then grids
/// far smaller than `n` (the grid-stride loop does most of the work), one with a block that is
/// not a multiple of the warp size.
fn geometries(n: usize) -> [Launch; 4] {
    [
        launch_dims(n).into(),
        Launch::new(1, 32),
        Launch::new(3, 64),
        Launch::new(5, 33),
    ]
}

/// Element counts for the elementwise kernels: empty, one, around a warp and a block, and one
/// past the CPU backend's parallel threshold (2¹⁸).
const SIZES: [usize; 8] = [0, 1, 31, 32, 257, 1000, 4099, 262_145];

/// Seeded inputs.
struct Gen(Xoshiro256PlusPlus);

/// Values that exercise the edges of the ops: signed zeros, infinities, NaN, subnormals (of f64
/// and of f32), exp's overflow and underflow edges in both precisions, a large value.
const SPECIALS: [f64; 12] = [
    0.0,
    -0.0,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    1e-310,
    -1e-40,
    88.5,
    -104.0,
    710.0,
    -745.5,
    1e30,
];

/// Small values that make ties (max, gt, eq) and the branch points of step/sign/relu common.
const DISCRETE: [f64; 7] = [-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0];

impl Gen {
    fn new(seed: u64) -> Self {
        Gen(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    fn unit(&mut self) -> f64 {
        uniform::<f64, _>(&mut self.0)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n - 1)
    }

    fn normal(&mut self) -> f64 {
        standard_normal::<f64, _>(&mut self.0)
    }

    /// One in 16 a special value, one in 8 a small discrete value, else N(0, 3²).
    fn values<T: Num>(&mut self, n: usize) -> Vec<T> {
        (0..n)
            .map(|_| {
                let v = match self.below(16) {
                    0 => SPECIALS[self.below(SPECIALS.len())],
                    1 | 2 => DISCRETE[self.below(DISCRETE.len())],
                    _ => 3.0 * self.normal(),
                };
                T::from_f64(v)
            })
            .collect()
    }

    /// N(0, 1) only: for reductions, scatter-adds and optimizer states, where one NaN would
    /// make a whole row or trajectory NaN and hide the arithmetic being compared.
    fn finite<T: Num>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| T::from_f64(self.normal())).collect()
    }

    /// Masks for `where`: zeros of both signs, NaN (true: NaN != 0), ones and halves.
    fn mask<T: Num>(&mut self, n: usize) -> Vec<T> {
        const M: [f64; 5] = [0.0, -0.0, f64::NAN, 1.0, 0.5];
        (0..n)
            .map(|_| T::from_f64(M[self.below(M.len())]))
            .collect()
    }

    /// `n` indices into an axis of `dim` (repeats likely when `n` is near `dim` or above).
    fn indices(&mut self, n: usize, dim: usize) -> Vec<usize> {
        (0..n).map(|_| self.below(dim)).collect()
    }
}

/// What one test compared, printed at its end.
struct Report {
    test: String,
    launches: usize,
    elements: usize,
    /// Largest |got − want|/|want| and ulp distance among [`Tol::Libm`] elements that differed.
    libm_rel: f64,
    libm_ulps: i64,
    /// Elements compared under [`Tol::Libm`], and those that differed at all.
    libm_compared: usize,
    libm_differing: usize,
    /// Elements compared as reordered sums, and the largest |got − want| as a fraction of
    /// their bound.
    reordered_compared: usize,
    reorder_frac: f64,
}

impl Report {
    fn new<T: Num>(test: &str) -> Self {
        Report {
            test: format!("{test} {}", <T as Scalar>::NAME),
            launches: 0,
            elements: 0,
            libm_rel: 0.0,
            libm_ulps: 0,
            libm_compared: 0,
            libm_differing: 0,
            reordered_compared: 0,
            reorder_frac: 0.0,
        }
    }

    /// Compares one launch's output with the CPU backend's.
    #[track_caller]
    fn check<T: Num>(&mut self, ctx: &str, got: &[T], want: &[T], tol: Tol) {
        let ctx = format!("{}: {ctx}", self.test);
        assert_eq!(got.len(), want.len(), "{ctx}: output lengths");
        self.launches += 1;
        self.elements += got.len();
        if tol == Tol::Libm {
            self.libm_compared += got.len();
        }
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(!g.is_unwritten(), "{ctx}: element {i} was never written");
            if g.bits() == w.bits() || (g.is_nan() && w.is_nan()) {
                continue;
            }
            let (gf, wf) = (g.to_f64(), w.to_f64());
            assert!(
                tol == Tol::Libm,
                "{ctx}: element {i}: emulated kernel {g:?}, CPU backend {w:?} (bit-exact expected)"
            );
            let rel = (gf - wf).abs() / wf.abs().max(<T as Num>::MIN_NORMAL);
            assert!(
                gf.is_finite() && wf.is_finite() && rel <= T::RTOL,
                "{ctx}: element {i}: emulated kernel {g:?}, CPU backend {w:?} (relative {rel:e} > {:e})",
                T::RTOL
            );
            self.libm_differing += 1;
            self.libm_rel = self.libm_rel.max(rel);
            self.libm_ulps = self.libm_ulps.max((g.ordered() - w.ordered()).abs());
        }
    }

    /// Compares sums whose terms were added in another order: `|got − want| ≤ bound[i]`.
    #[track_caller]
    fn check_reordered<T: Num>(&mut self, ctx: &str, got: &[T], want: &[T], bound: &[f64]) {
        let ctx = format!("{}: {ctx}", self.test);
        assert_eq!(got.len(), want.len(), "{ctx}: output lengths");
        self.launches += 1;
        self.elements += got.len();
        self.reordered_compared += got.len();
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(!g.is_unwritten(), "{ctx}: element {i} was never written");
            let diff = (g.to_f64() - w.to_f64()).abs();
            assert!(
                diff <= bound[i],
                "{ctx}: element {i}: emulated kernel {g:?}, CPU backend {w:?} (|Δ| {diff:e} > bound {:e})",
                bound[i]
            );
            if diff > 0.0 {
                self.reorder_frac = self.reorder_frac.max(diff / bound[i]);
            }
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let mut line = format!(
            "{}: {} launches, {} elements compared",
            self.test, self.launches, self.elements
        );
        if self.libm_compared > 0 {
            line += &format!(
                "; under the libm tolerance {} of {} differ (max rel {:.1e}, {} ulp)",
                self.libm_differing, self.libm_compared, self.libm_rel, self.libm_ulps
            );
        }
        if self.reordered_compared > 0 {
            line += &format!(
                "; reordered sums differ by at most {:.3} of their bound",
                self.reorder_frac
            );
        }
        eprintln!("{line}");
    }
}

fn shape(dims: &[usize]) -> Shape {
    Shape::new(dims).unwrap()
}

/// `[rank, d0..d3, then per operand its stride per output axis]` for an output of shape `out`
/// read from operands of the given shapes: what the launcher passes to binary and where.
fn broadcast_info<const N: usize>(out: &Shape, operands: &[Shape]) -> [u64; N] {
    assert_eq!(N, 5 + 4 * operands.len());
    let mut info = [0u64; N];
    info[0] = out.rank() as u64;
    for k in 0..4 {
        info[1 + k] = if k < out.rank() { out.dim(k) as u64 } else { 1 };
    }
    for (j, s) in operands.iter().enumerate() {
        let st = s.broadcast_strides(out);
        for k in 0..4 {
            info[5 + 4 * j + k] = st[k] as u64;
        }
    }
    info
}

/// `[rank, offset, d0..d3, s0..s3]` for strided_copy: the view of dims `dims` with element
/// strides `strides` starting at `offset`.
fn view_info(dims: &[usize], strides: &[usize], offset: usize) -> [u64; 10] {
    let mut info = [0u64; 10];
    info[0] = dims.len() as u64;
    info[1] = offset as u64;
    for k in 0..4 {
        info[2 + k] = dims.get(k).map_or(1, |d| *d as u64);
        info[6 + k] = strides.get(k).map_or(0, |s| *s as u64);
    }
    info
}

fn as_u64(idx: &[usize]) -> Vec<u64> {
    idx.iter().map(|i| *i as u64).collect()
}

const UNARY: [(UnaryOp, emu::Unary, Tol); 15] = [
    (UnaryOp::Neg, emu::Unary::Neg, Tol::Exact),
    (UnaryOp::Exp, emu::Unary::Exp, Tol::Libm),
    (UnaryOp::Log, emu::Unary::Log, Tol::Libm),
    (UnaryOp::Log1p, emu::Unary::Log1p, Tol::Libm),
    (UnaryOp::Tanh, emu::Unary::Tanh, Tol::Libm),
    (UnaryOp::Sigmoid, emu::Unary::Sigmoid, Tol::Libm),
    (UnaryOp::Softplus, emu::Unary::Softplus, Tol::Libm),
    (UnaryOp::Relu, emu::Unary::Relu, Tol::Exact),
    (UnaryOp::Sin, emu::Unary::Sin, Tol::Libm),
    (UnaryOp::Cos, emu::Unary::Cos, Tol::Libm),
    (UnaryOp::Sqrt, emu::Unary::Sqrt, Tol::Exact),
    (UnaryOp::Square, emu::Unary::Square, Tol::Exact),
    (UnaryOp::Abs, emu::Unary::Abs, Tol::Exact),
    (UnaryOp::Step, emu::Unary::Step, Tol::Exact),
    (UnaryOp::Sign, emu::Unary::Sign, Tol::Exact),
];

const BINARY: [(BinaryOp, emu::Binary); 9] = [
    (BinaryOp::Add, emu::Binary::Add),
    (BinaryOp::Sub, emu::Binary::Sub),
    (BinaryOp::Mul, emu::Binary::Mul),
    (BinaryOp::Div, emu::Binary::Div),
    (BinaryOp::Max, emu::Binary::Max),
    (BinaryOp::Gt, emu::Binary::Gt),
    (BinaryOp::Eq, emu::Binary::Eq),
    (BinaryOp::AddRelu, emu::Binary::AddRelu),
    (BinaryOp::MulStep, emu::Binary::MulStep),
];

fn unary<T: Num>() {
    assert_eq!(UNARY.map(|u| u.1), emu::Unary::ALL, "every unary kernel");
    let mut gen = Gen::new(0xC0DA_0001);
    let mut r = Report::new::<T>("unary");
    for n in SIZES {
        let x = gen.values::<T>(n);
        for (op, kernel, tol) in UNARY {
            let want = kernels::unary(op, &x);
            for l in geometries(n) {
                let got = emu::unary(l, kernel, &x);
                r.check(
                    &format!("unary_{} n={n} {l:?}", kernel.name()),
                    &got,
                    &want,
                    tol,
                );
            }
        }
    }
}

fn affine<T: Num>() {
    let mut gen = Gen::new(0xC0DA_0002);
    let mut r = Report::new::<T>("affine");
    for n in SIZES {
        let x = gen.values::<T>(n);
        for (a, b) in [(2.5, -1.0), (-0.3, 0.0), (0.0, 1.0), (1.0, 0.0)]
            .map(|(a, b)| (T::from_f64(a), T::from_f64(b)))
            .into_iter()
            .chain([(T::from_f64(gen.normal()), T::from_f64(gen.normal()))])
        {
            let want = kernels::affine(&x, a, b);
            for l in geometries(n) {
                let got = emu::affine(l, &x, a, b);
                r.check(
                    &format!("affine a={a:?} b={b:?} n={n} {l:?}"),
                    &got,
                    &want,
                    Tol::Exact,
                );
            }
        }
    }
}

fn powf<T: Num>() {
    let mut gen = Gen::new(0xC0DA_0003);
    let mut r = Report::new::<T>("powf");
    for n in SIZES {
        let x = gen.values::<T>(n);
        for c in [2.0, 0.5, -1.5, 3.0, 0.0, -2.0, 1.0 / 3.0].map(T::from_f64) {
            let want = kernels::powf(&x, c);
            for l in geometries(n) {
                let got = emu::powf(l, &x, c);
                r.check(&format!("powf c={c:?} n={n} {l:?}"), &got, &want, Tol::Libm);
            }
        }
    }
}

/// Operand shapes for the binary kernels: rank 0 to 4, equal, broadcast on either side and on
/// both, leading-axis and inner-axis broadcasts, an empty output.
const BINARY_SHAPES: [(&[usize], &[usize]); 17] = [
    (&[], &[]),
    (&[5], &[]),
    (&[], &[7]),
    (&[1], &[31]),
    (&[257], &[257]),
    (&[6, 7], &[6, 7]),
    (&[4, 1, 3], &[5, 1]),
    (&[3, 1], &[1, 1000]),
    (&[33, 1], &[33, 64]),
    (&[33, 10], &[33, 1]),
    (&[2, 3, 4], &[2, 3, 1]),
    (&[2, 3, 4], &[2, 1, 4]),
    (&[2, 3, 4, 5], &[3, 1, 5]),
    (&[2, 1, 4, 1], &[1, 3, 1, 5]),
    (&[1, 1, 1, 1], &[2, 3, 1, 7]),
    (&[2, 3, 4, 5], &[2, 3, 4, 5]),
    (&[0, 3], &[1, 3]),
];

fn binary<T: Num>() {
    assert_eq!(BINARY.map(|b| b.1), emu::Binary::ALL, "every binary kernel");
    let mut gen = Gen::new(0xC0DA_0004);
    let mut r = Report::new::<T>("binary");
    for (da, db) in BINARY_SHAPES {
        let (sa, sb) = (shape(da), shape(db));
        let out = sa.broadcast(&sb, "test").unwrap();
        let info = broadcast_info::<13>(&out, &[sa, sb]);
        let (a, b) = (gen.values::<T>(sa.numel()), gen.values::<T>(sb.numel()));
        for (op, kernel) in BINARY {
            let want = kernels::binary(op, &a, &sa, &b, &sb, &out);
            for l in geometries(out.numel()) {
                let got = emu::binary(l, kernel, &a, &b, &info);
                let ctx = format!("binary_{} {sa}·{sb}→{out} {l:?}", kernel.name());
                r.check(&ctx, &got, &want, Tol::Exact);
            }
        }
    }
}

/// Mask, then `a`, then `b` shapes for where.
const WHERE_SHAPES: [(&[usize], &[usize], &[usize]); 9] = [
    (&[], &[], &[]),
    (&[4], &[], &[4]),
    (&[1], &[257], &[1]),
    (&[1000], &[1000], &[1]),
    (&[3, 1], &[1, 5], &[3, 5]),
    (&[2, 1, 4], &[3, 1], &[4]),
    (&[2, 3, 4, 5], &[5], &[3, 1, 1]),
    (&[1, 3, 1, 5], &[2, 1, 4, 1], &[2, 3, 4, 5]),
    (&[0, 2], &[1, 2], &[2]),
];

fn where_<T: Num>() {
    let mut gen = Gen::new(0xC0DA_0005);
    let mut r = Report::new::<T>("where");
    for (dm, da, db) in WHERE_SHAPES {
        let (sm, sa, sb) = (shape(dm), shape(da), shape(db));
        let out = sm
            .broadcast(&sa, "test")
            .and_then(|s| s.broadcast(&sb, "test"))
            .unwrap();
        let info = broadcast_info::<17>(&out, &[sm, sa, sb]);
        let m = gen.mask::<T>(sm.numel());
        let (a, b) = (gen.values::<T>(sa.numel()), gen.values::<T>(sb.numel()));
        let want = kernels::where_(&m, &sm, &a, &sa, &b, &sb, &out);
        for l in geometries(out.numel()) {
            let got = emu::where_(l, &m, &a, &b, &info);
            r.check(
                &format!("where {sm}?{sa}:{sb}→{out} {l:?}"),
                &got,
                &want,
                Tol::Exact,
            );
        }
    }
}

/// Shapes reduced along every axis (the empty ones by sum only).
const REDUCE_SHAPES: [&[usize]; 13] = [
    &[1],
    &[31],
    &[1000],
    &[3, 5],
    &[4, 257],
    &[2, 3, 4],
    &[5, 1, 3],
    &[1, 1, 7],
    &[3, 1000, 2],
    &[2, 3, 4, 5],
    &[65, 2, 1, 33],
    &[0, 4],
    &[2, 0, 3],
];

fn reduce<T: Num>(max: bool) {
    let name = if max { "max_axis" } else { "sum_axis" };
    let mut gen = Gen::new(if max { 0xC0DA_0007 } else { 0xC0DA_0006 });
    let mut r = Report::new::<T>(name);
    for dims in REDUCE_SHAPES {
        let s = shape(dims);
        // Finite inputs, so sums and maxima are compared as numbers; then the special values.
        for x in [gen.finite::<T>(s.numel()), gen.values::<T>(s.numel())] {
            for axis in 0..s.rank() {
                let (outer, dim, inner) = s.split_at_axis(axis);
                if max && dim == 0 {
                    continue;
                }
                let split = Split::from((outer, dim, inner));
                let want = if outer * inner == 0 {
                    // Nothing to compute; the CPU kernel is not asked, as its sum_axis panics
                    // on inner == 0 (`chunks_exact(0)`).
                    Vec::new()
                } else if max {
                    kernels::max_axis(&x, outer, dim, inner)
                } else {
                    kernels::sum_axis(&x, outer, dim, inner)
                };
                for l in geometries(outer * inner) {
                    let got = if max {
                        emu::max_axis(l, &x, split)
                    } else {
                        emu::sum_axis(l, &x, split)
                    };
                    r.check(
                        &format!("{name} {s} axis {axis} {l:?}"),
                        &got,
                        &want,
                        Tol::Exact,
                    );
                }
            }
        }
    }
}

fn sum_axis<T: Num>() {
    reduce::<T>(false);
}

fn max_axis<T: Num>() {
    reduce::<T>(true);
}

/// The CPU twin of `{sum,max}_rows` (`cuda/reduce.cu`) for blocks of `block` threads: the same
/// combinations in the same order — each thread's strided run of its segment from the identity,
/// then each warp's 32 lanes by shuffles down 16, 8, 4, 2, 1 (a lane past the warp's end meets
/// its own value, as `__shfl_down_sync` returns it), then warp 0 over the warps' values.
fn rows_twin<T: Num>(max: bool, x: &[T], [rows, dim, chunk]: [usize; 3], block: usize) -> Vec<T> {
    let combine = |a: T, b: T| {
        if !max {
            a + b
        } else if b > a || b.is_nan() {
            b
        } else {
            a
        }
    };
    let tree = |mut lanes: [T; 32]| {
        for off in [16, 8, 4, 2, 1] {
            let before = lanes;
            for (l, v) in lanes.iter_mut().enumerate() {
                *v = combine(before[l], before[if l + off < 32 { l + off } else { l }]);
            }
        }
        lanes[0]
    };
    let parts = dim.div_ceil(chunk);
    (0..rows * parts)
        .map(|s| {
            let (seg, begin) = (&x[s / parts * dim..][..dim], s % parts * chunk);
            let end = (begin + chunk).min(dim);
            let identity = if max { seg[begin] } else { T::ZERO };
            let threads: Vec<T> = (0..block)
                .map(|t| {
                    (begin + t..end)
                        .step_by(block)
                        .fold(identity, |v, k| combine(v, seg[k]))
                })
                .collect();
            let warps: Vec<T> = threads
                .chunks_exact(32)
                .map(|w| tree(std::array::from_fn(|l| w[l])))
                .collect();
            tree(std::array::from_fn(|l| {
                warps.get(l).copied().unwrap_or(identity)
            }))
        })
        .collect()
}

/// `{sum,max}_rows` (one block per segment of a row, warp shuffles; the emulator's cooperative
/// launcher) against their twin bit for bit — segments longer and shorter than a block, rows cut
/// into segments with a short last one, several launch geometries, the special values — and
/// the GPU's plan (`launch::row_chunk`: one or two launches) against the CPU backend's
/// `sum_axis` (within the bound of a reordered sum) and `max_axis` (exactly).
fn reduce_rows<T: Num>(max: bool) {
    let name = if max { "max_rows" } else { "sum_rows" };
    let mut gen = Gen::new(if max { 0xC0DA_0021 } else { 0xC0DA_0020 });
    let mut r = Report::new::<T>(name);
    let cases: [[usize; 3]; 6] = [
        [5, 1000, 1000],
        [3, 1000, 333],
        [2, 4099, 1024],
        [4, 40, 40],
        [1, 1, 1],
        [7, 100, 7],
    ];
    for [rows, dim, chunk] in cases {
        let segments = rows * dim.div_ceil(chunk);
        for x in [gen.finite::<T>(rows * dim), gen.values::<T>(rows * dim)] {
            // The GPU's blocks of 256, and small blocks and grids (the segment loop, one warp).
            let launches = [
                Launch::new(1, 32),
                Launch::new(3, 64),
                row_dims(segments).into(),
            ];
            for l in launches {
                let got = emu::reduce_rows(l, max, &x, rows, dim, chunk);
                let want = rows_twin(max, &x, [rows, dim, chunk], l.block() as usize);
                let ctx = format!("{name} [{rows}, {dim}] chunk {chunk} {l:?}");
                r.check(&ctx, &got, &want, Tol::Exact);
            }
        }
    }
    for [rows, dim] in [[3usize, 1024], [1, 20_000], [2, 9000]] {
        let x = gen.finite::<T>(rows * dim);
        let chunk = row_chunk(rows, dim).expect("rows long enough for blocks");
        let parts = dim.div_ceil(chunk);
        let mut got = emu::reduce_rows(row_dims(rows * parts).into(), max, &x, rows, dim, chunk);
        if parts > 1 {
            got = emu::reduce_rows(row_dims(rows).into(), max, &got, rows, parts, parts);
        }
        let ctx = format!("{name} [{rows}, {dim}] as planned ({parts} parts)");
        if max {
            r.check(&ctx, &got, &kernels::max_axis(&x, rows, dim, 1), Tol::Exact);
        } else {
            let bound: Vec<f64> = x
                .chunks_exact(dim)
                .map(|row| {
                    let abs: f64 = row.iter().map(|v| v.to_f64().abs()).sum();
                    reorder_bound::<T>(dim, abs)
                })
                .collect();
            r.check_reordered(&ctx, &got, &kernels::sum_axis(&x, rows, dim, 1), &bound);
        }
    }
}

/// A column reduction as the GPU plans it when its outputs are too few (`launch::column_parts`):
/// `{sum,max}_axis` over `[outer·p, dim/p, inner]`, then over `[outer, p, inner]`, against the
/// CPU backend in one pass — the sum within the bound of a reordered sum, the max exactly.
fn split_columns<T: Num>() {
    let mut gen = Gen::new(0xC0DA_0022);
    let mut r = Report::new::<T>("sum_axis / max_axis in two launches");
    for [outer, dim, inner] in [[1usize, 4096, 24], [2, 1009 * 64, 3], [3, 640, 5]] {
        let p = column_parts(outer, dim, inner);
        assert!(
            p > 1 && dim % p == 0,
            "[{outer}, {dim}, {inner}] is split ({p})"
        );
        let x = gen.finite::<T>(outer * dim * inner);
        let first = Split::from((outer * p, dim / p, inner));
        let second = Split::from((outer, p, inner));
        let ctx = format!("[{outer}, {dim}, {inner}] in {p} parts");
        let l = |n: usize| Launch::from(launch_dims(n));
        let part = emu::max_axis(l(outer * p * inner), &x, first);
        let got = emu::max_axis(l(outer * inner), &part, second);
        let want = kernels::max_axis(&x, outer, dim, inner);
        r.check(&format!("max {ctx}"), &got, &want, Tol::Exact);
        let part = emu::sum_axis(l(outer * p * inner), &x, first);
        let got = emu::sum_axis(l(outer * inner), &part, second);
        let want = kernels::sum_axis(&x, outer, dim, inner);
        let bound: Vec<f64> = (0..outer * inner)
            .map(|j| {
                let (o, i) = (j / inner, j % inner);
                let abs: f64 = (0..dim)
                    .map(|d| x[(o * dim + d) * inner + i].to_f64().abs())
                    .sum();
                reorder_bound::<T>(dim, abs)
            })
            .collect();
        r.check_reordered(&format!("sum {ctx}"), &got, &want, &bound);
    }
}

fn sum_rows<T: Num>() {
    reduce_rows::<T>(false);
}

fn max_rows<T: Num>() {
    reduce_rows::<T>(true);
}

fn broadcast_to<T: Num>() {
    let cases: [(&[usize], &[usize]); 10] = [
        (&[], &[]),
        (&[], &[5]),
        (&[1], &[1000]),
        (&[5], &[5]),
        (&[2, 1], &[2, 31]),
        (&[1, 1], &[3, 3]),
        (&[257], &[2, 257]),
        (&[3, 1], &[2, 3, 4]),
        (&[4, 1, 3], &[2, 4, 5, 3]),
        (&[1, 7, 1, 1], &[3, 7, 2, 65]),
    ];
    let mut gen = Gen::new(0xC0DA_0008);
    let mut r = Report::new::<T>("strided_copy as broadcast_to");
    for (ds, dt) in cases {
        let (s, t) = (shape(ds), shape(dt));
        let x = gen.values::<T>(s.numel());
        let want = kernels::broadcast_to(&x, &s, &t);
        let info = view_info(t.dims(), &s.broadcast_strides(&t)[..t.rank()], 0);
        for l in geometries(t.numel()) {
            let got = emu::strided_copy(l, &x, &info);
            r.check(&format!("broadcast {s}→{t} {l:?}"), &got, &want, Tol::Exact);
        }
    }
}

fn permute<T: Num>() {
    let cases: [(&[usize], &[usize]); 9] = [
        (&[], &[]),
        (&[31], &[0]),
        (&[5, 7], &[1, 0]),
        (&[16, 65], &[1, 0]),
        (&[2, 3, 4], &[2, 0, 1]),
        (&[2, 3, 4], &[1, 2, 0]),
        (&[2, 3, 4, 5], &[3, 1, 0, 2]),
        (&[4, 1, 3, 2], &[0, 2, 1, 3]),
        (&[3, 5, 7, 11], &[3, 2, 1, 0]),
    ];
    let mut gen = Gen::new(0xC0DA_0009);
    let mut r = Report::new::<T>("strided_copy as permute");
    for (ds, perm) in cases {
        let s = shape(ds);
        let x = gen.values::<T>(s.numel());
        let (want, out) = kernels::permute(&x, &s, perm);
        let strides = s.strides();
        let dims: Vec<usize> = perm.iter().map(|&p| s.dim(p)).collect();
        let st: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
        assert_eq!(out.dims(), dims.as_slice());
        let info = view_info(&dims, &st, 0);
        for l in geometries(s.numel()) {
            let got = emu::strided_copy(l, &x, &info);
            r.check(
                &format!("permute {s} by {perm:?} {l:?}"),
                &got,
                &want,
                Tol::Exact,
            );
        }
    }
}

fn narrow<T: Num>() {
    // (shape, axis, start, len)
    let cases: [(&[usize], usize, usize, usize); 9] = [
        (&[10], 0, 3, 4),
        (&[1000], 0, 0, 1000),
        (&[4, 7], 1, 2, 3),
        (&[4, 7], 0, 1, 2),
        (&[3, 257], 1, 100, 157),
        (&[2, 3, 5, 4], 2, 1, 3),
        (&[2, 3, 5, 4], 3, 3, 1),
        (&[2, 3, 5, 4], 0, 1, 1),
        (&[5, 4], 1, 2, 0),
    ];
    let mut gen = Gen::new(0xC0DA_000A);
    let mut r = Report::new::<T>("strided_copy as narrow");
    for (ds, axis, start, len) in cases {
        let s = shape(ds);
        let x = gen.values::<T>(s.numel());
        let (outer, dim, inner) = s.split_at_axis(axis);
        let want = kernels::narrow(&x, outer, dim, inner, start, len);
        let strides = s.strides();
        let out = s.with_dim(axis, len);
        let info = view_info(out.dims(), &strides[..s.rank()], start * strides[axis]);
        for l in geometries(out.numel()) {
            let got = emu::strided_copy(l, &x, &info);
            let ctx = format!("narrow {s} axis {axis} {start}..+{len} {l:?}");
            r.check(&ctx, &got, &want, Tol::Exact);
        }
    }
}

/// Pad as the launcher does it: fill the output with zeros, then copy the block into place.
fn pad<T: Num>() {
    // (outer, len, inner, start, full)
    let cases = [
        (1, 1, 1, 0, 1),
        (1, 31, 1, 3, 40),
        (3, 5, 4, 0, 7),
        (3, 5, 4, 2, 7),
        (2, 257, 3, 1, 260),
        (4, 2, 33, 0, 5),
        (1, 0, 3, 2, 4),
    ];
    let mut gen = Gen::new(0xC0DA_000B);
    let mut r = Report::new::<T>("fill + copy_block as pad");
    for (outer, len, inner, start, full) in cases {
        let src = Split::from((outer, len, inner));
        let x = gen.values::<T>(src.numel());
        let want = kernels::pad(&x, outer, len, inner, start, full);
        for l in geometries(src.with_dim(full).numel()) {
            let mut got = vec![T::UNWRITTEN; want.len()];
            emu::fill(l, &mut got, T::ZERO);
            emu::copy_block(l, &x, &mut got, src, full, start);
            let ctx = format!("pad {src:?} at {start} of {full} {l:?}");
            r.check(&ctx, &got, &want, Tol::Exact);
        }
    }
}

/// Concatenation as the launcher does it: one copy_block per piece at its running offset.
fn concat<T: Num>() {
    // (outer, inner, sizes of the pieces along the axis)
    let cases: [(usize, usize, &[usize]); 6] = [
        (1, 1, &[1, 31, 257]),
        (3, 4, &[1, 5, 2]),
        (2, 7, &[0, 3]),
        (5, 1, &[1000, 3]),
        (1, 33, &[2, 2, 2, 2]),
        (65, 3, &[4, 1]),
    ];
    let mut gen = Gen::new(0xC0DA_000C);
    let mut r = Report::new::<T>("copy_block as concat");
    for (outer, inner, sizes) in cases {
        let parts: Vec<Vec<T>> = sizes
            .iter()
            .map(|d| gen.values::<T>(outer * d * inner))
            .collect();
        let pieces: Vec<(&[T], usize)> = parts
            .iter()
            .zip(sizes)
            .map(|(p, d)| (p.as_slice(), *d))
            .collect();
        let want = kernels::concat(&pieces, outer, inner);
        let total: usize = sizes.iter().sum();
        for l in geometries(want.len()) {
            let mut got = vec![T::UNWRITTEN; want.len()];
            let mut offset = 0;
            for (x, d) in &pieces {
                emu::copy_block(
                    l,
                    x,
                    &mut got,
                    Split::from((outer, *d, inner)),
                    total,
                    offset,
                );
                offset += d;
            }
            let ctx = format!("concat outer {outer} inner {inner} of {sizes:?} {l:?}");
            r.check(&ctx, &got, &want, Tol::Exact);
        }
    }
}

fn fill<T: Num>() {
    let mut gen = Gen::new(0xC0DA_000D);
    let mut r = Report::new::<T>("fill");
    for n in SIZES {
        let v = gen.values::<T>(1)[0];
        let want = vec![v; n];
        for l in geometries(n) {
            let mut got = vec![T::UNWRITTEN; n];
            emu::fill(l, &mut got, v);
            r.check(&format!("fill {v:?} n={n} {l:?}"), &got, &want, Tol::Exact);
        }
    }
}

/// (outer, dim, inner, number of indices) for the gather and scatter kernels; repeats are
/// likely wherever the count is near or above `dim`.
const INDEX_CASES: [(usize, usize, usize, usize); 9] = [
    (1, 10, 1, 5),
    (1, 1, 1, 1),
    (3, 7, 4, 12),
    (2, 257, 3, 31),
    (1, 3, 1000, 3),
    (5, 2, 33, 40),
    (1, 1000, 1, 4099),
    (4, 5, 0, 3),
    (0, 5, 3, 2),
];

fn index_select<T: Num>() {
    let mut gen = Gen::new(0xC0DA_000E);
    let mut r = Report::new::<T>("index_select");
    for (outer, dim, inner, n_idx) in INDEX_CASES {
        let s = Split::from((outer, dim, inner));
        let x = gen.values::<T>(s.numel());
        let idx = gen.indices(n_idx, dim);
        let want = kernels::index_select(&x, outer, dim, inner, &idx);
        for l in geometries(s.with_dim(n_idx).numel()) {
            let got = emu::index_select(l, &x, &as_u64(&idx), s);
            r.check(
                &format!("index_select {s:?} {n_idx} indices {l:?}"),
                &got,
                &want,
                Tol::Exact,
            );
        }
    }
}

fn index_add<T: Num>() {
    let mut gen = Gen::new(0xC0DA_000F);
    let mut r = Report::new::<T>("index_add");
    for (outer, dim, inner, n_idx) in INDEX_CASES {
        let s = Split::from((outer, dim, inner));
        // Random indices (repeats likely), then distinct ones in descending order, whose sums
        // have one term each and must be exact.
        let distinct: Vec<usize> = (0..dim).rev().take(n_idx).collect();
        for idx in [gen.indices(n_idx, dim), distinct] {
            let src = gen.finite::<T>(s.with_dim(idx.len()).numel());
            let want = kernels::index_add(&src, outer, dim, inner, &idx);
            // Bound per element: 2(m − 1)·ε·Σ|terms|, m the times its row is indexed.
            let abs: Vec<T> = src.iter().map(|v| v.abs()).collect();
            let abs_sum = kernels::index_add(&abs, outer, dim, inner, &idx);
            let mut mult = vec![0usize; dim];
            for &i in &idx {
                mult[i] += 1;
            }
            let bound: Vec<f64> = (0..want.len())
                .map(|e| {
                    let m = mult[(e / inner) % dim];
                    reorder_bound::<T>(m, abs_sum[e].to_f64())
                })
                .collect();
            for l in geometries(src.len()) {
                let mut got = vec![T::ZERO; s.numel()];
                emu::index_add(l, &src, &as_u64(&idx), &mut got, s);
                let ctx = format!("index_add {s:?} {} indices {l:?}", idx.len());
                r.check_reordered(&ctx, &got, &want, &bound);
            }
        }
    }
}

#[test]
fn cast() {
    let mut gen = Gen::new(0xC0DA_0010);
    let mut r32 = Report::new::<f32>("cast_f32_f64 of");
    let mut r64 = Report::new::<f64>("cast_f64_f32 of");
    for n in SIZES {
        let x32 = gen.values::<f32>(n);
        // f64 inputs that need rounding, and that overflow or underflow f32.
        let mut x64 = gen.values::<f64>(n);
        for (i, v) in x64.iter_mut().enumerate().step_by(7) {
            // Overflow, underflow, the tie between f32::MAX and 2¹²⁸ (rounds to ∞), a tie
            // between 1 and its successor (rounds to even: 1).
            let max_tie = f64::from(f32::MAX) + 2f64.powi(103);
            *v = [1e300, -1e-300, max_tie, 1.0 + 2f64.powi(-24)][i % 4];
        }
        let want32 = kernels::cast::<f32, f64>(&x32);
        let want64 = kernels::cast::<f64, f32>(&x64);
        for l in geometries(n) {
            r32.check(
                &format!("n={n} {l:?}"),
                &emu::cast_f32_f64(l, &x32),
                &want32,
                Tol::Exact,
            );
            r64.check(
                &format!("n={n} {l:?}"),
                &emu::cast_f64_f32(l, &x64),
                &want64,
                Tol::Exact,
            );
        }
    }
}

/// Every optimizer variant the fused kernels serve.
fn optimizer_kinds() -> [OptimizerKind; 8] {
    let sgd = |momentum, nesterov, weight_decay| OptimizerKind::Sgd {
        momentum,
        nesterov,
        weight_decay,
    };
    [
        sgd(0.0, false, 0.0),
        sgd(0.0, false, 1e-3),
        sgd(0.9, false, 0.0),
        sgd(0.5, false, 1e-3),
        sgd(0.9, true, 1e-2),
        OptimizerKind::adam(),
        OptimizerKind::Adam {
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 1e-2,
        },
        OptimizerKind::adamw(1e-2),
    ]
}

/// One parameter's buffers on the emulated device.
struct State<T> {
    launch: Launch,
    p: Vec<T>,
    m: Vec<T>,
    v: Vec<T>,
}

/// One step of the fused kernel for `kind`, with its scalar arguments derived from the
/// hyperparameters, step `t` and `lr` exactly as `update` in host/engine/src/optim.rs derives them (the
/// GPU launcher must do the same).
fn emu_step<T: Num>(kind: OptimizerKind, t: u64, lr: f64, s: &mut State<T>, g: &[T]) {
    let f = T::from_f64;
    match kind {
        OptimizerKind::Sgd {
            momentum,
            nesterov,
            weight_decay,
        } if momentum > 0.0 => {
            let mu = f(momentum);
            let h = SgdMomentumArgs {
                lr: f(lr),
                wd: f(weight_decay),
                keep: if t == 1 { T::ZERO } else { mu },
                nest: if nesterov { mu } else { T::ZERO },
                plain: if nesterov { T::ONE } else { T::ZERO },
                base: if nesterov { T::ZERO } else { T::ONE },
            };
            emu::sgd_momentum(s.launch, &mut s.p, g, &mut s.m, h);
        }
        OptimizerKind::Sgd { weight_decay, .. } => {
            emu::sgd(s.launch, &mut s.p, g, f(lr), f(weight_decay));
        }
        OptimizerKind::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
        }
        | OptimizerKind::AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let bc1 = 1.0 - beta1.powi(t as i32);
            let bc2 = 1.0 - beta2.powi(t as i32);
            let (wd, decay) = match kind {
                OptimizerKind::AdamW { .. } => (T::ZERO, f(1.0 - lr * weight_decay)),
                _ => (f(weight_decay), T::ONE),
            };
            let h = AdamArgs {
                b1: f(beta1),
                b2: f(beta2),
                step_size: f(lr / bc1),
                inv_sqrt_bc2: f(1.0 / bc2.sqrt()),
                eps: f(eps),
                wd,
                decay,
            };
            emu::adam(s.launch, &mut s.p, g, &mut s.m, &mut s.v, h);
        }
        OptimizerKind::AdamAlgorithm1 { .. } => {
            unreachable!("no fused kernel: Optimizer::step refuses GPU parameters for it")
        }
    }
}

/// The fused updates against `Optimizer::step` on a one-tensor `Params`, step after step (so
/// the moment buffers the kernels carry are checked through the parameters they produce).
fn optimizer<T: Num>() {
    let mut gen = Gen::new(0xC0DA_0011);
    let mut r = Report::new::<T>("adam / sgd_momentum / sgd");
    for kind in optimizer_kinds() {
        for n in [1, 257, 1000] {
            let p0 = gen.finite::<T>(n);
            let mut params = Params::new();
            params
                .insert("w", Tensor::from_vec(p0.clone(), &[n]).unwrap())
                .unwrap();
            let mut opt = Optimizer::new(kind, &params).unwrap();
            let mut states: Vec<State<T>> = geometries(n)
                .into_iter()
                .map(|launch| State {
                    launch,
                    p: p0.clone(),
                    m: vec![T::ZERO; n],
                    v: vec![T::ZERO; n],
                })
                .collect();
            for t in 1..=4u64 {
                let g = gen.finite::<T>(n);
                let lr = 0.05 / t as f64;
                opt.step(
                    &mut params,
                    &[Tensor::from_vec(g.clone(), &[n]).unwrap()],
                    lr,
                )
                .unwrap();
                let want = params.get(ParamId(0)).as_slice::<T>().unwrap().to_vec();
                for s in &mut states {
                    emu_step(kind, t, lr, s, &g);
                    let ctx = format!("{kind:?} n={n} step {t} {:?}", s.launch);
                    r.check(&ctx, &s.p, &want, Tol::Exact);
                }
            }
        }
    }
}

/// Sizes past `MAX_GRID · BLOCK`, where even the launcher's own geometry loops: one kernel of
/// each family.
fn grid_cap<T: Num>() {
    let n = (MAX_GRID * BLOCK) as usize + 3;
    let l: Launch = launch_dims(n).into();
    assert_eq!(l.grid(), MAX_GRID, "the launcher caps the grid");
    let mut gen = Gen::new(0xC0DA_0012);
    let mut r = Report::new::<T>("grid cap");
    let x = gen.values::<T>(n);
    for (op, kernel, tol) in [UNARY[0], UNARY[1]] {
        r.check(
            kernel.name(),
            &emu::unary(l, kernel, &x),
            &kernels::unary(op, &x),
            tol,
        );
    }
    let (sa, sb) = (shape(&[n / 7 + 1, 7]), shape(&[7]));
    let a = gen.values::<T>(sa.numel());
    let b = gen.values::<T>(7);
    let out = sa.broadcast(&sb, "test").unwrap();
    let l2: Launch = launch_dims(out.numel()).into();
    let got = emu::binary(
        l2,
        emu::Binary::Mul,
        &a,
        &b,
        &broadcast_info(&out, &[sa, sb]),
    );
    let want = kernels::binary(BinaryOp::Mul, &a, &sa, &b, &sb, &out);
    r.check("binary_mul", &got, &want, Tol::Exact);
    let mut y = vec![T::UNWRITTEN; n];
    emu::fill(l, &mut y, T::ONE);
    r.check("fill", &y, &vec![T::ONE; n], Tol::Exact);
    let s = Split::from((n, 1, 1));
    let want = kernels::sum_axis(&x, n, 1, 1);
    r.check("sum_axis", &emu::sum_axis(l, &x, s), &want, Tol::Exact);
}

/// The HMC kernels against their CPU twin (`backend::cpu::hmc`): the fused leapfrog update for
/// every prior, kick count and drift, on the special values too; the kinetic energy and prior
/// difference partial sums, added in order as the host adds them. The Gaussian (and no prior)
/// is +−×÷ only, so exact; the mixture and logistic go through exp/log/log1p/tanh ([`Tol::Libm`]
/// elementwise, and for the sums a bound of `RTOL · Σ|terms|`).
fn hmc<T: Num>() {
    let mut gen = Gen::new(0xC0DA_0013);
    let mut r = Report::new::<T>("hmc_leapfrog / hmc_sum_squares / hmc_prior_difference");
    let priors = [
        PriorArgs::NONE,
        PriorArgs {
            kind: PriorKind::Gaussian,
            params: [0.7, 0.0, 0.0],
        },
        PriorArgs {
            kind: PriorKind::Mixture,
            params: [0.3, 2.0, 0.4],
        },
        PriorArgs {
            kind: PriorKind::Logistic,
            params: [0.5, 0.0, 0.0],
        },
    ];
    let emu_prior = |p: &PriorArgs| emu::PriorArgs {
        kind: p.kind.code(),
        a: T::from_f64(p.params[0]),
        b: T::from_f64(p.params[1]),
        c: T::from_f64(p.params[2]),
    };
    for prior in priors {
        let exact = matches!(prior.kind, PriorKind::None | PriorKind::Gaussian);
        let tol = if exact { Tol::Exact } else { Tol::Libm };
        for n in [0, 1, 257, 1000, 4099] {
            let (theta, p, g) = (gen.values::<T>(n), gen.values::<T>(n), gen.values::<T>(n));
            for (kicks, drift) in [(1, true), (2, true), (1, false), (0, true)] {
                let h = LeapfrogArgs {
                    half: 0.0125,
                    kicks,
                    eps: 0.025,
                    drift,
                    prior,
                    temp: 0.8,
                };
                let (mut want_t, mut want_p) = (theta.clone(), p.clone());
                hmc_twin::leapfrog(&mut want_t, &mut want_p, &g, &h);
                for launch in geometries(n) {
                    let (mut t, mut pp) = (theta.clone(), p.clone());
                    let args = emu::LeapfrogArgs {
                        half: T::from_f64(h.half),
                        kicks,
                        eps: T::from_f64(h.eps),
                        drift,
                        prior: emu_prior(&prior),
                        temp: T::from_f64(h.temp),
                    };
                    emu::hmc_leapfrog(launch, &mut t, &mut pp, &g, args);
                    let ctx = format!("{prior:?} n={n} kicks={kicks} drift={drift} {launch:?}");
                    r.check(&format!("θ {ctx}"), &t, &want_t, tol);
                    r.check(&format!("p {ctx}"), &pp, &want_p, tol);
                }
            }
            // Sums on finite inputs (one NaN would make the whole sum NaN).
            let (x, y) = (gen.finite::<T>(n), gen.finite::<T>(n));
            let terms: f64 = x
                .iter()
                .zip(&y)
                .map(|(&a, &b)| {
                    (hmc_twin::prior_log_density(&prior, a).to_f64().abs()
                        + hmc_twin::prior_log_density(&prior, b).to_f64().abs())
                    .max((a.to_f64() - b.to_f64()).abs())
                })
                .sum();
            let want_sq = hmc_twin::sum_squares(&x);
            let want_diff = hmc_twin::prior_difference_sum(&prior, &x, &y);
            for launch in geometries(n.div_ceil(CHUNK).max(1)) {
                let ctx = format!("{prior:?} n={n} {launch:?}");
                let sq = add_partials(&emu::hmc_sum_squares(launch, &x, CHUNK));
                r.check(&format!("Σp² {ctx}"), &[sq], &[want_sq], Tol::Exact);
                let parts = emu::hmc_prior_difference(launch, &x, &y, CHUNK, emu_prior(&prior));
                assert_eq!(parts.len(), n.div_ceil(CHUNK), "{ctx}: partial sums");
                let diff = add_partials(&parts);
                if exact {
                    r.check(&format!("Δlog p {ctx}"), &[diff], &[want_diff], Tol::Exact);
                } else {
                    let bound = [T::RTOL * terms.max(f64::MIN_POSITIVE)];
                    r.check_reordered(&format!("Δlog p {ctx}"), &[diff], &[want_diff], &bound);
                }
            }
        }
    }
}

/// The `geom` array of `cuda/conv.cu`, as `conv_geom` in host/engine/src/backend/cuda/storage.rs
/// builds it.
fn conv_geom(g: &PatchGeom) -> [u64; 16] {
    [
        g.n,
        g.c,
        g.h,
        g.w,
        g.groups,
        g.kernel[0],
        g.kernel[1],
        g.stride[0],
        g.stride[1],
        g.padding[0],
        g.padding[1],
        g.dilation[0],
        g.dilation[1],
        g.oh,
        g.ow,
        0,
    ]
    .map(|v| v as u64)
}

/// The geometry of a convolution over `[n, c, h, w]`, or `None` where the kernel spans more
/// than the padded input — the case `geometry` in host/engine/src/tensor/conv.rs rejects (it
/// computes the output size the same way).
#[allow(clippy::too_many_arguments)]
fn patch_geom(
    [n, c, h, w]: [usize; 4],
    groups: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> Option<PatchGeom> {
    let mut out = [0usize; 2];
    for a in 0..2 {
        let span = dilation[a] * (kernel[a] - 1) + 1;
        let padded = [h, w][a] + 2 * padding[a];
        if span > padded {
            return None;
        }
        out[a] = (padded - span) / stride[a] + 1;
    }
    Some(PatchGeom {
        n,
        c,
        h,
        w,
        groups,
        kernel,
        stride,
        padding,
        dilation,
        oh: out[0],
        ow: out[1],
        layout: PatchLayout::Columns,
    })
}

/// A `[groups, rows, cols]` patch matrix of `g` (rows `(cg, ki, kj)`) in the CPU convolutions'
/// layout `[groups, cols, rows]` with each patch ordered `(ki, kj, cg)`
/// (`PatchLayout::PatchesChannelsLast`).
fn transpose_patches<T: Num>(m: &[T], g: &PatchGeom) -> Vec<T> {
    let (rows, cols) = (g.rows(), g.cols());
    let [kh, kw] = g.kernel;
    let cg = g.c / g.groups;
    let mut out = Vec::with_capacity(m.len());
    for grp in 0..g.groups {
        let block = &m[grp * rows * cols..][..rows * cols];
        for j in 0..cols {
            for ki in 0..kh {
                for kj in 0..kw {
                    out.extend((0..cg).map(|ch| block[((ch * kh + ki) * kw + kj) * cols + j]));
                }
            }
        }
    }
    out
}

impl Gen {
    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// A random convolution geometry: batch 1–3, channels 1–6 with groups a random divisor
    /// (1, depthwise, or between), height and width 1–9, each kernel side 1–4, stride 1–3,
    /// padding 0–3, dilation 1–3, drawn per axis; `None` if the kernel spans more than the
    /// padded input.
    fn patch_geom(&mut self) -> Option<PatchGeom> {
        let (n, c) = (self.between(1, 3), self.between(1, 6));
        let divisors: Vec<usize> = (1..=c).filter(|g| c % g == 0).collect();
        let groups = divisors[self.below(divisors.len())];
        let (h, w) = (self.between(1, 9), self.between(1, 9));
        let mut pair = |lo, hi| [self.between(lo, hi), self.between(lo, hi)];
        let (kernel, stride, padding, dilation) = (pair(1, 4), pair(1, 3), pair(0, 3), pair(1, 3));
        patch_geom([n, c, h, w], groups, kernel, stride, padding, dilation)
    }
}

/// `im2col` by the definition in [`PatchGeom`]'s doc, one entry at a time: row `(cg, ki, kj)`
/// of group `grp`, column `(b, oi, oj)` is `x[b, grp·c/groups + cg, oi·sh − ph + ki·dh,
/// oj·sw − pw + kj·dw]`, or `fill` in the padding. Calls `each(entry, pixel)` per entry too.
fn patch_entries<T: Num>(
    x: &[T],
    g: &PatchGeom,
    fill: T,
    mut each: impl FnMut(usize, Option<usize>),
) -> Vec<T> {
    let cg = g.c / g.groups;
    let mut out = Vec::with_capacity(g.patch_len());
    for grp in 0..g.groups {
        for ci in 0..cg {
            for ki in 0..g.kernel[0] {
                for kj in 0..g.kernel[1] {
                    for b in 0..g.n {
                        for oi in 0..g.oh {
                            for oj in 0..g.ow {
                                let r = (oi * g.stride[0] + ki * g.dilation[0])
                                    .checked_sub(g.padding[0])
                                    .filter(|&r| r < g.h);
                                let col = (oj * g.stride[1] + kj * g.dilation[1])
                                    .checked_sub(g.padding[1])
                                    .filter(|&col| col < g.w);
                                let pixel = r.zip(col).map(|(r, col)| {
                                    ((b * g.c + grp * cg + ci) * g.h + r) * g.w + col
                                });
                                each(out.len(), pixel);
                                out.push(pixel.map_or(fill, |p| x[p]));
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// `col2im` as the adjoint of the definition: every patch entry, in row-major order, added
/// into its pixel of an image of +0s. Each pixel receives at most one entry per `(ki, kj)` of
/// its channel, so its terms arrive in ascending `(ki, kj)` — the order of the CPU twin and of
/// the kernel.
fn col2im_definition<T: Num>(cols: &[T], g: &PatchGeom) -> Vec<T> {
    let mut out = vec![T::ZERO; g.image_len()];
    let image = vec![T::ZERO; g.image_len()];
    patch_entries(&image, g, T::ZERO, |e, pixel| {
        if let Some(p) = pixel {
            out[p] += cols[e];
        }
    });
    out
}

/// Random geometries compared per dtype (besides the fixed large ones).
const CONV_GEOMS: usize = 400;

/// `im2col` and `col2im` (`cuda/conv.cu`) against their CPU twins (`backend::cpu::conv`), bit
/// for bit, on [`CONV_GEOMS`] random geometries ([`Gen::patch_geom`]) and two past the CPU's
/// parallel threshold (2¹⁵ elements), inputs with the special values, im2col with fill 0 and
/// −∞ (convolution and max pooling). The twins are first checked against the definition
/// ([`patch_entries`], [`col2im_definition`]), so a disagreement says which side is wrong.
fn conv<T: Num>() {
    let mut gen = Gen::new(0xC0DA_0014);
    let mut r = Report::new::<T>("im2col / col2im");
    let mut def = Report::new::<T>("im2col / col2im CPU twins against the definition:");
    let mut geoms = Vec::with_capacity(CONV_GEOMS + 2);
    let mut skipped = 0;
    while geoms.len() < CONV_GEOMS {
        match gen.patch_geom() {
            Some(g) => geoms.push(g),
            None => skipped += 1,
        }
    }
    let large = [
        patch_geom([3, 6, 45, 41], 3, [3, 2], [1, 2], [1, 1], [2, 1]),
        patch_geom([2, 4, 64, 65], 4, [2, 3], [2, 1], [0, 1], [1, 3]),
    ];
    geoms.extend(large.map(|g| g.expect("valid")));
    // The random draw must reach the cases that matter.
    let count = |p: &dyn Fn(&PatchGeom) -> bool| geoms.iter().filter(|g| p(g)).count();
    for (what, seen) in [
        ("depthwise", count(&|g| g.groups == g.c && g.c > 1)),
        ("grouped", count(&|g| g.groups > 1 && g.groups < g.c)),
        ("anisotropic kernel", count(&|g| g.kernel[0] != g.kernel[1])),
        (
            "stride 3 and dilation 3",
            count(&|g| g.stride.contains(&3) && g.dilation.contains(&3)),
        ),
        (
            "windows entirely in the padding",
            count(&|g| g.padding[0] > g.dilation[0] * (g.kernel[0] - 1)),
        ),
        (
            "odd height and width",
            count(&|g| g.h % 2 == 1 && g.w % 2 == 1),
        ),
        ("batch 3", count(&|g| g.n == 3)),
    ] {
        assert!(seen >= 10, "only {seen} geometries {what}");
    }
    for g in &geoms {
        let geom = conv_geom(g);
        let x = gen.values::<T>(g.image_len());
        for fill in [T::ZERO, T::from_f64(f64::NEG_INFINITY)] {
            let want = cpu_conv::im2col(&x, g, fill);
            let ctx = format!("im2col {g:?} fill {fill:?}");
            def.check(
                &ctx,
                &want,
                &patch_entries(&x, g, fill, |_, _| ()),
                Tol::Exact,
            );
            for l in geometries(g.patch_len()) {
                let got = emu::im2col(l, &x, &geom, fill);
                r.check(&format!("{ctx} {l:?}"), &got, &want, Tol::Exact);
            }
        }
        let cols = gen.values::<T>(g.patch_len());
        let want = cpu_conv::col2im(&cols, g);
        let ctx = format!("col2im {g:?}");
        def.check(&ctx, &want, &col2im_definition(&cols, g), Tol::Exact);
        // The CPU convolutions' layout: the same entries, and col2im's sums in the same order.
        let gt = PatchGeom {
            layout: PatchLayout::PatchesChannelsLast,
            ..*g
        };
        for fill in [T::ZERO, T::from_f64(f64::NEG_INFINITY)] {
            def.check(
                &format!("im2col channels-last {g:?} fill {fill:?}"),
                &cpu_conv::im2col(&x, &gt, fill),
                &transpose_patches(&patch_entries(&x, g, fill, |_, _| ()), g),
                Tol::Exact,
            );
        }
        def.check(
            &format!("col2im channels-last {g:?}"),
            &cpu_conv::col2im(&transpose_patches(&cols, g), &gt),
            &want,
            Tol::Exact,
        );
        for l in geometries(g.image_len()) {
            let got = emu::col2im(l, &cols, &geom);
            r.check(&format!("{ctx} {l:?}"), &got, &want, Tol::Exact);
        }
    }
    eprintln!(
        "im2col / col2im {}: {} geometries ({CONV_GEOMS} random, {skipped} draws skipped: kernel \
         span over the padded input)",
        <T as Scalar>::NAME,
        geoms.len()
    );
}

/// Emits one `#[test]` per dtype for each generic test body.
macro_rules! for_both_dtypes {
    ($($name:ident),* $(,)?) => {
        mod as_f32 {
            $(#[test]
            fn $name() {
                super::$name::<f32>();
            })*
        }
        mod as_f64 {
            $(#[test]
            fn $name() {
                super::$name::<f64>();
            })*
        }
    };
}

for_both_dtypes!(
    unary,
    affine,
    powf,
    binary,
    where_,
    sum_axis,
    max_axis,
    sum_rows,
    max_rows,
    split_columns,
    broadcast_to,
    permute,
    narrow,
    pad,
    concat,
    fill,
    index_select,
    index_add,
    optimizer,
    hmc,
    grid_cap,
    conv,
);
