//! Where the voice runs: parsing the `--device` option (`cpu`, `cuda`, `cuda:N`,
//! `auto`), opening the candle device, and the figures the server reports about it
//! (GPU memory in use / total).
//!
//! CUDA support is a cargo feature (`cuda`): without it, asking for a GPU is a clear
//! error and `auto` means the CPU.

use std::fmt;
use std::str::FromStr;

/// Where a voice runs (candle's device), re-exported so callers need not depend on candle.
pub use candle_core::Device;

/// The `--device` option, as the user wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (the default: it needs nothing installed).
    #[default]
    Cpu,
    /// NVIDIA GPU number `N` (`cuda` is `cuda:0`).
    Cuda(usize),
    /// GPU 0 when this build has CUDA and a GPU answers, else the CPU.
    Auto,
}

/// Why a device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("unknown device `{0}`: expected cpu, cuda, cuda:N or auto")]
    Parse(String),
    #[error(
        "this voxpipe was built without CUDA support; rebuild with `--features cuda` \
         (see docs/gpu.md) or use --device cpu"
    )]
    CudaNotCompiled,
    #[error("cannot open CUDA device {ordinal}: {reason}")]
    CudaUnavailable { ordinal: usize, reason: String },
}

impl FromStr for DeviceSpec {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            "auto" => Ok(Self::Auto),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| DeviceError::Parse(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Auto => f.write_str("auto"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device. `auto` falls back to the CPU (and says so in the log)
    /// when no GPU can be used.
    pub fn open(self) -> Result<Device, DeviceError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(ordinal) => open_cuda(ordinal),
            Self::Auto => match open_cuda(0) {
                Ok(device) => Ok(device),
                Err(e) => {
                    tracing::info!(reason = %e, "device auto: using the CPU");
                    Ok(Device::Cpu)
                }
            },
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device, DeviceError> {
    // candle panics inside cudarc when the driver library is missing on some
    // versions; contain it so `auto` can fall back and `cuda` gets an error.
    match std::panic::catch_unwind(|| Device::new_cuda(ordinal)) {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(DeviceError::CudaUnavailable {
            ordinal,
            reason: e.to_string(),
        }),
        Err(_) => Err(DeviceError::CudaUnavailable {
            ordinal,
            reason: "the CUDA driver library could not be loaded".into(),
        }),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_ordinal: usize) -> Result<Device, DeviceError> {
    Err(DeviceError::CudaNotCompiled)
}

/// A short name for logs, metrics and span attributes: `cpu` or `cuda:N`.
pub fn device_label(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// Memory of one GPU, as the driver reports it (all processes together).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct GpuMemory {
    pub gpu_id: usize,
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// GPU memory in use and in total for a CUDA device; `None` on the CPU.
pub fn gpu_memory(device: &Device) -> Option<GpuMemory> {
    gpu_memory_impl(device)
}

#[cfg(feature = "cuda")]
fn gpu_memory_impl(device: &Device) -> Option<GpuMemory> {
    let Device::Cuda(cuda) = device else {
        return None;
    };
    let gpu_id = match device.location() {
        candle_core::DeviceLocation::Cuda { gpu_id } => gpu_id,
        _ => 0,
    };
    let (free, total) = cuda.cuda_stream().context().mem_get_info().ok()?;
    Some(GpuMemory {
        gpu_id,
        used_bytes: (total - free) as u64,
        total_bytes: total as u64,
    })
}

#[cfg(not(feature = "cuda"))]
fn gpu_memory_impl(_device: &Device) -> Option<GpuMemory> {
    None
}

/// Whether a candle error is the GPU running out of memory (the request fails with
/// a typed `oom` error; the server keeps serving).
pub fn is_out_of_memory(error: &candle_core::Error) -> bool {
    // cudarc reports `DriverError(CUDA_ERROR_OUT_OF_MEMORY, "out of memory")`; cuBLAS
    // `CUBLAS_STATUS_ALLOC_FAILED`. candle wraps both as text, so match the text.
    let text = error.to_string();
    text.contains("OUT_OF_MEMORY")
        || text.contains("ALLOC_FAILED")
        || text.contains("out of memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        for bad in ["", "cuda:", "cuda:x", "tpu", "cuda:-1"] {
            let err = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(
                err.to_string().contains("expected cpu, cuda"),
                "{bad}: {err}"
            );
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn cpu_and_auto_open_without_a_gpu() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        // This test machine has no GPU: auto must fall back, never fail.
        let auto = DeviceSpec::Auto.open().unwrap();
        assert!(gpu_memory(&auto).is_none() || auto.is_cuda());
        assert_eq!(device_label(&Device::Cpu), "cpu");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err();
        assert!(matches!(err, DeviceError::CudaNotCompiled));
        assert!(err.to_string().contains("--features cuda"));
    }

    #[test]
    fn recognizes_out_of_memory_errors() {
        let oom = candle_core::Error::Cuda(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
        );
        assert!(is_out_of_memory(&oom));
        assert!(!is_out_of_memory(&candle_core::Error::Msg(
            "shape mismatch".into()
        )));
    }
}
