//! MaskGIT-VQGAN tokenizer on burn: encoder, vector quantizer and decoder, loading of the
//! official `maskgit-vqgan-imagenet-f16-256.bin` weights, image I/O and ImageNet
//! pretokenization (spec §8–§9).
//!
//! RAR sees images only as 256 code ids on a 16×16 grid; this crate turns pictures into those
//! ids and back.
#![warn(missing_docs)]
