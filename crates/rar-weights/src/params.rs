//! The float parameters of a module tree, listed without initialising them.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// One float parameter of a module tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleParam {
    /// Dotted module path (`blocks.0.norm1.gamma`).
    pub path: String,
    /// Shape in burn's layout.
    pub shape: Vec<usize>,
    /// The innermost module type holding it (`"Struct:Linear"`, `"Struct:LayerNorm"`, …), as
    /// burn's `Module` derive names it.
    pub module_type: String,
}

impl ModuleParam {
    /// The parameter's own name (the last path segment).
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }

    /// Whether PyTorch stores this parameter transposed (a `Linear` weight).
    pub fn is_transposed(&self) -> bool {
        self.module_type == "Struct:Linear" && self.name() == "weight" && self.shape.len() == 2
    }

    /// Whether this is the affine parameter of a normalisation layer (`gamma`/`beta` in burn,
    /// `weight`/`bias` in PyTorch).
    pub fn is_norm_affine(&self) -> bool {
        matches!(
            self.module_type.as_str(),
            "Struct:LayerNorm" | "Struct:GroupNorm" | "Struct:BatchNorm" | "Struct:RmsNorm"
        ) && matches!(self.name(), "gamma" | "beta")
    }

    /// The shape in PyTorch's layout.
    pub fn reference_shape(&self) -> Vec<usize> {
        if self.is_transposed() {
            vec![self.shape[1], self.shape[0]]
        } else {
            self.shape.clone()
        }
    }
}

#[derive(Default)]
struct ParamCollector {
    path: Vec<String>,
    types: Vec<String>,
    params: Vec<ModuleParam>,
}

impl ModuleVisitor for ParamCollector {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push(name.to_string());
        self.types.push(container_type.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
        self.types.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let module_type = self
            .types
            .iter()
            .rev()
            .find(|t| t.starts_with("Struct:") || t.starts_with("Enum:"))
            .cloned()
            .unwrap_or_default();
        self.params.push(ModuleParam {
            path: self.path.join("."),
            shape: param.lazy_shape().to_vec(),
            module_type,
        });
    }
}

/// Every float parameter of `module` in module order, without initialising any lazy parameter
/// (so it works on a full-size model that was never allocated).
pub fn module_parameters<M: Module>(module: &M) -> Vec<ModuleParam> {
    let mut collector = ParamCollector::default();
    module.visit(&mut collector);
    collector.params
}
