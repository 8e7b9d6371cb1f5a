//! Learned dynamics of the double spring pendulum (EMLPH, EMLP-ODE, MLPH, MLP-ODE): the
//! Hamiltonian field is the symplectic gradient of its network, the EMLP fields are equivariant
//! under sampled group elements and the MLP's are not, the gradient through the integrator (and,
//! for the Hamiltonians, through `∇H`) matches central differences, and a short training run
//! learns.

use std::sync::Arc;

use keel::backend::DType;
use keel::emlp::dynamics::{
    evaluate, rollout_chunks, spring_group, step, DynamicsConfig, DynamicsKind, DynamicsNet,
};
use keel::emlp::spring::{generate, STATE};
use keel::emlp::{parse_group, Group, Mat, Solver};
use keel::optim::{Optimizer, OptimizerKind};
use keel::params::{ParamId, Params};
use keel::tensor::Tensor;
use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

fn o2() -> Arc<Group> {
    spring_group(&parse_group("O(2)").unwrap()).unwrap()
}

fn net(kind: DynamicsKind, dtype: DType, seed: u64) -> (DynamicsNet, Params) {
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = DynamicsNet::new(
        kind,
        &mut params,
        &o2(),
        24,
        2,
        &Solver::new(None),
        dtype,
        &mut rng,
    )
    .unwrap();
    (n, params)
}

/// States near the data: the reference's initial distribution.
fn states(b: usize, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..b)
        .flat_map(|_| keel::emlp::spring::SpringPendulum::sample(&mut rng))
        .collect()
}

fn field(n: &DynamicsNet, p: &Params, z: &[f64], dtype: DType) -> Vec<f64> {
    let b = z.len() / STATE;
    let t = Tensor::from_f64s(z, &[b, STATE], dtype).unwrap();
    n.field(p, &t, false).unwrap().to_vec_f64().unwrap()
}

#[test]
fn the_hamiltonian_field_is_the_symplectic_gradient_of_the_network() {
    for kind in [DynamicsKind::Emlph, DynamicsKind::Mlph] {
        let (n, p) = net(kind, DType::F64, 5);
        let z = states(3, 1);
        let f = field(&n, &p, &z, DType::F64);
        let h = |z: &[f64]| -> f64 {
            let t = Tensor::from_f64s(z, &[1, STATE], DType::F64).unwrap();
            n.output(&p, &t).unwrap().to_vec_f64().unwrap()[0]
        };
        for r in 0..3 {
            let zr = &z[r * STATE..(r + 1) * STATE];
            for i in 0..STATE {
                let e = 1e-6;
                let (mut a, mut b) = (zr.to_vec(), zr.to_vec());
                a[i] += e;
                b[i] -= e;
                let d = (h(&a) - h(&b)) / (2.0 * e);
                // ż_q = ∂H/∂p, ż_p = −∂H/∂q.
                let (j, want) = if i < 6 { (i + 6, -d) } else { (i - 6, d) };
                let got = f[r * STATE + j];
                assert!(
                    (got - want).abs() <= 1e-7 * (1.0 + want.abs()),
                    "{}: row {r}, component {j}: {got} vs central difference {want}",
                    kind.name()
                );
            }
        }
    }
}

/// `g` applied to each of the four 3-vectors of every state.
fn act(g: &Mat, z: &[f64]) -> Vec<f64> {
    z.chunks_exact(3)
        .flat_map(|v| (0..3).map(move |i| (0..3).map(|j| g.at(i, j) * v[j]).sum::<f64>()))
        .collect()
}

/// Largest `|f(gz) − g f(z)|` relative to the field's size, over sampled `g`.
fn equivariance_error(n: &DynamicsNet, p: &Params, group: &Group, dtype: DType) -> f64 {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
    let z = states(8, 2);
    let fz = field(n, p, &z, dtype);
    let scale = fz.iter().map(|v| v.abs()).fold(0.0, f64::max);
    let mut worst: f64 = 0.0;
    for _ in 0..5 {
        let g = group.sample(&mut rng);
        let lhs = field(n, p, &act(&g, &z), dtype);
        let rhs = act(&g, &fz);
        for (a, b) in lhs.iter().zip(&rhs) {
            worst = worst.max((a - b).abs() / scale);
        }
    }
    worst
}

#[test]
fn the_emlp_fields_are_equivariant_and_the_mlp_fields_are_not() {
    let g = o2();
    for kind in DynamicsKind::ALL {
        let (n, p) = net(kind, DType::F32, 7);
        let err = equivariance_error(&n, &p, &g, DType::F32);
        if kind.equivariant() {
            assert!(err < 1e-5, "{}: equivariance error {err:e}", kind.name());
        } else {
            assert!(
                err > 1e-3,
                "{}: an MLP equivariant to {err:e}?",
                kind.name()
            );
        }
    }
    // SO(2) and D(6) about z, and a group on ℝ³ given as it is.
    for name in ["SO(2)", "D(6)", "SO(3)"] {
        let g = spring_group(&parse_group(name).unwrap()).unwrap();
        assert_eq!(g.d, 3);
        let mut params = Params::new();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let n = DynamicsNet::new(
            DynamicsKind::Emlph,
            &mut params,
            &g,
            24,
            2,
            &Solver::new(None),
            DType::F32,
            &mut rng,
        )
        .unwrap();
        let err = equivariance_error(&n, &params, &g, DType::F32);
        assert!(err < 1e-5, "EMLPH {name}: equivariance error {err:e}");
    }
}

/// The loss of one step as [`step`] computes it, in f64, for central differences.
fn chunk_loss(n: &DynamicsNet, p: &Params, z0: &Tensor, target: &Tensor) -> f64 {
    let pred = rollout_chunks(n, p, z0, false).unwrap();
    pred.detach()
        .sub(target)
        .unwrap()
        .square()
        .unwrap()
        .mean_all()
        .unwrap()
        .item()
        .unwrap()
}

#[test]
fn the_gradient_through_the_integrator_and_the_hamiltonians_gradient_matches_differences() {
    let data = generate(4, 11).unwrap();
    let (mut z0, mut all) = (Vec::new(), Vec::new());
    for c in &data.chunks {
        z0.extend(c.z[0]);
        c.z.iter().for_each(|z| all.extend(z));
    }
    let z0 = Tensor::from_f64s(&z0, &[4, STATE], DType::F64).unwrap();
    let target = Tensor::from_f64s(&all, &[4, 5, STATE], DType::F64).unwrap();
    for kind in [
        DynamicsKind::Emlph,
        DynamicsKind::EmlpOde,
        DynamicsKind::Mlph,
    ] {
        let (n, p) = net(kind, DType::F64, 13);
        let vars = p.variables();
        let pred = rollout_chunks(&n, &vars, &z0, true).unwrap();
        let loss = pred
            .sub(&target)
            .unwrap()
            .square()
            .unwrap()
            .mean_all()
            .unwrap();
        let ids: Vec<ParamId> = (0..p.len()).map(ParamId).collect();
        let inputs: Vec<&Tensor> = ids.iter().map(|&id| vars.get(id)).collect();
        let grads = keel::autodiff::grad(&[&loss], &[None], &inputs, false).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(17);
        let mut checked = 0;
        for (k, &id) in ids.iter().enumerate() {
            let Some(g) = &grads[k] else { continue };
            let g = g.to_vec_f64().unwrap();
            let base = p.get(id).to_vec_f64().unwrap();
            // Two entries of every parameter tensor, drawn at random.
            for _ in 0..2 {
                let i = ((standard_normal::<f64, _>(&mut rng).abs() * 1e6) as usize) % base.len();
                let e = 1e-6 * (1.0 + base[i].abs());
                let shifted = |d: f64| {
                    let mut q = p.clone();
                    let mut v = base.clone();
                    v[i] += d;
                    q.set(
                        id,
                        Tensor::from_f64s(&v, p.get(id).dims(), DType::F64).unwrap(),
                    )
                    .unwrap();
                    chunk_loss(&n, &q, &z0, &target)
                };
                let fd = (shifted(e) - shifted(-e)) / (2.0 * e);
                assert!(
                    (g[i] - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
                    "{} {}[{i}]: reverse mode {} vs central difference {fd}",
                    kind.name(),
                    p.names()[id.0],
                    g[i]
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 8,
            "{}: only {checked} entries checked",
            kind.name()
        );
    }
}

#[test]
fn a_short_run_learns_and_its_rollouts_are_measured() {
    let data = generate(40, 3).unwrap();
    let idx: Vec<usize> = (0..32).collect();
    for kind in [DynamicsKind::Emlph, DynamicsKind::MlpOde] {
        let (n, mut p) = net(kind, DType::F32, 21);
        let mut opt = Optimizer::new(OptimizerKind::adam(), &p).unwrap();
        let mut train = || {
            step(
                &n,
                &mut p,
                &mut opt,
                &data.chunks,
                &idx,
                3e-3,
                keel::backend::Device::Cpu,
            )
            .unwrap()
        };
        let first = train();
        let mut last = first;
        for _ in 0..150 {
            last = train();
        }
        assert!(
            last < 0.5 * first,
            "{}: loss {first} → {last} in 150 steps",
            kind.name()
        );
        let starts: Vec<_> = data.chunks[32..].iter().map(|c| c.z[0]).collect();
        let ev = evaluate(&n, &p, &starts).unwrap();
        assert_eq!(ev.error_curve.len(), 150);
        assert_eq!(ev.predicted.len(), 8);
        // At t = 0 the rollout is its start; the error grows from there.
        assert!(ev.error_curve[0] < 1e-12);
        assert!(ev.error_curve[149] > ev.error_curve[1]);
        assert!(ev.rollout_error > 1e-5 && ev.rollout_error < 1.0);
        assert!(ev.energy_error.is_finite());
    }
}

#[test]
fn bad_settings_are_refused_by_name() {
    let e = spring_group(&parse_group("O(5)").unwrap()).unwrap_err();
    assert!(e.to_string().contains("group"), "{e}");
    let mut cfg = DynamicsConfig::paper(DynamicsKind::Emlph, o2());
    cfg.n_train = 30_000;
    let e = cfg.validate().unwrap_err();
    assert!(e.to_string().contains("n_train"), "{e}");
    let mut cfg = DynamicsConfig::paper(DynamicsKind::Emlph, o2());
    cfg.lr = f64::NAN;
    assert!(cfg.validate().unwrap_err().to_string().contains("lr"));
    let e = DynamicsKind::parse("hnn").unwrap_err();
    assert!(e.to_string().contains("emlph"), "{e}");
}
