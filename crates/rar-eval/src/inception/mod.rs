//! The InceptionV3 feature extractor of the ADM evaluator.

mod basic_conv;
mod blocks;
mod extractor;
mod network;
mod pooling;
mod resize;
mod weights;

pub use basic_conv::BasicConv2d;
pub use blocks::{InceptionA, InceptionB, InceptionC, InceptionD, InceptionE, PoolBranch};
pub use extractor::{InceptionExtractor, InceptionFeatures};
pub use network::{
    INPUT_SIDE, InceptionOutputs, InceptionV3, InceptionV3Config, POOL_FEATURES, SPATIAL_CHANNELS,
    SPATIAL_FEATURES, SPATIAL_SIDE,
};
pub use resize::tf1_resize_bilinear;
