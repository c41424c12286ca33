//! Printable tickets: one A4 page per ticket with the event, venue, start, seat, booking
//! reference, holder and the ticket's static signed code as a vector QR code (ADR 0042).
//!
//! Text is set in Helvetica, one of the PDF base-14 fonts every reader has, with
//! WinAnsiEncoding: nothing is embedded, and a character outside that encoding is
//! printed as `?` rather than failing the document.

use anyhow::Context as _;
use pdf_writer::types::LineCapStyle;
use pdf_writer::{Content, Filter, Finish as _, Name, Pdf, Rect, Ref, Str, TextStr};
use qrcode::{Color, EcLevel, QrCode};

/// The most pages one document has: catalog's per-user limit and inventory's largest
/// hold are 100 tickets, so no booking has more.
pub const MAX_PAGES: usize = 100;

/// A booking's tickets as they are printed.
#[derive(Debug, Clone, Default)]
pub struct Booklet {
    /// The event's name.
    pub event_name: String,
    /// Where it takes place; empty when unknown.
    pub venue: String,
    /// Its start in the event's time zone, e.g. `2026-12-01 20:00 (Europe/Berlin)`;
    /// empty when unknown.
    pub starts: String,
    /// The booking reference.
    pub booking_id: String,
    /// The buyer's name; empty when unknown.
    pub holder: String,
    /// One page each, in the booking's order.
    pub tickets: Vec<PrintedTicket>,
}

/// One ticket's page.
#[derive(Debug, Clone)]
pub struct PrintedTicket {
    /// The ticket id.
    pub id: String,
    /// The seat, or the category or area of general admission.
    pub label: String,
    /// The static signed code the QR code carries.
    pub code: String,
}

// A4 in points, and the layout on it.
const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 56.0;
const TEXT_WIDTH: f32 = WIDTH - 2.0 * MARGIN;
const QR_SIDE: f32 = 270.0;
const QR_BOTTOM: f32 = 110.0;
/// The quiet zone scanners need around the code, in modules.
const QUIET: usize = 4;

const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");

/// The booklet as a PDF. An error only for a code no QR code can hold or a booklet over
/// [`MAX_PAGES`] pages, which no issued ticket and no booking make.
pub fn render(booklet: &Booklet) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(!booklet.tickets.is_empty(), "a PDF needs at least one ticket");
    anyhow::ensure!(booklet.tickets.len() <= MAX_PAGES, "more than {MAX_PAGES} tickets in one PDF");
    let mut pdf = Pdf::new();
    let mut ids = (1..).map(Ref::new);
    let mut next = || ids.next().expect("an endless range");
    let (catalog, tree, regular, bold, info) = (next(), next(), next(), next(), next());
    let pages: Vec<(Ref, Ref)> = booklet.tickets.iter().map(|_| (next(), next())).collect();

    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(pages.iter().map(|(page, _)| *page)).count(pages.len() as i32);
    for (font, name) in [(regular, Name(b"Helvetica")), (bold, Name(b"Helvetica-Bold"))] {
        pdf.type1_font(font).base_font(name).encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    let title = format!("Tickets: {}", booklet.event_name);
    pdf.document_info(info).title(TextStr(&title)).producer(TextStr("ticketing notification"));

    let total = booklet.tickets.len();
    for (i, (ticket, (page_id, content_id))) in booklet.tickets.iter().zip(&pages).enumerate() {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, WIDTH, HEIGHT)).parent(tree).contents(*content_id);
        page.resources().fonts().pair(REGULAR, regular).pair(BOLD, bold);
        page.finish();
        let content = page_content(booklet, ticket, i + 1, total)?;
        let deflated = miniz_oxide::deflate::compress_to_vec_zlib(&content, 6);
        pdf.stream(*content_id, &deflated).filter(Filter::FlateDecode);
    }
    Ok(pdf.finish())
}

fn page_content(booklet: &Booklet, ticket: &PrintedTicket, number: usize, total: usize) -> anyhow::Result<Vec<u8>> {
    let mut page = Page { content: Content::new(), y: HEIGHT - MARGIN };
    page.line(REGULAR, 10.0, 0.45, &format!("TICKET {number} OF {total}"), 24.0);
    page.block(BOLD, 24.0, &booklet.event_name, 2, 10.0);
    for detail in [&booklet.venue, &booklet.starts] {
        if !detail.trim().is_empty() {
            page.block(REGULAR, 14.0, detail, 2, 4.0);
        }
    }
    page.rule(14.0);
    page.field("SEAT / AREA", BOLD, 18.0, &ticket.label);
    page.field("BOOKING REFERENCE", REGULAR, 12.0, &booklet.booking_id);
    if !booklet.holder.trim().is_empty() {
        page.field("NAME", REGULAR, 12.0, &booklet.holder);
    }
    page.field("TICKET", REGULAR, 9.0, &ticket.id);
    page.qr(&ticket.code)?;
    page.y = QR_BOTTOM - 24.0;
    page.block(
        REGULAR,
        9.0,
        "Show this page at the entrance, printed or on screen. Each ticket admits once: whoever is scanned \
         first gets in, so do not share it.",
        3,
        0.0,
    );
    Ok(page.content.finish().into_vec())
}

/// A page being laid out from the top down; `y` is the next line's top.
struct Page {
    content: Content,
    y: f32,
}

impl Page {
    /// One line of `text` (cut to fit), then `gap` points.
    fn line(&mut self, font: Name<'_>, size: f32, gray: f32, text: &str, gap: f32) {
        let encoded = fit(&win_ansi(text), font, size, TEXT_WIDTH, 1);
        self.show(font, size, gray, &encoded);
        self.y -= gap;
    }

    /// `text` wrapped to at most `max_lines` lines, then `gap` points.
    fn block(&mut self, font: Name<'_>, size: f32, text: &str, max_lines: usize, gap: f32) {
        for line in fit(&win_ansi(text), font, size, TEXT_WIDTH, max_lines) {
            self.show(font, size, 0.0, &[line]);
        }
        self.y -= gap;
    }

    /// A small grey caption over a value.
    fn field(&mut self, caption: &str, font: Name<'_>, size: f32, value: &str) {
        self.line(REGULAR, 8.0, 0.45, caption, 2.0);
        self.block(font, size, value, 2, 10.0);
    }

    fn show(&mut self, font: Name<'_>, size: f32, gray: f32, lines: &[Vec<u8>]) {
        for line in lines {
            self.y -= size;
            self.content.begin_text();
            self.content.set_fill_gray(gray);
            self.content.set_font(font, size);
            self.content.next_line(MARGIN, self.y);
            self.content.show(Str(line));
            self.content.end_text();
            self.y -= size * 0.3;
        }
    }

    fn rule(&mut self, gap: f32) {
        self.y -= gap / 2.0;
        self.content.set_stroke_gray(0.7).set_line_width(0.75).set_line_cap(LineCapStyle::ButtCap);
        self.content.move_to(MARGIN, self.y).line_to(WIDTH - MARGIN, self.y).stroke();
        self.y -= gap / 2.0;
    }

    /// The code as black squares on the white page, centred above the footer. Each run of
    /// dark modules in a row is one rectangle: sharp at any zoom and on any printer.
    fn qr(&mut self, code: &str) -> anyhow::Result<()> {
        let qr = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::M).context("encoding a QR code")?;
        let modules = qr.width();
        let colors = qr.to_colors();
        let module = QR_SIDE / (modules + 2 * QUIET) as f32;
        let left = (WIDTH - QR_SIDE) / 2.0 + QUIET as f32 * module;
        let top = QR_BOTTOM + QR_SIDE - QUIET as f32 * module;
        self.content.set_fill_gray(0.0);
        for (row, cells) in colors.chunks(modules).enumerate() {
            let mut col = 0;
            while col < modules {
                if cells[col] == Color::Light {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < modules && cells[col] == Color::Dark {
                    col += 1;
                }
                let y = top - (row + 1) as f32 * module;
                self.content.rect(left + start as f32 * module, y, (col - start) as f32 * module, module);
            }
        }
        self.content.fill_nonzero();
        Ok(())
    }
}

/// `text` in WinAnsiEncoding (Windows-1252): Latin-1 as is, the typographic characters
/// of 0x80–0x9F by their code, line breaks and tabs as spaces, and `?` for anything else.
pub fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            ' '..='~' | '\u{a0}'..='\u{ff}' => c as u8,
            '\t' | '\n' | '\r' => b' ',
            _ => WIN_ANSI_HIGH.iter().find(|(_, u)| *u == c).map_or(b'?', |(byte, _)| *byte),
        })
        .collect()
}

/// The characters Windows-1252 puts at 0x80–0x9F.
const WIN_ANSI_HIGH: [(u8, char); 27] = [
    (0x80, '€'),
    (0x82, '‚'),
    (0x83, 'ƒ'),
    (0x84, '„'),
    (0x85, '…'),
    (0x86, '†'),
    (0x87, '‡'),
    (0x88, 'ˆ'),
    (0x89, '‰'),
    (0x8a, 'Š'),
    (0x8b, '‹'),
    (0x8c, 'Œ'),
    (0x8e, 'Ž'),
    (0x91, '‘'),
    (0x92, '’'),
    (0x93, '“'),
    (0x94, '”'),
    (0x95, '•'),
    (0x96, '–'),
    (0x97, '—'),
    (0x98, '˜'),
    (0x99, '™'),
    (0x9a, 'š'),
    (0x9b, '›'),
    (0x9c, 'œ'),
    (0x9e, 'ž'),
    (0x9f, 'Ÿ'),
];

/// Helvetica's advance widths of ASCII 32–126 in thousandths of the font size (its AFM).
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
    556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584,
];

/// The width of `text` at `size`, erring wide: Helvetica-Bold is taken as a tenth wider
/// than Helvetica and every byte beyond ASCII as wide as an `M`.
fn width(text: &[u8], font: Name<'_>, size: f32) -> f32 {
    let units: u32 = text
        .iter()
        .map(|&b| u32::from(if (32..=126).contains(&b) { HELVETICA[usize::from(b - 32)] } else { 833 }))
        .sum();
    let bold = if font == BOLD { 1.1 } else { 1.0 };
    units as f32 * size * bold / 1000.0
}

/// Greedy word wrap of `text` into at most `max_lines` lines of `max_width`; what does
/// not fit ends the last line in `...`. A word longer than a line is broken anywhere.
fn fit(text: &[u8], font: Name<'_>, size: f32, max_width: f32, max_lines: usize) -> Vec<Vec<u8>> {
    let fits = |line: &[u8]| width(line, font, size) <= max_width;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest: &[u8] = trim(text);
    while !rest.is_empty() {
        if lines.len() + 1 == max_lines || fits(rest) {
            lines.push(ellipsize(rest, &fits));
            break;
        }
        // The longest prefix that fits, then back to its last space if it has one.
        let mut end = (1..=rest.len()).take_while(|&n| fits(&rest[..n])).last().unwrap_or(1);
        if let Some(space) = rest[..=end.min(rest.len() - 1)].iter().rposition(|&b| b == b' ')
            && space > 0
        {
            end = space;
        }
        lines.push(trim(&rest[..end]).to_vec());
        rest = trim(&rest[end..]);
    }
    lines
}

fn ellipsize(text: &[u8], fits: &impl Fn(&[u8]) -> bool) -> Vec<u8> {
    if fits(text) {
        return text.to_vec();
    }
    let mut line = text.to_vec();
    while !line.is_empty() {
        line.pop();
        let mut candidate = trim(&line).to_vec();
        candidate.extend_from_slice(b"...");
        if fits(&candidate) {
            return candidate;
        }
    }
    b"...".to_vec()
}

fn trim(text: &[u8]) -> &[u8] {
    let start = text.iter().position(|&b| b != b' ').unwrap_or(text.len());
    let end = text.iter().rposition(|&b| b != b' ').map_or(start, |e| e + 1);
    &text[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booklet(tickets: usize) -> Booklet {
        Booklet {
            event_name: "Eras (Tour) — Zürich \\ night 2 🎤".into(),
            venue: "Letzigrund Stadion".into(),
            starts: "2026-12-01 20:00 (Europe/Zurich)".into(),
            booking_id: uuid::Uuid::new_v4().to_string(),
            holder: "Ada Lovelace".into(),
            tickets: (0..tickets)
                .map(|i| PrintedTicket {
                    id: uuid::Uuid::new_v4().to_string(),
                    label: format!("Floor A, Row 12, Seat {i}"),
                    code: format!("{}.{}.{}", "0".repeat(32), "A".repeat(260), "b".repeat(86)),
                })
                .collect(),
        }
    }

    #[test]
    fn win_ansi_keeps_latin_1_and_typography_and_replaces_the_rest() {
        assert_eq!(win_ansi("Zürich – 10 €"), b"Z\xfcrich \x96 10 \x80");
        assert_eq!(win_ansi("東京\n🎤"), b"?? ?");
        assert_eq!(win_ansi("\u{7f}\u{85}"), b"??", "control characters are not text");
    }

    #[test]
    fn long_text_wraps_at_spaces_and_ends_in_an_ellipsis() {
        let text = win_ansi(&"word ".repeat(60));
        let lines = fit(&text, REGULAR, 14.0, 200.0, 2);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| width(l, REGULAR, 14.0) <= 200.0), "{lines:?}");
        assert!(lines[0].ends_with(b"word") && lines[1].ends_with(b"..."), "{lines:?}");
        let unbroken = fit(&[b'W'; 200], BOLD, 24.0, 100.0, 3);
        assert_eq!(unbroken.len(), 3, "a word longer than a line is broken");
        assert_eq!(fit(b"   ", REGULAR, 10.0, 100.0, 2), Vec::<Vec<u8>>::new());
        assert_eq!(fit(b"short", REGULAR, 10.0, 100.0, 2), vec![b"short".to_vec()]);
    }

    #[test]
    fn one_page_per_ticket_and_the_largest_booking_stays_small() {
        let pages = |pdf: &[u8]| pdf.windows(12).filter(|w| w.starts_with(b"/Type /Page") && w[11] != b's').count();
        let one = render(&booklet(1)).unwrap();
        assert!(one.starts_with(b"%PDF-"));
        assert_eq!(pages(&one), 1);
        let largest = render(&booklet(MAX_PAGES)).unwrap();
        assert_eq!(pages(&largest), MAX_PAGES);
        assert!(largest.len() < 1024 * 1024, "{} bytes for {MAX_PAGES} tickets", largest.len());
        assert!(render(&booklet(MAX_PAGES + 1)).is_err());
        assert!(render(&booklet(0)).is_err());
    }
}
