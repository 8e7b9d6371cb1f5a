//! `nn::Emlp`'s input gradient and `dynamics::HamiltonianEmlp` on small hand-written files:
//! random widths, gates and bilinear index maps (repeated indices, a gate that is its own
//! channel, bilinear entries whose row or column is also one of their x-copies), F64 weights so
//! that the f64 path is checked to rounding. The gradient is checked against central
//! differences of `forward` (step 1e-5 on unit-size inputs: truncation ~1e-10, relative
//! tolerance 1e-7); the host test `host/tests/emlp_core_gradient.rs` checks real exported
//! EMLPs against the host engine's reverse mode.

use crate::splitmix::Rng;
use keel_core::dynamics::HamiltonianEmlp;
use keel_core::integrate::{Dopri5, Rk4, VectorField};
use keel_core::io::SafeTensors;
use keel_core::nn::Emlp;
use keel_core::Error;
use serde_json::{json, Map, Value};

/// A bilinear part's sizes: `m` W-terms, `n` x-copies, `r` entries each.
#[derive(Clone, Copy)]
struct PartSpec {
    m: usize,
    n: usize,
    r: usize,
}

/// One block: gated width `g`, `size` gated channels, its bilinear parts.
struct BlockSpec {
    g: usize,
    size: usize,
    parts: Vec<PartSpec>,
}

/// A safetensors file for `keel_core::nn::Emlp` with random F64 weights.
fn emlp_file(n_in: usize, blocks: &[BlockSpec], n_out: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut tensors: Vec<(String, &str, Vec<usize>, Vec<u8>)> = Vec::new();
    let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let u32s = |v: &[usize]| {
        v.iter()
            .flat_map(|&x| (x as u32).to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let push_f = |t: &mut Vec<_>, name: String, shape: Vec<usize>, v: Vec<f64>| {
        t.push((name, "F64", shape, f64s(&v)));
    };
    let scale = rng.vec(n_in, 0.5, 2.0);
    push_f(&mut tensors, "input.scale".into(), vec![n_in], scale);
    push_f(
        &mut tensors,
        "target.mean".into(),
        vec![n_out],
        rng.vec(n_out, -1.0, 1.0),
    );
    push_f(
        &mut tensors,
        "target.std".into(),
        vec![n_out],
        rng.vec(n_out, 0.5, 3.0),
    );
    let mut width = n_in;
    for (l, b) in blocks.iter().enumerate() {
        let bound = 1.0 / (width as f64).sqrt();
        let w = rng.vec(b.g * width, -2.0 * bound, 2.0 * bound);
        push_f(
            &mut tensors,
            format!("block{l}.weight"),
            vec![b.g, width],
            w,
        );
        push_f(
            &mut tensors,
            format!("block{l}.bias"),
            vec![b.g],
            rng.vec(b.g, -0.5, 0.5),
        );
        // Channel 0 gates itself (a scalar's swish); the others draw a gate.
        let gates: Vec<usize> = (0..b.size)
            .map(|k| {
                if k == 0 {
                    0
                } else {
                    (rng.next() * b.g as f64) as usize
                }
            })
            .collect();
        tensors.push((format!("block{l}.gates"), "U32", vec![b.size], u32s(&gates)));
        for (p, part) in b.parts.iter().enumerate() {
            push_f(
                &mut tensors,
                format!("block{l}.bilinear{p}.coef"),
                vec![part.m, part.n],
                rng.vec(part.m * part.n, -1.5, 1.5),
            );
            let x: Vec<usize> = (0..part.n * part.r)
                .map(|_| (rng.next() * b.g as f64) as usize)
                .collect();
            let mut w: Vec<usize> = (0..part.m * part.r)
                .map(|_| (rng.next() * (b.g * b.g) as f64) as usize)
                .collect();
            // An entry whose column is its own first x-copy, and one whose row is.
            if part.m * part.r >= 2 {
                w[0] = (w[0] / b.g) * b.g + x[0];
                w[1] = x[1] * b.g + w[1] % b.g;
            }
            tensors.push((
                format!("block{l}.bilinear{p}.x"),
                "U32",
                vec![x.len()],
                u32s(&x),
            ));
            tensors.push((
                format!("block{l}.bilinear{p}.w"),
                "U32",
                vec![w.len()],
                u32s(&w),
            ));
        }
        width = b.size;
    }
    let bound = 1.0 / (width as f64).sqrt();
    push_f(
        &mut tensors,
        "head.weight".into(),
        vec![n_out, width],
        rng.vec(n_out * width, -bound, bound),
    );
    push_f(
        &mut tensors,
        "head.bias".into(),
        vec![n_out],
        rng.vec(n_out, -0.5, 0.5),
    );
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"keel.kind": "emlp"}));
    let mut offset = 0;
    for (name, dtype, shape, data) in &tensors {
        header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + data.len()]}),
        );
        offset += data.len();
    }
    let header = Value::Object(header).to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for (_, _, _, data) in &tensors {
        out.extend_from_slice(data);
    }
    out
}

/// Two blocks, 4 → (g 7, 5 channels) → (g 6, 4 channels) → `n_out`, two bilinear parts each.
fn two_blocks(n_in: usize, n_out: usize, seed: u64) -> Vec<u8> {
    let blocks = [
        BlockSpec {
            g: 7,
            size: 5,
            parts: vec![PartSpec { m: 3, n: 2, r: 2 }, PartSpec { m: 2, n: 3, r: 3 }],
        },
        BlockSpec {
            g: 6,
            size: 4,
            parts: vec![PartSpec { m: 4, n: 2, r: 3 }, PartSpec { m: 1, n: 1, r: 2 }],
        },
    ];
    emlp_file(n_in, &blocks, n_out, seed)
}

fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let err: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale: f64 = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    err / scale.max(1e-12)
}

/// Central differences of `forward`'s output `k`, step `h`.
fn finite_difference(emlp: &Emlp<'_, 4, 4>, x: &[f64], cot: &[f64], h: f64) -> Vec<f64> {
    let mut scratch = vec![0.0; emlp.scratch_len()];
    let mut y = vec![0.0; emlp.outputs()];
    let mut f = |x: &[f64]| {
        emlp.forward(x, &mut y, &mut scratch).unwrap();
        y.iter().zip(cot).map(|(a, c)| a * c).sum::<f64>()
    };
    (0..x.len())
        .map(|i| {
            let (mut xp, mut xm) = (x.to_vec(), x.to_vec());
            xp[i] += h;
            xm[i] -= h;
            (f(&xp) - f(&xm)) / (2.0 * h)
        })
        .collect()
}

#[test]
fn gradient_matches_central_differences_and_forward() {
    for seed in 1..=6u64 {
        let bytes = two_blocks(4, 1, seed);
        let st = SafeTensors::<'_, 64>::parse(&bytes).unwrap();
        let emlp = Emlp::<'_, 4, 4>::from_safetensors(&st).unwrap();
        assert_eq!(emlp.gradient_scratch_len(), 2 * (7 + 6) + 3 * 7);
        let mut rng = Rng(100 + seed);
        for _ in 0..4 {
            let x = rng.vec(4, -1.5, 1.5);
            let mut grad = [0.0; 4];
            let mut scratch = vec![f64::NAN; emlp.gradient_scratch_len()];
            let value = emlp.gradient(&x, &mut grad, &mut scratch).unwrap();
            let mut y = [0.0];
            let mut fs = vec![0.0; emlp.scratch_len()];
            emlp.forward(&x, &mut y, &mut fs).unwrap();
            assert_eq!(value, y[0], "gradient's value is forward's, bit for bit");
            let fd = finite_difference(&emlp, &x, &[1.0], 1e-5);
            let err = relative_error(&grad, &fd);
            assert!(err < 1e-7, "seed {seed}: {grad:?} vs {fd:?} ({err:e})");

            // f32 on the same file: rounding only.
            let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut gf = [0.0f32; 4];
            let mut sf = vec![0.0f32; emlp.gradient_scratch_len()];
            let vf = emlp.gradient(&xf, &mut gf, &mut sf).unwrap();
            let gf: Vec<f64> = gf.iter().map(|&v| f64::from(v)).collect();
            assert!(relative_error(&gf, &grad) < 1e-5, "{gf:?} vs {grad:?}");
            assert!((f64::from(vf) - value).abs() < 1e-5 * (1.0 + value.abs()));
        }
    }
}

#[test]
fn vjp_of_a_three_output_model_matches_central_differences() {
    let bytes = two_blocks(5, 3, 7);
    let st = SafeTensors::<'_, 64>::parse(&bytes).unwrap();
    let emlp = Emlp::<'_, 4, 4>::from_safetensors(&st).unwrap();
    let mut rng = Rng(8);
    for _ in 0..4 {
        let x = rng.vec(5, -1.5, 1.5);
        let cot = rng.vec(3, -1.0, 1.0);
        let (mut out, mut grad) = ([0.0; 3], [0.0; 5]);
        let mut scratch = vec![0.0; emlp.gradient_scratch_len()];
        emlp.vjp(&x, &cot, &mut out, &mut grad, &mut scratch)
            .unwrap();
        let fd = finite_difference(&emlp, &x, &cot, 1e-5);
        assert!(relative_error(&grad, &fd) < 1e-7, "{grad:?} vs {fd:?}");
        let mut y = [0.0; 3];
        emlp.forward(&x, &mut y, &mut vec![0.0; emlp.scratch_len()])
            .unwrap();
        assert_eq!(out, y);
    }
}

#[test]
fn a_model_without_blocks_or_bilinear_parts_differentiates_too() {
    for blocks in [
        vec![],
        vec![BlockSpec {
            g: 5,
            size: 3,
            parts: vec![],
        }],
    ] {
        let bytes = emlp_file(4, &blocks, 1, 3);
        let st = SafeTensors::<'_, 64>::parse(&bytes).unwrap();
        let emlp = Emlp::<'_, 4, 4>::from_safetensors(&st).unwrap();
        let x = [0.3, -0.7, 1.1, 0.2];
        let mut grad = [0.0; 4];
        let mut scratch = vec![0.0; emlp.gradient_scratch_len()];
        emlp.gradient(&x, &mut grad, &mut scratch).unwrap();
        let fd = finite_difference(&emlp, &x, &[1.0], 1e-5);
        assert!(relative_error(&grad, &fd) < 1e-7, "{grad:?} vs {fd:?}");
    }
}

#[test]
fn gradient_reports_bad_shapes_and_short_scratch() {
    let bytes = two_blocks(4, 1, 1);
    let st = SafeTensors::<'_, 64>::parse(&bytes).unwrap();
    let emlp = Emlp::<'_, 4, 4>::from_safetensors(&st).unwrap();
    let n = emlp.gradient_scratch_len();
    let mut scratch = vec![0.0; n];
    let mut grad = [0.0; 4];
    assert!(matches!(
        emlp.gradient(&[0.0; 3], &mut grad, &mut scratch),
        Err(Error::ShapeMismatch {
            what: "x",
            expected: 4,
            got: 3
        })
    ));
    assert!(matches!(
        emlp.gradient(&[0.0; 4], &mut [0.0; 5], &mut scratch),
        Err(Error::ShapeMismatch {
            what: "gradient",
            expected: 4,
            got: 5
        })
    ));
    let got = n - 1;
    assert!(matches!(
        emlp.gradient(&[0.0; 4], &mut grad, &mut scratch[..got]),
        Err(Error::ScratchTooSmall { needed, got: g }) if needed == n && g == got
    ));
    // forward's scratch is not enough for the gradient
    let fwd = emlp.scratch_len();
    assert!(fwd < n);
    assert!(emlp
        .gradient(&[0.0; 4], &mut grad, &mut scratch[..fwd])
        .is_err());
    let (mut out, mut g) = ([0.0; 1], [0.0; 4]);
    assert!(matches!(
        emlp.vjp(&[0.0; 4], &[1.0, 1.0], &mut out, &mut g, &mut scratch),
        Err(Error::ShapeMismatch {
            what: "cotangent",
            expected: 1,
            got: 2
        })
    ));
    assert!(matches!(
        emlp.vjp(&[0.0; 4], &[1.0], &mut [0.0; 2], &mut g, &mut scratch),
        Err(Error::ShapeMismatch {
            what: "out",
            expected: 1,
            got: 2
        })
    ));

    let bytes = two_blocks(4, 2, 1);
    let st = SafeTensors::<'_, 64>::parse(&bytes).unwrap();
    let two = Emlp::<'_, 4, 4>::from_safetensors(&st).unwrap();
    let mut scratch = vec![0.0; two.gradient_scratch_len()];
    assert!(matches!(
        two.gradient(&[0.0; 4], &mut grad, &mut scratch),
        Err(Error::ShapeMismatch {
            what: "outputs",
            expected: 1,
            got: 2
        })
    ));
}

/// Scratch for the 4-input two-block model: 2·(7 + 6) + 3·7.
const S: usize = 47;

#[test]
fn hamiltonian_field_is_the_symplectic_gradient_and_integrates() {
    let bytes = two_blocks(4, 1, 5);
    let st = SafeTensors::<'_, 64>::parse(&bytes).unwrap();
    let emlp = Emlp::<'_, 4, 4>::from_safetensors(&st).unwrap();
    let field = HamiltonianEmlp::<'_, '_, 4, 4, 4, S>::new(&emlp).unwrap();
    let z = [0.4f64, -0.3, 0.8, 0.1];
    let mut grad = [0.0; 4];
    let mut scratch = vec![0.0; S];
    let h = emlp.gradient(&z, &mut grad, &mut scratch).unwrap();
    assert_eq!(field.energy(&z).unwrap(), h);
    let mut dz = [0.0; 4];
    field.rate(0.0, &z, &mut dz).unwrap();
    assert_eq!(dz, [grad[2], grad[3], -grad[0], -grad[1]]);

    // H is conserved by the exact flow: RK4 and Dopri5 drift only by their truncation error.
    let (mut a, mut t) = (z, 0.0);
    let rk4 = Rk4::new(0.01).unwrap();
    for _ in 0..100 {
        rk4.step(&field, t, &mut a).unwrap();
        t += 0.01;
    }
    let e1 = field.energy(&a).unwrap();
    assert!((e1 - h).abs() < 1e-7 * (1.0 + h.abs()), "RK4: {h} → {e1}");
    let mut solver = Dopri5::new(1e-10, 1e-12)
        .unwrap()
        .start(&field, 0.0, z)
        .unwrap();
    let b = solver.advance_to(&field, 1.0).unwrap();
    assert!(
        b.iter().zip(&a).all(|(x, y)| (x - y).abs() < 1e-8),
        "{a:?} {b:?}"
    );

    // f32 state, same model.
    let zf = z.map(|v| v as f32);
    let mut dzf = [0.0f32; 4];
    field.rate(0.0, &zf, &mut dzf).unwrap();
    for (x, y) in dzf.iter().zip(&dz) {
        assert!((f64::from(*x) - y).abs() < 1e-5 * (1.0 + y.abs()));
    }
}

#[test]
fn hamiltonian_field_checks_its_model_at_construction() {
    let bytes = two_blocks(4, 1, 5);
    let st = SafeTensors::<'_, 64>::parse(&bytes).unwrap();
    let emlp = Emlp::<'_, 4, 4>::from_safetensors(&st).unwrap();
    assert!(matches!(
        HamiltonianEmlp::<'_, '_, 4, 4, 6, S>::new(&emlp),
        Err(Error::ShapeMismatch {
            expected: 6,
            got: 4,
            ..
        })
    ));
    assert!(matches!(
        HamiltonianEmlp::<'_, '_, 4, 4, 4, { S - 1 }>::new(&emlp),
        Err(Error::ScratchTooSmall { needed: S, got }) if got == S - 1
    ));
    let bytes = two_blocks(4, 2, 5);
    let st = SafeTensors::<'_, 64>::parse(&bytes).unwrap();
    let two = Emlp::<'_, 4, 4>::from_safetensors(&st).unwrap();
    assert!(matches!(
        HamiltonianEmlp::<'_, '_, 4, 4, 4, 64>::new(&two),
        Err(Error::ShapeMismatch {
            what: "Hamiltonian outputs",
            expected: 1,
            got: 2
        })
    ));
    let bytes = two_blocks(3, 1, 5);
    let st = SafeTensors::<'_, 64>::parse(&bytes).unwrap();
    let odd = Emlp::<'_, 4, 4>::from_safetensors(&st).unwrap();
    assert!(matches!(
        HamiltonianEmlp::<'_, '_, 4, 4, 3, 64>::new(&odd),
        Err(Error::InvalidConfig { .. })
    ));
}
