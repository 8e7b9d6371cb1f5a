//! Bases and generators against the reference `emlp` 1.0.3 package (fixtures/emlp/, written by
//! fixtures/gen/emlp.py): exact dimensions, projectors `QQᵀ` to 1e-5 (the reference solves in
//! float32), and exactly the reference's generator sets.

use std::path::PathBuf;

use keel::emlp::{parse_group, parse_rep, Mat, Solver};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "fixtures", "emlp", name]
        .iter()
        .collect();
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("fixture JSON")
}

fn matrices(v: &Value) -> Vec<Mat> {
    v.as_array()
        .expect("list of matrices")
        .iter()
        .map(|m| {
            let rows: Vec<Vec<f64>> = m
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect()
                })
                .collect();
            Mat::from_rows(&rows)
        })
        .collect()
}

#[test]
fn generators_are_exactly_the_references() {
    let f = fixture("groups.json");
    let groups = f["groups"].as_array().unwrap();
    assert!(groups.len() >= 40);
    for entry in groups {
        let name = entry["group"].as_str().unwrap();
        let g = parse_group(name).unwrap_or_else(|e| panic!("{}", e.render(name)));
        assert_eq!(
            g.d as u64,
            entry["d"].as_u64().unwrap(),
            "{name}: dimension"
        );
        for (kind, ours, theirs) in [
            ("discrete", &g.discrete, matrices(&entry["discrete"])),
            ("lie", &g.lie, matrices(&entry["lie"])),
        ] {
            assert_eq!(
                ours.len(),
                theirs.len(),
                "{name}: number of {kind} generators"
            );
            for (k, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                let diff = a.sub(b).max_abs();
                // The reference stores generators in float32.
                assert!(
                    diff < 1e-6,
                    "{name}: {kind} generator {k} differs by {diff}"
                );
            }
        }
    }
}

#[test]
fn bases_match_the_reference_package() {
    let f = fixture("bases.json");
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 70);
    let solver = Solver::new(None);
    let mut compared = 0;
    let mut worst = 0.0f64;
    let (mut probes, mut worst_probe) = (0, 0.0f64);
    for c in cases {
        let group = c["group"].as_str();
        let (ri, ro) = (
            c["rep_in"].as_str().unwrap(),
            c["rep_out"].as_str().unwrap(),
        );
        let label = format!("{}: {ri} → {ro}", group.unwrap_or("(mixed)"));
        let g = group.map(|g| parse_group(g).unwrap_or_else(|e| panic!("{}", e.render(g))));
        let rin = parse_rep(ri, g.as_ref()).unwrap_or_else(|e| panic!("{label}: {}", e.render(ri)));
        let rout =
            parse_rep(ro, g.as_ref()).unwrap_or_else(|e| panic!("{label}: {}", e.render(ro)));
        assert_eq!(
            rin.size() as u64,
            c["size_in"].as_u64().unwrap(),
            "{label}: size_in"
        );
        assert_eq!(
            rout.size() as u64,
            c["size_out"].as_u64().unwrap(),
            "{label}: size_out"
        );
        let basis = solver.basis(&rin.maps_to(&rout)).unwrap();
        assert_eq!(
            basis.dim() as u64,
            c["dim"].as_u64().unwrap(),
            "{label}: dimension"
        );
        // Every case: the projection of the probe v_i = sin(0.37 i + 0.1).
        let v: Vec<f64> = (0..basis.size)
            .map(|i| (0.37 * i as f64 + 0.1).sin())
            .collect();
        let probe: Vec<f64> = c["probe"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(probe.len(), basis.size, "{label}: probe size");
        let ours = basis.project(&v);
        let perr = ours
            .iter()
            .zip(&probe)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            perr < 1e-5,
            "{label}: projected probe differs by {perr:.2e}"
        );
        probes += 1;
        worst_probe = worst_probe.max(perr);
        let Some(p) = c["projector"].as_array() else {
            continue;
        };
        let n = basis.size;
        assert_eq!(p.len(), n * n, "{label}: projector size");
        let q = basis.dense().unwrap();
        let mut err = 0.0f64;
        for i in 0..n {
            for j in 0..n {
                let ours: f64 = (0..q.cols).map(|k| q.at(i, k) * q.at(j, k)).sum();
                err = err.max((ours - p[i * n + j].as_f64().unwrap()).abs());
            }
        }
        assert!(err < 1e-5, "{label}: projector differs by {err:.2e}");
        worst = worst.max(err);
        compared += 1;
    }
    assert!(compared >= 60, "only {compared} projectors compared");
    assert_eq!(probes, cases.len());
    eprintln!(
        "{} cases, {compared} projectors compared, worst |ΔQQᵀ| = {worst:.2e}; \
         worst |ΔQQᵀv| = {worst_probe:.2e}",
        cases.len()
    );
}
