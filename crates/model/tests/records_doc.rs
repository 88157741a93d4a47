//! docs/records.md documents every record type proctor writes, and only those: its tables'
//! first column (one row per `type`) must equal the model's list of record types.

use std::collections::BTreeSet;

/// The `type` names in the first column of the tables of docs/records.md (rows "| `name` |").
fn documented() -> BTreeSet<&'static str> {
    include_str!("../../../docs/records.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name)
        .collect()
}

#[test]
fn docs_records_md_lists_every_record_type_and_nothing_else() {
    let doc = documented();
    let model: BTreeSet<&str> = proctor_model::record_types().iter().copied().collect();
    let undocumented: Vec<_> = model.difference(&doc).collect();
    let stale: Vec<_> = doc.difference(&model).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "docs/records.md is out of date: undocumented record types {undocumented:?}, \
         documented types the model does not write {stale:?}"
    );
}
