//! Reading PDFs as a printer and a reader would: Debian's poppler-utils (installed by
//! scripts/infra.sh) renders the pages and extracts the text.

use std::path::PathBuf;

/// The QR code on each page of `pdf`, in page order, read off the page rendered at
/// 150 dpi in greys (`pdftoppm`): one entry per page, so its length is the page count.
///
/// The pages are rendered without anti-aliasing, as a printer puts dots on paper: rqrr
/// misses about one code in fifteen when the modules' edges are smoothed into greys (it
/// read all of 800 random ticket codes without, and 187 of 200 with).
pub fn qr_codes(pdf: &[u8]) -> Vec<String> {
    let dir = Scratch::new(pdf);
    let prefix = dir.0.join("page");
    // Without `-png` the pages are binary PGM (P5), which needs no decoder.
    poppler(
        "pdftoppm",
        &["-r", "150", "-gray", "-aa", "no", "-aaVector", "no", &dir.pdf(), prefix.to_str().expect("a UTF-8 path")],
    );
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir.0)
        .expect("the scratch directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "pgm"))
        .collect();
    // pdftoppm pads page numbers to one width, so the names sort in page order.
    pages.sort();
    pages
        .iter()
        .map(|page| {
            let data = std::fs::read(page).expect("a rendered page");
            let (width, height, pixels) = pgm(&data);
            crate::smtp::read_qr_in(width, height, pixels)
        })
        .collect()
}

/// The width, height and 8-bit pixels of a binary PGM: `P5`, width, height and the
/// maximum value, separated by whitespace, then one whitespace byte and the pixels.
fn pgm(data: &[u8]) -> (usize, usize, &[u8]) {
    let mut fields = Vec::with_capacity(4);
    let mut at = 0;
    while fields.len() < 4 {
        while data[at].is_ascii_whitespace() {
            at += 1;
        }
        let start = at;
        while !data[at].is_ascii_whitespace() {
            at += 1;
        }
        fields.push(std::str::from_utf8(&data[start..at]).expect("an ASCII header"));
    }
    assert_eq!((fields[0], fields[3]), ("P5", "255"), "an 8-bit binary PGM");
    let number = |field: &str| field.parse::<usize>().expect("a dimension");
    let (width, height) = (number(fields[1]), number(fields[2]));
    (width, height, &data[at + 1..at + 1 + width * height])
}

/// The text of `pdf`, page after page (`pdftotext`).
pub fn text(pdf: &[u8]) -> String {
    let dir = Scratch::new(pdf);
    poppler("pdftotext", &[&dir.pdf(), "-"])
}

/// A directory holding the document, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(pdf: &[u8]) -> Self {
        let dir = std::env::temp_dir().join(format!("ticketing-pdf-{}", crate::unique()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        std::fs::write(dir.join("document.pdf"), pdf).expect("writing the PDF");
        Self(dir)
    }

    fn pdf(&self) -> String {
        self.0.join("document.pdf").to_str().expect("a UTF-8 path").to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn poppler(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (Debian's poppler-utils; scripts/infra.sh installs it): {e}"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}
