//! Compiles `proto/` with the pure-Rust `protox`, so no system `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: a build script compiled
    // for one checkout may be reused from a target dir another checkout shares.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut files = Vec::new();
    collect(&root, &mut files)?;
    files.sort();
    let descriptors = protox::compile(&files, [&root])?;
    // Type names give every message `prost::Name`, so event envelopes can carry
    // the payload's fully qualified name.
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    // google.rpc.Status (vendored in proto/google for the import) is tonic-types' own type,
    // so a batch item's status converts to and from tonic's without a copy of the type.
    config.extern_path(".google.rpc", "::tonic_types::pb");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds_with_config(descriptors, config)?;
    println!("cargo:rerun-if-changed={}", root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(())
}

fn collect(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
