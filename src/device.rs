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
        ("flex", None) => {
            #[cfg(feature = "flex")]
            return Ok(Device::flex());
            #[cfg(not(feature = "flex"))]
            return Err(not_compiled("flex"));
        }
        ("ndarray", None) => {
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            return Ok(Device::ndarray());
            #[cfg(not(feature = "ndarray"))]
            return Err(not_compiled("ndarray"));
        }
        ("wgpu", _) | ("wgpu-cpu", None) => {
            #[cfg(feature = "wgpu")]
            {
                use burn::tensor::DeviceKind;
                let device_kind = match (kind.as_str(), index) {
                    ("wgpu-cpu", _) => DeviceKind::Cpu,
                    (_, Some(i)) => DeviceKind::DiscreteGpu(i),
                    (_, None) => DeviceKind::DefaultDevice,
                };
                return Ok(Device::wgpu(device_kind));
            }
            #[cfg(not(feature = "wgpu"))]
            return Err(not_compiled("wgpu"));
        }
        ("cuda", _) => {
            #[cfg(feature = "cuda")]
            return Ok(Device::cuda(index.unwrap_or(0)));
            #[cfg(not(feature = "cuda"))]
            return Err(not_compiled("cuda"));
        }
        _ => Err(DeviceError::Unknown(name.to_string())),
    }
}

/// Parses a comma-separated list of device names (`cuda:0,cuda:1`), as used for data-parallel
/// training. Empty entries are rejected.
pub fn parse_devices(names: &str) -> Result<Vec<Device>, DeviceError> {
    names.split(',').map(parse_device).collect()
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
