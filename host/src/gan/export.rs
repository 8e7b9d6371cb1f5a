//! The saved generator (`keel.kind = "gan-generator"`): its parameters and batch-norm running
//! statistics in `f32`, and in `keel.config` the networks, the latent size, the sample shape
//! and the map from `[−1, 1]` back to the data's units. `keel gan sample` and `keel distill
//! --synthetic` read it; the file is sealed with Keel's checksum, so a changed byte is refused.

use std::collections::BTreeMap;
use std::path::Path;

use keel_core::random::{standard_normal, Xoshiro256PlusPlus};

use super::data::PixelMap;
use super::nets::{Arch, Net, Pass, Role, Running, Sample};
use crate::autodiff::no_grad;
use crate::backend::DType;
use crate::error::{Error, Result};
use crate::images::ImageShape;
use crate::params::{ParamId, Params};
use crate::tensor::Tensor;

/// `keel.kind` of a saved generator.
pub const KIND: &str = "gan-generator";

/// The most samples one call draws (refused before allocating beyond it).
pub const MAX_SAMPLES: usize = 10_000_000;
/// The most numbers (samples × numbers per sample) one call draws: 2 GiB in `f64`.
pub const MAX_VALUES: usize = 1 << 28;

/// A trained generator, on the CPU.
#[derive(Clone, Debug)]
pub struct Generator {
    /// The layers.
    pub net: Net,
    /// Its parameters.
    pub params: Params,
    /// Its batch norms' running statistics.
    pub running: Running,
    /// The networks' family.
    pub arch: Arch,
    /// One sample's shape.
    pub sample: Sample,
    /// Latent size.
    pub latent: usize,
    /// `[−1, 1]` → data units.
    pub map: PixelMap,
    /// The method that trained it.
    pub method: String,
    /// The data it learned.
    pub dataset: String,
}

fn f32_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as f32).to_le_bytes()).collect()
}

impl Generator {
    /// `n` samples in `[−1, 1]`, row-major, from `z` drawn from `rng`, with the running
    /// statistics (evaluation mode).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (setting `count`) for 0, more than [`MAX_SAMPLES`], or more than
    /// [`MAX_VALUES`] numbers in all.
    pub fn sample_unit(&self, n: usize, rng: &mut Xoshiro256PlusPlus) -> Result<Vec<f64>> {
        if n == 0 || n > MAX_SAMPLES {
            return Err(Error::invalid(
                "count",
                n,
                format!("draw between 1 and {MAX_SAMPLES} samples"),
            ));
        }
        let per = self.sample.numel();
        if n.saturating_mul(per) > MAX_VALUES {
            return Err(Error::invalid(
                "count",
                n,
                format!(
                    "{n} samples of {per} numbers exceed the {MAX_VALUES} numbers one call draws"
                ),
            ));
        }
        let dtype = self.params.get(ParamId(0)).dtype();
        let mut out = Vec::with_capacity(n * self.sample.numel());
        let mut running = self.running.clone();
        let mut left = n;
        while left > 0 {
            let m = left.min(1000);
            let z: Vec<f64> = (0..m * self.latent)
                .map(|_| standard_normal::<f64, _>(rng))
                .collect();
            let z = Tensor::from_f64s(&z, &[m, self.latent], dtype)?;
            let x = no_grad(|| self.net.forward(&self.params, &mut running, &z, Pass::Eval))?;
            out.extend(x.to_vec_f64()?);
            left -= m;
        }
        Ok(out)
    }

    /// `n` samples in the data's units from seed `seed`.
    ///
    /// # Errors
    /// As [`Generator::sample_unit`].
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<f64>> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        Ok(self
            .sample_unit(n, &mut rng)?
            .into_iter()
            .map(|v| self.map.to_data(v))
            .collect())
    }

    fn config(&self) -> serde_json::Value {
        let sample = match self.sample {
            Sample::Vector(d) => serde_json::json!({ "vector": d }),
            Sample::Image(s) => serde_json::json!({ "image": [s.channels, s.height, s.width] }),
        };
        serde_json::json!({
            "model": self.arch.spec(),
            "latent": self.latent,
            "sample": sample,
            "offset": self.map.offset,
            "scale": self.map.scale,
            "method": self.method,
            "dataset": self.dataset,
        })
    }

    /// The file's bytes.
    ///
    /// # Errors
    /// Device reads.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut t = Vec::new();
        for (name, p) in self.params.names().iter().zip(self.params.values()) {
            t.push((
                name.clone(),
                "F32",
                p.dims().to_vec(),
                f32_bytes(&p.to_vec_f64()?),
            ));
        }
        for (i, (m, v)) in self.running.iter().enumerate() {
            for (what, s) in [("mean", m), ("var", v)] {
                t.push((
                    format!("running.{i}.{what}"),
                    "F32",
                    s.dims().to_vec(),
                    f32_bytes(&s.to_vec_f64()?),
                ));
            }
        }
        let meta = BTreeMap::from([
            ("keel.kind".to_string(), KIND.to_string()),
            ("keel.config".to_string(), self.config().to_string()),
        ]);
        Ok(crate::checksum::sealed_safetensors(&t, &meta))
    }

    /// Writes the file atomically.
    ///
    /// # Errors
    /// As [`Generator::to_bytes`]; I/O.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::output::write_atomic(path, &self.to_bytes()?)
    }
}

/// Loads a generator written by `keel gan train --export`, in `f64` on the CPU.
///
/// # Errors
/// [`Error::Io`]; [`Error::Malformed`] for a file of another kind (naming it), a damaged file,
/// or tensors that do not fit the configuration.
pub fn load(path: &Path) -> Result<Generator> {
    from_bytes(&crate::output::read(path)?, path)
}

/// As [`load`], from the bytes (`path` names the file in errors).
///
/// # Errors
/// As [`load`].
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Generator> {
    let bad = |reason: String| Error::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let st = keel_core::io::SafeTensors::<256>::parse(bytes).map_err(|e| bad(e.to_string()))?;
    let text = |k: &str| -> Option<String> { st.metadata(k).map(|v| v.chars().collect()) };
    match text("keel.kind") {
        Some(k) if k == KIND => {}
        Some(k) => {
            return Err(bad(format!(
                "a `{k}` file, not a GAN generator (write one with `keel gan train --export`)"
            )))
        }
        None => return Err(bad("no `keel.kind`: not a keel GAN generator".into())),
    }
    crate::checksum::verify(&st).map_err(bad)?;
    let config: serde_json::Value = text("keel.config")
        .and_then(|c| serde_json::from_str(&c).ok())
        .ok_or_else(|| bad("no readable `keel.config`".into()))?;
    let arch = Arch::parse(config["model"].as_str().unwrap_or_default())
        .map_err(|e| bad(e.to_string()))?;
    let latent = config["latent"]
        .as_u64()
        .and_then(|v| usize::try_from(v).ok())
        .filter(|&v| (1..=65_536).contains(&v))
        .ok_or_else(|| bad("`latent` is not a size from 1 to 65536".into()))?;
    let size = |v: &serde_json::Value| {
        v.as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .filter(|&v| (1..=1 << 16).contains(&v))
    };
    let sample = if let Some(d) = size(&config["sample"]["vector"]) {
        Sample::Vector(d)
    } else {
        let dims: Vec<usize> = config["sample"]["image"]
            .as_array()
            .map(|a| a.iter().filter_map(size).collect())
            .unwrap_or_default();
        let [c, h, w] = dims[..] else {
            return Err(bad(
                "`sample` is neither {vector: D} nor {image: [C, H, W]}".into(),
            ));
        };
        Sample::Image(ImageShape::new(c, h, w).map_err(|e| bad(e.to_string()))?)
    };
    let number = |k: &str| {
        config[k]
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| bad(format!("`{k}` is not a finite number")))
    };
    let map = PixelMap {
        offset: number("offset")?,
        scale: number("scale")?,
    };
    let mut params = Params::new();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let (net, mut running) = Net::new(
        &mut params,
        "generator.",
        Role::Generator,
        arch,
        sample,
        latent,
        false,
        DType::F64,
        &mut rng,
    )
    .map_err(|e| bad(e.to_string()))?;
    let read = |name: &str, like: &Tensor| -> Result<Tensor> {
        let t = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        if t.shape() != like.dims() {
            return Err(bad(format!(
                "`{name}` is {:?}; this generator needs {:?}",
                t.shape(),
                like.dims()
            )));
        }
        let v = (0..t.len())
            .map(|i| t.get_f64(i))
            .collect::<core::result::Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("{name}: {e}")))?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(bad(format!("`{name}` holds a non-finite value")));
        }
        Ok(Tensor::from_f64s(&v, like.dims(), DType::F64)?)
    };
    let names = params.names().to_vec();
    for (i, name) in names.iter().enumerate() {
        let v = read(name, params.get(ParamId(i)))?;
        params.set(ParamId(i), v)?;
    }
    for (i, (m, v)) in running.iter_mut().enumerate() {
        *m = read(&format!("running.{i}.mean"), m)?;
        *v = read(&format!("running.{i}.var"), v)?;
    }
    let expected = names.len() + 2 * running.len();
    let found = st.tensors().count();
    if found != expected {
        return Err(bad(format!(
            "{found} tensors; a {} generator has {expected}",
            arch.spec()
        )));
    }
    Ok(Generator {
        net,
        params,
        running,
        arch,
        sample,
        latent,
        map,
        method: config["method"].as_str().unwrap_or_default().to_string(),
        dataset: config["dataset"].as_str().unwrap_or_default().to_string(),
    })
}
