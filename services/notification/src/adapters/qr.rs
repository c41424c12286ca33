//! QR codes as PNG images, for the tickets attached to emails.

use anyhow::Context as _;
use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module: about 450 px wide for a ticket code, sharp on phones and print.
const SCALE: usize = 6;
/// The quiet zone scanners need around the code, in modules.
const QUIET: usize = 4;

/// A black-on-white 8-bit greyscale PNG of `text` as a QR code (error correction M).
pub fn png(text: &str) -> anyhow::Result<Vec<u8>> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).context("encoding a QR code")?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![u8::MAX; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Light {
            continue;
        }
        let (x, y) = ((i % modules + QUIET) * SCALE, (i / modules + QUIET) * SCALE);
        for row in y..y + SCALE {
            pixels[row * side + x..row * side + x + SCALE].fill(0);
        }
    }
    let side = u32::try_from(side).context("QR image too large")?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().context("writing the PNG header")?;
    writer.write_image_data(&pixels).context("writing the PNG data")?;
    writer.finish().context("finishing the PNG")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    /// Decodes the PNG back to greyscale and reads the QR code in it.
    fn read(png_bytes: &[u8]) -> String {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        let (w, h) = (info.width as usize, info.height as usize);
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        grids[0].decode().unwrap().1
    }

    #[test]
    fn a_ticket_sized_code_reads_back() {
        let text = format!("{}.{}.{}", "0".repeat(32), "A".repeat(260), "b".repeat(86));
        let image = super::png(&text).unwrap();
        assert!(image.starts_with(b"\x89PNG"));
        assert_eq!(read(&image), text);
    }
}
