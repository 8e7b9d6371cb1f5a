//! # keel-cuda-emu
//!
//! Keel's CUDA kernels — the very sources in `cuda/*.cu` that the GPU backend compiles with
//! NVRTC — compiled as C++20 and run on the CPU, so the test suite checks the kernels' logic
//! (index arithmetic, broadcasting, grid-stride loops, per-op semantics) on machines without a
//! GPU. `build.rs` force-includes `cuda_emu.hpp`, a small emulation of the CUDA execution model,
//! before each `.cu` file; a launch runs every (block, thread) of the grid in turn, except for
//! the kernels that synchronise their threads ([`reduce_rows`]), which run one OS thread per
//! CUDA thread of a block with `__syncthreads` and warp shuffles through barriers.
//!
//! Each function here is a safe wrapper of one kernel family: slices in, a fresh `Vec` out (or
//! the kernel's in-place buffers as `&mut`), and the [`Launch`] geometry as an argument, so tests
//! can run a kernel exactly as the GPU launcher will (`keel::backend::launch::launch_dims`) and
//! with small grids that force the grid-stride loop.
//!
//! ```
//! use keel_cuda_emu::{unary, Launch, Unary};
//! let y = unary(Launch::new(3, 64), Unary::Square, &[1.0f32, -2.0, 3.0]);
//! assert_eq!(y, [1.0, 4.0, 9.0]);
//! ```
//!
//! Output buffers are filled with [`Scalar::UNWRITTEN`] before a launch, so an element that a
//! kernel failed to write is visible as such.
//!
//! Not for: speed (every CUDA thread is a function call on one OS thread), nor proof that a
//! source compiles with NVRTC (g++ accepts things NVRTC rejects; CI compiles the PTX), nor
//! device rounding: on the GPU, NVRTC fuses `a·b + c` into an FMA unless told `--fmad=false`.
//!
//! # Panics
//! The kernels do no bounds checks, so every wrapper checks, before launching, that each buffer
//! holds every element the kernel will touch, and panics with the sizes if not.

#![deny(missing_docs)]

mod ffi;

use std::fmt::Debug;

use ffi::Kernels;

/// A one-dimensional launch: `grid` blocks of `block` threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    grid: u32,
    block: u32,
}

impl Launch {
    /// A launch of `grid` blocks of `block` threads.
    ///
    /// # Panics
    /// If either is 0 (CUDA rejects such a launch).
    #[track_caller]
    pub fn new(grid: u32, block: u32) -> Self {
        assert!(
            grid > 0 && block > 0,
            "launch needs at least one block and one thread (grid {grid}, block {block})"
        );
        Launch { grid, block }
    }

    /// Blocks.
    pub fn grid(self) -> u32 {
        self.grid
    }

    /// Threads per block.
    pub fn block(self) -> u32 {
        self.block
    }
}

impl From<(u32, u32)> for Launch {
    /// From `(grid, block)`, as `keel::backend::launch::launch_dims` returns them.
    fn from((grid, block): (u32, u32)) -> Self {
        Launch::new(grid, block)
    }
}

mod sealed {
    pub trait Sealed: Sized + 'static {
        fn kernels() -> &'static crate::ffi::Kernels<Self>;
        fn same_bits(self, other: Self) -> bool;
    }
}

/// The element types the kernels are instantiated for: `f32` (`_f32`, `float`) and `f64`
/// (`_f64`, `double`).
pub trait Scalar: sealed::Sealed + Copy + PartialEq + Debug + Send + Sync {
    /// The kernel name suffix (`"f32"` or `"f64"`).
    const NAME: &'static str;
    /// What output buffers hold before a launch: a quiet NaN with a payload that no kernel
    /// computes from ordinary inputs.
    const UNWRITTEN: Self;
    /// Whether `self` is bit for bit [`Scalar::UNWRITTEN`], i.e. the kernel never wrote it.
    fn is_unwritten(self) -> bool {
        self.same_bits(Self::UNWRITTEN)
    }
}

impl sealed::Sealed for f32 {
    fn kernels() -> &'static Kernels<f32> {
        &ffi::F32
    }
    fn same_bits(self, other: Self) -> bool {
        self.to_bits() == other.to_bits()
    }
}

impl Scalar for f32 {
    const NAME: &'static str = "f32";
    const UNWRITTEN: f32 = f32::from_bits(0x7fc5_5a5a);
}

impl sealed::Sealed for f64 {
    fn kernels() -> &'static Kernels<f64> {
        &ffi::F64
    }
    fn same_bits(self, other: Self) -> bool {
        self.to_bits() == other.to_bits()
    }
}

impl Scalar for f64 {
    const NAME: &'static str = "f64";
    const UNWRITTEN: f64 = f64::from_bits(0x7ff8_5a5a_5a5a_5a5a);
}

/// The unary kernels `unary_{op}_{dtype}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unary {
    /// `unary_neg`: −x.
    Neg,
    /// `unary_exp`: eˣ.
    Exp,
    /// `unary_log`: ln x.
    Log,
    /// `unary_log1p`: ln(1 + x).
    Log1p,
    /// `unary_tanh`: tanh x.
    Tanh,
    /// `unary_sigmoid`: 1/(1 + e⁻ˣ), stable on both sides.
    Sigmoid,
    /// `unary_softplus`: max(x, 0) + ln(1 + e^−|x|).
    Softplus,
    /// `unary_relu`: x > 0 ? x : 0.
    Relu,
    /// `unary_sin`: sin x.
    Sin,
    /// `unary_cos`: cos x.
    Cos,
    /// `unary_sqrt`: √x.
    Sqrt,
    /// `unary_square`: x·x.
    Square,
    /// `unary_abs`: |x|.
    Abs,
    /// `unary_step`: x > 0 ? 1 : 0.
    Step,
    /// `unary_sign`: 1, −1 or 0.
    Sign,
}

impl Unary {
    /// Every op, in declaration order.
    pub const ALL: [Unary; 15] = [
        Unary::Neg,
        Unary::Exp,
        Unary::Log,
        Unary::Log1p,
        Unary::Tanh,
        Unary::Sigmoid,
        Unary::Softplus,
        Unary::Relu,
        Unary::Sin,
        Unary::Cos,
        Unary::Sqrt,
        Unary::Square,
        Unary::Abs,
        Unary::Step,
        Unary::Sign,
    ];

    /// The `{op}` of the kernel name `unary_{op}_{dtype}`.
    pub fn name(self) -> &'static str {
        match self {
            Unary::Neg => "neg",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Log1p => "log1p",
            Unary::Tanh => "tanh",
            Unary::Sigmoid => "sigmoid",
            Unary::Softplus => "softplus",
            Unary::Relu => "relu",
            Unary::Sin => "sin",
            Unary::Cos => "cos",
            Unary::Sqrt => "sqrt",
            Unary::Square => "square",
            Unary::Abs => "abs",
            Unary::Step => "step",
            Unary::Sign => "sign",
        }
    }
}

/// The broadcasting binary kernels `binary_{op}_{dtype}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Binary {
    /// `binary_add`: a + b.
    Add,
    /// `binary_sub`: a − b.
    Sub,
    /// `binary_mul`: a·b.
    Mul,
    /// `binary_div`: a / b.
    Div,
    /// `binary_max`: (a ≥ b or b is NaN) ? a : b.
    Max,
    /// `binary_gt`: a > b ? 1 : 0.
    Gt,
    /// `binary_eq`: a == b ? 1 : 0.
    Eq,
    /// `binary_addrelu`: relu(a + b).
    AddRelu,
    /// `binary_mulstep`: a · (b > 0 ? 1 : 0).
    MulStep,
}

impl Binary {
    /// Every op, in declaration order.
    pub const ALL: [Binary; 9] = [
        Binary::Add,
        Binary::Sub,
        Binary::Mul,
        Binary::Div,
        Binary::Max,
        Binary::Gt,
        Binary::Eq,
        Binary::AddRelu,
        Binary::MulStep,
    ];

    /// The `{op}` of the kernel name `binary_{op}_{dtype}`.
    pub fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Max => "max",
            Binary::Gt => "gt",
            Binary::Eq => "eq",
            Binary::AddRelu => "addrelu",
            Binary::MulStep => "mulstep",
        }
    }
}

/// A tensor viewed as `[outer, dim, inner]` around one axis (`Shape::split_at_axis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Product of the dimensions before the axis.
    pub outer: usize,
    /// The axis' dimension.
    pub dim: usize,
    /// Product of the dimensions after the axis.
    pub inner: usize,
}

impl Split {
    /// `outer · dim · inner`.
    ///
    /// # Panics
    /// On overflow.
    pub fn numel(self) -> usize {
        self.outer
            .checked_mul(self.dim)
            .and_then(|v| v.checked_mul(self.inner))
            .expect("[outer, dim, inner] overflows usize")
    }

    /// The same split with the axis resized to `dim`.
    pub fn with_dim(self, dim: usize) -> Split {
        Split { dim, ..self }
    }
}

impl From<(usize, usize, usize)> for Split {
    fn from((outer, dim, inner): (usize, usize, usize)) -> Self {
        Split { outer, dim, inner }
    }
}

/// The scalar arguments of `adam_{dtype}` after `n`, in the kernel's order (see
/// `cuda/optim.cu` for how the host derives them from the step count).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamArgs<T> {
    /// β₁.
    pub b1: T,
    /// β₂.
    pub b2: T,
    /// lr / (1 − β₁ᵗ).
    pub step_size: T,
    /// 1/√(1 − β₂ᵗ).
    pub inv_sqrt_bc2: T,
    /// ε.
    pub eps: T,
    /// L2 weight decay added to the gradient (0 for AdamW).
    pub wd: T,
    /// Factor applied to p first (1 − lr·λ for AdamW, 1 for Adam).
    pub decay: T,
}

/// The scalar arguments of `sgd_momentum_{dtype}` after `n`, in the kernel's order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdMomentumArgs<T> {
    /// Learning rate.
    pub lr: T,
    /// L2 weight decay.
    pub wd: T,
    /// Factor on the old buffer (0 on the first step, μ after).
    pub keep: T,
    /// μ for Nesterov, else 0.
    pub nest: T,
    /// 1 for Nesterov, else 0.
    pub plain: T,
    /// 0 for Nesterov, else 1.
    pub base: T,
}

/// A prior as the HMC kernels take it: `kind` (0 none, 1 Gaussian, 2 mixture, 3 logistic) and
/// its parameters `a, b, c` (see `cuda/hmc.cu`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriorArgs<T> {
    /// Which density.
    pub kind: u64,
    /// First parameter (Gaussian std, mixture weight, logistic scale).
    pub a: T,
    /// Second parameter (mixture wide std).
    pub b: T,
    /// Third parameter (mixture narrow std).
    pub c: T,
}

/// The scalar arguments of `hmc_leapfrog_{dtype}` after `n`, in the kernel's order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeapfrogArgs<T> {
    /// Half kick size `ε/2`.
    pub half: T,
    /// Half kicks before the drift (0, 1 or 2).
    pub kicks: u64,
    /// Drift size `ε`.
    pub eps: T,
    /// Whether θ drifts.
    pub drift: bool,
    /// The prior whose gradient joins `g`.
    pub prior: PriorArgs<T>,
    /// Temperature dividing the prior's gradient.
    pub temp: T,
}

fn ull(v: usize) -> u64 {
    u64::try_from(v).expect("usize fits u64")
}

fn output<T: Scalar>(n: usize) -> Vec<T> {
    vec![T::UNWRITTEN; n]
}

#[track_caller]
fn check_same_len(kernel: &str, what: &str, len: usize, n: usize) {
    assert!(
        len == n,
        "{kernel}: {what} holds {len} elements, expected {n}"
    );
}

/// Elements of the output described by `rank` and `dims` (the first `rank` used).
#[track_caller]
fn strided_numel(kernel: &str, rank: u64, dims: &[u64]) -> usize {
    assert!(rank <= 4, "{kernel}: rank {rank} > 4");
    let n = dims[..rank as usize]
        .iter()
        .try_fold(1u64, |acc, d| acc.checked_mul(*d))
        .expect("output size overflows u64");
    usize::try_from(n).expect("output size fits usize")
}

/// Checks that an operand of `len` elements holds every element a strided read touches: the
/// largest is `offset + Σ (d − 1)·s` over the first `rank` axes (none if the output is empty).
#[track_caller]
fn check_strided(
    kernel: &str,
    what: &str,
    len: usize,
    rank: u64,
    dims: &[u64],
    offset: u64,
    strides: &[u64],
) {
    if strided_numel(kernel, rank, dims) == 0 {
        return;
    }
    let last = (0..rank as usize)
        .try_fold(offset, |acc, k| {
            (dims[k] - 1)
                .checked_mul(strides[k])
                .and_then(|v| acc.checked_add(v))
        })
        .expect("offset overflows u64");
    assert!(
        last < ull(len),
        "{kernel}: {what} holds {len} elements, the layout reads element {last}"
    );
}

/// `unary_{op}_{dtype}`: `op(x)` elementwise.
pub fn unary<T: Scalar>(launch: Launch, op: Unary, x: &[T]) -> Vec<T> {
    let mut y = output(x.len());
    let k = T::kernels().unary[op as usize];
    // SAFETY: unary_{op}_{dtype}(const T* x, T* y, unsigned long long n) reads x[0..n) and
    // writes y[0..n); both hold n elements.
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            ull(x.len()),
        )
    };
    y
}

/// `affine_{dtype}`: `a·x + b` elementwise.
pub fn affine<T: Scalar>(launch: Launch, x: &[T], a: T, b: T) -> Vec<T> {
    let mut y = output(x.len());
    let k = T::kernels().affine;
    // SAFETY: affine_{dtype}(const T* x, T* y, unsigned long long n, T a, T b) reads x[0..n)
    // and writes y[0..n); both hold n elements.
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            ull(x.len()),
            a,
            b,
        )
    };
    y
}

/// `powf_{dtype}`: `xᶜ` elementwise.
pub fn powf<T: Scalar>(launch: Launch, x: &[T], c: T) -> Vec<T> {
    let mut y = output(x.len());
    let k = T::kernels().powf;
    // SAFETY: powf_{dtype}(const T* x, T* y, unsigned long long n, T c) reads x[0..n) and
    // writes y[0..n); both hold n elements.
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            ull(x.len()),
            c,
        )
    };
    y
}

/// `binary_{op}_{dtype}`: `op(a, b)` with broadcasting, laid out by
/// `info = [rank, d0..d3, sa0..sa3, sb0..sb3]`; the output has `d0·…·d_{rank−1}` elements.
///
/// # Panics
/// If `rank > 4` or `a` or `b` is too short for its strides.
#[track_caller]
pub fn binary<T: Scalar>(launch: Launch, op: Binary, a: &[T], b: &[T], info: &[u64; 13]) -> Vec<T> {
    let kernel = "binary";
    let (rank, dims) = (info[0], &info[1..5]);
    let n = strided_numel(kernel, rank, dims);
    check_strided(kernel, "a", a.len(), rank, dims, 0, &info[5..9]);
    check_strided(kernel, "b", b.len(), rank, dims, 0, &info[9..13]);
    let mut y = output(n);
    let k = T::kernels().binary[op as usize];
    // SAFETY: binary_{op}_{dtype}(const T* a, const T* b, T* y, unsigned long long n,
    // const unsigned long long* info) reads info[0..13), a and b at the offsets checked above,
    // and writes y[0..n).
    unsafe {
        k(
            launch.grid,
            launch.block,
            a.as_ptr(),
            b.as_ptr(),
            y.as_mut_ptr(),
            ull(n),
            info.as_ptr(),
        )
    };
    y
}

/// `where_{dtype}`: `m != 0 ? a : b` with broadcasting, laid out by
/// `info = [rank, d0..d3, sm0..sm3, sa0..sa3, sb0..sb3]`.
///
/// # Panics
/// If `rank > 4` or an operand is too short for its strides.
#[track_caller]
pub fn where_<T: Scalar>(launch: Launch, m: &[T], a: &[T], b: &[T], info: &[u64; 17]) -> Vec<T> {
    let kernel = "where";
    let (rank, dims) = (info[0], &info[1..5]);
    let n = strided_numel(kernel, rank, dims);
    check_strided(kernel, "m", m.len(), rank, dims, 0, &info[5..9]);
    check_strided(kernel, "a", a.len(), rank, dims, 0, &info[9..13]);
    check_strided(kernel, "b", b.len(), rank, dims, 0, &info[13..17]);
    let mut y = output(n);
    let k = T::kernels().where_;
    // SAFETY: where_{dtype}(const T* m, const T* a, const T* b, T* y, unsigned long long n,
    // const unsigned long long* info) reads info[0..17), m, a and b at the offsets checked
    // above, and writes y[0..n).
    unsafe {
        k(
            launch.grid,
            launch.block,
            m.as_ptr(),
            a.as_ptr(),
            b.as_ptr(),
            y.as_mut_ptr(),
            ull(n),
            info.as_ptr(),
        )
    };
    y
}

#[track_caller]
fn reduce<T: Scalar>(
    kernel: &str,
    k: ffi::ReduceFn<T>,
    launch: Launch,
    x: &[T],
    s: Split,
) -> Vec<T> {
    check_same_len(kernel, "x", x.len(), s.numel());
    let n = s.outer * s.inner;
    assert!(
        s.dim > 0 || n == 0 || kernel == "sum_axis",
        "{kernel}: the axis is empty"
    );
    let mut y = output(n);
    // SAFETY: {sum,max}_axis_{dtype}(const T* x, T* y, outer, dim, inner) reads
    // x[0..outer·dim·inner) and writes y[0..outer·inner); max reads x[o·dim·inner + i] only when
    // outer·inner > 0, and then dim ≥ 1.
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            ull(s.outer),
            ull(s.dim),
            ull(s.inner),
        )
    };
    y
}

/// `sum_axis_{dtype}`: `[outer, dim, inner]` → `[outer, inner]`, summing in axis order.
///
/// # Panics
/// If `x.len() != outer·dim·inner`.
#[track_caller]
pub fn sum_axis<T: Scalar>(launch: Launch, x: &[T], s: Split) -> Vec<T> {
    reduce("sum_axis", T::kernels().sum_axis, launch, x, s)
}

/// `max_axis_{dtype}`: `[outer, dim, inner]` → `[outer, inner]`; NaN wins.
///
/// # Panics
/// If `x.len() != outer·dim·inner`, or `dim == 0` with a non-empty output.
#[track_caller]
pub fn max_axis<T: Scalar>(launch: Launch, x: &[T], s: Split) -> Vec<T> {
    reduce("max_axis", T::kernels().max_axis, launch, x, s)
}

/// `{sum,max}_rows_{dtype}`: one value per segment of `chunk` elements of each row of a
/// contiguous `[rows, dim]` (`parts = ⌈dim/chunk⌉` segments a row, `[rows, parts]` out), one
/// block per segment with warp shuffles, run by the cooperative launcher (one OS thread per
/// CUDA thread of a block). See `cuda/reduce.cu` for the order of the combinations.
///
/// # Panics
/// If `x.len() != rows·dim`, `chunk == 0`, the block is not a multiple of 32 or above 1024, or
/// (`max`) `dim == 0` with rows.
#[track_caller]
pub fn reduce_rows<T: Scalar>(
    launch: Launch,
    max: bool,
    x: &[T],
    rows: usize,
    dim: usize,
    chunk: usize,
) -> Vec<T> {
    let kernel = if max { "max_rows" } else { "sum_rows" };
    check_same_len(kernel, "x", x.len(), rows * dim);
    assert!(chunk > 0, "{kernel}: chunk 0");
    assert!(
        launch.block.is_multiple_of(32) && launch.block <= 1024,
        "{kernel}: blocks of whole warps, at most 1024 threads (got {})",
        launch.block
    );
    assert!(!max || dim > 0 || rows == 0, "{kernel}: the rows are empty");
    let k = if max {
        T::kernels().max_rows
    } else {
        T::kernels().sum_rows
    };
    let mut y = output(rows * dim.div_ceil(chunk));
    // SAFETY: {sum,max}_rows_{dtype}(const T* x, T* y, rows, dim, chunk) reads
    // x[0..rows·dim) and writes y[0..rows·⌈dim/chunk⌉); the launcher needs whole warps (checked
    // above).
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            ull(rows),
            ull(dim),
            ull(chunk),
        )
    };
    y
}

/// `strided_copy_{dtype}`: materialises the view `info = [rank, offset, d0..d3, s0..s3]` of
/// `x` (broadcast_to, permute, narrow).
///
/// # Panics
/// If `rank > 4` or `x` is too short for the view.
#[track_caller]
pub fn strided_copy<T: Scalar>(launch: Launch, x: &[T], info: &[u64; 10]) -> Vec<T> {
    let kernel = "strided_copy";
    let (rank, dims) = (info[0], &info[2..6]);
    let n = strided_numel(kernel, rank, dims);
    check_strided(kernel, "x", x.len(), rank, dims, info[1], &info[6..10]);
    let mut y = output(n);
    let k = T::kernels().strided_copy;
    // SAFETY: strided_copy_{dtype}(const T* x, T* y, unsigned long long n,
    // const unsigned long long* info) reads info[0..10), x at the offsets checked above, and
    // writes y[0..n).
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            ull(n),
            info.as_ptr(),
        )
    };
    y
}

/// `copy_block_{dtype}`: `x` (`[outer, dim, inner]` of `src`) into rows
/// `offset .. offset + dim` of `y` viewed as `[outer, d_dst, inner]`.
///
/// # Panics
/// If `x.len() != outer·dim·inner`, `offset + dim > d_dst`, or `y.len() != outer·d_dst·inner`.
#[track_caller]
pub fn copy_block<T: Scalar>(
    launch: Launch,
    x: &[T],
    y: &mut [T],
    src: Split,
    d_dst: usize,
    offset: usize,
) {
    let kernel = "copy_block";
    check_same_len(kernel, "x", x.len(), src.numel());
    assert!(
        offset.checked_add(src.dim).is_some_and(|end| end <= d_dst),
        "{kernel}: rows {offset}..{offset}+{} do not fit {d_dst}",
        src.dim
    );
    check_same_len(kernel, "y", y.len(), src.with_dim(d_dst).numel());
    let k = T::kernels().copy_block;
    // SAFETY: copy_block_{dtype}(const T* x, T* y, outer, d_src, inner, d_dst, offset) reads
    // x[0..outer·d_src·inner) and writes y[(o·d_dst + offset + d)·inner + i] < outer·d_dst·inner
    // since offset + d_src ≤ d_dst.
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            ull(src.outer),
            ull(src.dim),
            ull(src.inner),
            ull(d_dst),
            ull(offset),
        )
    };
}

/// `fill_{dtype}`: every element of `y` becomes `v`.
pub fn fill<T: Scalar>(launch: Launch, y: &mut [T], v: T) {
    let k = T::kernels().fill;
    // SAFETY: fill_{dtype}(T* y, unsigned long long n, T v) writes y[0..n); y holds n elements.
    unsafe { k(launch.grid, launch.block, y.as_mut_ptr(), ull(y.len()), v) };
}

#[track_caller]
fn check_indices(kernel: &str, idx: &[u64], dim: usize) {
    if let Some((j, i)) = idx.iter().enumerate().find(|(_, i)| **i >= ull(dim)) {
        panic!("{kernel}: idx[{j}] = {i} is out of range for an axis of {dim}");
    }
}

/// `index_select_{dtype}`: gathers rows `idx` of the middle axis of `x` (`[outer, dim, inner]`
/// of `s`) → `[outer, idx.len(), inner]`.
///
/// # Panics
/// If `x.len() != outer·dim·inner` or an index is `≥ dim`.
#[track_caller]
pub fn index_select<T: Scalar>(launch: Launch, x: &[T], idx: &[u64], s: Split) -> Vec<T> {
    let kernel = "index_select";
    check_same_len(kernel, "x", x.len(), s.numel());
    check_indices(kernel, idx, s.dim);
    let mut y = output(s.with_dim(idx.len()).numel());
    let k = T::kernels().index_select;
    // SAFETY: index_select_{dtype}(const T* x, const unsigned long long* idx, T* y, outer, dim,
    // inner, n_idx) reads idx[0..n_idx), x[(o·dim + idx[j])·inner + i] (every idx[j] < dim) and
    // writes y[0..outer·n_idx·inner).
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            idx.as_ptr(),
            y.as_mut_ptr(),
            ull(s.outer),
            ull(s.dim),
            ull(s.inner),
            ull(idx.len()),
        )
    };
    y
}

/// `index_add_{dtype}`: adds `src` (`[outer, idx.len(), inner]`) into rows `idx` of the middle
/// axis of `y` (`[outer, dim, inner]` of `s`); repeated indices accumulate.
///
/// # Panics
/// If `y.len() != outer·dim·inner`, `src.len() != outer·idx.len()·inner` or an index is `≥ dim`.
#[track_caller]
pub fn index_add<T: Scalar>(launch: Launch, src: &[T], idx: &[u64], y: &mut [T], s: Split) {
    let kernel = "index_add";
    check_same_len(kernel, "y", y.len(), s.numel());
    check_same_len(kernel, "src", src.len(), s.with_dim(idx.len()).numel());
    check_indices(kernel, idx, s.dim);
    let k = T::kernels().index_add;
    // SAFETY: index_add_{dtype}(const T* src, const unsigned long long* idx, T* y, outer, dim,
    // inner, n_idx) reads idx[0..n_idx), src[0..outer·n_idx·inner) and adds to
    // y[(o·dim + idx[j])·inner + i] (every idx[j] < dim).
    unsafe {
        k(
            launch.grid,
            launch.block,
            src.as_ptr(),
            idx.as_ptr(),
            y.as_mut_ptr(),
            ull(s.outer),
            ull(s.dim),
            ull(s.inner),
            ull(idx.len()),
        )
    };
}

/// `cast_f32_f64`.
pub fn cast_f32_f64(launch: Launch, x: &[f32]) -> Vec<f64> {
    let mut y = output(x.len());
    // SAFETY: cast_f32_f64(const float* x, double* y, unsigned long long n) reads x[0..n) and
    // writes y[0..n); both hold n elements.
    unsafe {
        ffi::emu_cast_f32_f64(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            ull(x.len()),
        )
    };
    y
}

/// `cast_f64_f32` (round to nearest, ties to even).
pub fn cast_f64_f32(launch: Launch, x: &[f64]) -> Vec<f32> {
    let mut y = output(x.len());
    // SAFETY: cast_f64_f32(const double* x, float* y, unsigned long long n) reads x[0..n) and
    // writes y[0..n); both hold n elements.
    unsafe {
        ffi::emu_cast_f64_f32(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            ull(x.len()),
        )
    };
    y
}

/// `adam_{dtype}`: one Adam/AdamW step, in place on the parameter `p` and the moments `m`, `v`.
///
/// # Panics
/// If the four buffers differ in length.
#[track_caller]
pub fn adam<T: Scalar>(
    launch: Launch,
    p: &mut [T],
    g: &[T],
    m: &mut [T],
    v: &mut [T],
    h: AdamArgs<T>,
) {
    let (kernel, n) = ("adam", p.len());
    check_same_len(kernel, "g", g.len(), n);
    check_same_len(kernel, "m", m.len(), n);
    check_same_len(kernel, "v", v.len(), n);
    let k = T::kernels().adam;
    // SAFETY: adam_{dtype}(T* p, const T* g, T* m, T* v, unsigned long long n, T b1, T b2,
    // T step_size, T inv_sqrt_bc2, T eps, T wd, T decay) reads and writes element [0..n) of
    // each buffer; all hold n elements and the &mut ones are distinct.
    unsafe {
        k(
            launch.grid,
            launch.block,
            p.as_mut_ptr(),
            g.as_ptr(),
            m.as_mut_ptr(),
            v.as_mut_ptr(),
            ull(n),
            h.b1,
            h.b2,
            h.step_size,
            h.inv_sqrt_bc2,
            h.eps,
            h.wd,
            h.decay,
        )
    };
}

/// `sgd_momentum_{dtype}`: one SGD step with a momentum buffer (classic or Nesterov), in place.
///
/// # Panics
/// If the three buffers differ in length.
#[track_caller]
pub fn sgd_momentum<T: Scalar>(
    launch: Launch,
    p: &mut [T],
    g: &[T],
    buf: &mut [T],
    h: SgdMomentumArgs<T>,
) {
    let (kernel, n) = ("sgd_momentum", p.len());
    check_same_len(kernel, "g", g.len(), n);
    check_same_len(kernel, "buf", buf.len(), n);
    let k = T::kernels().sgd_momentum;
    // SAFETY: sgd_momentum_{dtype}(T* p, const T* g, T* buf, unsigned long long n, T lr, T wd,
    // T keep, T nest, T plain, T base) reads and writes element [0..n) of each buffer; all hold
    // n elements.
    unsafe {
        k(
            launch.grid,
            launch.block,
            p.as_mut_ptr(),
            g.as_ptr(),
            buf.as_mut_ptr(),
            ull(n),
            h.lr,
            h.wd,
            h.keep,
            h.nest,
            h.plain,
            h.base,
        )
    };
}

/// `sgd_{dtype}`: one plain SGD step `p ← p − lr·(g + wd·p)`, in place.
///
/// # Panics
/// If `g.len() != p.len()`.
#[track_caller]
pub fn sgd<T: Scalar>(launch: Launch, p: &mut [T], g: &[T], lr: T, wd: T) {
    let n = p.len();
    check_same_len("sgd", "g", g.len(), n);
    let k = T::kernels().sgd;
    // SAFETY: sgd_{dtype}(T* p, const T* g, unsigned long long n, T lr, T wd) reads and writes
    // p[0..n) and reads g[0..n); both hold n elements.
    unsafe {
        k(
            launch.grid,
            launch.block,
            p.as_mut_ptr(),
            g.as_ptr(),
            ull(n),
            lr,
            wd,
        )
    };
}

/// `hmc_leapfrog_{dtype}`: the fused leapfrog update, in place on `theta` and `p`.
///
/// # Panics
/// If the three buffers differ in length.
#[track_caller]
pub fn hmc_leapfrog<T: Scalar>(
    launch: Launch,
    theta: &mut [T],
    p: &mut [T],
    g: &[T],
    h: LeapfrogArgs<T>,
) {
    let (kernel, n) = ("hmc_leapfrog", theta.len());
    check_same_len(kernel, "p", p.len(), n);
    check_same_len(kernel, "g", g.len(), n);
    let k = T::kernels().hmc_leapfrog;
    // SAFETY: hmc_leapfrog_{dtype}(T* theta, T* p, const T* g, unsigned long long n, T half,
    // unsigned long long kicks, T eps, unsigned long long drift, unsigned long long kind, T a,
    // T b, T c, T temp) reads and writes element [0..n) of each buffer; all hold n elements.
    unsafe {
        k(
            launch.grid,
            launch.block,
            theta.as_mut_ptr(),
            p.as_mut_ptr(),
            g.as_ptr(),
            ull(n),
            h.half,
            h.kicks,
            h.eps,
            u64::from(h.drift),
            h.prior.kind,
            h.prior.a,
            h.prior.b,
            h.prior.c,
            h.temp,
        )
    };
}

/// `hmc_sum_squares_{dtype}`: the `⌈n/chunk⌉` partial sums of `x²` in f64.
///
/// # Panics
/// If `chunk` is 0.
#[track_caller]
pub fn hmc_sum_squares<T: Scalar>(launch: Launch, x: &[T], chunk: usize) -> Vec<f64> {
    assert!(chunk > 0, "hmc_sum_squares: chunk must be positive");
    let mut out = output::<f64>(x.len().div_ceil(chunk));
    let k = T::kernels().hmc_sum_squares;
    // SAFETY: hmc_sum_squares_{dtype}(const T* x, double* out, unsigned long long n,
    // unsigned long long chunk) reads x[0..n) and writes out[0..⌈n/chunk⌉).
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            out.as_mut_ptr(),
            ull(x.len()),
            ull(chunk),
        )
    };
    out
}

/// `hmc_prior_difference_{dtype}`: the `⌈n/chunk⌉` partial sums of `log p(x) − log p(y)` in f64.
///
/// # Panics
/// If the buffers differ in length or `chunk` is 0.
#[track_caller]
pub fn hmc_prior_difference<T: Scalar>(
    launch: Launch,
    x: &[T],
    y: &[T],
    chunk: usize,
    prior: PriorArgs<T>,
) -> Vec<f64> {
    assert!(chunk > 0, "hmc_prior_difference: chunk must be positive");
    check_same_len("hmc_prior_difference", "y", y.len(), x.len());
    let mut out = output::<f64>(x.len().div_ceil(chunk));
    let k = T::kernels().hmc_prior_difference;
    // SAFETY: hmc_prior_difference_{dtype}(const T* x, const T* y, double* out,
    // unsigned long long n, unsigned long long chunk, unsigned long long kind, T a, T b, T c)
    // reads x[0..n), y[0..n) and writes out[0..⌈n/chunk⌉).
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_ptr(),
            out.as_mut_ptr(),
            ull(x.len()),
            ull(chunk),
            prior.kind,
            prior.a,
            prior.b,
            prior.c,
        )
    };
    out
}

/// The image and patch-matrix element counts of a `conv.cu` geometry
/// `geom = [n, c, h, w, groups, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, 0]`: `n·c·h·w` and
/// `groups · (c/groups)·kh·kw · n·oh·ow`.
///
/// # Panics
/// If `groups` is 0 or does not divide `c`, a stride is 0 (col2im divides by it), `geom[15]` is
/// not 0, or a count overflows.
#[track_caller]
fn conv_lens(kernel: &str, geom: &[u64; 16]) -> (usize, usize) {
    let [n, c, h, w, groups, kh, kw, sh, sw, _, _, _, _, oh, ow, pad] = *geom;
    assert!(
        groups > 0 && c % groups == 0,
        "{kernel}: {groups} groups do not divide {c} channels"
    );
    assert!(
        sh > 0 && sw > 0,
        "{kernel}: stride {sh}x{sw} must be at least 1"
    );
    assert!(pad == 0, "{kernel}: geom[15] is {pad}, expected 0");
    let prod = |v: &[u64]| {
        let p = v
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
            .unwrap_or_else(|| panic!("{kernel}: {v:?} overflows u64"));
        usize::try_from(p).expect("size fits usize")
    };
    (prod(&[n, c, h, w]), prod(&[c, kh, kw, n, oh, ow]))
}

/// `im2col_{dtype}`: the patch matrix `[groups, (c/groups)·kh·kw, n·oh·ow]` of the `[n, c, h, w]`
/// image `x`, padding read as `fill`, for `geom` laid out as in `cuda/conv.cu`:
/// `[n, c, h, w, groups, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, 0]`.
///
/// # Panics
/// If `x.len() != n·c·h·w`, or `geom` is unusable (see `conv_lens`: groups not dividing the
/// channels, a zero stride).
#[track_caller]
pub fn im2col<T: Scalar>(launch: Launch, x: &[T], geom: &[u64; 16], fill: T) -> Vec<T> {
    let kernel = "im2col";
    let (image, patch) = conv_lens(kernel, geom);
    check_same_len(kernel, "x", x.len(), image);
    let mut y = output(patch);
    let k = T::kernels().im2col;
    // SAFETY: im2col_{dtype}(const T* x, T* y, const unsigned long long* geom, T fill) reads
    // geom[0..15), writes y[0..groups·rows·cols) (y holds that many) and reads x only at
    // ((b·c + ch)·h + r)·w + col with b < n, ch < c, r < h, col < w (x holds n·c·h·w).
    unsafe {
        k(
            launch.grid,
            launch.block,
            x.as_ptr(),
            y.as_mut_ptr(),
            geom.as_ptr(),
            fill,
        )
    };
    y
}

/// `col2im_{dtype}`: the adjoint of [`im2col`], summing each entry of the patch matrix `cols`
/// into its pixel of an `[n, c, h, w]` image (entries in the padding dropped).
///
/// # Panics
/// If `cols.len() != groups·(c/groups)·kh·kw·n·oh·ow`, or `geom` is unusable (as [`im2col`]).
#[track_caller]
pub fn col2im<T: Scalar>(launch: Launch, cols: &[T], geom: &[u64; 16]) -> Vec<T> {
    let kernel = "col2im";
    let (image, patch) = conv_lens(kernel, geom);
    check_same_len(kernel, "cols", cols.len(), patch);
    let mut y = output(image);
    let k = T::kernels().col2im;
    // SAFETY: col2im_{dtype}(const T* cols, T* y, const unsigned long long* geom) reads
    // geom[0..15), writes y[0..n·c·h·w) (y holds that many) and reads cols at r·cols + q with
    // r < groups·rows and q < n·oh·ow (cols holds groups·rows·cols); it divides by the strides
    // and c/groups, checked non-zero above.
    unsafe {
        k(
            launch.grid,
            launch.block,
            cols.as_ptr(),
            y.as_mut_ptr(),
            geom.as_ptr(),
        )
    };
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel sources must stay NVRTC-clean, which g++ (with the emulation header) does not
    /// check: NVRTC has no system headers, no C++ standard library and no <cstdint> types.
    #[test]
    fn kernel_sources_use_only_what_nvrtc_provides() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "cu") {
                continue;
            }
            seen += 1;
            let src = std::fs::read_to_string(&path).unwrap();
            for (line_no, line) in src.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for banned in [
                    "#include", "std::", "uint64_t", "uint32_t", "int64_t", "int32_t",
                ] {
                    assert!(
                        !code.contains(banned),
                        "{}:{}: `{banned}` in a kernel source: {line}",
                        path.display(),
                        line_no + 1
                    );
                }
            }
            assert!(
                src.contains("extern \"C\" __global__"),
                "{}: no kernel",
                path.display()
            );
        }
        assert!(seen > 0, "no .cu files in {}", dir.display());
    }

    #[test]
    fn checks_reject_reads_past_the_end() {
        let info = [1, 4, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        let r = std::panic::catch_unwind(|| {
            binary(Launch::new(1, 1), Binary::Add, &[1.0f32; 3], &[1.0], &info)
        });
        assert!(r.is_err());
        let y = binary(Launch::new(1, 1), Binary::Add, &[1.0f32; 4], &[1.0], &info);
        assert_eq!(y, [2.0; 4]);
    }

    #[test]
    fn conv_checks_reject_bad_geometries() {
        // One 2x2 image of 2 channels, 1x1 kernel, stride 1: patch matrix [1, 2, 4].
        let geom = [1, 2, 2, 2, 1, 1, 1, 1, 1, 0, 0, 1, 1, 2, 2, 0];
        let l = Launch::new(1, 4);
        let x: Vec<f64> = (0..8).map(f64::from).collect();
        assert_eq!(im2col(l, &x, &geom, 0.0), x);
        assert_eq!(col2im(l, &x, &geom), x);
        let mut bad = Vec::new();
        for (k, v) in [(4, 3), (4, 0), (7, 0), (8, 0), (15, 1)] {
            let mut g = geom;
            g[k] = v;
            bad.push(g);
        }
        for g in bad {
            assert!(
                std::panic::catch_unwind(|| im2col(l, &x, &g, 0.0)).is_err(),
                "{g:?}"
            );
            assert!(
                std::panic::catch_unwind(|| col2im(l, &x, &g)).is_err(),
                "{g:?}"
            );
        }
        assert!(std::panic::catch_unwind(|| im2col(l, &x[..7], &geom, 0.0)).is_err());
        assert!(std::panic::catch_unwind(|| col2im(l, &x[..7], &geom)).is_err());
    }
}
