//! Test-only helpers shared by the integration tests of the rar crates (never a dependency of
//! a library): which devices a numeric test runs on, and how close each must come to the
//! reference.
//!
//! The same model code is meant to run on CUDA, wgpu and the CPU backends; the tests check
//! that by running every numeric comparison on every device this build has:
//!
//! * `flex` always (burn's maintained pure-Rust CPU backend), `ndarray` with the `ndarray`
//!   feature;
//! * `wgpu` with the `wgpu` feature, on whatever adapter the machine offers — on a machine
//!   without a GPU that is Mesa's software Vulkan driver, lavapipe. A machine without any
//!   Vulkan driver gets a printed skip for the wgpu device, unless `RAR_REQUIRE_WGPU=1` is set
//!   (CI sets it), which turns the skip into a failure;
//! * `RAR_TEST_DEVICES=cuda` (or any comma-separated list of `flex`, `ndarray`, `wgpu`,
//!   `cuda`) runs the tests on exactly those devices — the GPU check uses it to run the
//!   parity set on a GPU.
//!
//! ```
//! for (name, device) in rar_testkit::devices() {
//!     let tolerance = rar_testkit::Tolerance::new(1e-5, 1e-4).on(name);
//!     assert!(tolerance > 0.0, "{name}: {device:?}");
//! }
//! ```
#![deny(missing_docs)]

mod devices;
mod tolerance;

pub use devices::{cpu_devices, devices, is_gpu, wgpu_device};
pub use tolerance::Tolerance;
