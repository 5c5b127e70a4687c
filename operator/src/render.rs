//! `zk-operator render`: the child objects of a cluster as multi-document
//! YAML, in the order the reconcile loop applies them.

use crate::build::Children;

/// The children as YAML documents separated by `---`. Rendering the same
/// cluster twice gives the same bytes.
pub fn render_yaml(children: &Children) -> Result<String, serde_saphyr::ser::Error> {
    let documents = children
        .in_apply_order()
        .iter()
        .map(serde_saphyr::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(documents
        .iter()
        .map(|doc| format!("---\n{doc}"))
        .collect::<String>())
}
