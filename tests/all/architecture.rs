//! The architecture fitness test: reads the `use crate::…` and `super::…`
//! paths of every file in host/src (tests modules left out) and fails on an
//! import that goes up the layers of docs/architecture.md, on an import
//! between backends, on an import cycle that spans layers or
//! folders, and on a largest cycle larger than it was.
//! The layers are [`LAYERS`], lowest first; a file belongs to the first
//! layer one of whose prefixes it starts with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A file may import its own layer and those below.
const LAYERS: [(&str, &[&str]); 5] = [
    // What every other layer uses and which uses nothing of the crate's.
    ("base", &["base/"]),
    // Connections, queues, listeners, sentinels, wait, bridges.
    ("ipc", &["ipc/"]),
    // The state machine, the process table, launch specs, the seam to the
    // backends.
    ("model", &["model/"]),
    // The wasm and the native backend.
    ("backends", &["backend/"]),
    // The composition root (runtime.rs) and the crate's face (lib.rs,
    // inspect.rs).
    ("runtime", &[""]),
];

/// The backends, which never import each other.
const BACKENDS: [&str; 3] = ["backend/wasm", "backend/native", "backend/remote"];

/// A file's path below host/src, `/`-separated.
type File = String;

fn host_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("host/src")
}

fn rust_files(dir: &Path, below: &Path, files: &mut Vec<File>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, below, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path.strip_prefix(below).unwrap().to_str().unwrap().replace('\\', "/"));
        }
    }
}

/// The module path of a file: `backend/wasm.rs` and `backend/wasm/mod.rs`
/// are both `["backend", "wasm"]`.
fn module_of(file: &str) -> Vec<String> {
    let mut parts: Vec<String> = file.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The paths that follow each `anchor` (`crate::` or `super::`) in `code`.
fn paths_after(code: &str, anchor: &str) -> Vec<Vec<String>> {
    code.match_indices(anchor)
        .filter(|(at, _)| !code[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .map(|(at, _)| {
            let rest = &code[at + anchor.len()..];
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
            rest[..end].split("::").filter(|part| !part.is_empty()).map(str::to_owned).collect()
        })
        .collect()
}

/// Which files each file imports.
fn imports(files: &[File]) -> BTreeMap<File, BTreeSet<File>> {
    let by_module: BTreeMap<Vec<String>, File> = files.iter().map(|f| (module_of(f), f.clone())).collect();
    // The file of the longest module prefix of `path`.
    let resolve = |path: &[String]| (1..=path.len()).rev().find_map(|n| by_module.get(&path[..n]).cloned());
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(host_src().join(file)).unwrap();
            // Unit tests may reach anywhere, and comments (doc links) import
            // nothing.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
            let code: String = code.lines().map(|line| line.split("//").next().unwrap()).collect::<Vec<_>>().join("\n");
            let code = code.as_str();
            let module = module_of(file);
            // `super::` in a.rs or a/mod.rs is the parent of module a.
            let parent = &module[..module.len().saturating_sub(1)];
            let absolute = paths_after(code, "crate::").into_iter();
            let relative = paths_after(code, "super::").into_iter().map(|path| [parent, &path].concat());
            let targets = absolute.chain(relative).filter_map(|path| resolve(&path)).filter(|t| t != file);
            (file.clone(), targets.collect())
        })
        .collect()
}

fn layer_of(file: &str) -> usize {
    LAYERS.iter().position(|(_, prefixes)| prefixes.iter().any(|p| file.starts_with(p))).expect("the last layer takes all")
}

fn backend_of(file: &str) -> Option<usize> {
    BACKENDS.iter().position(|backend| file.strip_prefix(backend).is_some_and(|rest| rest.starts_with(['/', '.'])))
}

/// The strongly connected components of the import graph (Tarjan's).
fn cycles(graph: &BTreeMap<File, BTreeSet<File>>) -> Vec<Vec<File>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<File, BTreeSet<File>>,
        index: BTreeMap<&'g str, (usize, usize)>,
        stack: Vec<&'g str>,
        found: Vec<Vec<File>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, file: &'g str) -> usize {
            let mine = self.index.len();
            self.index.insert(file, (mine, mine));
            self.stack.push(file);
            let mut low = mine;
            for next in &self.graph[file] {
                low = match self.index.get(next.as_str()) {
                    None => low.min(self.visit(next)),
                    Some(&(seen, _)) if self.stack.contains(&next.as_str()) => low.min(seen),
                    Some(_) => low,
                };
            }
            if low == mine {
                let at = self.stack.iter().position(|f| *f == file).unwrap();
                self.found.push(self.stack.drain(at..).map(str::to_owned).collect());
            }
            self.index.insert(file, (mine, low));
            low
        }
    }
    let mut walk = Walk { graph, index: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for file in graph.keys() {
        if !walk.index.contains_key(file.as_str()) {
            walk.visit(file);
        }
    }
    walk.found.into_iter().filter(|component| component.len() > 1).collect()
}

fn graph() -> BTreeMap<File, BTreeSet<File>> {
    let mut files = Vec::new();
    rust_files(&host_src(), &host_src(), &mut files);
    imports(&files)
}

#[test]
fn imports_go_only_down_the_layers_and_never_between_backends() {
    let mut wrong = Vec::new();
    for (file, targets) in graph() {
        for target in targets {
            if layer_of(&target) > layer_of(&file) {
                let (up, from) = (LAYERS[layer_of(&target)].0, LAYERS[layer_of(&file)].0);
                wrong.push(format!("{file} ({from}) imports {target} ({up}), a higher layer"));
            }
            if let (Some(a), Some(b)) = (backend_of(&file), backend_of(&target))
                && a != b
            {
                wrong.push(format!("{file} imports {target}: the backends never import each other"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_import_cycle_spans_layers() {
    for cycle in cycles(&graph()) {
        let layers: BTreeSet<&str> = cycle.iter().map(|file| LAYERS[layer_of(file)].0).collect();
        assert_eq!(layers.len(), 1, "the cycle {cycle:?} spans the layers {layers:?}");
    }
}

/// The folder a file is in; a module's own file counts as inside its
/// folder (`backend/wasm.rs` is in `backend/wasm/`, as `backend/wasm/mod.rs`
/// would be).
fn folder_of(file: &str) -> Vec<String> {
    let module = module_of(file);
    if host_src().join(module.join("/")).is_dir() { module } else { module[..module.len() - 1].to_vec() }
}

#[test]
fn every_import_cycle_lies_inside_one_folder() {
    for cycle in cycles(&graph()) {
        let folders: BTreeSet<String> = cycle.iter().map(|file| folder_of(file).join("/")).collect();
        assert_eq!(folders.len(), 1, "the cycle {cycle:?} spans the folders {folders:?}");
    }
}

/// The most files the largest cycle may hold: lowered as the tangle was
/// taken apart, never raised (23 of 35 files before the first cut).
const LARGEST_CYCLE: usize = 4;

#[test]
fn the_largest_cycle_does_not_grow() {
    let largest = cycles(&graph()).into_iter().max_by_key(Vec::len).unwrap_or_default();
    assert!(largest.len() <= LARGEST_CYCLE, "the largest import cycle has {} files: {largest:?}", largest.len());
}

#[test]
fn the_reader_sees_imports_cycles_and_layers() {
    let code = "use crate::ledger::{Charge, Held};\nfn f() { super::turns::Turns::new(1); my_crate::x(); }";
    let paths = |anchor| paths_after(code, anchor);
    assert_eq!(paths("crate::"), [vec!["ledger".to_owned()]], "`my_crate::` is not `crate::`");
    assert_eq!(paths("super::"), [vec!["turns".to_owned(), "Turns".to_owned(), "new".to_owned()]]);
    assert_eq!(module_of("backend/wasm/mod.rs"), module_of("backend/wasm.rs"));
    let graph: BTreeMap<File, BTreeSet<File>> = [("a", "b"), ("b", "a"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    let mut found = cycles(&graph);
    found.iter_mut().for_each(|cycle| cycle.sort());
    assert_eq!(found, [vec!["a".to_owned(), "b".to_owned()]]);
    let layers = ["base/ledger.rs", "ipc/queue.rs", "model/process.rs", "backend/wasm/turns.rs", "runtime.rs"].map(layer_of);
    assert_eq!(layers, [0, 1, 2, 3, 4]);
    assert_eq!(folder_of("backend/wasm.rs"), folder_of("backend/wasm/turns.rs"));
    assert_eq!(folder_of("backend/mod.rs"), ["backend"]);
    assert_eq!(folder_of("runtime.rs"), Vec::<String>::new());
    assert_eq!(backend_of("backend/wasm/turns.rs"), Some(0));
    assert_eq!(backend_of("backend/wasm.rs"), Some(0));
    assert_eq!(backend_of("backend/mod.rs"), None);
    assert_eq!(backend_of("backend/remote/agents.rs"), Some(2));
}
