//! The core's EMLP input gradient (`keel_core::nn::Emlp::gradient`) and the Hamiltonian field
//! built on it (`keel_core::dynamics::HamiltonianEmlp`) on real host EMLPs: the group O2eR3
//! (O(2) acting on the first two coordinates of R³, the double spring pendulum's symmetry in the
//! EMLP paper, Finzi, Welling & Wilson, ICML 2021), input `4V` (the state `(x₁, x₂, p₁, p₂)`),
//! one scalar output `H`.
//!
//! References: the host engine's reverse mode (`keel::autodiff::grad`) through the host
//! network's own forward pass in f64, and central differences of the core's forward pass.
//! `Emlp::to_safetensors` writes f32 weights, so the host comparison at f64 rounding uses a file
//! with the same tensors in F64 (`export_f64`, checked here to mirror `to_safetensors`'s names,
//! shapes, index maps and values); the core on the real f32 export is checked against central
//! differences and, in f32, for equivariance.
//!
//! Tolerances (relative to the largest component of the expected vector): f64 against the host
//! 1e-9 (rounding only); f32 against the host 1e-4 (f32 arithmetic and f32-rounded weights);
//! central differences 1e-6 (step 1e-5: truncation ~1e-10 of unit-size curvature, cancellation
//! ~1e-11); equivariance of the f32 field 1e-5.

use std::collections::BTreeMap;
use std::sync::Arc;

use keel::backend::DType;
use keel::emlp::model::Emlp;
use keel::emlp::{parse_group, parse_rep, Group, Rep, Solver};
use keel::params::Params;
use keel::tensor::Tensor;
use keel_core::dynamics::HamiltonianEmlp;
use keel_core::integrate::{Dopri5, Rk4, VectorField};
use keel_core::io::SafeTensors;
use keel_core::random::Xoshiro256PlusPlus;
use keel_core::Error;

/// The state size: four 3-vectors.
const N: usize = 12;
/// Stack scratch of the Hamiltonian field (checked against `gradient_scratch_len`).
const S: usize = 4096;

type CoreEmlp<'a> = keel_core::nn::Emlp<'a, 4, 16>;

/// A host EMLP `4V → Scalar` on O2eR3 with its data standardisation.
struct Net {
    group: Arc<Group>,
    rep_in: Rep,
    net: Emlp,
    params: Params,
    scale: Vec<f64>,
    mean: f64,
    std: f64,
}

impl Net {
    fn new(ch: usize, layers: usize, seed: u64, standardised: bool) -> Net {
        let group = parse_group("O2eR3()").unwrap();
        let rep_in = parse_rep("4*V", Some(&group)).unwrap();
        let rep_out = parse_rep("Scalar", Some(&group)).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut params = Params::new();
        let net = Emlp::new(
            &mut params,
            &group,
            &rep_in,
            &rep_out,
            ch,
            layers,
            &Solver::new(None),
            DType::F64,
            &mut rng,
        )
        .unwrap();
        // One scale per 3-vector keeps the standardisation equivariant.
        let (scale, mean, std) = if standardised {
            let per = [0.7, 1.9, 0.45, 1.3];
            let scale = (0..N).map(|i| per[i / 3]).collect();
            (scale, -2.5, 3.75)
        } else {
            (vec![1.0; N], 0.0, 1.0)
        };
        Net {
            group,
            rep_in,
            net,
            params,
            scale,
            mean,
            std,
        }
    }

    /// `to_safetensors`: the file the host exports (f32 weights).
    fn export_f32(&self) -> Vec<u8> {
        self.net
            .to_safetensors(
                &self.params,
                &self.scale,
                &[self.mean],
                &[self.std],
                &BTreeMap::new(),
            )
            .unwrap()
    }

    /// The same tensors as `to_safetensors` writes, floats in F64.
    fn export_f64(&self) -> Vec<u8> {
        let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let u32s = |v: &[usize]| {
            v.iter()
                .flat_map(|&x| u32::try_from(x).unwrap().to_le_bytes())
                .collect::<Vec<u8>>()
        };
        let vals = |t: &Tensor| t.to_vec_f64().unwrap();
        let mut t: Vec<(String, &'static str, Vec<usize>, Vec<u8>)> = vec![
            ("input.scale".into(), "F64", vec![N], f64s(&self.scale)),
            ("target.mean".into(), "F64", vec![1], f64s(&[self.mean])),
            ("target.std".into(), "F64", vec![1], f64s(&[self.std])),
        ];
        for (l, b) in self.net.blocks.iter().enumerate() {
            let (w, bias) = b.linear.effective(&self.params).unwrap();
            let (g, w_in) = (b.linear.n_out, b.linear.n_in);
            t.push((
                format!("block{l}.weight"),
                "F64",
                vec![g, w_in],
                f64s(&vals(&w)),
            ));
            t.push((format!("block{l}.bias"), "F64", vec![g], f64s(&vals(&bias))));
            t.push((
                format!("block{l}.gates"),
                "U32",
                vec![b.gates.len()],
                u32s(&b.gates),
            ));
            for (p, part) in b.bilinear.parts.iter().enumerate() {
                t.push((
                    format!("block{l}.bilinear{p}.coef"),
                    "F64",
                    vec![part.w_mult, part.n],
                    f64s(&vals(self.params.get(part.param))),
                ));
                t.push((
                    format!("block{l}.bilinear{p}.x"),
                    "U32",
                    vec![part.x_idx.len()],
                    u32s(&part.x_idx),
                ));
                t.push((
                    format!("block{l}.bilinear{p}.w"),
                    "U32",
                    vec![part.w_idx.len()],
                    u32s(&part.w_idx),
                ));
            }
        }
        let (w, bias) = self.net.head.effective(&self.params).unwrap();
        let s_last = self.net.head.n_in;
        t.push((
            "head.weight".into(),
            "F64",
            vec![1, s_last],
            f64s(&vals(&w)),
        ));
        t.push(("head.bias".into(), "F64", vec![1], f64s(&vals(&bias))));
        let meta = BTreeMap::from([("keel.kind".to_string(), "emlp".to_string())]);
        keel::export::safetensors_bytes_typed(&t, &meta)
    }

    /// `H(z)` and `∇H(z)` by the host engine's reverse mode through `Emlp::forward`, in data
    /// units: `H = std·net(z/scale) + mean`, so `∇H = std·∇net(z/scale)/scale`.
    fn host_gradient(&self, z: &[f64]) -> (f64, Vec<f64>) {
        let zs: Vec<f64> = z.iter().zip(&self.scale).map(|(a, s)| a / s).collect();
        let x = Tensor::from_f64s(&zs, &[1, N], DType::F64)
            .unwrap()
            .variable();
        let y = self.net.forward(&self.params, &x).unwrap();
        let g = keel::autodiff::grad(&[&y], &[None], &[&x], false).unwrap();
        let g = g[0].as_ref().unwrap().to_vec_f64().unwrap();
        let h = y.to_vec_f64().unwrap()[0] * self.std + self.mean;
        let grad = g
            .iter()
            .zip(&self.scale)
            .map(|(d, s)| self.std * d / s)
            .collect();
        (h, grad)
    }

    /// `J∇H(z)` from the host's gradient.
    fn host_field(&self, z: &[f64; N]) -> [f64; N] {
        let (_, g) = self.host_gradient(z);
        let mut dz = [0.0; N];
        for i in 0..N / 2 {
            dz[i] = g[N / 2 + i];
            dz[N / 2 + i] = -g[i];
        }
        dz
    }
}

/// The double spring pendulum's initial states (the reference's distribution, as
/// `keel::emlp::spring::SpringPendulum::sample`).
fn state(rng: &mut Xoshiro256PlusPlus) -> [f64; N] {
    keel::emlp::spring::SpringPendulum::sample(rng)
}

/// `max |a − b| / max |b|`.
fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let err = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    err / b.iter().map(|y| y.abs()).fold(1e-300, f64::max)
}

fn core_gradient_f64(core: &CoreEmlp<'_>, z: &[f64]) -> (f64, Vec<f64>) {
    let mut grad = vec![0.0; z.len()];
    let mut scratch = vec![0.0; core.gradient_scratch_len()];
    let h = core.gradient(z, &mut grad, &mut scratch).unwrap();
    (h, grad)
}

fn core_gradient_f32(core: &CoreEmlp<'_>, z: &[f64]) -> (f64, Vec<f64>) {
    let zf: Vec<f32> = z.iter().map(|&v| v as f32).collect();
    let mut grad = vec![0.0f32; z.len()];
    let mut scratch = vec![0.0f32; core.gradient_scratch_len()];
    let h = core.gradient(&zf, &mut grad, &mut scratch).unwrap();
    (f64::from(h), grad.iter().map(|&v| f64::from(v)).collect())
}

fn central_differences(core: &CoreEmlp<'_>, z: &[f64], step: f64) -> Vec<f64> {
    let mut scratch = vec![0.0; core.scratch_len()];
    let mut f = |z: &[f64]| {
        let mut y = [0.0];
        core.forward(z, &mut y, &mut scratch).unwrap();
        y[0]
    };
    (0..z.len())
        .map(|i| {
            let (mut a, mut b) = (z.to_vec(), z.to_vec());
            a[i] += step;
            b[i] -= step;
            (f(&a) - f(&b)) / (2.0 * step)
        })
        .collect()
}

/// The nets of every test: plain (ch 32, 2 blocks; ch 24, 3 blocks) and standardised.
/// Every block has bilinear parts, so their derivative is exercised.
fn nets() -> Vec<(&'static str, Net)> {
    let nets = vec![
        ("ch 32, 2 blocks", Net::new(32, 2, 1, false)),
        ("ch 24, 3 blocks", Net::new(24, 3, 2, false)),
        ("ch 32, 2 blocks, standardised", Net::new(32, 2, 3, true)),
    ];
    for (name, n) in &nets {
        assert!(
            n.net.blocks.iter().all(|b| !b.bilinear.parts.is_empty()),
            "{name}: a block without bilinear parts"
        );
    }
    nets
}

#[test]
fn f64_export_mirrors_to_safetensors() {
    for (name, net) in nets() {
        let (a, b) = (net.export_f32(), net.export_f64());
        let st32 = SafeTensors::<'_, 128>::parse(&a).unwrap();
        let st64 = SafeTensors::<'_, 128>::parse(&b).unwrap();
        let mut tensors = 0;
        let mut names = vec![];
        for l in 0..net.net.blocks.len() {
            names.extend([
                format!("block{l}.weight"),
                format!("block{l}.bias"),
                format!("block{l}.gates"),
            ]);
            for p in 0..net.net.blocks[l].bilinear.parts.len() {
                for s in ["coef", "x", "w"] {
                    names.push(format!("block{l}.bilinear{p}.{s}"));
                }
            }
        }
        names.extend(
            [
                "input.scale",
                "target.mean",
                "target.std",
                "head.weight",
                "head.bias",
            ]
            .map(String::from),
        );
        for n in &names {
            let (x, y) = (st32.tensor(n).unwrap(), st64.tensor(n).unwrap());
            assert_eq!(x.shape(), y.shape(), "{name}: {n}");
            if x.dtype() == keel_core::io::Dtype::U32 {
                assert_eq!(x.data(), y.data(), "{name}: {n}");
            } else {
                let rounded: Vec<u8> = y
                    .data()
                    .chunks_exact(8)
                    .flat_map(|c| (f64::from_le_bytes(c.try_into().unwrap()) as f32).to_le_bytes())
                    .collect();
                assert_eq!(x.data(), &rounded[..], "{name}: {n}");
            }
            tensors += 1;
        }
        assert_eq!(
            st32.len(),
            tensors,
            "{name}: to_safetensors wrote other tensors"
        );
        assert_eq!(st64.len(), tensors);
    }
}

#[test]
fn core_gradient_matches_host_reverse_mode_and_central_differences() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    for (name, net) in nets() {
        let b64 = net.export_f64();
        let st = SafeTensors::<'_, 128>::parse(&b64).unwrap();
        let core = CoreEmlp::from_safetensors(&st).unwrap();
        let b32 = net.export_f32();
        let st32 = SafeTensors::<'_, 128>::parse(&b32).unwrap();
        let core32 = CoreEmlp::from_safetensors(&st32).unwrap();
        let (mut worst64, mut worst32, mut worst_fd) = (0.0f64, 0.0f64, 0.0f64);
        for _ in 0..5 {
            let z = state(&mut rng);
            let (h_host, g_host) = net.host_gradient(&z);
            let (h, g) = core_gradient_f64(&core, &z);
            let e64 = relative_error(&g, &g_host);
            assert!(e64 < 1e-9, "{name}: f64 {g:?} vs host {g_host:?} ({e64:e})");
            assert!((h - h_host).abs() <= 1e-12 * (1.0 + h_host.abs()), "{name}");
            let (h32, g32) = core_gradient_f32(&core, &z);
            let e32 = relative_error(&g32, &g_host);
            assert!(
                e32 < 1e-4,
                "{name}: f32 {g32:?} vs host {g_host:?} ({e32:e})"
            );
            assert!(
                (h32 - h_host).abs() <= 1e-4 * (1.0 + h_host.abs()),
                "{name}"
            );
            // The real (f32-weight) export, in f32: the same to f32 rounding.
            let (_, g32x) = core_gradient_f32(&core32, &z);
            let e32x = relative_error(&g32x, &g_host);
            assert!(e32x < 1e-4, "{name}: exported f32 vs host ({e32x:e})");
            // Central differences of the core's own forward pass, on both files, in f64.
            for c in [&core, &core32] {
                let fd = central_differences(c, &z, 1e-5);
                let (_, g) = core_gradient_f64(c, &z);
                let efd = relative_error(&g, &fd);
                assert!(efd < 1e-6, "{name}: {g:?} vs differences {fd:?} ({efd:e})");
                worst_fd = worst_fd.max(efd);
            }
            worst64 = worst64.max(e64);
            worst32 = worst32.max(e32.max(e32x));
        }
        println!(
            "{name}: scratch {} scalars; relative error f64 {worst64:.1e}, f32 {worst32:.1e}, \
             central differences {worst_fd:.1e}",
            core.gradient_scratch_len()
        );
    }
}

#[test]
fn an_rk4_step_of_the_core_field_is_the_step_written_out_with_the_host_gradient() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(8);
    for (name, net) in nets() {
        let bytes = net.export_f64();
        let st = SafeTensors::<'_, 128>::parse(&bytes).unwrap();
        let core = CoreEmlp::from_safetensors(&st).unwrap();
        let field = HamiltonianEmlp::<'_, '_, 4, 16, N, S>::new(&core).unwrap();
        let mut worst = 0.0f64;
        for _ in 0..3 {
            let z0 = state(&mut rng);
            let dt = 0.05;
            let add = |z: &[f64; N], k: &[f64; N], c: f64| -> [f64; N] {
                std::array::from_fn(|i| z[i] + c * k[i])
            };
            let k1 = net.host_field(&z0);
            let k2 = net.host_field(&add(&z0, &k1, dt / 2.0));
            let k3 = net.host_field(&add(&z0, &k2, dt / 2.0));
            let k4 = net.host_field(&add(&z0, &k3, dt));
            let by_hand: [f64; N] = std::array::from_fn(|i| {
                z0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
            });
            let mut z = z0;
            Rk4::new(dt).unwrap().step(&field, 0.0, &mut z).unwrap();
            let moved: Vec<f64> = z.iter().zip(&z0).map(|(a, b)| a - b).collect();
            let moved_by_hand: Vec<f64> = by_hand.iter().zip(&z0).map(|(a, b)| a - b).collect();
            let err = relative_error(&moved, &moved_by_hand);
            assert!(err < 1e-9, "{name}: {z:?} vs {by_hand:?} ({err:e})");
            worst = worst.max(err);
        }
        // Dopri5 runs the same field; H is conserved by the exact flow.
        let z0 = state(&mut rng);
        let h0 = field.energy(&z0).unwrap();
        let mut solver = Dopri5::new(1e-9, 1e-11)
            .unwrap()
            .start(&field, 0.0, z0)
            .unwrap();
        let z1 = solver.advance_to(&field, 1.0).unwrap();
        let h1 = field.energy(&z1).unwrap();
        assert!(
            (h1 - h0).abs() < 1e-6 * (1.0 + h0.abs()),
            "{name}: H {h0} → {h1}"
        );
        println!(
            "{name}: RK4 step vs by hand {worst:.1e}; Dopri5 (rtol 1e-9) over t = 1: H {h0} → {h1}"
        );
    }
}

#[test]
fn the_core_field_is_o2_equivariant_in_f32() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    for (name, net) in nets() {
        // The real export: f32 weights, f32 arithmetic.
        let bytes = net.export_f32();
        let st = SafeTensors::<'_, 128>::parse(&bytes).unwrap();
        let core = CoreEmlp::from_safetensors(&st).unwrap();
        let field = HamiltonianEmlp::<'_, '_, 4, 16, N, S>::new(&core).unwrap();
        let rate = |z: &[f64]| -> Vec<f64> {
            let zf: [f32; N] = std::array::from_fn(|i| z[i] as f32);
            let mut dz = [0.0f32; N];
            field.rate(0.0, &zf, &mut dz).unwrap();
            dz.iter().map(|&v| f64::from(v)).collect()
        };
        let mut worst = 0.0f64;
        for _ in 0..5 {
            let z = state(&mut rng);
            let g = net.group.sample(&mut rng);
            let els = vec![(net.group.name.clone(), g.clone(), g.inverse().unwrap().t())];
            let f_gz = rate(&net.rep_in.apply(&els, &z).unwrap());
            let g_fz = net.rep_in.apply(&els, &rate(&z)).unwrap();
            let err = relative_error(&f_gz, &g_fz);
            assert!(err < 1e-5, "{name}: equivariance error {err:e}");
            worst = worst.max(err);
            // The element moves (x, y) and fixes z: v = (e_x, e_y, e_z, 0).
            let mut v = [0.0; N];
            (v[0], v[4], v[8]) = (1.0, 1.0, 1.0);
            let gv = net.rep_in.apply(&els, &v).unwrap();
            let moved = (gv[0] - 1.0).abs() + gv[1].abs() + gv[3].abs() + (gv[4] - 1.0).abs();
            assert!(moved > 1e-3, "{name}: g ≈ identity: {gv:?}");
            assert!((gv[8] - 1.0).abs() < 1e-12 && gv[2].abs() < 1e-12 && gv[6].abs() < 1e-12);
        }
        println!("{name}: worst f32 equivariance error of J∇H {worst:.1e}");
    }
}

#[test]
fn bad_inputs_are_errors() {
    let net = Net::new(16, 2, 4, false);
    let bytes = net.export_f32();
    let st = SafeTensors::<'_, 128>::parse(&bytes).unwrap();
    let core = CoreEmlp::from_safetensors(&st).unwrap();
    let n = core.gradient_scratch_len();
    let mut scratch = vec![0.0f32; n];
    let mut grad = [0.0f32; N];
    assert!(matches!(
        core.gradient(&[0.0f32; N - 1], &mut grad, &mut scratch),
        Err(Error::ShapeMismatch { what: "x", .. })
    ));
    assert!(matches!(
        core.gradient(&[0.0f32; N], &mut [0.0; N + 1], &mut scratch),
        Err(Error::ShapeMismatch {
            what: "gradient",
            ..
        })
    ));
    assert!(matches!(
        core.gradient(&[0.0f32; N], &mut grad, &mut scratch[..n - 1]),
        Err(Error::ScratchTooSmall { needed, .. }) if needed == n
    ));
    // The field's stack scratch is checked once, at construction.
    assert!(matches!(
        HamiltonianEmlp::<'_, '_, 4, 16, N, 8>::new(&core),
        Err(Error::ScratchTooSmall { needed, got: 8 }) if needed == n
    ));
    assert!(matches!(
        HamiltonianEmlp::<'_, '_, 4, 16, 10, S>::new(&core),
        Err(Error::ShapeMismatch {
            expected: 10,
            got: N,
            ..
        })
    ));

    // Two outputs: a vector field on 4V is not a Hamiltonian.
    let group = parse_group("O2eR3()").unwrap();
    let rin = parse_rep("4*V", Some(&group)).unwrap();
    let rout = parse_rep("2*Scalar", Some(&group)).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let mut params = Params::new();
    let two = Emlp::new(
        &mut params,
        &group,
        &rin,
        &rout,
        16,
        2,
        &Solver::new(None),
        DType::F32,
        &mut rng,
    )
    .unwrap();
    let bytes = two
        .to_safetensors(&params, &[1.0; N], &[0.0; 2], &[1.0; 2], &BTreeMap::new())
        .unwrap();
    let st = SafeTensors::<'_, 128>::parse(&bytes).unwrap();
    let core2 = CoreEmlp::from_safetensors(&st).unwrap();
    let mut scratch = vec![0.0f32; core2.gradient_scratch_len()];
    assert!(matches!(
        core2.gradient(&[0.0f32; N], &mut grad, &mut scratch),
        Err(Error::ShapeMismatch {
            what: "outputs",
            expected: 1,
            got: 2
        })
    ));
    assert!(matches!(
        HamiltonianEmlp::<'_, '_, 4, 16, N, S>::new(&core2),
        Err(Error::ShapeMismatch {
            what: "Hamiltonian outputs",
            ..
        })
    ));
    // …but its vector–Jacobian product is defined.
    let (mut out, mut g) = ([0.0f32; 2], [0.0f32; N]);
    core2
        .vjp(&[0.1f32; N], &[1.0, -1.0], &mut out, &mut g, &mut scratch)
        .unwrap();
}
