//! `shiftlog::embed!`: a project's migrations compiled into the binary.
//! Use it through the `shiftlog` crate, which re-exports it.

use std::path::{Path, PathBuf};

use proc_macro::TokenStream;

/// Embeds the migrations directory `dir` (relative to the crate's
/// `Cargo.toml`; `"migrations"` when no argument is given), every file under
/// it, and the crate's `shiftlog.toml` when there is one, as a
/// `shiftlog::Embedded`. No database is needed at build time. Files are
/// included with `include_str!`, so an edited file rebuilds the crate; a new
/// file needs the crate rebuilt (a `build.rs` with
/// `println!("cargo:rerun-if-changed=migrations")` does it).
#[proc_macro]
pub fn embed(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(out) => out,
        Err(message) => format!("::core::compile_error!({message:?})")
            .parse()
            .unwrap_or_default(),
    }
}

fn expand(input: TokenStream) -> Result<TokenStream, String> {
    let text = input.to_string();
    let dir = match text.trim() {
        "" => "migrations".to_owned(),
        literal => literal
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .filter(|s| !s.contains('\\') && !s.contains('"'))
            .ok_or_else(|| {
                format!("shiftlog::embed!: expected a directory as a plain string literal, e.g. embed!(\"migrations\"), not `{literal}`")
            })?
            .to_owned(),
    };
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .map_err(|_| "shiftlog::embed!: CARGO_MANIFEST_DIR is not set".to_owned())?;
    let abs = root.join(&dir);
    if !abs.is_dir() {
        return Err(format!(
            "shiftlog::embed!: `{}` is not a directory (the path is relative to {})",
            dir,
            root.display()
        ));
    }
    let mut files = Vec::new();
    collect(&abs, Path::new(&dir), &mut files)
        .map_err(|e| format!("shiftlog::embed!: cannot read {}: {e}", abs.display()))?;
    files.sort();
    let mut out = String::from("::shiftlog::Embedded { migrations_dir: ");
    out.push_str(&format!("{dir:?}, files: &["));
    for (rel, path) in &files {
        out.push_str(&format!(
            "({rel:?}, ::core::include_str!({:?})),",
            path.to_string_lossy()
        ));
    }
    out.push_str("], config: ");
    let config = root.join("shiftlog.toml");
    if config.is_file() {
        out.push_str(&format!(
            "::core::option::Option::Some(::core::include_str!({:?}))",
            config.to_string_lossy()
        ));
    } else {
        out.push_str("::core::option::Option::None");
    }
    out.push_str(" }");
    out.parse()
        .map_err(|e| format!("shiftlog::embed!: internal error: {e:?}"))
}

/// Every file under `abs` (dotfiles skipped), as (path relative to the
/// crate root with `/` separators, absolute path).
fn collect(abs: &Path, rel: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(abs)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let rel = rel.join(name);
        if entry.file_type()?.is_dir() {
            collect(&path, &rel, out)?;
        } else {
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}
