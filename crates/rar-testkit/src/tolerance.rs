//! Relative-error bounds that depend on the kind of device.

/// A relative-error bound `‖a − b‖ / ‖b‖` for the CPU backends and a (usually wider) one for
/// CubeCL devices. GPU kernels reorder sums — tiled matrix products, tree reductions, fused
/// element-wise chains — so their fp32 results differ from a sequential CPU sum by more than
/// the CPU backends differ from each other; each test writes down both bounds next to its
/// comparison, and a result outside them is a failure, never a skip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// The bound for `flex` and `ndarray`.
    pub cpu: f64,
    /// The bound for `wgpu` (and `cuda`).
    pub gpu: f64,
}

impl Tolerance {
    /// A bound of `cpu` on the CPU backends and `gpu` on CubeCL devices.
    pub const fn new(cpu: f64, gpu: f64) -> Self {
        Self { cpu, gpu }
    }

    /// The same bound everywhere.
    pub const fn same(bound: f64) -> Self {
        Self::new(bound, bound)
    }

    /// The bound for the device called `name` (as named by [`crate::devices`]).
    pub fn on(&self, name: &str) -> f64 {
        if crate::is_gpu(name) {
            self.gpu
        } else {
            self.cpu
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Tolerance;

    #[test]
    fn cubecl_devices_get_the_gpu_bound() {
        let t = Tolerance::new(1e-5, 1e-4);
        assert_eq!(t.on("flex"), 1e-5);
        assert_eq!(t.on("ndarray"), 1e-5);
        assert_eq!(t.on("wgpu"), 1e-4);
        assert_eq!(t.on("cuda"), 1e-4);
        assert_eq!(Tolerance::same(3e-4).on("wgpu"), 3e-4);
    }
}
