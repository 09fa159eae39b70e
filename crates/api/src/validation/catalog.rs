//! `ImageCatalog` and `ClusterImageCatalog` validation (they share a spec).

use super::{FieldError, Report};
use crate::catalog::CatalogSpec;

/// Every problem of a catalog's spec.
pub fn catalog(spec: &CatalogSpec) -> Vec<FieldError> {
    let mut report = Report::default();
    if spec.images.is_empty() {
        report.required("spec.images", "list at least one major and its image");
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, entry) in spec.images.iter().enumerate() {
        report.at_least(&format!("spec.images[{i}].major"), Some(entry.major), 10);
        if !seen.insert(entry.major) {
            report.push(
                format!("spec.images[{i}].major"),
                super::Kind::Duplicate,
                format!("{} appears more than once", entry.major),
            );
        }
        if entry.image.is_empty() || entry.image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            report.invalid(
                format!("spec.images[{i}].image"),
                "must be a non-empty image reference without blanks",
            );
        }
    }
    report.finish()
}
