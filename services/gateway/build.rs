//! Writes into `OUT_DIR` the files `/docs` and GraphiQL serve from the binary: the Swagger
//! UI files from the vendored release (the whole distribution is 11 MB of source maps and
//! ES bundles; these are under 2 MB), and GraphiQL's vendored files. Scripts and styles are
//! gzipped here, `NAME.gz`: 5.9 MB of them are 1.5 MB so, and the binary is the image (its
//! budget is in docs/benchmarks.md); `src/embedded.rs` serves them as they are.

use std::io::{Read as _, Write as _};
use std::path::Path;

/// The files `/docs` serves, as named in the release's `dist/`.
const SWAGGER_UI: [&str; 6] = [
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "index.css",
    "favicon-32x32.png",
    "favicon-16x16.png",
];

fn main() {
    // The Swagger UI release comes from a dependency (a new version reruns this).
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=assets/graphiql");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let release = std::io::Cursor::new(utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED);
    let mut zip = zip::ZipArchive::new(release).expect("the vendored Swagger UI is a zip archive");
    for file in SWAGGER_UI {
        let suffix = format!("/dist/{file}");
        let name = zip
            .file_names()
            .find(|name| name.ends_with(&suffix))
            .unwrap_or_else(|| panic!("{file} is not in the vendored Swagger UI"))
            .to_owned();
        let mut bytes = Vec::new();
        zip.by_name(&name).and_then(|mut entry| Ok(entry.read_to_end(&mut bytes)?)).expect("reading the archive");
        write(&out, file, &bytes);
    }
    // GraphiQL's scripts and styles, kept readable in git as released (not its licences).
    let graphiql = out.join("graphiql");
    std::fs::create_dir_all(&graphiql).expect("writing to OUT_DIR");
    for entry in std::fs::read_dir("assets/graphiql").expect("the vendored GraphiQL") {
        let path = entry.expect("listing the vendored GraphiQL").path();
        if path.extension().is_some_and(|ext| ext == "js" || ext == "css") {
            let file = path.file_name().and_then(|name| name.to_str()).expect("a file name in UTF-8");
            write(&graphiql, file, &std::fs::read(&path).expect("reading a vendored GraphiQL file"));
        }
    }
}

/// `bytes` as `dir/file`, or gzipped as `dir/file.gz` unless an image, which gzip cannot shrink.
fn write(dir: &Path, file: &str, bytes: &[u8]) {
    let written = if file.ends_with(".png") {
        std::fs::write(dir.join(file), bytes)
    } else {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gzip.write_all(bytes)
            .and_then(|()| gzip.finish())
            .and_then(|gz| std::fs::write(dir.join(format!("{file}.gz")), gz))
    };
    written.expect("writing to OUT_DIR");
}
