//! Loading and saving the generator's weights.
//!
//! The released generators (`rar_b.bin` … `rar_xxl.bin`) are plain `torch.save` state dicts.
//! They load unchanged, as do SafeTensors copies with the same keys and burn's own burnpack
//! files ([`Rar::save_burnpack`](crate::Rar::save_burnpack)); the format follows from the
//! extension. Reading, checking and applying go through rar-weights, the mechanism the
//! tokenizer uses too.
//!
//! Before a single weight is read, the file's keys, shapes and dtypes are checked against the
//! layout the configuration implies ([`expected_state_dict`], the reference's exact
//! `state_dict`), so a missing, unexpected or mis-shaped tensor is reported with the file, the
//! key and both shapes, and a truncated or corrupt file is an error rather than a panic. When
//! no configuration is given it is inferred from the shapes ([`infer_config`]) and matched
//! against the presets.
//!
//! * [`keys`] — the reference layout and the one key rename ([`checkpoint_naming`]);
//! * [`infer`] — the configuration from a file's shapes;
//! * [`load`] — [`Rar::from_checkpoint`](crate::Rar::from_checkpoint) and friends;
//! * [`save`] — burnpack and SafeTensors writers.

pub(crate) mod infer;
pub(crate) mod keys;
pub(crate) mod load;
pub(crate) mod save;
