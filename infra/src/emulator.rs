//! The AWS emulator (moto server, from PyPI) on 127.0.0.1: find one that already answers, or
//! install the pinned version and start it, and stop it again if we started it.
//!
//! Blocking code on purpose: it runs once per process (or test binary), before any runtime
//! work, and a test binary shares one emulator across many tokio runtimes.
//!
//! Not here: creating resources inside the emulator (see [`crate::provision`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The moto version the local runtime is tested with. 5.2.x breaks CompleteMultipartUpload and
/// ListParts for the Rust SDK, so the version is pinned exactly.
pub const MOTO_VERSION: &str = "5.1.22";

/// Starts `moto.server` with one fix: DynamoDB requests are serialised. moto serves requests on
/// threads, and its TransactWriteItems neither checks its conditions atomically nor rolls back
/// safely (on a cancelled transaction it restores a deep copy of the whole table, erasing writes
/// other threads made meanwhile). DynamoDB's transactions are atomic and isolated; the pipeline's
/// once-only chunk completion relies on it, and duplicate deliveries exercise it. Found by the e2e
/// duplicate-delivery test (a job stuck in `processing` after its `finalizing` write was erased).
pub const MOTO_LAUNCHER: &str = r#"
import sys, threading
from moto.dynamodb.responses import DynamoHandler
_lock = threading.RLock()
_call_action = DynamoHandler.call_action
def _serialised(self):
    with _lock:
        return _call_action(self)
DynamoHandler.call_action = _serialised
from moto.server import main
sys.exit(main(sys.argv[1:]))
"#;

/// Default emulator port (LocalStack's and moto's customary one).
pub const DEFAULT_PORT: u16 = 4566;

/// How long a freshly started emulator may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the emulator could not be had. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("could not run `{python}` ({source}); install Python 3 or set TESSERA_PYTHON to a Python 3 interpreter")]
    NoPython {
        python: String,
        source: std::io::Error,
    },
    #[error("installing moto[server]=={version} with pip failed (exit {status}): {output}\nInstall it by hand: {python} -m pip install \"moto[server]=={version}\"")]
    Install {
        python: String,
        version: &'static str,
        status: String,
        output: String,
    },
    #[error("the AWS emulator (moto server on 127.0.0.1:{port}) exited before it answered ({status}). Its log ({log}) ends with:\n{tail}")]
    Exited {
        port: u16,
        status: String,
        log: String,
        tail: String,
    },
    #[error("the AWS emulator on 127.0.0.1:{port} did not answer within {secs} s. Its log ({log}) ends with:\n{tail}")]
    Timeout {
        port: u16,
        secs: u64,
        log: String,
        tail: String,
    },
    #[error("could not start the AWS emulator: {0}")]
    Spawn(std::io::Error),
}

/// A running emulator. Stops the process on [`Emulator::stop`] or drop, only if we started it.
#[derive(Debug)]
pub struct Emulator {
    port: u16,
    /// Pid of the moto process we started, if any.
    child: Option<u32>,
    /// Receives once the keeper thread has reaped the child.
    exited: Option<mpsc::Receiver<()>>,
}

impl Emulator {
    /// Uses the emulator answering on `port`, or installs (if needed) and starts one there.
    /// `log_dir` receives `moto-<port>.log`.
    pub fn ensure(port: u16, log_dir: &std::path::Path) -> Result<Emulator, EmulatorError> {
        if answers(port) {
            tracing::info!(port, "using the AWS emulator that already answers");
            return Ok(Emulator {
                port,
                child: None,
                exited: None,
            });
        }
        Self::start(port, log_dir)
    }

    /// Starts a new emulator on a free port (for test binaries).
    pub fn start_on_free_port(log_dir: &std::path::Path) -> Result<Emulator, EmulatorError> {
        let port = free_port().map_err(EmulatorError::Spawn)?;
        Self::start(port, log_dir)
    }

    /// Installs (if needed) and starts moto on `port`, and waits until it answers.
    pub fn start(port: u16, log_dir: &std::path::Path) -> Result<Emulator, EmulatorError> {
        let python = python();
        ensure_installed(&python)?;
        std::fs::create_dir_all(log_dir).map_err(EmulatorError::Spawn)?;
        let log_path = log_dir.join(format!("moto-{port}.log"));
        let log = std::fs::File::create(&log_path).map_err(EmulatorError::Spawn)?;
        let log_err = log.try_clone().map_err(EmulatorError::Spawn)?;
        let mut cmd = Command::new(&python);
        cmd.args([
            "-c",
            MOTO_LAUNCHER,
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
        // The keeper thread spawns the child and waits on it; it lives exactly as long as the
        // child. PR_SET_PDEATHSIG ties the child's life to that thread, so when this process
        // ends (even killed, even a test binary that never runs destructors) moto ends too.
        let (pid_tx, pid_rx) = mpsc::channel::<Result<u32, std::io::Error>>();
        let (exit_tx, exit_rx) = mpsc::channel::<()>();
        let (status_tx, status_rx) = mpsc::channel::<String>();
        std::thread::Builder::new()
            .name(format!("moto-{port}"))
            .spawn(move || {
                set_parent_death_signal(&mut cmd);
                match cmd.spawn() {
                    Ok(mut child) => {
                        let _ = pid_tx.send(Ok(child.id()));
                        let status = child
                            .wait()
                            .map(|s| s.to_string())
                            .unwrap_or_else(|e| e.to_string());
                        let _ = status_tx.send(status);
                        let _ = exit_tx.send(());
                    }
                    Err(e) => {
                        let _ = pid_tx.send(Err(e));
                    }
                }
            })
            .map_err(EmulatorError::Spawn)?;
        let pid = pid_rx
            .recv()
            .map_err(|_| {
                EmulatorError::Spawn(std::io::Error::other("emulator keeper thread died"))
            })?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => EmulatorError::NoPython {
                    python: python.clone(),
                    source: e,
                },
                _ => EmulatorError::Spawn(e),
            })?;
        let mut emulator = Emulator {
            port,
            child: Some(pid),
            exited: Some(exit_rx),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(status) = status_rx.try_recv() {
                emulator.child = None; // already reaped
                return Err(EmulatorError::Exited {
                    port,
                    status,
                    log: log_path.display().to_string(),
                    tail: tail(&log_path),
                });
            }
            if answers(port) {
                tracing::info!(port, pid, "AWS emulator started");
                return Ok(emulator);
            }
            if Instant::now() > deadline {
                drop(emulator);
                return Err(EmulatorError::Timeout {
                    port,
                    secs: START_TIMEOUT.as_secs(),
                    log: log_path.display().to_string(),
                    tail: tail(&log_path),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether this process started it (and so will stop it).
    pub fn started_here(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the emulator if we started it, and waits (briefly) until it is gone.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(pid) = self.child.take() {
            // SAFETY: plain kill(2) on the pid of a child we spawned and have not reaped yet
            // (the keeper thread reaps it, and we wait for that below).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            if let Some(rx) = self.exited.take() {
                if rx.recv_timeout(Duration::from_secs(5)).is_err() {
                    unsafe {
                        libc::kill(pid as libc::pid_t, libc::SIGKILL);
                    }
                    let _ = rx.recv_timeout(Duration::from_secs(2));
                }
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut Command) {}

/// The Python interpreter: `TESSERA_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("TESSERA_PYTHON")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// The installed moto version, if moto and its server extras import.
pub fn installed_version(python: &str) -> Result<Option<String>, EmulatorError> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m, moto.server, flask, flask_cors; print(m.version('moto'))",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EmulatorError::NoPython { python: python.into(), source: e })?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(Some(
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

/// Installs `moto[server]==MOTO_VERSION` unless exactly that version is importable.
pub fn ensure_installed(python: &str) -> Result<(), EmulatorError> {
    if installed_version(python)?.as_deref() == Some(MOTO_VERSION) {
        return Ok(());
    }
    tracing::info!(
        version = MOTO_VERSION,
        "installing the AWS emulator (moto server) with pip"
    );
    eprintln!("tessera: installing moto[server]=={MOTO_VERSION} with pip (once)...");
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            &format!("moto[server]=={MOTO_VERSION}"),
        ])
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EmulatorError::NoPython {
            python: python.into(),
            source: e,
        })?;
    if !out.status.success() {
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        return Err(EmulatorError::Install {
            python: python.into(),
            version: MOTO_VERSION,
            status: out.status.to_string(),
            output: last_lines(&text, 15),
        });
    }
    match installed_version(python)?.as_deref() {
        Some(MOTO_VERSION) => Ok(()),
        other => Err(EmulatorError::Install {
            python: python.into(),
            version: MOTO_VERSION,
            status: "0".into(),
            output: format!("pip succeeded but `import moto.server` reports version {other:?}"),
        }),
    }
}

/// Whether an HTTP server answers on 127.0.0.1:`port` (any status counts).
pub fn answers(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    matches!(s.read(&mut buf), Ok(n) if n >= 5 && &buf[..5] == b"HTTP/")
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

fn tail(path: &PathBuf) -> String {
    std::fs::read_to_string(path)
        .map(|s| last_lines(&s, 20))
        .unwrap_or_default()
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
