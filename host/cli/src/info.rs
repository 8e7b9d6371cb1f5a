//! `keel info`: the compute backends this machine offers.

use clap::{Args, ValueEnum};
use keel::error::Result;

/// NVRTC's virtual architectures Keel's kernels are compiled for.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ArchArg {
    #[value(name = "compute_75")]
    Compute75,
    #[value(name = "compute_80")]
    Compute80,
    #[value(name = "compute_86")]
    Compute86,
    #[value(name = "compute_89")]
    Compute89,
    #[value(name = "compute_90")]
    Compute90,
    #[value(name = "compute_100")]
    Compute100,
    #[value(name = "compute_120")]
    Compute120,
}

impl ArchArg {
    /// The architecture as NVRTC names it.
    fn name(self) -> &'static str {
        match self {
            ArchArg::Compute75 => "compute_75",
            ArchArg::Compute80 => "compute_80",
            ArchArg::Compute86 => "compute_86",
            ArchArg::Compute89 => "compute_89",
            ArchArg::Compute90 => "compute_90",
            ArchArg::Compute100 => "compute_100",
            ArchArg::Compute120 => "compute_120",
        }
    }
}

#[derive(Args)]
pub struct InfoArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Compile every CUDA kernel to PTX with NVRTC (no GPU needed) and report; fails with
    /// the compiler log if one does not compile.
    #[arg(long)]
    compile_kernels: bool,
    /// NVRTC target for --compile-kernels.
    #[arg(long, value_enum, default_value = "compute_90")]
    arch: ArchArg,
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The vector level of Keel's CPU kernels, and why when it is narrower than the CPU's.
fn describe_isa(level: keel::backend::cpu::isa::Isa) -> String {
    use keel::backend::cpu::isa::{self, Isa};
    let what = match level {
        Isa::Avx512 => "AVX-512F",
        Isa::Avx2 => "AVX2 + FMA",
        Isa::Baseline => "the target's baseline (no AVX2 + FMA)",
    };
    let cpu = isa::detected();
    if level < cpu {
        format!(
            "{what} (capped by {}; the CPU runs {})",
            isa::ENV,
            cpu.name()
        )
    } else {
        what.to_string()
    }
}

/// Runs `keel info`.
pub fn run(args: &InfoArgs) -> Result<bool> {
    let (json, compile_kernels) = (args.json, args.compile_kernels);
    let arch = args.arch.name();
    use keel::backend::cpu::isa;
    use keel::backend::cuda;
    let threads = rayon::current_num_threads();
    let cpu_isa = isa::isa();
    let probe = cuda::probe();
    let versions = cuda::versions();
    let compiled = cfg!(feature = "cuda");
    let nccl =
        cuda::nccl::library().map(|v| format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100));
    let kernels = if compile_kernels {
        Some(cuda::compile_all_kernels(arch)?)
    } else {
        None
    };
    if !crate::ranks::prints() {
        // Under MPI rank 0 speaks for the job.
        return Ok(true);
    }
    if json {
        let gpus = match &probe {
            Ok(g) => serde_json::json!(g.iter().map(|g| serde_json::json!({"ordinal": g.ordinal, "name": g.name, "memory_bytes": g.total_mem, "compute_capability": [g.compute_capability.0, g.compute_capability.1]})).collect::<Vec<_>>()),
            Err(_) => serde_json::json!([]),
        };
        let v = serde_json::json!({
            "cpu": {"model": cpu_model(), "threads": threads, "vector": cpu_isa.name(), "vector_detected": isa::detected().name()},
            "cuda_compiled": compiled,
            "mpi": crate::ranks::json(),
            "gpus": gpus,
            "gpu_unavailable_reason": probe.as_ref().err(),
            "cuda_driver_version": versions.driver,
            "nvrtc_version": versions.nvrtc.map(|(a, b)| format!("{a}.{b}")),
            "nccl_version": nccl.as_ref().ok(),
            "nccl_unavailable_reason": nccl.as_ref().err(),
            "kernels_ptx_bytes": kernels.as_ref().map(|k| k.iter().map(|(f, n)| (f.clone(), *n)).collect::<std::collections::BTreeMap<_, _>>()),
        });
        super::report::json(&v)?;
        return Ok(true);
    }
    println!(
        "keel {} — compute backends on this machine",
        env!("CARGO_PKG_VERSION")
    );
    println!("  CPU: {} ({threads} threads for Keel)", cpu_model());
    println!("  CPU kernels: {}", describe_isa(cpu_isa));
    println!(
        "  CUDA support compiled in: {}",
        if compiled {
            "yes (cudarc, libraries loaded at run time)"
        } else {
            "no"
        }
    );
    println!("  MPI support compiled in: {}", crate::ranks::describe());
    match &probe {
        Ok(gpus) => {
            for g in gpus {
                println!(
                    "  GPU cuda:{}: {}, {:.1} GiB, compute capability {}.{}",
                    g.ordinal,
                    g.name,
                    g.total_mem as f64 / (1u64 << 30) as f64,
                    g.compute_capability.0,
                    g.compute_capability.1
                );
            }
        }
        Err(reason) => println!("  GPU: none usable — {reason}"),
    }
    let dv = versions
        .driver
        .map(|d| format!("{}.{}", d / 1000, (d % 1000) / 10))
        .unwrap_or_else(|| "not found".into());
    let nv = versions
        .nvrtc
        .map(|(a, b)| format!("{a}.{b}"))
        .unwrap_or_else(|| "not found".into());
    println!("  CUDA driver: {dv}; NVRTC: {nv}");
    match &nccl {
        Ok(v) => println!("  NCCL: {v} (MPI ranks on GPUs sum gradients on the devices)"),
        Err(why) => println!("  NCCL: not usable — {why} (MPI ranks sum over host buffers)"),
    }
    if let Some(k) = kernels {
        println!("  kernels compiled to PTX for {arch}:");
        for (family, bytes) in k {
            println!("    cuda/{family}.cu → {bytes} bytes of PTX");
        }
    }
    Ok(true)
}
