//! Where the demo writes: a summary on one stream, a progress line on another.
//!
//! Binaries pass the process's stdout and stderr; tests capture both in memory.

use std::fmt;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

/// Uploads at least this large show a progress bar.
pub const PROGRESS_THRESHOLD: u64 = 4 * 1024 * 1024;

/// The demo's two output streams.
pub struct Output {
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    progress_drawn: bool,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output").finish_non_exhaustive()
    }
}

/// A clonable in-memory writer, for tests and for capturing what a run printed.
#[derive(Clone, Debug, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Output {
    /// The process's stdout (summary) and stderr (progress).
    pub fn console() -> Self {
        Self::new(Box::new(std::io::stdout()), Box::new(std::io::stderr()))
    }

    /// Any two writers.
    pub fn new(out: Box<dyn Write + Send>, err: Box<dyn Write + Send>) -> Self {
        Self {
            out,
            err,
            progress_drawn: false,
        }
    }

    /// Writes to memory; returns the output and handles to read the summary and stderr.
    pub fn captured() -> (Self, Captured, Captured) {
        let (out, err) = (Captured::default(), Captured::default());
        (
            Self::new(Box::new(out.clone()), Box::new(err.clone())),
            out,
            err,
        )
    }

    /// One summary line. Write errors are ignored: a closed stdout must not fail the demo.
    pub fn line(&mut self, text: impl AsRef<str>) {
        self.end_progress();
        let _ = writeln!(self.out, "{}", text.as_ref());
        let _ = self.out.flush();
    }

    /// One diagnostic line on the second stream.
    pub fn note(&mut self, text: impl AsRef<str>) {
        self.end_progress();
        let _ = writeln!(self.err, "{}", text.as_ref());
        let _ = self.err.flush();
    }

    /// Redraws the progress line for `label`.
    pub fn progress(&mut self, label: &str, done: u64, total: u64) {
        let _ = write!(self.err, "\r{}", render_bar(label, done, total, 30));
        let _ = self.err.flush();
        self.progress_drawn = true;
    }

    /// Ends the progress line, if one is drawn.
    pub fn end_progress(&mut self) {
        if self.progress_drawn {
            let _ = writeln!(self.err);
            let _ = self.err.flush();
            self.progress_drawn = false;
        }
    }
}

/// One progress line: `upload [#######.......]  45%  3.6/8.0 MiB`.
pub fn render_bar(label: &str, done: u64, total: u64, width: usize) -> String {
    let done = done.min(total);
    let permille = (done * 1000).checked_div(total).unwrap_or(1000);
    let filled = usize::try_from(permille).unwrap_or(1000) * width / 1000;
    format!(
        "{label} [{}{}] {:>3}%  {}/{}",
        "#".repeat(filled),
        ".".repeat(width - filled),
        permille / 10,
        mib(done),
        mib(total),
    )
}

/// A byte count as `n B`, `x.y KiB` or `x.y MiB`.
pub fn mib(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let (unit, scale) = if bytes < 1024 * 1024 {
        ("KiB", 1024)
    } else {
        ("MiB", 1024 * 1024)
    };
    let tenths = bytes * 10 / scale;
    format!("{}.{} {unit}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_progress() {
        assert_eq!(
            render_bar("upload", 0, 8 * 1024 * 1024, 10),
            "upload [..........]   0%  0 B/8.0 MiB"
        );
        assert_eq!(
            render_bar("upload", 4 * 1024 * 1024, 8 * 1024 * 1024, 10),
            "upload [#####.....]  50%  4.0/8.0 MiB".replace("4.0/", "4.0 MiB/")
        );
        assert_eq!(render_bar("upload", 9, 8, 4), "upload [####] 100%  8 B/8 B");
        assert_eq!(render_bar("x", 0, 0, 2), "x [##] 100%  0 B/0 B");
    }

    #[test]
    fn sizes_pick_a_readable_unit() {
        assert_eq!(mib(1023), "1023 B");
        assert_eq!(mib(3 * 1024 + 512), "3.5 KiB");
        assert_eq!(mib(9 * 1024 * 1024 + 17), "9.0 MiB");
    }

    #[test]
    fn lines_end_an_open_progress_bar() {
        let (mut output, out, err) = Output::captured();
        output.progress("upload", 1, 2);
        output.line("done");
        assert_eq!(out.text(), "done\n");
        assert!(err.text().ends_with("50%  1 B/2 B\n"), "{}", err.text());
    }
}
