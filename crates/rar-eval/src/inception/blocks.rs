//! The Inception modules of the 2015 graph (Szegedy et al. 2016, "Rethinking the Inception
//! Architecture", figures 5–7), with the field names of torch-fidelity's and pytorch-fid's
//! ports so that their state dicts load unchanged.

use burn::prelude::*;

use super::basic_conv::BasicConv2d;
use super::pooling::{average_3x3_same, max_3x3_reduce, max_3x3_same};

/// 35×35 module (`Mixed_5b/c/d`, graph `mixed`, `mixed_1`, `mixed_2`): 1×1, 5×5, double 3×3
/// and average-pool branches; `64 + 64 + 96 + pool_features` channels out.
#[derive(Module, Debug)]
pub struct InceptionA {
    /// 1×1 → 64.
    pub branch1x1: BasicConv2d,
    /// 1×1 → 48.
    pub branch5x5_1: BasicConv2d,
    /// 5×5 48 → 64.
    pub branch5x5_2: BasicConv2d,
    /// 1×1 → 64.
    pub branch3x3dbl_1: BasicConv2d,
    /// 3×3 64 → 96.
    pub branch3x3dbl_2: BasicConv2d,
    /// 3×3 96 → 96.
    pub branch3x3dbl_3: BasicConv2d,
    /// 1×1 after the average pool → `pool_features`.
    pub branch_pool: BasicConv2d,
}

impl InceptionA {
    /// The module over `c_in` channels.
    pub fn new(c_in: usize, pool_features: usize, device: &Device) -> Self {
        Self {
            branch1x1: BasicConv2d::pointwise(c_in, 64, device),
            branch5x5_1: BasicConv2d::pointwise(c_in, 48, device),
            branch5x5_2: BasicConv2d::same(48, 64, 5, device),
            branch3x3dbl_1: BasicConv2d::pointwise(c_in, 64, device),
            branch3x3dbl_2: BasicConv2d::same(64, 96, 3, device),
            branch3x3dbl_3: BasicConv2d::same(96, 96, 3, device),
            branch_pool: BasicConv2d::pointwise(c_in, pool_features, device),
        }
    }

    /// `[B, c_in, 35, 35]` → `[B, 224 + pool_features, 35, 35]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b5 = self
            .branch5x5_2
            .forward(self.branch5x5_1.forward(x.clone()));
        let b3 = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = self.branch_pool.forward(average_3x3_same(x));
        Tensor::cat(vec![b1, b5, b3, bp], 1)
    }
}

/// 35 → 17 grid reduction (`Mixed_6a`, graph `mixed_3`): strided 3×3, strided double 3×3 and
/// max-pool branches; `384 + 96 + c_in` channels out.
#[derive(Module, Debug)]
pub struct InceptionB {
    /// 3×3 stride 2 → 384.
    pub branch3x3: BasicConv2d,
    /// 1×1 → 64.
    pub branch3x3dbl_1: BasicConv2d,
    /// 3×3 64 → 96.
    pub branch3x3dbl_2: BasicConv2d,
    /// 3×3 stride 2 96 → 96.
    pub branch3x3dbl_3: BasicConv2d,
}

impl InceptionB {
    /// The module over `c_in` channels.
    pub fn new(c_in: usize, device: &Device) -> Self {
        Self {
            branch3x3: BasicConv2d::reduce(c_in, 384, 3, device),
            branch3x3dbl_1: BasicConv2d::pointwise(c_in, 64, device),
            branch3x3dbl_2: BasicConv2d::same(64, 96, 3, device),
            branch3x3dbl_3: BasicConv2d::reduce(96, 96, 3, device),
        }
    }

    /// `[B, c_in, 35, 35]` → `[B, 480 + c_in, 17, 17]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.branch3x3.forward(x.clone());
        let bd = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        Tensor::cat(vec![b3, bd, max_3x3_reduce(x)], 1)
    }
}

/// 17×17 module with factorised 7×7 convolutions (`Mixed_6b…e`, graph `mixed_4`…`mixed_7`);
/// 768 channels out.
#[derive(Module, Debug)]
pub struct InceptionC {
    /// 1×1 → 192. In `Mixed_6d` (graph `mixed_6`) this is the evaluator's spatial feature
    /// `mixed_6/conv`.
    pub branch1x1: BasicConv2d,
    /// 1×1 → c7.
    pub branch7x7_1: BasicConv2d,
    /// 1×7 c7 → c7.
    pub branch7x7_2: BasicConv2d,
    /// 7×1 c7 → 192.
    pub branch7x7_3: BasicConv2d,
    /// 1×1 → c7.
    pub branch7x7dbl_1: BasicConv2d,
    /// 7×1 c7 → c7.
    pub branch7x7dbl_2: BasicConv2d,
    /// 1×7 c7 → c7.
    pub branch7x7dbl_3: BasicConv2d,
    /// 7×1 c7 → c7.
    pub branch7x7dbl_4: BasicConv2d,
    /// 1×7 c7 → 192.
    pub branch7x7dbl_5: BasicConv2d,
    /// 1×1 after the average pool → 192.
    pub branch_pool: BasicConv2d,
}

impl InceptionC {
    /// The module over `c_in` channels with `c7` channels inside the 7×7 towers.
    pub fn new(c_in: usize, c7: usize, device: &Device) -> Self {
        Self {
            branch1x1: BasicConv2d::pointwise(c_in, 192, device),
            branch7x7_1: BasicConv2d::pointwise(c_in, c7, device),
            branch7x7_2: BasicConv2d::line(c7, c7, 7, true, device),
            branch7x7_3: BasicConv2d::line(c7, 192, 7, false, device),
            branch7x7dbl_1: BasicConv2d::pointwise(c_in, c7, device),
            branch7x7dbl_2: BasicConv2d::line(c7, c7, 7, false, device),
            branch7x7dbl_3: BasicConv2d::line(c7, c7, 7, true, device),
            branch7x7dbl_4: BasicConv2d::line(c7, c7, 7, false, device),
            branch7x7dbl_5: BasicConv2d::line(c7, 192, 7, true, device),
            branch_pool: BasicConv2d::pointwise(c_in, 192, device),
        }
    }

    /// `[B, c_in, 17, 17]` → `[B, 768, 17, 17]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with_first_branch(x).0
    }

    /// The module's output and its 1×1 branch (`[B, 192, 17, 17]`, after the ReLU).
    pub fn forward_with_first_branch(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let b1 = self.branch1x1.forward(x.clone());
        let b7 = self.branch7x7_3.forward(
            self.branch7x7_2
                .forward(self.branch7x7_1.forward(x.clone())),
        );
        let mut bd = self.branch7x7dbl_1.forward(x.clone());
        for layer in [
            &self.branch7x7dbl_2,
            &self.branch7x7dbl_3,
            &self.branch7x7dbl_4,
            &self.branch7x7dbl_5,
        ] {
            bd = layer.forward(bd);
        }
        let bp = self.branch_pool.forward(average_3x3_same(x));
        (Tensor::cat(vec![b1.clone(), b7, bd, bp], 1), b1)
    }
}

/// 17 → 8 grid reduction (`Mixed_7a`, graph `mixed_8`): strided 3×3 after 1×1, strided 3×3
/// after a factorised 7×7, and max pool; `320 + 192 + c_in` channels out.
#[derive(Module, Debug)]
pub struct InceptionD {
    /// 1×1 → 192.
    pub branch3x3_1: BasicConv2d,
    /// 3×3 stride 2 192 → 320.
    pub branch3x3_2: BasicConv2d,
    /// 1×1 → 192.
    pub branch7x7x3_1: BasicConv2d,
    /// 1×7 192 → 192.
    pub branch7x7x3_2: BasicConv2d,
    /// 7×1 192 → 192.
    pub branch7x7x3_3: BasicConv2d,
    /// 3×3 stride 2 192 → 192.
    pub branch7x7x3_4: BasicConv2d,
}

impl InceptionD {
    /// The module over `c_in` channels.
    pub fn new(c_in: usize, device: &Device) -> Self {
        Self {
            branch3x3_1: BasicConv2d::pointwise(c_in, 192, device),
            branch3x3_2: BasicConv2d::reduce(192, 320, 3, device),
            branch7x7x3_1: BasicConv2d::pointwise(c_in, 192, device),
            branch7x7x3_2: BasicConv2d::line(192, 192, 7, true, device),
            branch7x7x3_3: BasicConv2d::line(192, 192, 7, false, device),
            branch7x7x3_4: BasicConv2d::reduce(192, 192, 3, device),
        }
    }

    /// `[B, c_in, 17, 17]` → `[B, 512 + c_in, 8, 8]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self
            .branch3x3_2
            .forward(self.branch3x3_1.forward(x.clone()));
        let mut b7 = self.branch7x7x3_1.forward(x.clone());
        for layer in [
            &self.branch7x7x3_2,
            &self.branch7x7x3_3,
            &self.branch7x7x3_4,
        ] {
            b7 = layer.forward(b7);
        }
        Tensor::cat(vec![b3, b7, max_3x3_reduce(x)], 1)
    }
}

/// Which pooling the pool branch of an [`InceptionE`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolBranch {
    /// Average that ignores the padding (`Mixed_7b`, graph `mixed_9`).
    Average,
    /// Maximum (`Mixed_7c`, graph `mixed_10`): the 2015 graph pools by maximum here, unlike
    /// the paper; the ports keep it, and so must we for the weights to mean the same.
    Max,
}

/// 8×8 module with expanded 3×3 branches (`Mixed_7b/c`); 2048 channels out.
#[derive(Module, Debug)]
pub struct InceptionE {
    /// 1×1 → 320.
    pub branch1x1: BasicConv2d,
    /// 1×1 → 384.
    pub branch3x3_1: BasicConv2d,
    /// 1×3 384 → 384.
    pub branch3x3_2a: BasicConv2d,
    /// 3×1 384 → 384.
    pub branch3x3_2b: BasicConv2d,
    /// 1×1 → 448.
    pub branch3x3dbl_1: BasicConv2d,
    /// 3×3 448 → 384.
    pub branch3x3dbl_2: BasicConv2d,
    /// 1×3 384 → 384.
    pub branch3x3dbl_3a: BasicConv2d,
    /// 3×1 384 → 384.
    pub branch3x3dbl_3b: BasicConv2d,
    /// 1×1 after the pool → 192.
    pub branch_pool: BasicConv2d,
    /// The pool before `branch_pool` (architecture, not a parameter).
    #[module(skip)]
    pub pool: PoolBranch,
}

impl InceptionE {
    /// The module over `c_in` channels.
    pub fn new(c_in: usize, pool: PoolBranch, device: &Device) -> Self {
        Self {
            branch1x1: BasicConv2d::pointwise(c_in, 320, device),
            branch3x3_1: BasicConv2d::pointwise(c_in, 384, device),
            branch3x3_2a: BasicConv2d::line(384, 384, 3, true, device),
            branch3x3_2b: BasicConv2d::line(384, 384, 3, false, device),
            branch3x3dbl_1: BasicConv2d::pointwise(c_in, 448, device),
            branch3x3dbl_2: BasicConv2d::same(448, 384, 3, device),
            branch3x3dbl_3a: BasicConv2d::line(384, 384, 3, true, device),
            branch3x3dbl_3b: BasicConv2d::line(384, 384, 3, false, device),
            branch_pool: BasicConv2d::pointwise(c_in, 192, device),
            pool,
        }
    }

    /// `[B, c_in, 8, 8]` → `[B, 2048, 8, 8]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let t3 = self.branch3x3_1.forward(x.clone());
        let b3 = Tensor::cat(
            vec![
                self.branch3x3_2a.forward(t3.clone()),
                self.branch3x3_2b.forward(t3),
            ],
            1,
        );
        let td = self
            .branch3x3dbl_2
            .forward(self.branch3x3dbl_1.forward(x.clone()));
        let bd = Tensor::cat(
            vec![
                self.branch3x3dbl_3a.forward(td.clone()),
                self.branch3x3dbl_3b.forward(td),
            ],
            1,
        );
        let pooled = match self.pool {
            PoolBranch::Average => average_3x3_same(x),
            PoolBranch::Max => max_3x3_same(x),
        };
        Tensor::cat(vec![b1, b3, bd, self.branch_pool.forward(pooled)], 1)
    }
}
