//! GPU discovery, contexts, and the NVRTC module cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaStream};
use cudarc::nvrtc::{compile_ptx_with_opts, CompileError, CompileOptions, Ptx};

use super::SOURCES;
use crate::error::{Error, Result};

/// A GPU the machine offers.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuInfo {
    /// Ordinal.
    pub ordinal: usize,
    /// Device name.
    pub name: String,
    /// Total memory in bytes.
    pub total_mem: usize,
    /// Compute capability.
    pub compute_capability: (i32, i32),
}

/// Versions of the CUDA libraries found.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CudaVersions {
    /// Driver API version (e.g. 13000 for CUDA 13.0).
    pub driver: Option<i32>,
    /// NVRTC version.
    pub nvrtc: Option<(i32, i32)>,
}

fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen the library; no CUDA call is made.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

fn nvrtc_present() -> bool {
    // SAFETY: as above, for NVRTC.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

fn cublas_present() -> bool {
    // SAFETY: as above, for cuBLAS.
    unsafe { cudarc::cublas::sys::is_culib_present() }
}

/// Library versions that can be read on this machine.
pub fn versions() -> CudaVersions {
    let mut v = CudaVersions::default();
    if driver_present() {
        let mut d = 0;
        // SAFETY: cuDriverGetVersion(int*) writes one int; the library is present.
        if unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut d) }
            == cudarc::driver::sys::CUresult::CUDA_SUCCESS
        {
            v.driver = Some(d);
        }
    }
    if nvrtc_present() {
        let (mut a, mut b) = (0, 0);
        // SAFETY: nvrtcVersion(int*, int*) writes two ints; the library is present.
        if unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut a, &mut b) }
            == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS
        {
            v.nvrtc = Some((a, b));
        }
    }
    v
}

/// Why no GPU can be used, if none can (checked without touching cudarc's lazy loaders).
fn unusable_reason() -> Option<String> {
    if !driver_present() {
        return Some("no CUDA driver library (libcuda.so) on this machine".into());
    }
    if !nvrtc_present() {
        return Some("no NVRTC library (libnvrtc.so.13) to compile Keel's kernels".into());
    }
    if !cublas_present() {
        return Some("no cuBLAS library (libcublas.so.13)".into());
    }
    match CudaContext::device_count() {
        Ok(0) => Some("the CUDA driver reports no device".into()),
        Ok(_) => None,
        Err(e) => Some(format!("the CUDA driver cannot list devices ({e})")),
    }
}

/// The GPUs usable here, or why none is.
///
/// # Errors
/// The reason no GPU is usable.
pub fn probe() -> std::result::Result<Vec<GpuInfo>, String> {
    if let Some(reason) = unusable_reason() {
        return Err(reason);
    }
    let n = CudaContext::device_count().map_err(|e| e.to_string())?;
    (0..n as usize)
        .map(|ordinal| {
            let ctx = CudaContext::new(ordinal).map_err(|e| format!("device {ordinal}: {e}"))?;
            Ok(GpuInfo {
                ordinal,
                name: ctx.name().map_err(|e| e.to_string())?,
                total_mem: ctx.total_mem().map_err(|e| e.to_string())?,
                compute_capability: ctx.compute_capability().map_err(|e| e.to_string())?,
            })
        })
        .collect()
}

/// The NVRTC target for a compute capability (NVRTC 13 supports 7.5 and newer).
fn arch_for(cc: (i32, i32)) -> &'static str {
    match cc {
        (7, 5) => "compute_75",
        (8, 0) => "compute_80",
        (8, 6) => "compute_86",
        (8, 7) => "compute_87",
        (8, 9) => "compute_89",
        (9, 0) => "compute_90",
        (10, 0) => "compute_100",
        (12, 0) => "compute_120",
        (major, _) if major >= 12 => "compute_120",
        (major, _) if major >= 10 => "compute_100",
        (9, _) => "compute_90",
        (8, _) => "compute_80",
        _ => "compute_75",
    }
}

/// One opened GPU: context, stream, cuBLAS handle, and the kernel modules loaded so far.
pub(crate) struct GpuDevice {
    pub(crate) ordinal: usize,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) blas: CudaBlas,
    ctx: Arc<CudaContext>,
    arch: &'static str,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
}

impl GpuDevice {
    /// Makes this GPU's context current on the calling thread (for libraries such as NCCL that
    /// act on the current context).
    pub(crate) fn bind(&self) -> Result<()> {
        self.ctx.bind_to_thread().map_err(|e| Error::Cuda {
            op: format!("binding cuda:{}'s context", self.ordinal),
            detail: e.to_string(),
        })
    }

    /// `(free, total)` bytes of device memory, if the driver says.
    pub(crate) fn mem_info(&self) -> Option<(usize, usize)> {
        self.ctx.mem_get_info().ok()
    }

    /// Hands the memory the pool keeps back to the driver (after the stream's pending frees):
    /// what an allocation that ran out of memory tries before giving up.
    pub(crate) fn release_pool(&self) {
        use cudarc::driver::result;
        let _ = self.stream.synchronize();
        // SAFETY: the device handle is this context's; trimming to 0 releases only memory no
        // live allocation uses.
        unsafe {
            if let Ok(pool) = result::device::get_default_mem_pool(self.ctx.cu_device()) {
                let _ = result::mem_pool::trim_to(pool, 0);
            }
        }
    }
}

/// Keeps freed device memory in the device's default pool — the one `cuMemAllocAsync` (which
/// cudarc allocates with where the device supports memory pools) draws from — instead of
/// returning it to the driver: the pool's default release threshold of 0 trims it at every
/// synchronisation, and every `item` or read-back synchronises, so each training step would
/// allocate its buffers from the driver afresh. With the threshold at its maximum the pool is a
/// stream-ordered caching allocator: after the first step a step's allocations are served from
/// memory the pool holds ([`pool_memory`] shows it). An allocation that finds the device full
/// releases the pool and tries once more.
fn keep_pool_memory(ctx: &CudaContext) -> std::result::Result<(), cudarc::driver::DriverError> {
    use cudarc::driver::{result, sys};
    let mut threshold: u64 = u64::MAX;
    // SAFETY: the device handle is the context's own; the release threshold is a `cuuint64_t`.
    unsafe {
        let pool = result::device::get_default_mem_pool(ctx.cu_device())?;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut threshold as *mut u64).cast(),
        )
    }
}

/// Bytes of GPU `ordinal`'s default memory pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolMemory {
    /// Held from the driver (`CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT`): grows only when an
    /// allocation cannot be served from what the pool holds.
    pub reserved: u64,
    /// In use by live allocations (`CU_MEMPOOL_ATTR_USED_MEM_CURRENT`).
    pub used: u64,
}

/// The default memory pool's reserved and used bytes on GPU `ordinal`; a step that leaves
/// `reserved` unchanged allocated nothing from the driver.
///
/// # Errors
/// [`Error::NoGpu`]; [`Error::Cuda`] where the device has no memory pools.
pub fn pool_memory(ordinal: usize) -> Result<PoolMemory> {
    use cudarc::driver::{result, sys};
    let d = device(ordinal)?;
    let cuda = |e: cudarc::driver::DriverError| Error::Cuda {
        op: format!("reading the memory pool of cuda:{ordinal}"),
        detail: e.to_string(),
    };
    let (mut reserved, mut used) = (0u64, 0u64);
    // SAFETY: the device handle is the context's own; both attributes are `cuuint64_t`.
    unsafe {
        let pool = result::device::get_default_mem_pool(d.ctx.cu_device()).map_err(cuda)?;
        result::mem_pool::get_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT,
            (&mut reserved as *mut u64).cast(),
        )
        .map_err(cuda)?;
        result::mem_pool::get_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_CURRENT,
            (&mut used as *mut u64).cast(),
        )
        .map_err(cuda)?;
    }
    Ok(PoolMemory { reserved, used })
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuDevice(cuda:{}, {})", self.ordinal, self.arch)
    }
}

static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<GpuDevice>>>> = OnceLock::new();

/// Opens GPU `ordinal` (once per process) after checking that the libraries and the device are
/// there.
///
/// # Errors
/// [`Error::NoGpu`] with the reason.
pub(crate) fn device(ordinal: usize) -> Result<Arc<GpuDevice>> {
    let map = DEVICES.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = map.lock().map_err(|_| Error::NoGpu {
        reason: "device table poisoned".into(),
    })?;
    if let Some(d) = map.get(&ordinal) {
        return Ok(d.clone());
    }
    if let Some(reason) = unusable_reason() {
        return Err(Error::NoGpu { reason });
    }
    let count = CudaContext::device_count().map_err(|e| Error::NoGpu {
        reason: e.to_string(),
    })? as usize;
    if ordinal >= count {
        let present = match probe() {
            Ok(gpus) => gpus
                .iter()
                .map(|g| format!("cuda:{} {}", g.ordinal, g.name))
                .collect::<Vec<_>>()
                .join(", "),
            Err(why) => why,
        };
        return Err(Error::NoGpu {
            reason: format!(
                "cuda:{ordinal} requested but the machine has {count} GPU(s): {present}"
            ),
        });
    }
    let no_gpu = |what: &str, e: String| Error::NoGpu {
        reason: format!("{what} on cuda:{ordinal}: {e}"),
    };
    let ctx = CudaContext::new(ordinal).map_err(|e| no_gpu("creating a context", e.to_string()))?;
    // Best effort: without memory pools cudarc allocates synchronously, and nothing is cached.
    let _ = keep_pool_memory(&ctx);
    let cc = ctx
        .compute_capability()
        .map_err(|e| no_gpu("reading the compute capability", e.to_string()))?;
    let stream = ctx.default_stream();
    let blas = CudaBlas::new(stream.clone())
        .map_err(|e| no_gpu("creating a cuBLAS handle", e.to_string()))?;
    let dev = Arc::new(GpuDevice {
        ordinal,
        stream,
        blas,
        ctx,
        arch: arch_for(cc),
        modules: Mutex::new(HashMap::new()),
    });
    map.insert(ordinal, dev.clone());
    Ok(dev)
}

/// Opens GPU `ordinal`, or says why it cannot be used.
///
/// # Errors
/// [`Error::NoGpu`].
pub fn open(ordinal: usize) -> Result<()> {
    device(ordinal).map(|_| ())
}

/// The compiler's log for a failed compilation (readable, not `Debug`-escaped).
fn compile_log(e: CompileError) -> String {
    match e {
        CompileError::CompileError { log, options, .. } => {
            format!("{} (options {options:?})", log.to_string_lossy().trim_end())
        }
        other => other.to_string(),
    }
}

/// Waits for every queued operation on GPU `ordinal` (benchmarks read the clock after this).
///
/// # Errors
/// [`Error::NoGpu`]; [`Error::Cuda`].
pub fn synchronize(ordinal: usize) -> Result<()> {
    let d = device(ordinal)?;
    d.stream.synchronize().map_err(|e| Error::Cuda {
        op: format!("synchronize cuda:{ordinal}"),
        detail: e.to_string(),
    })
}

/// Theoretical peak memory bandwidth of GPU `ordinal` in bytes/s (2 × memory clock × bus width).
///
/// # Errors
/// [`Error::NoGpu`]; [`Error::Cuda`].
pub fn peak_bandwidth(ordinal: usize) -> Result<f64> {
    use cudarc::driver::sys::CUdevice_attribute;
    let d = device(ordinal)?;
    let attr = |a| {
        d.ctx.attribute(a).map_err(|e| Error::Cuda {
            op: "device attribute".into(),
            detail: e.to_string(),
        })
    };
    let clock_khz = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)? as f64;
    let bus_bits = attr(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)? as f64;
    Ok(2.0 * clock_khz * 1e3 * bus_bits / 8.0)
}

/// NVRTC options for Keel's kernels: no fused multiply-add contraction (`--fmad=false`), so
/// `a·b + c` rounds twice exactly as on the CPU and GPU results match the CPU backend bit for
/// bit where the arithmetic is the same (affine maps, optimizer updates).
fn kernel_options(family: &str, arch: &'static str) -> CompileOptions {
    CompileOptions {
        arch: Some(arch),
        name: Some(format!("{family}.cu")),
        fmad: Some(false),
        ..Default::default()
    }
}

/// FNV-1a, for cache keys.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn source(family: &str) -> Result<&'static str> {
    SOURCES
        .iter()
        .find(|(f, _)| *f == family)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::Cuda {
            op: family.to_string(),
            detail: "no such kernel family".into(),
        })
}

/// Compiles one kernel family for `arch`, from the disk cache when present.
fn ptx_for(family: &'static str, arch: &'static str) -> Result<Ptx> {
    let src = source(family)?;
    let key = format!("{family}-{:016x}-{arch}-nofma.ptx", fnv1a(src.as_bytes()));
    let cached = crate::cache::dir("ptx").map(|d| d.join(&key));
    if let Some(path) = &cached {
        if let Ok(text) = std::fs::read_to_string(path) {
            return Ok(Ptx::from_src(text));
        }
    }
    let ptx =
        compile_ptx_with_opts(src, kernel_options(family, arch)).map_err(|e| Error::Cuda {
            op: format!("NVRTC compile of cuda/{family}.cu for {arch}"),
            detail: compile_log(e),
        })?;
    if let Some(path) = cached {
        // A failed cache write only costs a recompilation next time.
        let _ = crate::cache::store(&path, ptx.to_src().as_bytes());
    }
    Ok(ptx)
}

/// Compiles every kernel family to PTX for `arch` (no GPU needed, only NVRTC) and returns the
/// PTX size of each: the CI check that every kernel compiles.
///
/// # Errors
/// [`Error::NoGpu`] without NVRTC; [`Error::Cuda`] with the compiler log for a kernel that
/// does not compile.
pub fn compile_all_kernels(arch: &'static str) -> Result<Vec<(String, usize)>> {
    if !nvrtc_present() {
        return Err(Error::NoGpu { reason: "no NVRTC library (libnvrtc.so.13): set LD_LIBRARY_PATH to the nvidia-cuda-nvrtc wheel's lib folder".into() });
    }
    SOURCES
        .iter()
        .map(|(family, src)| {
            compile_ptx_with_opts(src, kernel_options(family, arch))
                .map(|p| (family.to_string(), p.to_src().len()))
                .map_err(|e| Error::Cuda {
                    op: format!("NVRTC compile of cuda/{family}.cu for {arch}"),
                    detail: compile_log(e),
                })
        })
        .collect()
}

impl GpuDevice {
    /// The kernel `name` from family `family`, compiling and loading the family on first use.
    pub(crate) fn function(&self, family: &'static str, name: &str) -> Result<CudaFunction> {
        let module = {
            let mut modules = self.modules.lock().map_err(|_| Error::Cuda {
                op: name.into(),
                detail: "module table poisoned".into(),
            })?;
            match modules.get(family) {
                Some(m) => m.clone(),
                None => {
                    let ptx = ptx_for(family, self.arch)?;
                    let m = self.ctx.load_module(ptx).map_err(|e| Error::Cuda {
                        op: format!("loading cuda/{family}.cu on cuda:{}", self.ordinal),
                        detail: e.to_string(),
                    })?;
                    modules.insert(family, m.clone());
                    m
                }
            }
        };
        module.load_function(name).map_err(|e| Error::Cuda {
            op: format!("kernel {name}"),
            detail: e.to_string(),
        })
    }
}
