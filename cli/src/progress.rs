//! Progress bars: one per file being transferred plus a total (bytes, rate, ETA), drawn on stderr
//! while stdout and stderr are terminals and `--quiet` is not given. Otherwise nothing is drawn and
//! only the result lines are printed, so that scripts and logs get no control characters.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    visible: bool,
}

fn file_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:<24!} [{bar:30.cyan/blue}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn total_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix:<24!} [{bar:30.green/white}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

impl Bars {
    pub fn new(quiet: bool, total_bytes: u64, files: usize) -> Bars {
        let visible = !quiet && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let total = multi.add(ProgressBar::new(total_bytes));
        total.set_style(total_style());
        total.set_prefix(format!("total ({files} files)"));
        total.enable_steady_tick(Duration::from_millis(200));
        Bars {
            multi,
            total,
            visible,
        }
    }

    /// A bar for one file, above the total.
    pub fn file(&self, label: &str, size: u64) -> FileBar {
        let bar = self
            .multi
            .insert_before(&self.total, ProgressBar::new(size));
        bar.set_style(file_style());
        bar.set_prefix(label.to_string());
        FileBar {
            bar,
            total: self.total.clone(),
        }
    }

    /// Prints a result line above the bars (or plainly when there are none).
    pub fn println(&self, line: &str) {
        if self.visible {
            self.multi.suspend(|| println!("{line}"));
        } else {
            println!("{line}");
        }
    }

    pub fn eprintln(&self, line: &str) {
        self.multi.suspend(|| eprintln!("{line}"));
    }

    pub fn finish(&self) {
        self.total.finish_and_clear();
    }
}

/// One file's bar; what it advances also advances the total.
pub struct FileBar {
    bar: ProgressBar,
    total: ProgressBar,
}

impl FileBar {
    pub fn set_done_before(&self, bytes: u64) {
        self.bar.set_position(bytes);
        self.total.inc(bytes);
    }

    pub fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
        self.total.inc(bytes);
    }

    pub fn dec(&self, bytes: u64) {
        self.bar
            .set_position(self.bar.position().saturating_sub(bytes));
        self.total
            .set_position(self.total.position().saturating_sub(bytes));
    }

    pub fn set_length(&self, len: u64) {
        let old = self.bar.length().unwrap_or(0);
        self.bar.set_length(len);
        if let Some(total) = self.total.length() {
            self.total.set_length((total + len).saturating_sub(old));
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
