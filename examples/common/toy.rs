//! The quickstart's toy model: its training flags, its training run, and how it is saved
//! (`quickstart.bpk` with the model's config beside it as `quickstart.json`) so that
//! `serve` and later runs load it instead of training again.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use burn::config::Config;
use burn::module::Module;
use burn::tensor::Device;
use rar::model::{ComputePrecision, Rar, RarConfig};
use rar::train::{ConsoleProgress, OptimizerConfig, Trainer, TrainingConfig, toy_training_data};

/// Where the quickstart saves its model by default, and where `serve` looks for it.
pub const DEFAULT_TOY_MODEL: &str = "quickstart.bpk";

// (a plain comment: clap would show a doc comment as the program's description)
// The toy model's size and its training recipe.
#[derive(clap::Args, Debug, Clone)]
pub struct ToyTraining {
    /// Precision of the products: f32, or bf16 over fp32 weights (emulated, slower on CPUs).
    #[arg(long, default_value = "f32", value_parser = super::sampling::parse_precision)]
    pub precision: ComputePrecision,
    /// Optimizer steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: u64,
    /// Batch size.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Hidden width.
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Number of transformer blocks.
    #[arg(long, default_value_t = 3)]
    pub depth: usize,
    /// Attention heads.
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Start of the randomness annealing (fraction of the steps).
    #[arg(long, default_value_t = 0.1)]
    pub anneal_start: f64,
    /// End of the randomness annealing (fraction of the steps).
    #[arg(long, default_value_t = 0.3)]
    pub anneal_end: f64,
    /// Seed of data, orders, initialisation and sampling.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print a metrics line every this many steps.
    #[arg(long, default_value_t = 250)]
    pub log_every: u64,
}

impl ToyTraining {
    /// The training configuration of these flags (warm-up 5 % of the steps, 250 validation
    /// grids).
    pub fn config(&self) -> TrainingConfig {
        TrainingConfig::new(
            super::toy_model(self.hidden, self.depth, self.heads),
            OptimizerConfig::new(),
        )
        .with_steps(self.steps)
        .with_batch_size(self.batch_size)
        .with_base_lr(self.lr)
        .with_warmup_steps((self.steps / 20).max(1))
        .with_anneal_start(self.anneal_start)
        .with_anneal_end(self.anneal_end)
        .with_seed(self.seed)
        .with_precision(self.precision)
        .with_val_size(250)
        .with_log_every(self.log_every)
    }

    /// Trains the toy model with progress on the console; returns it without autodiff.
    pub fn train(&self, devices: Vec<Device>) -> Result<Rar> {
        let config = self.config();
        println!("training RAR ({} parameters)", config.model.num_params());
        let start = Instant::now();
        let mut trainer = Trainer::new(config.clone(), toy_training_data(&config)?, devices)?;
        trainer.run(&mut ConsoleProgress::new(0, config.steps))?;
        println!("trained in {:.1} s", start.elapsed().as_secs_f64());
        Ok(trainer.model().valid())
    }
}

/// The config file saved beside a model: `quickstart.bpk` → `quickstart.json`.
pub fn config_path(model: &Path) -> PathBuf {
    model.with_extension("json")
}

/// Saves the weights (burnpack) and the model config beside them.
pub fn save_toy(model: &Rar, path: &Path) -> Result<()> {
    model.save_burnpack(path)?;
    let config = config_path(path);
    model
        .config()
        .save(&config)
        .with_context(|| format!("writing {}", config.display()))?;
    Ok(())
}

/// Loads a model saved by [`save_toy`]; the config file beside it gives the size, or
/// `fallback` when there is none (a `.bpk` saved by an older quickstart).
pub fn load_toy(path: &Path, fallback: &RarConfig, device: &Device) -> Result<Rar> {
    let config_file = config_path(path);
    let config = if config_file.exists() {
        RarConfig::load(&config_file)
            .with_context(|| format!("reading {}", config_file.display()))?
    } else {
        fallback.clone()
    };
    Rar::from_burnpack(path, &config, device).with_context(|| format!("loading {}", path.display()))
}
