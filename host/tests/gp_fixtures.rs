//! The host's GP paths against fixtures/gp/cases.json (numpy/scipy, fixtures/gen/gp.py): exact
//! within 1e-9, dense SKI and streamed WISKI within 1e-8 (f64), and the interpolation rows.

use keel::gp::{exact, ski_dense, wiski, GridSpec, Hyper, Posterior, TrainData};
use keel_core::gp::{Convention, Family, Grid};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/gp/cases.json"
    ))
    .expect("fixtures/gp/cases.json");
    let v: Value = serde_json::from_str(&text).unwrap();
    v["cases"].as_array().unwrap().clone()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn rows(v: &Value) -> (usize, Vec<f64>) {
    let r = v.as_array().unwrap();
    let dim = r[0].as_array().unwrap().len();
    (dim, r.iter().flat_map(f64s).collect())
}

fn setup(c: &Value) -> (Hyper, Option<GridSpec>, TrainData, Vec<f64>) {
    let hyper = Hyper {
        family: Family::from_name(c["kernel"].as_str().unwrap()).unwrap(),
        outputscale: c["outputscale"].as_f64().unwrap(),
        lengthscale: f64s(&c["lengthscale"]),
        noise: c["noise"].as_f64().unwrap(),
    };
    let grid = c.get("grid").map(|g| GridSpec {
        size: g["size"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect(),
        lo: f64s(&g["lo"]),
        hi: f64s(&g["hi"]),
        convention: Convention::from_name(g["convention"].as_str().unwrap()).unwrap(),
        clamp: false,
    });
    let (dim, x) = rows(&c["x"]);
    let train = TrainData {
        dim,
        x,
        y: f64s(&c["y"]),
        d: f64s(&c["d"]),
    };
    let (_, test) = rows(&c["x_test"]);
    (hyper, grid, train, test)
}

fn compare(name: &str, what: &str, got: &Posterior, c: &Value, tol: f64) {
    let lml = c["log_marginal_likelihood"].as_f64().unwrap();
    assert!(
        (got.log_marginal_likelihood - lml).abs() <= tol * lml.abs().max(1.0),
        "{name} {what}: log p(y) {} vs {lml}",
        got.log_marginal_likelihood
    );
    for key in ["mean", "var_f", "var_y"] {
        let want = f64s(&c[key]);
        let have = match key {
            "mean" => &got.mean,
            "var_f" => &got.var_f,
            _ => &got.var_y,
        };
        assert_eq!(have.len(), want.len());
        for (i, (h, w)) in have.iter().zip(&want).enumerate() {
            assert!(
                (h - w).abs() <= tol * w.abs().max(1.0),
                "{name} {what}: {key}[{i}] {h} vs {w}"
            );
        }
    }
}

#[test]
fn exact_gp_matches_scipy() {
    let mut seen = 0;
    for c in cases().iter().filter(|c| c["method"] == "exact") {
        let (hyper, _, train, test) = setup(c);
        let name = c["name"].as_str().unwrap();
        compare(
            name,
            "exact",
            &exact(&hyper, &train, &test).unwrap(),
            c,
            1e-9,
        );
        seen += 1;
    }
    assert_eq!(seen, 7);
}

#[test]
fn dense_ski_and_streamed_wiski_match_numpy() {
    let mut seen = 0;
    for c in cases().iter().filter(|c| c["method"] == "ski") {
        let (hyper, grid, train, test) = setup(c);
        let grid = grid.unwrap();
        let name = c["name"].as_str().unwrap();
        compare(
            name,
            "ski",
            &ski_dense(&hyper, &grid, &train, &test).unwrap(),
            c,
            1e-8,
        );
        compare(
            name,
            "wiski",
            &wiski(&hyper, &grid, &train, &test).unwrap(),
            c,
            1e-8,
        );
        seen += 1;
    }
    assert_eq!(seen, 9);
}

#[test]
fn interpolation_rows_match_numpy() {
    let mut checked = 0;
    for c in cases().iter().filter(|c| c["method"] == "ski") {
        let g = &c["grid"];
        let size: Vec<usize> = g["size"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let (lo, hi) = (f64s(&g["lo"]), f64s(&g["hi"]));
        let conv = Convention::from_name(g["convention"].as_str().unwrap()).unwrap();
        let m: usize = size.iter().product();
        let (dim, test) = rows(&c["x_test"]);
        for (t, row) in c["w_rows"].as_array().unwrap().iter().enumerate() {
            let mut want = vec![0.0; m];
            for (i, w) in row["index"]
                .as_array()
                .unwrap()
                .iter()
                .zip(row["weight"].as_array().unwrap())
            {
                want[i.as_u64().unwrap() as usize] = w.as_f64().unwrap();
            }
            let mut have = vec![0.0; m];
            let mut idx = [0usize; 64];
            let mut w = [0.0; 64];
            let x = &test[t * dim..(t + 1) * dim];
            let nnz = match dim {
                1 => Grid::new([lo[0]], [hi[0]], [size[0]], conv)
                    .unwrap()
                    .weights(&[x[0]], &mut idx, &mut w),
                2 => Grid::new([lo[0], lo[1]], [hi[0], hi[1]], [size[0], size[1]], conv)
                    .unwrap()
                    .weights(&[x[0], x[1]], &mut idx, &mut w),
                _ => Grid::new(
                    [lo[0], lo[1], lo[2]],
                    [hi[0], hi[1], hi[2]],
                    [size[0], size[1], size[2]],
                    conv,
                )
                .unwrap()
                .weights(&[x[0], x[1], x[2]], &mut idx, &mut w),
            }
            .unwrap();
            for e in 0..nnz {
                have[idx[e]] += w[e];
            }
            for j in 0..m {
                assert!(
                    (have[j] - want[j]).abs() < 1e-12,
                    "{} row {t} node {j}: {} vs {}",
                    c["name"],
                    have[j],
                    want[j]
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 45);
}
