//! Class names: what a person picks from and what a request may name instead of an index.

use crate::http_error::ApiError;

/// The 1000 ImageNet-1k class names, one per line in class-index order (the sorted-synset
/// order of the tokenizer's and RAR's labels). The list is the one torchvision 0.29.2 ships as
/// `_IMAGENET_CATEGORIES`, where the two repeated WordNet lemmas are told apart
/// (`crane bird` 134 / `crane` 517, `maillot` 638 / `maillot tank suit` 639).
const IMAGENET_CLASSES: &str = include_str!("imagenet_classes.txt");

/// The names of a model's classes, index = class id.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassNames {
    names: Vec<String>,
}

impl ClassNames {
    /// Names from a list (index = class id).
    pub fn new(names: Vec<String>) -> Self {
        Self { names }
    }

    /// The ImageNet-1k names (for the released checkpoints).
    pub fn imagenet() -> Self {
        Self::new(IMAGENET_CLASSES.lines().map(str::to_owned).collect())
    }

    /// The embedded toy dataset's ten shape names (`rar_data::toy`).
    pub fn toy() -> Self {
        Self::new(
            rar_data::toy::ToyShape::ALL
                .iter()
                .map(|s| s.name().to_owned())
                .collect(),
        )
    }

    /// `class 0` … `class n-1`, for a model without a name list.
    pub fn numbered(n: usize) -> Self {
        Self::new((0..n).map(|i| format!("class {i}")).collect())
    }

    /// The names that fit a model of `num_classes` classes: ImageNet's for 1000 classes,
    /// numbered otherwise.
    pub fn for_classes(num_classes: usize) -> Self {
        let imagenet = Self::imagenet();
        if imagenet.len() == num_classes {
            imagenet
        } else {
            Self::numbered(num_classes)
        }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of class `id`.
    pub fn name(&self, id: usize) -> Option<&str> {
        self.names.get(id).map(String::as_str)
    }

    /// All names in class order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The class a name refers to: an exact (case-insensitive, trimmed) match, or a decimal
    /// index. An unknown name is an error naming the field `class`, with the closest names.
    pub fn resolve(&self, name: &str) -> Result<usize, ApiError> {
        let wanted = name.trim().to_lowercase();
        if let Some(i) = self.names.iter().position(|n| n.to_lowercase() == wanted) {
            return Ok(i);
        }
        if let Ok(i) = wanted.parse::<usize>() {
            return self.check_index(i);
        }
        let similar: Vec<&str> = self
            .names
            .iter()
            .filter(|n| {
                let n = n.to_lowercase();
                !wanted.is_empty() && (n.contains(&wanted) || wanted.contains(&n))
            })
            .take(5)
            .map(String::as_str)
            .collect();
        let hint = if similar.is_empty() {
            "see GET /v1/classes".to_owned()
        } else {
            format!("did you mean {}?", similar.join(", "))
        };
        Err(ApiError::invalid(
            "class",
            format!("unknown class name '{name}': {hint}"),
        ))
    }

    /// `id` if it is a class of this list.
    pub fn check_index(&self, id: usize) -> Result<usize, ApiError> {
        if id < self.names.len() {
            Ok(id)
        } else {
            Err(ApiError::invalid(
                "class",
                format!(
                    "class {id} is out of range: the model has {} classes (0–{})",
                    self.names.len(),
                    self.names.len().saturating_sub(1)
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagenet_list_has_1000_distinct_names_in_class_order() {
        let names = ClassNames::imagenet();
        assert_eq!(names.len(), 1000);
        let distinct: std::collections::HashSet<_> = names.names().iter().collect();
        assert_eq!(distinct.len(), 1000);
        // Spot checks against the well-known ImageNet-1k indices.
        assert_eq!(names.name(0), Some("tench"));
        assert_eq!(names.name(207), Some("golden retriever"));
        assert_eq!(names.name(388), Some("giant panda"));
        assert_eq!(names.name(999), Some("toilet tissue"));
    }

    #[test]
    fn names_resolve_case_insensitively_and_unknown_ones_name_the_field() {
        let names = ClassNames::imagenet();
        assert_eq!(names.resolve(" Golden Retriever ").unwrap(), 207);
        assert_eq!(names.resolve("207").unwrap(), 207);
        let err = names.resolve("retriever dog").unwrap_err();
        assert_eq!(err.field(), Some("class"));
        let err = names.resolve("retriever").unwrap_err();
        assert!(err.to_string().contains("golden retriever"), "{err}");
        let err = ClassNames::toy().resolve("rings").unwrap_err();
        assert!(err.to_string().contains("did you mean ring?"), "{err}");
        assert!(names.resolve("1000").is_err());
    }
}
