//! Embeds the built web console (`web/dist`) into release builds of the server.
//!
//! Writes `$OUT_DIR/web_assets.rs` with one `(path, bytes)` entry per file under `web/dist`,
//! each through `include_bytes!`, so the release binary carries the console and needs no
//! files beside it. Debug builds embed nothing and read `web/dist` from disk at run time
//! (see `src/web.rs`), so rebuilding the console does not recompile the server. When
//! `web/dist` is missing the list is empty and the server shows a page saying how to build it.

use std::path::{Path, PathBuf};

fn collect(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect(&p, base, out);
        } else if let Ok(rel) = p.strip_prefix(base) {
            let rel = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, p.clone()));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = manifest.join("../../web/dist");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    println!("cargo:rerun-if-changed=build.rs");
    let release = std::env::var_os("CARGO_CFG_DEBUG_ASSERTIONS").is_none();
    let mut files = Vec::new();
    if release {
        // Cargo compares the mtimes of everything under a watched directory, so an
        // unchanged web/dist never reruns this script (`cargo xtask run` leaves it alone
        // when the console's sources did not change). A path that does not exist would
        // rerun it, and rebuild the server, on every build: without web/dist, watch web/,
        // where the console appears when it is built.
        let watched = if dist.is_dir() {
            dist.clone()
        } else {
            manifest.join("../../web")
        };
        println!("cargo:rerun-if-changed={}", watched.display());
        collect(&dist, &dist, &mut files);
    }
    let mut src = String::from("/// Files of the built console, `(path under web/dist, bytes)`.\npub static ASSETS: &[(&str, &[u8])] = &[\n");
    for (rel, path) in &files {
        src.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    src.push_str("];\n");
    if let Err(e) = std::fs::write(out_dir.join("web_assets.rs"), src) {
        panic!("cannot write web_assets.rs: {e}");
    }
}
