//! A real SMTP server for the tests: speaks enough ESMTP over TCP for lettre (EHLO,
//! MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT), records every accepted
//! message, and can be stopped (connections refused) and started again on its port.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mail_parser::MimeHeaders as _;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Received {
    /// `MAIL FROM`.
    pub from: String,
    /// `RCPT TO`s.
    pub to: Vec<String>,
    /// The message as transmitted after DATA, dot-unstuffed.
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Inbox {
    messages: Mutex<Vec<Received>>,
    /// Read before each acceptance is acknowledged; [`SmtpSink::hold_acceptance`] writes it.
    acknowledging: Arc<tokio::sync::RwLock<()>>,
}

/// The sink.
pub struct SmtpSink {
    /// Where it listens (kept across stop and start).
    pub addr: SocketAddr,
    inbox: Arc<Inbox>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl SmtpSink {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the SMTP sink");
        let addr = listener.local_addr().unwrap();
        let inbox = Arc::new(Inbox::default());
        let server = tokio::spawn(serve(listener, inbox.clone()));
        Self { addr, inbox, server: Mutex::new(Some(server)) }
    }

    /// Closes the port and every open connection: the server is down.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        let what = format!("the SMTP sink to rebind {}", self.addr);
        let listener = crate::eventually_every(&what, Duration::from_secs(10), Duration::from_millis(100), || async {
            TcpListener::bind(self.addr).await.inspect_err(|e| eprintln!("rebinding the SMTP sink: {e}"))
        })
        .await;
        *self.server.lock().unwrap() = Some(tokio::spawn(serve(listener, self.inbox.clone())));
    }

    /// Until the guard is dropped, messages are still received and recorded, but the
    /// server's acceptance (the `250` after DATA) waits: the client is mid-send.
    pub async fn hold_acceptance(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.inbox.acknowledging.clone().write_owned().await
    }

    /// Every message accepted so far.
    pub fn messages(&self) -> Vec<Received> {
        self.inbox.messages.lock().unwrap().clone()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }
}

async fn serve(listener: TcpListener, inbox: Arc<Inbox>) {
    // Aborting this task drops the set, which aborts every connection with it.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((stream, _)) = accepted {
                    connections.spawn(session(stream, inbox.clone()));
                }
            }
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn session(stream: TcpStream, inbox: Arc<Inbox>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP test sink\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command.split([' ', ':']).next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
            "HELO" => b"250 sink.test\r\n",
            "MAIL" => {
                from = address(&command);
                to.clear();
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" => {
                to.push(address(&command));
                b"250 2.1.5 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = Vec::new();
                loop {
                    let mut raw = Vec::new();
                    if lines.read_until(b'\n', &mut raw).await? == 0 {
                        return Ok(());
                    }
                    if raw == b".\r\n" || raw == b".\n" {
                        break;
                    }
                    let unstuffed = if raw.starts_with(b"..") { &raw[1..] } else { &raw[..] };
                    data.extend_from_slice(unstuffed);
                }
                let message = Received { from: from.clone(), to: std::mem::take(&mut to), data };
                inbox.messages.lock().unwrap().push(message);
                let _acknowledging = inbox.acknowledging.read().await;
                b"250 2.0.0 queued\r\n"
            }
            "RSET" => {
                to.clear();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 command not recognized\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The address in `MAIL FROM:<a@b> ...` or `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..].find('>').map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

/// An email as a mail client would see it.
#[derive(Debug, Clone)]
pub struct Email {
    pub to: Vec<String>,
    pub header_to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
    /// The PNG images, in order.
    pub pngs: Vec<Vec<u8>>,
    /// The attached PDFs: file name and bytes.
    pub pdfs: Vec<(String, Vec<u8>)>,
}

/// Parses a received message as a mail client would.
pub fn parse(received: &Received) -> Email {
    let message = mail_parser::MessageParser::default().parse(&received.data).expect("a parseable email");
    let pngs = message
        .parts
        .iter()
        .filter(|p| p.content_type().is_some_and(|c| c.ctype() == "image" && c.subtype() == Some("png")))
        .map(|p| p.contents().to_vec())
        .collect();
    let pdfs = message
        .parts
        .iter()
        .filter(|p| p.content_type().is_some_and(|c| c.ctype() == "application" && c.subtype() == Some("pdf")))
        .map(|p| (p.attachment_name().unwrap_or_default().to_owned(), p.contents().to_vec()))
        .collect();
    Email {
        to: received.to.clone(),
        header_to: message.to().and_then(|a| a.first()).and_then(|a| a.address()).unwrap_or_default().to_owned(),
        subject: message.subject().unwrap_or_default().to_owned(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
        text: message.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
        html: message.body_html(0).map(|t| t.into_owned()).unwrap_or_default(),
        pngs,
        pdfs,
    }
}

/// The emails received so far to `address`.
pub fn emails_to(smtp: &SmtpSink, address: &str) -> Vec<Email> {
    smtp.messages().iter().filter(|m| m.to.iter().any(|t| t == address)).map(parse).collect()
}

/// Waits for `n` emails to `address`, then a little longer to catch any extra one.
pub async fn wait_for_emails(smtp: &SmtpSink, address: &str, n: usize) -> Vec<Email> {
    let what = format!("{n} emails to {address}");
    crate::eventually_every(&what, Duration::from_secs(60), Duration::from_millis(50), || async {
        let emails = emails_to(smtp, address);
        if emails.len() >= n { Ok(()) } else { Err(format!("{emails:?}")) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    emails_to(smtp, address)
}

/// Reads the QR code in a PNG.
pub fn read_qr(png_bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buf).expect("a frame");
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    read_qr_in(info.width as usize, info.height as usize, &buf)
}

/// Reads the one QR code in a greyscale image of `width` × `height` pixels, row by row.
pub fn read_qr_in(width: usize, height: usize, pixels: &[u8]) -> String {
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code per image");
    grids[0].decode().expect("a readable QR code").1
}
