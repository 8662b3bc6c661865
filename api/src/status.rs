//! Progress for people: a bar on a terminal, plain status lines otherwise (logs, CI).

use aperture_mapper::engine::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct StatusReporter {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

fn eta(done: u64, total: u64, elapsed: Duration) -> String {
    if done == 0 || done >= total {
        return "-".into();
    }
    let secs = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
    format!("{secs:.0}s")
}

impl StatusReporter {
    pub fn start(progress: Arc<Progress>, interval: Duration, quiet: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        if quiet {
            return Self { stop, handle: None };
        }
        let flag = stop.clone();
        let tty = std::io::stderr().is_terminal();
        let handle = std::thread::spawn(move || {
            let began = Instant::now();
            let bar = tty.then(|| {
                let bar = ProgressBar::with_draw_target(
                    Some(Progress::get(&progress.total)),
                    ProgressDrawTarget::stderr_with_hz(5),
                );
                bar.set_style(
                    ProgressStyle::with_template("{bar:30} {pos}/{len} probes  {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar
            });
            let tick = if tty {
                Duration::from_millis(200)
            } else {
                interval.max(Duration::from_millis(100))
            };
            let (mut last_sent, mut last_at) = (0u64, Instant::now());
            while !flag.load(Relaxed) {
                let step = Instant::now() + tick;
                while Instant::now() < step && !flag.load(Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if flag.load(Relaxed) {
                    break;
                }
                let (sent, total) = (
                    Progress::get(&progress.sent),
                    Progress::get(&progress.total),
                );
                let now = Instant::now();
                let pps = (sent - last_sent.min(sent)) as f64
                    / now.duration_since(last_at).as_secs_f64().max(1e-3);
                (last_sent, last_at) = (sent, now);
                let found = Progress::get(&progress.open);
                let eta = eta(sent, total, began.elapsed());
                match &bar {
                    Some(bar) => {
                        bar.set_length(total);
                        bar.set_position(sent);
                        bar.set_message(format!("{pps:.0} pps  found {found}  eta {eta}"));
                    }
                    None => eprintln!(
                        "status: sent={sent}/{total} ({:.1}%) rate={pps:.0}pps found={found} elapsed={:.1}s eta={eta}",
                        if total == 0 { 100.0 } else { sent as f64 * 100.0 / total as f64 },
                        began.elapsed().as_secs_f64()
                    ),
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
