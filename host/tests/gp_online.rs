//! `gp online`'s WISKI model on the controller: the exported stem and statistics, read by the
//! core's loader and refactorised there, predict the held-out rows as the host's model did at
//! the end of the stream, from raw (unscaled) rows.

use keel::export::wiski::wiski_bytes;
use keel::gp::{online, projection_stream, OnlineConfig, OnlineData, OnlineMethod, PretrainConfig};
use keel_core::gp::{refactor_scratch_len, WiskiBuffers, WiskiFile};
use keel_core::io::SafeTensors;

#[test]
fn the_exported_model_predicts_on_the_core_as_on_the_host() {
    let dims = 6;
    let (x, y) = projection_stream(600, dims, 3);
    let data = OnlineData::split(&x, &y, dims, 0.1, 3).unwrap();
    let config = OnlineConfig {
        method: OnlineMethod::Wiski,
        stem: Some(2),
        seed: 3,
        grid_size: 10,
        evaluations: 2,
        pretrain: PretrainConfig {
            epochs: 30,
            lr: 0.05,
            stem_lr: 0.005,
        },
        export: true,
        ..OnlineConfig::default()
    };
    let (report, export) = online(&config, &data, |_, _| {}).unwrap();
    let bytes = wiski_bytes(&export.unwrap()).unwrap();
    let st = SafeTensors::<16>::parse(&bytes).unwrap();
    let file = WiskiFile::from_safetensors(&st).unwrap();
    assert_eq!((file.inputs(), file.dims(), file.nodes()), (dims, 2, 100));
    let m = file.nodes();
    let (mut root, mut precision) = (vec![0.0; m * m], vec![0.0; m * m]);
    let (mut b, mut mean, mut work) = (vec![0.0; m], vec![0.0; m], vec![0.0; 2 * m]);
    let mut scratch = vec![0.0; refactor_scratch_len(m)];
    let buf = WiskiBuffers {
        root: &mut root,
        precision: &mut precision,
        b: &mut b,
        mean: &mut mean,
        work: &mut work,
    };
    let mut gp = file.model::<f64, 2>(buf, &mut scratch).unwrap();
    assert_eq!(gp.len() as usize, report.n);
    // Raw test rows: undo the stream's scaling.
    let (mut se, mut nll) = (0.0, 0.0);
    for (s, &t) in data.test_x.chunks_exact(dims).zip(&data.test_y) {
        let raw: Vec<f64> = s
            .iter()
            .zip(&data.x_scale)
            .map(|(v, (a, b))| (v - b) / a)
            .collect();
        let mut z = [0.0; 2];
        file.features(&raw, &mut z).unwrap();
        let p = gp.predict(&z).unwrap();
        se += (t - p.mean).powi(2);
        nll += 0.5 * ((2.0 * std::f64::consts::PI * p.var_y).ln() + (t - p.mean).powi(2) / p.var_y);
    }
    let k = data.test_y.len() as f64;
    let (rmse, nll) = ((se / k).sqrt(), nll / k);
    assert!(
        (rmse - report.test_rmse).abs() < 1e-9,
        "{rmse} vs {}",
        report.test_rmse
    );
    assert!(
        (nll - report.test_nll).abs() < 1e-8,
        "{nll} vs {}",
        report.test_nll
    );
    // The controller keeps learning: one more point moves the prediction there.
    let mut z = [0.0; 2];
    let raw: Vec<f64> = vec![0.3; dims];
    file.features(&raw, &mut z).unwrap();
    let before = gp.predict(&z).unwrap();
    gp.observe(&z, before.mean + 1.0).unwrap();
    assert!(gp.predict(&z).unwrap().mean > before.mean);
    // A row of the wrong width is refused.
    assert!(file.features(&raw[..dims - 1], &mut z).is_err());
}
