//! The devices of a test build, with a probe for the wgpu adapter.

use burn::tensor::Device;

/// The environment variable that makes a missing wgpu adapter a failure instead of a skip.
const REQUIRE_WGPU: &str = "RAR_REQUIRE_WGPU";

/// The environment variable that restricts the tests to some devices (`cuda`, `wgpu,flex`).
const ONLY: &str = "RAR_TEST_DEVICES";

/// Every device a numeric test runs on, by name.
///
/// Without `RAR_TEST_DEVICES`: the CPU backends this build has (`flex`, `ndarray`), then
/// `wgpu` when the `wgpu` feature is on and an adapter answers (see [`wgpu_device`]). CUDA
/// devices are never picked by default, since a CUDA build may run on a machine without a GPU.
///
/// With `RAR_TEST_DEVICES=name[,name…]` (names: `flex`, `ndarray`, `wgpu`, `cuda`): exactly
/// those, e.g. `RAR_TEST_DEVICES=cuda` to run the parity set on the first GPU only. A name
/// this build lacks is a failure that names the feature to enable.
pub fn devices() -> Vec<(&'static str, Device)> {
    let out = match std::env::var(ONLY) {
        Ok(list) if !list.trim().is_empty() => {
            list.split(',').map(|name| named(name.trim())).collect()
        }
        _ => {
            let mut out = cpu_devices();
            out.extend(wgpu_device().map(|d| ("wgpu", d)));
            out
        }
    };
    assert!(
        !out.is_empty(),
        "no test device: enable the flex, ndarray or wgpu feature"
    );
    out
}

/// Whether the device of that name runs CubeCL kernels (whose sums are ordered differently
/// from the CPU backends', see [`crate::Tolerance`]).
pub fn is_gpu(name: &str) -> bool {
    matches!(name, "wgpu" | "cuda")
}

/// The CPU backends this build has, by name: `flex`, then `ndarray` (benchmarks use these).
#[allow(clippy::vec_init_then_push, unused_mut)]
pub fn cpu_devices() -> Vec<(&'static str, Device)> {
    let mut out = Vec::new();
    #[cfg(feature = "flex")]
    out.push(("flex", Device::flex()));
    #[cfg(feature = "ndarray")]
    {
        #[allow(deprecated)]
        out.push(("ndarray", Device::ndarray()));
    }
    out
}

/// One device of `RAR_TEST_DEVICES`.
fn named(name: &str) -> (&'static str, Device) {
    let missing = |feature: &str| -> ! {
        panic!("{ONLY} names '{name}', but this test build has no `{feature}` feature")
    };
    match name {
        "flex" => cpu_devices()
            .into_iter()
            .find(|(n, _)| *n == "flex")
            .unwrap_or_else(|| missing("flex")),
        "ndarray" => cpu_devices()
            .into_iter()
            .find(|(n, _)| *n == "ndarray")
            .unwrap_or_else(|| missing("ndarray")),
        "wgpu" => {
            if !cfg!(feature = "wgpu") {
                missing("wgpu")
            }
            // Named explicitly: a device that does not answer is a failure, not a skip.
            let device = wgpu_device_required(true);
            ("wgpu", device.unwrap_or_else(|| missing("wgpu")))
        }
        "cuda" => {
            #[cfg(feature = "cuda")]
            return ("cuda", Device::cuda(0));
            #[cfg(not(feature = "cuda"))]
            missing("cuda")
        }
        other => panic!("{ONLY}: unknown device '{other}' (expected flex, ndarray, wgpu or cuda)"),
    }
}

/// The wgpu device (burn's default adapter), after checking once per process that it can run a
/// kernel; `None` without the `wgpu` feature or when no adapter answers. In the latter case the
/// reason is printed, or — with `RAR_REQUIRE_WGPU` set to anything but `0` — the test fails.
pub fn wgpu_device() -> Option<Device> {
    let required = std::env::var(REQUIRE_WGPU).is_ok_and(|v| !v.is_empty() && v != "0");
    wgpu_device_required(required)
}

#[cfg_attr(not(feature = "wgpu"), allow(unused_variables))]
fn wgpu_device_required(required: bool) -> Option<Device> {
    #[cfg(feature = "wgpu")]
    {
        use std::sync::OnceLock;
        static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
        let device = Device::wgpu(burn::tensor::DeviceKind::DefaultDevice);
        match PROBE.get_or_init(|| probe(&device)) {
            Ok(()) => Some(device),
            Err(reason) => {
                assert!(
                    !required,
                    "the wgpu device is required ({REQUIRE_WGPU} or {ONLY}) but does not work: \
                     {reason}"
                );
                eprintln!(
                    "skip: wgpu device unavailable ({reason}); install a Vulkan driver \
                     (e.g. Debian's mesa-vulkan-drivers) to run the wgpu tests"
                );
                None
            }
        }
    }
    #[cfg(not(feature = "wgpu"))]
    None
}

/// Runs one small kernel on `device` and reads it back; a panic inside burn's adapter setup
/// (no Vulkan driver, no adapter) becomes the error text.
#[cfg(feature = "wgpu")]
fn probe(device: &Device) -> Result<(), String> {
    use burn::tensor::Tensor;
    let device = device.clone();
    let run = std::panic::catch_unwind(move || {
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
        x.sum().into_scalar::<f32>()
    });
    match run {
        Ok(sum) => match sum == 6.0 {
            true => Ok(()),
            false => Err(format!("a probe kernel summed [1, 2, 3] to {sum}")),
        },
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "adapter setup panicked".into())),
    }
}
