//! InceptionV3 as the ADM evaluator's TensorFlow graph (`classify_image_graph_def.pb`,
//! 2015-12-05) computes it, in the layout of torch-fidelity's `FeatureExtractorInceptionV3`
//! (pytorch-fid's FID Inception is the same network and the same keys).

use burn::prelude::*;

use super::basic_conv::BasicConv2d;
use super::blocks::{InceptionA, InceptionB, InceptionC, InceptionD, InceptionE, PoolBranch};
use super::pooling::max_3x3_reduce;

/// Width of the `pool_3` features (FID, precision, recall).
pub const POOL_FEATURES: usize = 2048;
/// Channels of `mixed_6/conv` that the evaluator keeps for sFID.
pub const SPATIAL_CHANNELS: usize = 7;
/// Side of the `mixed_6/conv` grid.
pub const SPATIAL_SIDE: usize = 17;
/// Width of the spatial features: `7 × 17 × 17`, flattened height, width, channel (the
/// evaluator's NHWC order).
pub const SPATIAL_FEATURES: usize = SPATIAL_CHANNELS * SPATIAL_SIDE * SPATIAL_SIDE;
/// Side of the network's input after the resize.
pub const INPUT_SIDE: usize = 299;

/// The network's configuration: the 2015 graph's architecture is fixed, only the classifier
/// width is a choice.
#[derive(Config, Debug, PartialEq)]
pub struct InceptionV3Config {
    /// Outputs of the classifier `fc`: 1008 in the 2015 graph (the 1000 ImageNet classes and
    /// 8 unused ones); the Inception Score takes its softmax over all of them.
    #[config(default = 1008)]
    pub num_classes: usize,
}

impl InceptionV3Config {
    /// The network with burn's default initialisation (load weights before use).
    pub fn init(&self, device: &Device) -> InceptionV3 {
        InceptionV3 {
            conv2d_1a_3x3: BasicConv2d::new(3, 32, [3, 3], 2, [0, 0], device),
            conv2d_2a_3x3: BasicConv2d::new(32, 32, [3, 3], 1, [0, 0], device),
            conv2d_2b_3x3: BasicConv2d::same(32, 64, 3, device),
            conv2d_3b_1x1: BasicConv2d::pointwise(64, 80, device),
            conv2d_4a_3x3: BasicConv2d::new(80, 192, [3, 3], 1, [0, 0], device),
            mixed_5b: InceptionA::new(192, 32, device),
            mixed_5c: InceptionA::new(256, 64, device),
            mixed_5d: InceptionA::new(288, 64, device),
            mixed_6a: InceptionB::new(288, device),
            mixed_6b: InceptionC::new(768, 128, device),
            mixed_6c: InceptionC::new(768, 160, device),
            mixed_6d: InceptionC::new(768, 160, device),
            mixed_6e: InceptionC::new(768, 192, device),
            mixed_7a: InceptionD::new(768, device),
            mixed_7b: InceptionE::new(1280, PoolBranch::Average, device),
            mixed_7c: InceptionE::new(2048, PoolBranch::Max, device),
            fc: burn::nn::LinearConfig::new(POOL_FEATURES, self.num_classes).init(device),
        }
    }
}

/// The three outputs the evaluator reads, on the model's device.
#[derive(Debug, Clone)]
pub struct InceptionOutputs {
    /// `pool_3`: `[B, 2048]`.
    pub pool: Tensor<2>,
    /// The first 7 channels of `mixed_6/conv` flattened in height, width, channel order:
    /// `[B, 2023]`.
    pub spatial: Tensor<2>,
    /// `pool_3 · Wᵀ` **without** the classifier's bias: `[B, num_classes]`. The evaluator's
    /// softmax for the Inception Score multiplies `pool_3` by the graph's `softmax/logits`
    /// matrix only (torch-fidelity calls these `logits_unbiased`).
    pub logits: Tensor<2>,
}

/// InceptionV3 of the 2015 TensorFlow graph. Field names are torch-fidelity's keys in snake
/// case (`conv2d_1a_3x3` is `Conv2d_1a_3x3`, `mixed_5b` is `Mixed_5b`); the weight loader maps
/// them.
#[derive(Module, Debug)]
pub struct InceptionV3 {
    /// 3×3 stride 2, 3 → 32 (299 → 149).
    pub conv2d_1a_3x3: BasicConv2d,
    /// 3×3, 32 → 32 (→ 147).
    pub conv2d_2a_3x3: BasicConv2d,
    /// 3×3 same, 32 → 64, then max pool (→ 73).
    pub conv2d_2b_3x3: BasicConv2d,
    /// 1×1, 64 → 80.
    pub conv2d_3b_1x1: BasicConv2d,
    /// 3×3, 80 → 192 (→ 71), then max pool (→ 35).
    pub conv2d_4a_3x3: BasicConv2d,
    /// → 256 × 35².
    pub mixed_5b: InceptionA,
    /// → 288 × 35².
    pub mixed_5c: InceptionA,
    /// → 288 × 35².
    pub mixed_5d: InceptionA,
    /// → 768 × 17².
    pub mixed_6a: InceptionB,
    /// → 768 × 17².
    pub mixed_6b: InceptionC,
    /// → 768 × 17².
    pub mixed_6c: InceptionC,
    /// → 768 × 17²; its 1×1 branch is graph node `mixed_6/conv`.
    pub mixed_6d: InceptionC,
    /// → 768 × 17².
    pub mixed_6e: InceptionC,
    /// → 1280 × 8².
    pub mixed_7a: InceptionD,
    /// → 2048 × 8².
    pub mixed_7b: InceptionE,
    /// → 2048 × 8², averaged to `pool_3`.
    pub mixed_7c: InceptionE,
    /// The classifier `pool_3 → 1008`.
    pub fc: burn::nn::Linear,
}

impl InceptionV3 {
    /// The network on `x`, images already resized to 299×299 and scaled to `[-1, 1]`
    /// (`[B, 3, 299, 299]`; see [`crate::InceptionExtractor`] for the whole pipeline from
    /// uint8 pixels).
    pub fn forward(&self, x: Tensor<4>) -> InceptionOutputs {
        let x = self.conv2d_1a_3x3.forward(x);
        let x = self.conv2d_2a_3x3.forward(x);
        let x = max_3x3_reduce(self.conv2d_2b_3x3.forward(x));
        let x = self.conv2d_3b_1x1.forward(x);
        let x = max_3x3_reduce(self.conv2d_4a_3x3.forward(x));
        let x = self.mixed_5b.forward(x);
        let x = self.mixed_5c.forward(x);
        let x = self.mixed_5d.forward(x);
        let x = self.mixed_6a.forward(x);
        let x = self.mixed_6b.forward(x);
        let x = self.mixed_6c.forward(x);
        let (x, mixed_6_conv) = self.mixed_6d.forward_with_first_branch(x);
        let x = self.mixed_6e.forward(x);
        let x = self.mixed_7a.forward(x);
        let x = self.mixed_7b.forward(x);
        let x = self.mixed_7c.forward(x);
        let [batch, channels, height, width] = x.dims();
        let pool = x
            .reshape([batch, channels, height * width])
            .mean_dim(2)
            .reshape([batch, channels]);
        let spatial = mixed_6_conv
            .narrow(1, 0, SPATIAL_CHANNELS)
            .permute([0, 2, 3, 1])
            .reshape([batch, SPATIAL_FEATURES]);
        let logits = pool.clone().matmul(self.fc.weight.val());
        InceptionOutputs {
            pool,
            spatial,
            logits,
        }
    }
}
