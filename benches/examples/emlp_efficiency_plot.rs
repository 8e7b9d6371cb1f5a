//! The EMLP paper's data-efficiency figure beside Keel's sweep: test MSE against n_train on
//! O5Synthetic for EMLP, MLP and MLP+Aug — Keel's mean over the seeds in
//! `benches/emlp/efficiency.jsonl` (written by `benches/emlp/efficiency.sh`) on the left, the
//! reference's (`experiments/notebooks/synthetic_results_all.csv` of mfinzi/equivariant-MLP, mean
//! of 3 trials) on the right, both against log₁₀ n.
//!
//! ```text
//! cargo run --release -p keel-benches --example emlp_efficiency_plot -- \
//!     benches/emlp/efficiency.jsonl benches/emlp/efficiency.png
//! ```

use std::collections::BTreeMap;

/// The reference's O5Synthetic rows: (model, test MSE at n = 30, 100, …, 30000).
const PAPER: [(&str, [f64; 7]); 3] = [
    (
        "EMLP-O(5)",
        [0.152, 0.0408, 0.0344, 0.0170, 0.0310, 0.0130, 0.0273],
    ),
    ("MLP", [28.1, 2.83, 0.248, 0.0892, 0.0623, 0.0616, 0.0622]),
    (
        "MLP+Aug",
        [0.476, 0.397, 0.0936, 0.0633, 0.0889, 0.0702, 0.0672],
    ),
];
const SIZES: [f64; 7] = [30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (input, output) = match &args[..] {
        [_, i, o] => (i.clone(), o.clone()),
        _ => return Err("usage: emlp_efficiency_plot EFFICIENCY.jsonl OUT.png".into()),
    };
    let mut runs: BTreeMap<(String, u64), Vec<f64>> = BTreeMap::new();
    let mut ch = 0;
    for line in std::fs::read_to_string(&input)?.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let field = |k: &str| {
            v.get(k)
                .ok_or_else(|| format!("{input}: a line without `{k}`"))
        };
        let model = field("model")?.as_str().unwrap_or_default().to_string();
        let n = field("n_train")?.as_u64().unwrap_or(0);
        ch = field("ch")?.as_u64().unwrap_or(0);
        runs.entry((model, n))
            .or_default()
            .push(field("test_mse")?.as_f64().unwrap_or(f64::NAN));
    }
    let mut keel: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (model, label) in [
        ("emlp", "EMLP-O(5)"),
        ("mlp", "MLP"),
        ("mlp-aug", "MLP+Aug"),
    ] {
        let pts: Vec<(f64, f64)> = SIZES
            .iter()
            .filter_map(|&n| {
                let v = runs.get(&(model.to_string(), n as u64))?;
                Some((n.log10(), v.iter().sum::<f64>() / v.len() as f64))
            })
            .collect();
        let seeds = runs
            .iter()
            .filter(|((m, _), _)| m == model)
            .map(|(_, v)| v.len())
            .min()
            .unwrap_or(0);
        keel.push((format!("{label} (≥ {seeds} seeds)"), pts));
    }
    let paper: Vec<(String, Vec<(f64, f64)>)> = PAPER
        .iter()
        .map(|(m, v)| {
            let pts = SIZES.iter().zip(v).map(|(n, y)| (n.log10(), *y)).collect();
            (m.to_string(), pts)
        })
        .collect();
    let title = format!("Keel, {ch} channels (CPU)");
    keel::plot::plot_log_panels(
        std::path::Path::new(&output),
        [
            (&title, "log10 n_train", "test MSE", &keel),
            (
                "Paper (reference CSV), 384 channels",
                "log10 n_train",
                "test MSE",
                &paper,
            ),
        ],
    )?;
    Ok(())
}
