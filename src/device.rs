//! Choosing a burn device from a command-line name.
//!
//! burn 0.22 selects the backend through a run-time [`Device`] value, and
//! `Device::default()` silently changes with the enabled cargo features; the examples therefore
//! always build their device explicitly from a name given by the user.

use burn::tensor::Device;

/// Why a device name could not be turned into a [`Device`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The name is not one this library knows.
    #[error("unknown device '{0}': expected one of flex, ndarray, wgpu[:N], wgpu-cpu, cuda[:N]")]
    Unknown(String),
    /// The name is known, but its backend was not compiled in.
    #[error(
        "device '{name}' needs the cargo feature '{feature}' (rebuild with --features {feature})"
    )]
    NotCompiled {
        /// The device name that was asked for.
        name: String,
        /// The cargo feature of the `rar` package that enables it.
        feature: &'static str,
    },
    /// The index after `:` is not a number.
    #[error("device '{0}': the index after ':' must be a non-negative integer")]
    BadIndex(String),
}

/// Parses `flex`, `ndarray`, `wgpu`, `wgpu:N` (N-th discrete GPU), `wgpu-cpu`, `cuda` or
/// `cuda:N` into a device of the matching backend.
///
/// Returns [`DeviceError::NotCompiled`] when the backend's feature is off, so a user learns
/// which `--features` flag to add instead of getting some other backend.
pub fn parse_device(name: &str) -> Result<Device, DeviceError> {
    let lowered = name.trim().to_ascii_lowercase();
    let (kind, index) = match lowered.split_once(':') {
        Some((kind, index)) => {
            let index: usize = index
                .parse()
                .map_err(|_| DeviceError::BadIndex(name.to_string()))?;
            (kind.to_string(), Some(index))
        }
        None => (lowered.clone(), None),
    };
    let not_compiled = |feature| DeviceError::NotCompiled {
        name: name.to_string(),
        feature,
    };
    match (kind.as_str(), index) {
        ("flex", None) => flex().ok_or_else(|| not_compiled("flex")),
        ("ndarray", None) => ndarray().ok_or_else(|| not_compiled("ndarray")),
        ("wgpu", _) | ("wgpu-cpu", None) => {
            wgpu(kind == "wgpu-cpu", index).ok_or_else(|| not_compiled("wgpu"))
        }
        ("cuda", _) => cuda(index.unwrap_or(0)).ok_or_else(|| not_compiled("cuda")),
        _ => Err(DeviceError::Unknown(name.to_string())),
    }
}

/// burn's flex device, when compiled in.
fn flex() -> Option<Device> {
    #[cfg(feature = "flex")]
    let device = Some(Device::flex());
    #[cfg(not(feature = "flex"))]
    let device = None;
    device
}

/// burn's ndarray device, when compiled in.
fn ndarray() -> Option<Device> {
    #[cfg(feature = "ndarray")]
    #[allow(deprecated)]
    let device = Some(Device::ndarray());
    #[cfg(not(feature = "ndarray"))]
    let device = None;
    device
}

/// A wgpu device (software adapter, `index`-th discrete GPU, or the default adapter), when
/// compiled in.
#[allow(unused_variables)]
fn wgpu(software: bool, index: Option<usize>) -> Option<Device> {
    #[cfg(feature = "wgpu")]
    let device = {
        use burn::tensor::DeviceKind;
        Some(Device::wgpu(match (software, index) {
            (true, _) => DeviceKind::Cpu,
            (_, Some(i)) => DeviceKind::DiscreteGpu(i),
            (_, None) => DeviceKind::DefaultDevice,
        }))
    };
    #[cfg(not(feature = "wgpu"))]
    let device = None;
    device
}

/// The `index`-th CUDA device, when compiled in.
#[allow(unused_variables)]
fn cuda(index: usize) -> Option<Device> {
    #[cfg(feature = "cuda")]
    let device = Some(Device::cuda(index));
    #[cfg(not(feature = "cuda"))]
    let device = None;
    device
}

/// Parses a comma-separated list of device names (`cuda:0,cuda:1`), as used for data-parallel
/// training. Empty entries are rejected.
pub fn parse_devices(names: &str) -> Result<Vec<Device>, DeviceError> {
    names.split(',').map(parse_device).collect()
}

/// Every device of the GPU backend that `name` belongs to (`cuda…` or `wgpu…`), in the
/// backend's order, for running on all GPUs of a machine; empty for the CPU backends and for
/// a backend that was not compiled in.
pub fn gpus_like(name: &str) -> Vec<Device> {
    let kind = name.trim().to_ascii_lowercase();
    let kind = kind.split(':').next().unwrap_or_default();
    #[allow(unused_mut)]
    let mut out: Vec<Device> = Vec::new();
    #[cfg(feature = "cuda")]
    if kind == "cuda" {
        out.extend(Device::enumerate(burn::tensor::DeviceType::Cuda));
    }
    #[cfg(feature = "wgpu")]
    if kind == "wgpu" {
        out.extend(Device::enumerate(burn::tensor::DeviceType::Wgpu));
    }
    let _ = kind;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(
            parse_device("tpu").unwrap_err(),
            DeviceError::Unknown("tpu".into())
        );
        assert!(matches!(
            parse_device("cuda:x"),
            Err(DeviceError::BadIndex(_))
        ));
        assert!(parse_devices("flex,").is_err());
    }

    #[test]
    #[cfg(not(feature = "cuda"))]
    fn missing_backend_names_its_feature() {
        assert_eq!(
            parse_device("cuda:1").unwrap_err(),
            DeviceError::NotCompiled {
                name: "cuda:1".into(),
                feature: "cuda"
            }
        );
    }

    #[test]
    #[cfg(feature = "flex")]
    fn flex_parses() {
        assert_eq!(parse_device(" FLEX ").unwrap(), Device::flex());
    }
}
