//! One name per concept: the Helm chart, the docs and the binary spell presets and rule ids the
//! same way, and every old name of `config::renames::RENAMES` is accepted where the new one is.
//! Read from the chart's own files (values.yaml, values.schema.json, templates) and the
//! binary's own lists, so a rename on one side without the other fails here.

use std::collections::BTreeSet;
use std::path::Path;

use codex_sentinel::alerts::rules::RULE_IDS;
use codex_sentinel::config::renames::{Kind, RENAMES};
use codex_sentinel::export::otlp::Preset;

fn chart_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("helm/codex-sentinel")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema() -> serde_json::Value {
    serde_json::from_str(&chart_file("values.schema.json")).expect("values.schema.json parses")
}

/// The strings of an `enum` in the schema, at a path of `properties`.
fn schema_enum(schema: &serde_json::Value, path: &[&str]) -> BTreeSet<String> {
    let mut node = schema;
    for part in path {
        node = &node["properties"][part];
    }
    let list = node["enum"]
        .as_array()
        .or_else(|| node["items"]["enum"].as_array())
        .unwrap_or_else(|| panic!("no enum at {path:?}"));
    list.iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Old names of `kind` that still work (and must be accepted by the chart too).
fn old_names(kind: Kind) -> BTreeSet<String> {
    RENAMES
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.old.to_string())
        .collect()
}

#[test]
fn the_charts_presets_are_the_binarys() {
    let schema = schema();
    // The chart's own switch: the binary's presets, plus `none` (no push at all).
    let mut chart = schema_enum(&schema, &["export", "preset"]);
    assert!(chart.remove("none"), "export.preset lost `none`");
    assert_eq!(
        chart,
        set(Preset::NAMES),
        "values.schema.json export.preset"
    );

    // The pass-through configuration: the binary's presets and their deprecated old names.
    let passthrough = schema_enum(&schema, &["config", "export", "otlp", "preset"]);
    let mut expected = set(Preset::NAMES);
    expected.extend(old_names(Kind::Preset));
    assert_eq!(
        passthrough, expected,
        "values.schema.json config.export.otlp.preset"
    );

    // values.yaml documents each preset in its comment block, one per line.
    let values = chart_file("values.yaml");
    let block: BTreeSet<String> = values
        .lines()
        .skip_while(|l| !l.contains("One preset at a time"))
        .skip(1)
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix("#   ")?;
            (!rest.starts_with(' ')).then(|| rest.split_whitespace().next().unwrap().to_string())
        })
        .collect();
    let mut documented = set(Preset::NAMES);
    documented.insert("none".into());
    assert_eq!(block, documented, "values.yaml's list of presets");

    // What the templates write into monitoring.json is a preset the binary knows by that name.
    let helpers = chart_file("templates/_helpers.tpl");
    let written: Vec<&str> = helpers
        .split("\"preset\" ")
        .skip(1)
        .filter_map(|rest| rest.strip_prefix('"')?.split('"').next())
        .collect();
    assert!(written.contains(&"collector"), "{written:?}");
    assert!(written.contains(&"datadog"), "{written:?}");
    for name in written {
        assert!(
            Preset::NAMES.contains(&name),
            "_helpers.tpl writes preset {name:?}, which the binary calls otherwise"
        );
    }
}

#[test]
fn the_charts_rule_ids_are_the_binarys() {
    let chart = schema_enum(&schema(), &["config", "alerting", "rules", "disabled"]);
    let mut expected = set(RULE_IDS);
    expected.extend(old_names(Kind::RuleId));
    assert_eq!(
        chart, expected,
        "values.schema.json config.alerting.rules.disabled"
    );
}

#[test]
fn the_alerting_docs_name_every_rule_by_its_id() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let alerting = std::fs::read_to_string(root.join("docs/alerting.md")).unwrap();
    for id in RULE_IDS {
        assert!(
            alerting.contains(&format!("`{id}`")),
            "docs/alerting.md does not name rule {id}"
        );
    }
    for old in old_names(Kind::RuleId) {
        for line in alerting.lines().filter(|l| l.contains(&format!("`{old}`"))) {
            assert!(
                line.contains("deprecated"),
                "docs/alerting.md uses the old rule id {old} as current: {line}"
            );
        }
    }
}

#[test]
fn the_docs_name_every_preset_and_call_old_names_deprecated() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let export = std::fs::read_to_string(root.join("docs/export.md")).unwrap();
    for name in Preset::NAMES {
        assert!(
            export.contains(&format!("| `{name}` |")),
            "docs/export.md has no row for preset {name}"
        );
    }
    for old in old_names(Kind::Preset) {
        for line in export.lines().filter(|l| l.contains(&format!("`{old}`"))) {
            assert!(
                line.contains("deprecated"),
                "docs/export.md uses the old preset name {old} as current: {line}"
            );
        }
    }
    let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
    for r in RENAMES {
        assert!(
            changelog.contains(&format!("`{}`", r.old))
                && changelog.contains(&format!("`{}`", r.new)),
            "CHANGELOG.md does not mention the rename {} → {}",
            r.old,
            r.new
        );
    }
}
