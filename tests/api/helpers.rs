//! Spawning the real binary on port 0 and talking HTTP/1.1 to it over real sockets.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hello_birthday::configuration;

pub use crate::http::{Connection, Response};

pub const BINARY: &str = env!("CARGO_BIN_EXE_hello-birthday");

/// Generous: a debug binary on a loaded 2-core CI machine.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `hello-birthday` process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    child: Child,
    /// Every line the server logged to stdout (JSON, one object per line).
    logs: Arc<Mutex<Vec<String>>>,
    /// Keeps the temp data directory alive when the server owns it.
    _temp: Option<tempfile::TempDir>,
}

/// How to start a server. `TestServer::builder().spawn()` is the common case.
#[derive(Default)]
pub struct Builder {
    data_dir: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Builder {
    /// Share a data directory with other servers (the default is a fresh temp directory).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    pub fn spawn(self) -> TestServer {
        let (temp, data_dir) = match self.data_dir {
            Some(dir) => (None, dir),
            None => {
                let temp = tempfile::tempdir().expect("temp dir");
                let dir = temp.path().join("data");
                (Some(temp), dir)
            }
        };
        let mut command = base_command();
        command
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--data-dir",
            ])
            .arg(&data_dir)
            .args(&self.args)
            .envs(self.env)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn().expect("spawn hello-birthday");

        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if std::env::var_os("TEST_LOG").is_some() {
                    println!("{line}");
                }
                if let Some(addr) = listening_addr(&line) {
                    let _ = addr_tx.send(addr);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match addr_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not log its address; logs: {:?}",
                    logs.lock().unwrap()
                );
            }
        };
        TestServer {
            addr,
            data_dir,
            child,
            logs,
            _temp: temp,
        }
    }
}

/// The binary with none of its settings inherited from the test's environment (a
/// developer's DATA_DIR, say): every variable the app reads, as its clap definition lists
/// them, is removed, and the log filter set.
pub fn base_command() -> Command {
    let mut command = Command::new(BINARY);
    forget_inherited_settings(&mut command);
    command.env(configuration::LOG_FILTER_ENV, "info");
    command
}

/// Removes from `command`'s environment every variable the app reads.
pub fn forget_inherited_settings(command: &mut Command) {
    for setting in configuration::environment() {
        command.env_remove(&setting.name);
    }
}

pub fn listening_addr(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value["message"] != "listening" {
        return None;
    }
    value["addr"].as_str()?.parse().ok()
}

impl TestServer {
    pub fn builder() -> Builder {
        Builder::default()
    }

    pub fn spawn() -> Self {
        Self::builder().spawn()
    }

    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], None)
    }

    pub fn put_json(&self, path: &str, body: &str) -> Response {
        self.request(
            "PUT",
            path,
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
    }

    pub fn put_date(&self, username: &str, date: &str) -> Response {
        self.put_json(
            &format!("/hello/{username}"),
            &format!(r#"{{"dateOfBirth":"{date}"}}"#),
        )
    }

    /// One request on a fresh connection. Panics if the server does not answer.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        Connection::open(self.addr)
            .and_then(|mut c| c.send(method, path, headers, body))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Every line the server logged, as written.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGKILL, and reap the process. The data directory stays (until `self` is dropped,
    /// if the server owns it).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `PUT /hello/alice` (with `headers`) on a new connection and returns once the write
    /// is running in the store. With every lock held elsewhere ([`hold_every_lock`]) it then
    /// waits for a lock, up to `--lock-timeout`; the connection still waits for its answer.
    pub fn put_that_waits_for_a_lock(&self, headers: &[(&str, &str)]) -> Connection {
        let body = br#"{"dateOfBirth":"1990-01-15"}"#;
        let mut head = String::from("PUT /hello/alice HTTP/1.1\r\nHost: t\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut connection = Connection::open(self.addr).unwrap();
        connection.send_raw(head.as_bytes()).unwrap();
        connection.send_raw(body).unwrap();
        self.wait_until("the write is running", Duration::from_secs(10), || {
            self.get("/metrics")
                .text()
                .contains("storage_operations_in_flight 1")
        });
        connection
    }

    /// Polls `check` until it holds (a readiness poll, never a blind sleep).
    pub fn wait_until(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Today in UTC, the date the service computes against.
pub fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

/// Runs `test` with today's date and asserts its result, unless the date changed while it
/// ran (midnight UTC): then it runs again, so the suite never flakes at midnight.
pub fn on_a_stable_date(mut test: impl FnMut(chrono::NaiveDate) -> Result<(), String>) {
    for _ in 0..2 {
        let day = today();
        let result = test(day);
        if day == today() {
            if let Err(message) = result {
                panic!("{message}");
            }
            return;
        }
    }
    panic!("the date changed twice during one test");
}

/// Every file under `root`, with its contents: a snapshot to compare before and after.
pub fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.map_while(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                let contents = std::fs::read(&path).unwrap_or_default();
                out.push((path, contents));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// The record files (`users/**/*.json`) under a data directory.
pub fn record_files(root: &Path) -> Vec<PathBuf> {
    snapshot(&root.join("users"))
        .into_iter()
        .map(|(path, _)| path)
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect()
}

/// Takes the file lock of every lock stripe under `data_dir`, as a writer frozen in another
/// process would hold one; dropping the files releases them.
pub fn hold_every_lock(data_dir: &Path) -> Vec<std::fs::File> {
    (0..64)
        .map(|stripe| {
            let file = std::fs::File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(data_dir.join(format!("locks/{stripe:02}.lock")))
                .unwrap();
            file.lock().unwrap();
            file
        })
        .collect()
}
