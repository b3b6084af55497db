//! Data parallelism: the micro-batches of a step spread over several devices.
//!
//! Each device gets its own copy of the model ([`Module::fork`]: its own parameters' device
//! and autodiff graph) and one micro-batch at a time, on a worker thread of its own; the
//! gradients come back to the first device and are summed there in micro-batch order, exactly
//! as one device accumulating the same micro-batches would sum them. No collective operation
//! is needed, so any devices work — two CPU devices run the same code path as a list of GPUs.

use burn::module::Module;
use burn::tensor::Device;
use rar_model::{ComputePrecision, Rar};

use crate::error::{Result, TrainError};
use crate::inputs::TrainingInputs;
use crate::step::{MicroBatch, MicroOutput, run_micro_batch};

/// Stack of a device worker: autodiff graphs of deep models are dropped recursively.
const WORKER_STACK: usize = 64 << 20;

/// The devices of a run (autodiff devices; the first holds the model and the optimizer).
#[derive(Debug, Clone)]
pub(crate) struct Devices {
    devices: Vec<Device>,
}

impl Devices {
    /// Checks a device list (non-empty, every device able to compute in `precision`) and
    /// takes the autodiff variant of each.
    pub fn new(devices: Vec<Device>, precision: ComputePrecision) -> Result<Self> {
        let refuse = |reason: String| TrainError::Devices {
            devices: format!("{devices:?}"),
            reason,
        };
        if devices.is_empty() {
            return Err(refuse("at least one device is needed".into()));
        }
        for device in &devices {
            precision
                .check_device(device)
                .map_err(|e| refuse(e.to_string()))?;
        }
        Ok(Self {
            devices: devices.into_iter().map(|d| d.autodiff()).collect(),
        })
    }

    /// The devices.
    pub fn as_slice(&self) -> &[Device] {
        &self.devices
    }

    /// The device of the model and the optimizer.
    pub fn main(&self) -> &Device {
        &self.devices[0]
    }

    /// Number of devices.
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// Runs `micros[d]` on device `d` (as many micro-batches as devices, or fewer) and returns
    /// their outputs in the same order, gradients on the main device.
    pub fn run(
        &self,
        model: &Rar,
        micros: &[MicroBatch],
        t: u64,
        inputs: &TrainingInputs,
        precision: ComputePrecision,
        loss_scale: f64,
    ) -> Result<Vec<MicroOutput>> {
        if let [micro] = micros {
            let out = run_micro_batch(model, inputs, micro, t, precision, loss_scale, self.main())?;
            return Ok(vec![out]);
        }
        let main = self.main().clone().inner();
        std::thread::scope(|scope| {
            let workers: Vec<_> = micros
                .iter()
                .zip(&self.devices)
                .enumerate()
                .map(|(d, (micro, device))| {
                    let copy = if d == 0 {
                        model.clone()
                    } else {
                        model.clone().fork(device)
                    };
                    let main = &main;
                    std::thread::Builder::new()
                        .name(format!("rar-train-device-{d}"))
                        .stack_size(WORKER_STACK)
                        .spawn_scoped(scope, move || {
                            let mut out = run_micro_batch(
                                &copy, inputs, micro, t, precision, loss_scale, device,
                            )?;
                            out.grads = out.grads.to_device(main, &copy);
                            Ok(out)
                        })
                        .map_err(|e| TrainError::Devices {
                            devices: format!("{device:?}"),
                            reason: format!("cannot start its worker thread: {e}"),
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(TrainError::Devices {
                            devices: format!("{:?}", self.devices),
                            reason: "a device worker panicked".into(),
                        })
                    })
                })
                .collect()
        })
    }
}
