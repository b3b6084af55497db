//! RAR training (spec §4 and §6): the burn-train Learner loop with randomness annealing,
//! class-label dropout, AdamW with the reference's parameter groups, global-norm clipping,
//! step-level checkpoints and exact resume.
#![warn(missing_docs)]

pub mod toy;
