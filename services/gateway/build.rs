//! Unpacks the Swagger UI files `/docs` serves from the vendored release into `OUT_DIR`.
//! The whole distribution is 11 MB (source maps, ES bundles); these are under 2 MB, and
//! what the binary embeds is what the image ships.

use std::io::Read as _;

/// The files `/docs` serves, as named in the release's `dist/`.
const FILES: [&str; 6] = [
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-ui.css",
    "index.css",
    "favicon-32x32.png",
    "favicon-16x16.png",
];

fn main() {
    // The release comes from a dependency (a new version reruns this); nothing else is read.
    println!("cargo:rerun-if-changed=build.rs");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let release = std::io::Cursor::new(utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED);
    let mut zip = zip::ZipArchive::new(release).expect("the vendored Swagger UI is a zip archive");
    for file in FILES {
        let suffix = format!("/dist/{file}");
        let name = zip
            .file_names()
            .find(|name| name.ends_with(&suffix))
            .unwrap_or_else(|| panic!("{file} is not in the vendored Swagger UI"))
            .to_owned();
        let mut bytes = Vec::new();
        zip.by_name(&name).and_then(|mut entry| Ok(entry.read_to_end(&mut bytes)?)).expect("reading the archive");
        std::fs::write(out.join(file), bytes).expect("writing to OUT_DIR");
    }
}
