//! The platform's modules import each other in one direction (issue 18): a cycle is what
//! made `Metrics::configure` keep its settings in atomics, and it would come back unseen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module of `src/` (`kafka::consumer`, `config`, ...) and the modules it names with
/// `crate::` or `super::` outside comments.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    files(src, &mut paths);
    let name = |path: &Path| {
        let rel = path.strip_prefix(src).expect("under src").with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        if parts.last().is_some_and(|p| p == "mod") {
            parts.pop();
        }
        parts.join("::")
    };
    let modules: BTreeSet<String> = paths.iter().map(|p| name(p)).collect();
    let mut graph = BTreeMap::new();
    for path in &paths {
        let module = name(path);
        let parent = module.rsplit_once("::").map(|(p, _)| p.to_owned());
        let code: String = std::fs::read_to_string(path)
            .expect("read a module")
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let mut named = BTreeSet::new();
        for (prefix, base) in
            [("crate::", String::new()), ("super::", parent.clone().map(|p| p + "::").unwrap_or_default())]
        {
            for (at, _) in code.match_indices(prefix) {
                let rest = &code[at + prefix.len()..];
                let path: String =
                    rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':').collect();
                let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
                // The longest prefix that is a module file: `crate::kafka::metrics::X` is kafka::metrics.
                let target = (1..=segments.len())
                    .rev()
                    .map(|n| format!("{base}{}", segments[..n].join("::")))
                    .find(|candidate| modules.contains(candidate))
                    .or_else(|| parent.clone().filter(|_| prefix == "super::"));
                if let Some(target) = target.filter(|t| *t != module) {
                    named.insert(target);
                }
            }
        }
        graph.insert(module, named);
    }
    graph
}

/// A cycle through `from`, if any: the path back to it.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![from.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("a path is never empty");
        for next in graph.get(last).into_iter().flatten() {
            if next == from {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push([path.clone(), vec![next.clone()]].concat());
            }
        }
    }
    None
}

#[test]
fn the_platform_modules_import_each_other_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    assert!(graph.get("kafka::consumer").is_some_and(|d| d.contains("metrics")), "the reader sees imports: {graph:?}");
    let cycles: Vec<String> = graph.keys().filter_map(|m| cycle(&graph, m)).map(|c| c.join(" -> ")).collect();
    assert!(cycles.is_empty(), "import cycles in crates/platform/src:\n{}", cycles.join("\n"));
}
