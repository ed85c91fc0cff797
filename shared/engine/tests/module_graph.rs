//! The engine's modules depend on each other without cycles (test code aside): each module
//! can be read, and changed, knowing only the modules below it (docs/engine.md, "Module
//! layout").
//!
//! The graph is read from the source, not from the compiler: an edge `a -> b` for every path to
//! `b` written in `a`'s code (`crate::b::..`, `super::..`, a child's name, `use` groups one
//! level deep), resolved to the longest known module prefix. Comments and `#[cfg(test)]`
//! modules are left out (an in-file test module is the file's last item, by this crate's habit).
//! A submodule's use of its own ancestor is not counted (see `edges`): a cycle is between
//! modules neither of which contains the other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`rules::compile::checks`; `` for the crate root) -> its source without comments
/// and test modules.
fn modules(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut test_files = BTreeSet::new();
    let mut mods = BTreeMap::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap().with_extension("");
        let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().into()).collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
            parts.pop();
        }
        let name = parts.join("::");
        let text = std::fs::read_to_string(f).unwrap();
        let mut code = String::new();
        let mut lines = text.lines().peekable();
        while let Some(l) = lines.next() {
            let t = l.trim_start();
            if t.starts_with("#[cfg(test)]") {
                let next = lines.peek().map(|n| n.trim_start()).unwrap_or("");
                if let Some(m) = next.strip_prefix("mod ").and_then(|m| m.strip_suffix(';')) {
                    let child = if name.is_empty() {
                        m.to_string()
                    } else {
                        format!("{name}::{m}")
                    };
                    test_files.insert(child);
                    lines.next();
                    continue;
                }
                break; // an in-file test module: the rest of the file
            }
            if !t.starts_with("//") {
                code.push_str(l);
                code.push('\n');
            }
        }
        mods.insert(name, code);
    }
    mods.retain(|m, _| !test_files.contains(m));
    mods
}

fn ident_path(s: &str) -> Vec<&str> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let n = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if n == 0 {
            break;
        }
        segs.push(&rest[..n]);
        match rest[n..].strip_prefix("::") {
            Some(r) if r.starts_with(|c: char| c.is_alphanumeric() || c == '_') => rest = r,
            _ => break,
        }
    }
    segs
}

/// The module a path names: the longest prefix of `base` + `segs` that is a module.
fn resolve(known: &BTreeSet<String>, base: &[String], segs: &[&str]) -> Option<String> {
    let mut full: Vec<String> = base.to_vec();
    full.extend(segs.iter().map(|s| s.to_string()));
    (0..=full.len())
        .rev()
        .map(|n| full[..n].join("::"))
        .find(|m| known.contains(m))
}

fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (m, code) in mods {
        let here: Vec<String> = if m.is_empty() {
            Vec::new()
        } else {
            m.split("::").map(String::from).collect()
        };
        let mut to = BTreeSet::new();
        let bytes = code.as_bytes();
        for (i, _) in code.match_indices("::") {
            // Start of the path this `::` belongs to.
            let mut s = i;
            while s > 0 && (bytes[s - 1].is_ascii_alphanumeric() || bytes[s - 1] == b'_') {
                s -= 1;
            }
            if s >= 2 && &code[s - 2..s] == "::" {
                continue; // not the first segment
            }
            let segs = ident_path(&code[s..]);
            let (base, segs): (Vec<String>, &[&str]) = match segs.first() {
                Some(&"crate") => (Vec::new(), &segs[1..]),
                Some(&"super") => {
                    let ups = segs.iter().take_while(|&&x| x == "super").count();
                    (
                        here[..here.len().saturating_sub(ups)].to_vec(),
                        &segs[ups..],
                    )
                }
                Some(&"self") => (here.clone(), &segs[1..]),
                Some(first)
                    if known
                        .contains(&[here.clone(), vec![first.to_string()]].concat().join("::")) =>
                {
                    (here.clone(), &segs[..])
                }
                _ => continue,
            };
            let mut targets = vec![resolve(&known, &base, segs)];
            let after = &code[s..];
            let tail = after.find([';', '\n', '{']).unwrap_or(0);
            if after[tail..].starts_with('{') {
                // A `use` group: each item, one level deep.
                let prefix: Vec<String> =
                    [base.clone(), segs.iter().map(|s| s.to_string()).collect()].concat();
                let group = &after[tail + 1..after[tail..].find('}').map_or(tail, |e| tail + e)];
                for item in group.split(',') {
                    targets.push(resolve(&known, &prefix, &ident_path(item.trim())));
                }
            }
            for t in targets.into_iter().flatten() {
                // A submodule's use of its own ancestor (`parse::fast` -> `parse`) is not a
                // dependency between modules: the child is a file of its parent (an `impl`
                // split out, a kernel of the parent's type), inside the parent's privacy. Only
                // edges between modules that do not contain each other can form a cycle.
                let ancestor = t.is_empty() || m.starts_with(&format!("{t}::"));
                if &t != m && !ancestor {
                    to.insert(t);
                }
            }
        }
        graph.insert(m.clone(), to);
    }
    graph
}

/// A cycle in the graph, if any (depth-first, with the path kept).
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn dfs(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut cycle = path[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for t in g.get(n).into_iter().flatten() {
            if let Some(c) = dfs(g, t, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| dfs(graph, n, &mut Vec::new(), &mut done))
}

#[test]
fn engine_modules_have_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = edges(&modules(&src));
    // The reader must see the edges that matter, or the test proves nothing.
    assert!(
        graph["chunk"].contains("byte_range"),
        "{:?}",
        graph["chunk"]
    );
    assert!(graph["chunk"].contains("rules"), "{:?}", graph["chunk"]);
    assert!(graph["rules::compile::checks"].contains("rules::compiled"));
    assert!(graph["rules::clean_row"].contains("csv_write"));
    if let Some(cycle) = find_cycle(&graph) {
        let mut all = String::new();
        for (m, to) in &graph {
            all.push_str(&format!("\n  {m} -> {to:?}"));
        }
        panic!("module cycle: {}\ngraph:{all}", cycle.join(" -> "));
    }
}
