//! The upload's progress line on stderr: bytes sent, percent, MB/s, redrawn at most four times
//! a second from a counter the request bodies add to as the HTTP client takes their pieces.
//! Not here: counting (see `counted` in the parent module) or retries (a retried part's bytes
//! are subtracted by the caller).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The progress line on stderr, redrawn four times a second: bytes, %, MB/s.
pub(super) struct Progress {
    pub(super) sent: Arc<AtomicU64>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(super) fn start(total: u64, show: bool) -> Progress {
        let sent = Arc::new(AtomicU64::new(0));
        if !show {
            return Progress {
                sent,
                stop: None,
                task: None,
            };
        }
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let counter = sent.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                let done = tokio::select! {
                    _ = tick.tick() => false,
                    _ = &mut rx => true,
                };
                let line = progress_line(counter.load(Ordering::Relaxed), total, started.elapsed());
                eprint!("\r{line}\x1b[K");
                if done {
                    eprintln!();
                    break;
                }
            }
        });
        Progress {
            sent,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub(super) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// `upload [#####.....]  45%  54.0/120.0 MB  38.2 MB/s`
pub fn progress_line(sent: u64, total: u64, elapsed: Duration) -> String {
    let sent = sent.min(total);
    let fraction = if total == 0 {
        1.0
    } else {
        sent as f64 / total as f64
    };
    let width = 30;
    let filled = (fraction * width as f64).round() as usize;
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!(
        "upload [{}{}] {:>3.0}%  {:.1}/{:.1} MB  {:.1} MB/s",
        "#".repeat(filled),
        ".".repeat(width - filled),
        fraction * 100.0,
        sent as f64 / 1e6,
        total as f64 / 1e6,
        sent as f64 / 1e6 / secs
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_bytes_percent_and_rate() {
        let l = progress_line(50_000_000, 100_000_000, Duration::from_secs(2));
        assert!(l.contains(" 50%"), "{l}");
        assert!(l.contains("50.0/100.0 MB"), "{l}");
        assert!(l.contains("25.0 MB/s"), "{l}");
        assert!(progress_line(0, 0, Duration::ZERO).contains("100%"));
    }
}
