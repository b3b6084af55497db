//! Finding weights that are not finite: a NaN or an infinity in a loaded tensor would make
//! every output garbage without any error.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Visits every float parameter and keeps the path of the first holding a NaN or an
/// infinity (one device reduction and one host read per parameter).
#[derive(Default)]
struct FirstNonFinite {
    path: Vec<String>,
    found: Option<String>,
}

impl ModuleVisitor for FirstNonFinite {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.found.is_some() {
            return;
        }
        let value = param.val();
        let bad = value.clone().is_nan().any().into_scalar::<bool>()
            || value.is_inf().any().into_scalar::<bool>();
        if bad {
            self.found = Some(self.path.join("."));
        }
    }
}

/// The module path of the first parameter of `module` holding a NaN or an infinity.
pub(crate) fn first_non_finite<M: Module>(module: &M) -> Option<String> {
    let mut visitor = FirstNonFinite::default();
    module.visit(&mut visitor);
    visitor.found
}
