//! Keel's CPU kernels with AVX2 return AVX-512F's bits: the shifted-copy convolutions
//! (`backend::cpu::conv_shift`: forward blocks, weight-gradient rows, tile transposes) and
//! Winograd's (`backend::cpu::conv_winograd`), in `f32` and `f64`, on odd sizes. The AVX-512F
//! kernels are checked against the definition by the library's tests, so this carries that
//! check over to the AVX2 kernels on a CPU with both; a CPU without AVX-512F runs the AVX2
//! kernels in the library's tests directly.
//!
//! The same for the loops compiled three times by `multiversion!` — Keel's exponential, the
//! binary elementwise kernels, column sums, the HMC leapfrog update and the optimizers' fused
//! updates — at all three levels, baseline included.
//!
//! The level is process-wide (`isa::set_cap`), so this binary holds one test.

use keel_engine::backend::cpu::conv::{PatchGeom, PatchLayout};
use keel_engine::backend::cpu::conv_shift::{self, Kernel};
use keel_engine::backend::cpu::conv_winograd;
use keel_engine::backend::cpu::isa::{self, Isa};
use keel_engine::backend::cpu::{hmc, kernels};
use keel_engine::backend::hmc::{LeapfrogArgs, PriorArgs, PriorKind};
use keel_engine::optim::{Optimizer, OptimizerKind};
use keel_engine::params::{ParamId, Params};
use keel_engine::{DType, Shape, Tensor};

/// A stride-1 convolution of `[n, c, h, w]`.
fn geom(
    [n, c, h, w]: [usize; 4],
    groups: usize,
    kernel: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
) -> PatchGeom {
    let out = |a: usize| [h, w][a] + 2 * padding[a] - dilation[a] * (kernel[a] - 1);
    PatchGeom {
        n,
        c,
        h,
        w,
        groups,
        kernel,
        stride: [1, 1],
        padding,
        dilation,
        oh: out(0),
        ow: out(1),
        layout: PatchLayout::PatchesChannelsLast,
    }
}

fn wave<T: From<f32>>(len: usize, f: f32) -> Vec<T> {
    (0..len)
        .map(|k| T::from((f * k as f32 + 0.3).sin()))
        .collect()
}

/// Every output of the kernels that apply to `g`, as bits.
fn outputs<T: Kernel + From<f32> + Into<f64>>(g: &PatchGeom, o: usize) -> Vec<Vec<u64>> {
    let x: Vec<T> = wave(g.image_len(), 0.37);
    let w: Vec<T> = wave(o * g.rows(), 0.91);
    let b: Vec<T> = wave(o, 1.3);
    let gy: Vec<T> = wave(g.n * o * g.oh * g.ow, 0.11);
    let bits = |v: Vec<T>| v.into_iter().map(|a| a.into().to_bits()).collect();
    let mut out = vec![
        bits(conv_shift::conv2d(&x, &w, Some(&b), g, o)),
        bits(conv_shift::conv2d(&x, &w, None, g, o)),
        bits(conv_shift::conv2d_weight_grad(&x, &gy, g, o)),
    ];
    if conv_winograd::supports(g) {
        out.push(bits(conv_winograd::conv2d(&x, &w, Some(&b), g, o)));
        out.push(bits(conv_winograd::conv2d_weight_grad(&x, &gy, g, o)));
    }
    out
}

/// `T::transpose` of one tile with strides past its width.
fn transposed<T: Kernel + From<f32> + Into<f64>>() -> Vec<u64> {
    let (n, ss, ds) = (T::LANES, T::LANES + 3, T::LANES + 5);
    let src: Vec<T> = wave(n * ss, 0.7);
    let mut dst = vec![std::mem::MaybeUninit::new(T::ZERO); n * ds];
    T::transpose(&src, ss, &mut dst, ds);
    // SAFETY: `dst` was initialised above and the transpose stores values only.
    dst.iter()
        .map(|v| unsafe { v.assume_init() }.into().to_bits())
        .collect()
}

/// Every multiversioned elementwise kernel's output on odd lengths and broadcasts, as bits.
fn elementwise<T: kernels_float::F>() -> Vec<Vec<u64>> {
    let bits = |v: Vec<T>| {
        v.into_iter()
            .map(|a| a.into().to_bits())
            .collect::<Vec<_>>()
    };
    let x: Vec<T> = wave(1031, 0.77)
        .into_iter()
        .map(|v: T| v * T::from(40.0))
        .collect();
    let mut out = vec![bits(kernels::unary(kernels::UnaryOp::Exp, &x))];
    let shapes: [(&[usize], &[usize]); 5] = [
        (&[1031], &[1031]),
        (&[103, 10], &[10]),
        (&[103, 10], &[103, 1]),
        (&[1], &[1031]),
        (&[7, 1, 9], &[3, 1]),
    ];
    for (da, db) in shapes {
        let (sa, sb) = (Shape::new(da).unwrap(), Shape::new(db).unwrap());
        let so = sa.broadcast(&sb, "test").unwrap();
        let a: Vec<T> = wave(sa.numel(), 0.53);
        let b: Vec<T> = wave(sb.numel(), 0.29);
        for op in kernels_float::BINARY {
            out.push(bits(kernels::binary(op, &a, &sa, &b, &sb, &so)));
        }
    }
    out.push(bits(kernels::sum_axis(&x, 1, 1031, 1)));
    out.push(bits(kernels::sum_axis(&x[..1030], 5, 2, 103)));
    for kind in [
        PriorKind::None,
        PriorKind::Gaussian,
        PriorKind::Mixture,
        PriorKind::Logistic,
    ] {
        let (mut theta, mut p): (Vec<T>, Vec<T>) = (wave(1031, 0.41), wave(1031, 0.17));
        let h = LeapfrogArgs {
            half: 0.005,
            kicks: 2,
            eps: 0.01,
            drift: true,
            prior: PriorArgs {
                kind,
                params: [0.6, 1.5, 0.2],
            },
            temp: 0.7,
        };
        hmc::leapfrog(&mut theta, &mut p, &x, &h);
        out.push(bits(theta));
        out.push(bits(p));
    }
    out
}

/// Three steps of each optimizer on one 1,031-value parameter (gradients with zeros, so the
/// moments' flush to zero is reached), the parameters after each step as bits.
fn optimizers(dtype: DType) -> Vec<Vec<u64>> {
    let kinds = [
        OptimizerKind::adam(),
        OptimizerKind::adamw(0.01),
        OptimizerKind::adam_algorithm1(),
        OptimizerKind::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 1e-3,
        },
        OptimizerKind::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        },
    ];
    let mut out = Vec::new();
    for kind in kinds {
        let mut params = Params::new();
        let p: Vec<f64> = wave(1031, 0.31);
        let id: ParamId = params
            .insert("w", Tensor::from_f64s(&p, &[1031], dtype).unwrap())
            .unwrap();
        let mut opt = Optimizer::new(kind, &params).unwrap();
        for step in 0..3 {
            let g: Vec<f64> = wave::<f64>(1031, 0.59 + step as f32)
                .into_iter()
                .enumerate()
                .map(|(i, v)| if i % 7 == 0 { 0.0 } else { v })
                .collect();
            let g = Tensor::from_f64s(&g, &[1031], dtype).unwrap();
            opt.step(&mut params, &[g], 1e-2).unwrap();
            let now = params.get(id).to_vec_f64().unwrap();
            out.push(now.into_iter().map(f64::to_bits).collect());
        }
    }
    out
}

/// The element types and binary operations [`elementwise`] runs.
mod kernels_float {
    use keel_engine::backend::cpu::kernels::BinaryOp;
    pub trait F:
        keel_engine::backend::cpu::float::Float
        + From<f32>
        + Into<f64>
        + std::ops::Mul<Output = Self>
    {
    }
    impl F for f32 {}
    impl F for f64 {}
    pub const BINARY: [BinaryOp; 9] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Max,
        BinaryOp::Gt,
        BinaryOp::Eq,
        BinaryOp::AddRelu,
        BinaryOp::MulStep,
    ];
}

/// [`elementwise`] in both element types.
fn both() -> Vec<Vec<u64>> {
    let mut v = elementwise::<f32>();
    v.extend(elementwise::<f64>());
    v.extend(optimizers(DType::F32));
    v.extend(optimizers(DType::F64));
    v
}

#[test]
fn avx2_kernels_return_avx512s_bits() {
    if isa::detected() >= Isa::Avx2 {
        let level = isa::detected();
        isa::set_cap(Isa::Baseline);
        let baseline = both();
        isa::set_cap(Isa::Avx2);
        assert_eq!(
            both(),
            baseline,
            "elementwise kernels: AVX2 differs from the baseline"
        );
        isa::set_cap(level);
        assert_eq!(
            both(),
            baseline,
            "elementwise kernels: {level:?} differs from the baseline"
        );
    }
    if isa::detected() < Isa::Avx512 {
        eprintln!("skipped: this CPU has no AVX-512F to compare AVX2 with");
        return;
    }
    let cases = [
        // Shifted copies: partial vectors, padded channel blocks, several tasks, one channel,
        // 1×1 and 5×3 kernels, dilation, groups, 4×4 images, 64/33/40-channel gradients.
        (geom([3, 5, 7, 6], 1, [3, 3], [1, 1], [1, 1]), 7),
        (geom([37, 5, 7, 6], 1, [3, 3], [1, 1], [1, 1]), 13),
        (geom([9, 1, 8, 8], 1, [3, 3], [1, 1], [1, 1]), 32),
        (geom([4, 6, 5, 5], 1, [1, 1], [0, 0], [1, 1]), 9),
        (geom([2, 3, 9, 7], 1, [5, 3], [2, 1], [1, 1]), 4),
        (geom([2, 3, 9, 7], 1, [3, 3], [2, 2], [2, 2]), 5),
        (geom([5, 6, 6, 3], 3, [3, 3], [1, 1], [1, 1]), 9),
        (geom([11, 8, 4, 4], 2, [3, 3], [1, 1], [1, 1]), 10),
        (geom([3, 4, 8, 8], 1, [3, 3], [1, 1], [1, 1]), 64),
        (geom([2, 3, 28, 28], 1, [3, 3], [1, 1], [1, 1]), 40),
        (geom([70, 3, 2, 2], 1, [3, 3], [1, 1], [1, 1]), 33),
        // Winograd as well: odd sides, 1×n images, 28×28, wide layers.
        (geom([5, 17, 7, 5], 1, [3, 3], [1, 1], [1, 1]), 19),
        (geom([2, 20, 1, 9], 1, [3, 3], [1, 1], [1, 1]), 16),
        (geom([2, 16, 28, 28], 1, [3, 3], [1, 1], [1, 1]), 33),
        (geom([41, 16, 5, 6], 1, [3, 3], [1, 1], [1, 1]), 20),
        (geom([9, 128, 8, 8], 1, [3, 3], [1, 1], [1, 1]), 128),
    ];
    let all = || {
        assert!(cases.iter().all(|(g, _)| conv_shift::applies(g)));
        let mut v: Vec<Vec<u64>> = Vec::new();
        for (g, o) in &cases {
            v.extend(outputs::<f32>(g, *o));
            v.extend(outputs::<f64>(g, *o));
        }
        v.push(transposed::<f32>());
        v.push(transposed::<f64>());
        v
    };
    isa::set_cap(Isa::Avx512);
    assert_eq!(isa::isa(), Isa::Avx512);
    let wide = all();
    isa::set_cap(Isa::Avx2);
    assert_eq!(isa::isa(), Isa::Avx2);
    let avx2 = all();
    assert_eq!(wide.len(), avx2.len());
    for (i, (a, b)) in wide.iter().zip(&avx2).enumerate() {
        assert!(a == b, "output {i}: AVX2 and AVX-512F results differ");
    }
    // Without AVX2 the kernels are not offered.
    isa::set_cap(Isa::Baseline);
    assert!(!conv_shift::applies(&cases[0].0) && !conv_winograd::supports(&cases[0].0));
}
