//! What the engine's benches share: CPU time (of this process or thread), peak RSS, a small
//! xorshift generator, and the bench file
//! (generated once, deterministically, so every bench measures the same bytes). Included by
//! `#[path]` from each bench (a bench is its own crate).

#![allow(dead_code)] // each bench uses its own subset

use std::io::{BufWriter, Write};
use std::path::Path;

pub const MIB: u64 = 1 << 20;

pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// CPU seconds of the calling thread (benches that time one piece of work on this thread).
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn index(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.index(v.len())]
    }
}

const WORDS: &[&str] = &[
    "alpha", "beta", "gamma", "delta", "Zürich", "東京", "naïve", "north", "south", "quartz",
    "lorem", "ipsum", "dolor", "sit", "amet",
];

pub fn generate(path: &Path, size: u64) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() >= size) {
        return;
    }
    eprintln!("generating {} ({} MiB)...", path.display(), size / MIB);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("tmp");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).unwrap());
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut written: u64 = 0;
    let header = b"id,name,score,amount,day,active,category,comment\n";
    w.write_all(header).unwrap();
    written += header.len() as u64;
    let mut line = String::with_capacity(256);
    let mut id: u64 = 0;
    while written < size {
        line.clear();
        id += 1;
        let empty = |r: &mut Rng| r.below(50) == 0; // ~2% empty values
        use std::fmt::Write as _;
        let _ = write!(line, "{id},");
        if !empty(&mut r) {
            let a = WORDS[r.below(WORDS.len() as u64) as usize];
            let b = WORDS[r.below(WORDS.len() as u64) as usize];
            if r.below(10) == 0 {
                let _ = write!(line, "\"{a}, {b}\"");
            } else {
                let _ = write!(line, "{a} {b}");
            }
        }
        line.push(',');
        if !empty(&mut r) {
            let _ = write!(line, "{}", r.below(1000));
        }
        line.push(',');
        if !empty(&mut r) {
            let _ = write!(line, "{}.{:02}", r.below(100_000), r.below(100));
        }
        line.push(',');
        if !empty(&mut r) {
            let _ = write!(
                line,
                "20{:02}-{:02}-{:02}",
                r.below(30),
                1 + r.below(12),
                1 + r.below(28)
            );
        }
        line.push(',');
        if !empty(&mut r) {
            line.push_str(if r.below(2) == 0 { "true" } else { "false" });
        }
        line.push(',');
        if !empty(&mut r) {
            line.push_str(["A", "B", "C", "D"][r.below(4) as usize]);
        }
        line.push(',');
        if !empty(&mut r) {
            let n = 1 + r.below(6);
            let words: Vec<&str> = (0..n)
                .map(|_| WORDS[r.below(WORDS.len() as u64) as usize])
                .collect();
            match r.below(20) {
                0 => {
                    let _ = write!(line, "\"{}\n\"\"{}\"\"\"", words.join(" "), words[0]);
                }
                1 => {
                    let _ = write!(line, "\"{}\"", words.join(", "));
                }
                _ => line.push_str(&words.join(" ")),
            }
        }
        line.push('\n');
        w.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
    }
    w.flush().unwrap();
    drop(w);
    std::fs::rename(&tmp, path).unwrap();
}
