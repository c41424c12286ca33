//! `docs/configuration.md` against the code: every key a service reads is documented, every
//! documented key is read by some service, and every documented default is the code's.
//!
//! A row is `| `key` | default | meaning |`. A default in backticks is compared (durations
//! as durations, `<...>` matching anything, `{a = 1, b = 2}` a table); `unset` and `none`
//! mean absent, `empty` an empty string, list or map; other prose is not compared.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

const DOC: &str = include_str!("../../../../docs/configuration.md");

/// Every path of `config` (sections and values) with its default.
fn paths(config: impl serde::Serialize) -> BTreeMap<String, Value> {
    fn walk(prefix: String, value: Value, out: &mut BTreeMap<String, Value>) {
        if let Value::Object(map) = &value {
            for (key, child) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                walk(path, child.clone(), out);
            }
        }
        if !prefix.is_empty() {
            out.insert(prefix, value);
        }
    }
    let mut out = BTreeMap::new();
    walk(String::new(), serde_json::to_value(config).expect("a config serializes"), &mut out);
    out
}

fn services() -> Vec<(&'static str, BTreeMap<String, Value>)> {
    vec![
        ("gateway", paths(ticketing_gateway::config::Config::default())),
        ("identity", paths(ticketing_identity::config::Config::default())),
        ("catalog", paths(ticketing_catalog::config::Config::default())),
        ("inventory", paths(ticketing_inventory::config::Config::default())),
        ("booking", paths(ticketing_booking::config::Config::default())),
        ("payment", paths(ticketing_payment::config::Config::default())),
        ("notification", paths(ticketing_notification::config::Config::default())),
        ("prescaler", paths(ticketing_prescaler::config::Config::default())),
    ]
}

/// The documented keys (dotted, lower case; `<name>` for a key of the user's choosing)
/// with their default cells, in order.
fn documented() -> Vec<(String, String)> {
    DOC.lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("| `")?.split(" | ");
            let key = cells.next()?.strip_suffix('`')?;
            let dotted = key.contains('.')
                && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._<>".contains(c));
            dotted.then(|| (key.to_owned(), cells.next().unwrap_or_default().trim().to_owned()))
        })
        .collect()
}

/// Whether the code's `path` is documented `key`, or lies inside or around it.
fn covers(key: &str, path: &str) -> bool {
    let (mut key, mut path) = (key.split('.'), path.split('.'));
    loop {
        match (key.next(), path.next()) {
            (Some(k), Some(p)) if k == p || k.starts_with('<') => {}
            (Some(_), Some(_)) => return false,
            _ => return true,
        }
    }
}

/// Whether the documented default `cell` describes `value`; `None` when it is prose.
fn agrees(cell: &str, value: &Value) -> Option<bool> {
    match cell {
        "unset" | "none" => return Some(value.is_null()),
        "empty" => {
            return Some(match value {
                Value::String(s) => s.is_empty(),
                Value::Array(a) => a.is_empty(),
                Value::Object(o) => o.is_empty(),
                _ => false,
            });
        }
        _ => {}
    }
    let literal = cell.strip_prefix('`')?.split('`').next()?;
    Some(literal_agrees(literal, value))
}

fn literal_agrees(literal: &str, value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            let Some(inner) = literal.strip_prefix('{').and_then(|l| l.strip_suffix('}')) else { return false };
            let pairs: Vec<_> = inner.split(',').filter_map(|pair| pair.split_once('=')).collect();
            pairs.len() == map.len()
                && pairs.iter().all(|(k, v)| map.get(k.trim()).is_some_and(|value| literal_agrees(v.trim(), value)))
        }
        Value::Array(items) => {
            let Some(inner) = literal.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else { return false };
            let listed: Vec<_> = inner.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            listed.len() == items.len() && listed.iter().zip(items).all(|(l, v)| literal_agrees(l, v))
        }
        Value::Number(n) => literal.parse::<f64>().ok() == n.as_f64(),
        Value::Bool(b) => literal == b.to_string(),
        Value::Null => false,
        Value::String(s) => {
            let literal = literal.trim_matches('"');
            match (duration(literal), duration(s)) {
                (Some(a), Some(b)) => a == b,
                _ => matches_pattern(literal, s),
            }
        }
    }
}

fn duration(text: &str) -> Option<Duration> {
    text.starts_with(|c: char| c.is_ascii_digit()).then(|| humantime::parse_duration(text).ok()).flatten()
}

/// `pattern` with each `<...>` standing for any non-empty text.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    let Some((head, rest)) = pattern.split_once('<') else { return pattern == text };
    let Some((_, tail)) = rest.split_once('>') else { return pattern == text };
    let Some(after) = text.strip_prefix(head) else { return false };
    (1..=after.len()).filter(|&i| after.is_char_boundary(i)).any(|i| matches_pattern(tail, &after[i..]))
}

#[test]
fn the_configuration_reference_lists_every_key_with_the_codes_default() {
    let services = services();
    let documented = documented();
    assert!(documented.len() > 50, "docs/configuration.md lists only {} keys", documented.len());
    let mut problems = Vec::new();
    for (key, cell) in &documented {
        if key.contains('<') {
            // A key of the user's choosing: its table must exist.
            let table = &key[..key.find(".<").unwrap_or(key.len())];
            if !services.iter().any(|(_, paths)| paths.contains_key(table)) {
                problems.push(format!("`{key}` is documented but no service reads `{table}`"));
            }
            continue;
        }
        let readers: Vec<_> = services.iter().filter_map(|(name, paths)| Some((name, paths.get(key)?))).collect();
        if readers.is_empty() {
            problems.push(format!("`{key}` is documented but no service reads it"));
        }
        for (service, value) in readers {
            if agrees(cell, value) == Some(false) {
                problems.push(format!("`{key}`: documented default {cell}, {service}'s is {value}"));
            }
        }
    }
    for (service, paths) in &services {
        for (key, value) in paths {
            // A value is covered by its own row, a row for the table holding it, or rows
            // for the keys a map of the user's choosing holds.
            let leaf = value.as_object().is_none_or(|o| o.is_empty());
            if leaf && !documented.iter().any(|(doc, _)| covers(doc, key)) {
                problems.push(format!("{service} reads `{key}`, which docs/configuration.md does not list"));
            }
        }
    }
    problems.sort();
    problems.dedup();
    assert!(problems.is_empty(), "docs/configuration.md and the code disagree:\n  {}", problems.join("\n  "));
}

#[test]
fn a_pattern_stands_for_any_text_and_durations_compare_by_length() {
    assert!(covers("prescaler.services.<name>.hpa", "prescaler.services"));
    assert!(covers("gateway.rate_limits.ip", "gateway.rate_limits.ip.burst"));
    assert!(!covers("gateway.rate_limits.ip", "gateway.rate_limits.user"));
    assert!(matches_pattern("0.0.0.0:<gRPC port>", "0.0.0.0:50051"));
    assert!(!matches_pattern("0.0.0.0:<gRPC port>", "0.0.0.0:"));
    assert!(!matches_pattern("ticketing_<service>", "other_x"));
    assert_eq!(agrees("`24h`", &Value::from("1day")), Some(true));
    assert_eq!(agrees("`30s`", &Value::from("1m")), Some(false));
    assert_eq!(
        agrees("`{per_second = 20, burst = 100}`", &serde_json::json!({"per_second": 20, "burst": 100})),
        Some(true)
    );
    assert_eq!(
        agrees("`{per_second = 20, burst = 100}`", &serde_json::json!({"per_second": 20, "burst": 10})),
        Some(false)
    );
    assert_eq!(agrees("unset", &Value::Null), Some(true));
    assert_eq!(agrees("a development key", &Value::from("x")), None);
}
