//! The dashboard in a real headless browser (Debian's Chromium, driven over WebDriver by
//! chromedriver): with a 3-node mesh running a job, the page shows the three peers, the job
//! appears and reaches 100%, and the job's grid has one cell per task. A screenshot of each page
//! is saved in target/test-artifacts/.
//!
//! As root it installs chromium and chromium-driver if they are missing (`.ci/run` does too);
//! otherwise, without them, it says so and passes without looking.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Makes sure the browser is there; `None` (and why) if it cannot be.
fn browser() -> Result<(), String> {
    if Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists() {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !root {
        return Err("chromium and chromium-driver are not installed (root installs them)".into());
    }
    let setup = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/browser-setup.sh");
    let status = Command::new("sh")
        .arg(setup)
        .status()
        .map_err(|e| e.to_string())?;
    if status.success() {
        Ok(())
    } else {
        Err("installing chromium failed".into())
    }
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    base: String,
    http: reqwest::Client,
    session: String,
}

impl Drop for Driver {
    /// Ends chromedriver and every browser process it started (they share its process group),
    /// whether the test passed or not.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        use std::os::unix::process::CommandExt;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap().keep();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--window-size=1366,768",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let deadline = Instant::now() + Duration::from_secs(20);
        let session = loop {
            if let Ok(r) = http
                .post(format!("{base}/session"))
                .json(&caps)
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && let Some(id) = v["value"]["sessionId"].as_str()
            {
                break id.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start a session"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Self {
            child,
            base,
            http,
            session,
        }
    }

    async fn post(&self, what: &str, body: Value) -> Value {
        let url = format!("{}/session/{}/{what}", self.base, self.session);
        let v: Value = self
            .http
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.post("url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body) in the page and returns its value.
    async fn eval(&self, script: &str) -> Value {
        self.post("execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Polls `script` until `ok` holds of its value, or panics with `what` at the deadline.
    async fn await_value(&self, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.eval(script).await;
            if ok(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: last saw {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Closes the browser.
    async fn quit(&self) {
        let url = format!("{}/session/{}", self.base, self.session);
        let _ = self.http.delete(url).send().await;
    }

    async fn screenshot(&self, path: &Path) {
        let url = format!("{}/session/{}/screenshot", self.base, self.session);
        let v: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        use base64::Engine as _;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_mesh_and_a_job_reaching_100_percent() {
    if let Err(why) = browser() {
        eprintln!("skipped: {why}");
        return;
    }
    // Every node shares the same folder: one dataset of one part, held three times.
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("a.log"), "sensor ok\n").unwrap();
    let share = format!("logs={}", shared.path().display());
    let mesh = Mesh::start_with(&[1, 1, 1], &["--share", &share]).await;
    let node = &mesh.nodes[0];
    let client = node.client();
    let driver = Driver::start().await;
    driver.goto(&client.dashboard_url(None)).await;
    // The token leaves the address bar; the three peers are listed.
    let peers = driver
        .await_value(
            "three peers in the table",
            "return Array.from(document.querySelectorAll('#peers tbody tr[data-peer]')).map(r => r.dataset.peer);",
            |v| v.as_array().is_some_and(|a| a.len() == 3),
        )
        .await;
    for n in &mesh.nodes {
        assert!(
            peers
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p == n.peer_id.as_str()),
            "{peers}"
        );
    }
    let datasets = driver
        .await_value(
            "the shared dataset, held by the three nodes",
            "const r = document.querySelector('#datasets tr[data-dataset]'); return r ? [r.dataset.dataset, r.cells[4].textContent] : null;",
            |v| v.as_array().is_some_and(|a| a[1].as_str().is_some_and(|h| h.matches('+').count() == 2)),
        )
        .await;
    assert_eq!(datasets[0], "logs", "{datasets}");
    let address = driver.eval("return location.href;").await;
    assert!(!address.as_str().unwrap().contains("token="), "{address}");
    // A job of many tasks, slow enough to be seen running.
    let request =
        shoal_node::job_request::JobRequest::parse("pi", &["300000000".into()], 4, None, Some(60))
            .unwrap();
    let job = tokio::spawn(async move { client.submit(request, |_| {}).await });
    let id = driver
        .await_value(
            "the job in the jobs table",
            "const r = document.querySelector('#jobs tr[data-job]'); return r ? r.dataset.job : null;",
            Value::is_string,
        )
        .await;
    let id = id.as_str().unwrap().to_string();
    driver
        .screenshot(&artifacts().join("dashboard-mesh.png"))
        .await;
    let done = job.await.unwrap().unwrap();
    assert_eq!(done.job.id, id);
    driver
        .await_value(
            "the job at 100%",
            &format!("const p = document.querySelector('#jobs tr[data-job=\"{id}\"] .progress'); return p ? p.dataset.percent : null;"),
            |v| v == "100",
        )
        .await;
    // Its page: one cell per task, all done, 100%.
    driver.goto(&node.client().dashboard_url(Some(&id))).await;
    let total = done.job.total as usize;
    driver
        .await_value(
            "one grid cell per task",
            "return document.querySelectorAll('#grid .cell').length;",
            |v| v.as_u64() == Some(total as u64),
        )
        .await;
    driver
        .await_value(
            "the job page at 100%",
            "const e = document.getElementById('job-percent'); return e ? e.textContent.trim() : null;",
            |v| v.as_str().is_some_and(|s| s.starts_with("100")),
        )
        .await;
    let status = driver
        .eval("return document.getElementById('job-status').textContent;")
        .await;
    assert!(status.as_str().unwrap().contains("complete"), "{status}");
    driver
        .screenshot(&artifacts().join("dashboard-job.png"))
        .await;
    driver.quit().await;
}
