//! The module graph of a crate's sources, read from its `use` declarations
//! and its `crate::…`/`super::…` paths, so a test can check that layers only
//! point down and that no files import each other in a circle.
//!
//! A module is a file (`a/b.rs` or `a/b/mod.rs` is `a/b`). Test code is left
//! out: files named `tests.rs` or `*_tests.rs`, and everything from a
//! `#[cfg(test)] mod …` on (test modules close their files here). Comment
//! lines are left out, so a doc link is not a dependency. A module's own
//! ancestors (`super::` of a child, its `mod.rs`) do not count as imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module's path from the crate root: `["registry", "strategy"]`.
pub type Module = Vec<String>;

/// Which module imports which, for one crate.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    files: BTreeMap<Module, PathBuf>,
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

/// Reading the sources failed.
#[derive(Debug, thiserror::Error)]
#[error("reading {path}: {source}")]
pub struct ReadError {
    path: PathBuf,
    source: std::io::Error,
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "<crate root>".into()
    } else {
        m.join("/")
    }
}

impl ModuleGraph {
    /// Reads every `.rs` file under `src` but `src/bin` (binaries are crates
    /// of their own).
    pub fn read(src: &Path) -> Result<Self, ReadError> {
        let mut graph = ModuleGraph::default();
        let mut sources = Vec::new();
        collect(src, src, &mut sources)?;
        for (module, path) in &sources {
            graph.files.insert(module.clone(), path.clone());
        }
        for (module, path) in &sources {
            let text = std::fs::read_to_string(path).map_err(|source| ReadError {
                path: path.clone(),
                source,
            })?;
            let mut targets = BTreeSet::new();
            for reference in references(&code_of(&text)) {
                if let Some(target) = graph.resolve(module, &reference)
                    && &target != module
                    && !module.starts_with(&target)
                {
                    targets.insert(target);
                }
            }
            graph.edges.insert(module.clone(), targets);
        }
        Ok(graph)
    }

    /// The modules read.
    pub fn modules(&self) -> impl Iterator<Item = &Module> {
        self.files.keys()
    }

    /// The file module `path` (segments after `crate`/`super`) lands in: the
    /// longest prefix that is a module.
    fn resolve(&self, from: &Module, path: &[String]) -> Option<Module> {
        let (mut base, rest) = match path.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &path[1..]),
            Some("self") => (from.clone(), &path[1..]),
            Some("super") => {
                let mut base = from.clone();
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    base.pop();
                    rest = &rest[1..];
                }
                (base, rest)
            }
            _ => return None,
        };
        base.extend(rest.iter().cloned());
        (0..=base.len())
            .rev()
            .map(|n| base[..n].to_vec())
            .find(|candidate| self.files.contains_key(candidate))
    }

    /// Every `a -> b` where `a`'s top-level module sits at or below `b`'s in
    /// `layers` (bottom first; modules in one entry are siblings that must
    /// not import each other), and every top-level module `layers` does not
    /// name. The crate root may import anything.
    pub fn upward_imports(&self, layers: &[&[&str]]) -> Vec<String> {
        let level = |top: &str| layers.iter().position(|layer| layer.contains(&top));
        let mut problems = BTreeSet::new();
        for (from, targets) in &self.edges {
            let Some(from_top) = from.first() else {
                continue;
            };
            let Some(from_level) = level(from_top) else {
                problems.insert(format!("{from_top} is in no layer"));
                continue;
            };
            for to in targets {
                let Some(to_top) = to.first() else { continue };
                if to_top == from_top {
                    continue;
                }
                match level(to_top) {
                    None => {
                        problems.insert(format!("{to_top} is in no layer"));
                    }
                    Some(to_level) if to_level >= from_level => {
                        problems.insert(format!("{} -> {}", name(from), name(to)));
                    }
                    Some(_) => {}
                }
            }
        }
        problems.into_iter().collect()
    }

    /// The circles among files: each a set of modules that reach each other
    /// through imports (strongly connected components of more than one).
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let mut tarjan = Tarjan::default();
        for module in self.files.keys() {
            if !tarjan.index.contains_key(module) {
                tarjan.visit(module, &self.edges);
            }
        }
        tarjan
            .components
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut names: Vec<String> = c.iter().map(name).collect();
                names.sort();
                names
            })
            .collect()
    }
}

/// Panics listing every import of the crate whose sources are `src` that
/// goes against `layers` (see [`ModuleGraph::upward_imports`]).
pub fn assert_layers_point_down(src: &Path, layers: &[&[&str]]) {
    let problems = ModuleGraph::read(src)
        .unwrap_or_else(|error| panic!("{error}"))
        .upward_imports(layers);
    assert!(
        problems.is_empty(),
        "imports against the layers: {problems:#?}"
    );
}

/// Panics listing every circle of imports among the files under `src`.
pub fn assert_no_circles(src: &Path) {
    let cycles = ModuleGraph::read(src)
        .unwrap_or_else(|error| panic!("{error}"))
        .cycles();
    assert!(cycles.is_empty(), "import circles: {cycles:#?}");
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(Module, PathBuf)>) -> Result<(), ReadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ReadError {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let path = entry
            .map_err(|source| ReadError {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        let relative = path.strip_prefix(root).unwrap_or(&path);
        if path.is_dir() {
            if relative != Path::new("bin") {
                collect(root, &path, out)?;
            }
            continue;
        }
        let Some(file) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        if !file.ends_with(".rs") || file == "tests.rs" || file.ends_with("_tests.rs") {
            continue;
        }
        let mut module: Module = relative
            .with_extension("")
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        if matches!(
            module.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            module.pop();
        }
        out.push((module, path));
    }
    Ok(())
}

/// The source without comment lines and without its test module.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if let Some(after) = trimmed.strip_prefix("#[cfg(test)]") {
            let next = lines.peek().map(|l| l.trim_start()).unwrap_or("");
            let declaration = after.trim_start();
            let declaration = if declaration.is_empty() {
                next
            } else {
                declaration
            };
            if declaration.starts_with("mod ")
                || (declaration.starts_with("pub") && declaration.contains(" mod "))
            {
                break;
            }
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// Every path that starts with `crate`, `super` or `self`: the paths of
/// `use` trees (braces expanded) and those written inline in code.
fn references(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b':';
        if boundary
            && rest.starts_with("use ")
            && let Some(end) = rest.find(';')
        {
            out.extend(expand(&without_aliases(&rest[4..end])));
            i += end;
            continue;
        }
        if boundary
            && ["crate::", "super::", "self::"]
                .iter()
                .any(|p| rest.starts_with(p))
        {
            let len = rest
                .bytes()
                .take_while(|&b| is_ident(b) || b == b':')
                .count();
            let path: Vec<String> = rest[..len]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            out.push(path);
            i += len;
            continue;
        }
        i += rest.chars().next().map_or(1, char::len_utf8);
    }
    out.retain(|p| {
        matches!(
            p.first().map(String::as_str),
            Some("crate" | "super" | "self")
        )
    });
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// A `use` tree without white space and without its renames (`a as b`
/// names `a`).
fn without_aliases(tree: &str) -> String {
    let mut out = String::new();
    let mut words = tree.split_whitespace();
    while let Some(word) = words.next() {
        if word == "as" {
            // Keep what closes the renamed item (`,`, `}`).
            let alias = words.next().unwrap_or("");
            out.extend(alias.chars().filter(|&c| c == ',' || c == '}'));
        } else {
            out.push_str(word);
        }
    }
    out
}

/// The paths a `use` tree names: `a::{b, c::{d}}` is `a::b`, `a::c::d`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let Some(open) = tree.find('{') else {
        return vec![
            tree.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ];
    };
    let prefix = &tree[..open];
    let inner = tree[open + 1..]
        .strip_suffix('}')
        .unwrap_or(&tree[open + 1..]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|part| expand(&format!("{prefix}{part}")))
        .collect()
}

#[derive(Default)]
struct Tarjan {
    next: usize,
    index: BTreeMap<Module, usize>,
    low: BTreeMap<Module, usize>,
    stack: Vec<Module>,
    on_stack: BTreeSet<Module>,
    components: Vec<Vec<Module>>,
}

impl Tarjan {
    fn visit(&mut self, v: &Module, edges: &BTreeMap<Module, BTreeSet<Module>>) {
        self.index.insert(v.clone(), self.next);
        self.low.insert(v.clone(), self.next);
        self.next += 1;
        self.stack.push(v.clone());
        self.on_stack.insert(v.clone());
        for w in edges.get(v).into_iter().flatten() {
            if !self.index.contains_key(w) {
                self.visit(w, edges);
                let low = self.low[v].min(self.low[w]);
                self.low.insert(v.clone(), low);
            } else if self.on_stack.contains(w) {
                let low = self.low[v].min(self.index[w]);
                self.low.insert(v.clone(), low);
            }
        }
        if self.low[v] == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack.remove(&w);
                let done = &w == v;
                component.push(w);
                if done {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_with(files: &[(&str, &str)]) -> (tempfile::TempDir, ModuleGraph) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let graph = ModuleGraph::read(dir.path()).expect("read");
        (dir, graph)
    }

    #[test]
    fn use_trees_and_inline_paths_become_edges() {
        let (_dir, graph) = crate_with(&[
            ("lib.rs", "pub mod api;\npub mod store;\npub mod server;\n"),
            ("api/mod.rs", "pub mod status;\n"),
            ("api/status.rs", "pub struct E;\n"),
            (
                "store.rs",
                "use crate::{api::status::{self, E}, server as s};\nuse crate::api as base;\n",
            ),
            (
                "server.rs",
                "// crate::store in a comment is no import\nfn f() { crate::api::status::E; }\n#[cfg(test)]\nmod tests { use crate::store; }\n",
            ),
        ]);
        assert_eq!(
            graph.upward_imports(&[&["api"], &["store"], &["server"]]),
            vec!["store -> server".to_string()]
        );
        assert!(graph.cycles().is_empty());
    }

    #[test]
    fn circles_are_found_and_unlisted_modules_reported() {
        let (_dir, graph) = crate_with(&[
            ("lib.rs", "mod a;\n"),
            ("a/mod.rs", "mod b;\nmod c;\nuse self::b::X;\n"),
            ("a/b.rs", "use super::c::Y;\npub struct X;\n"),
            ("a/c.rs", "use super::b::X;\npub struct Y;\n"),
        ]);
        assert_eq!(
            graph.cycles(),
            vec![vec!["a/b".to_string(), "a/c".to_string()]]
        );
        assert_eq!(graph.upward_imports(&[&["a"]]), Vec::<String>::new());
        let (_dir, graph) =
            crate_with(&[("lib.rs", ""), ("x.rs", "use crate::y::Z;\n"), ("y.rs", "")]);
        assert_eq!(
            graph.upward_imports(&[&["y"]]),
            vec!["x is in no layer".to_string()]
        );
    }
}
