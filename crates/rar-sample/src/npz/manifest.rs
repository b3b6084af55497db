//! The progress record's manifest: comparing the settings a file was started with.

use std::path::{Path, PathBuf};

/// A path with `suffix` appended to its file name.
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The settings that differ between two manifests (`key: recorded vs now`), top-level keys
/// first, one level down for objects.
pub(crate) fn manifest_differences(
    recorded: &serde_json::Value,
    now: &serde_json::Value,
) -> Vec<String> {
    use serde_json::Value;
    match (recorded, now) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .filter_map(|k| match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) if x == y => None,
                    (Some(x @ Value::Object(_)), Some(y @ Value::Object(_))) => Some(
                        manifest_differences(x, y)
                            .into_iter()
                            .map(|d| format!("{k}.{d}"))
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                    (x, y) => Some(format!(
                        "{k}: recorded {}, now {}",
                        x.map_or("(absent)".into(), Value::to_string),
                        y.map_or("(absent)".into(), Value::to_string)
                    )),
                })
                .collect()
        }
        _ if recorded == now => Vec::new(),
        _ => vec![format!("recorded {recorded}, now {now}")],
    }
}
