//! RAR sampling (spec §5 and §7): the batched KV-cached sampler with classifier-free guidance on
//! a power-cosine schedule, and writers for PNG grids and the 50k-sample `.npz` evaluation set.
#![warn(missing_docs)]
