//! `steerlab serve`: the official `openai` Python client against the binary on the default model
//! (plain, streamed and steered requests; steered greedy output equal to `steerlab generate
//! --steer`; concurrent steered and unsteered requests; client-visible errors), the queue and
//! disconnect behaviour over raw HTTP, and the 400/401/404/413 answers of the library server on
//! the tiny fixture model. The Python environment with `openai` comes from
//! `scripts/pyenv.sh openai` (created on first use). Needs the default model in the cache.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use steerlab::model::{LoadOptions, Model};
use steerlab::serve::{Limits, ServeConfig, Server, VectorStore};
use steerlab::steer::vector::VectorMeta;
use steerlab::steer::SteeringVector;

const BIN: &str = env!("CARGO_BIN_EXE_steerlab");

/// A deterministic direction of width `hidden` at `layer`, norm about `sqrt(hidden / 2)`.
fn wave_vector(hidden: usize, layer: usize, model: &str) -> SteeringVector {
    let d: Vec<f32> = (0..hidden).map(|i| (i as f32 * 0.7 + 1.0).sin()).collect();
    SteeringVector::new(
        BTreeMap::from([(layer, d)]),
        VectorMeta::new("test", model, hidden),
    )
    .unwrap()
}

/// Kills the server process when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `steerlab serve ARGS --port 0` and returns it with its address (read from the
/// `listening on` line).
fn serve(args: &[&str]) -> (Proc, SocketAddr) {
    let mut child = Command::new(BIN)
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("steerlab serve starts");
    let out = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .trim_end_matches("/v1")
        .to_string();
    (Proc(child), url.parse().unwrap())
}

/// One HTTP/1.1 request over a fresh connection; returns status and body (read to the end).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    send(&mut s, method, path, key, body);
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (status, body.to_string())
}

fn send(s: &mut TcpStream, method: &str, path: &str, key: Option<&str>, body: &str) {
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s.flush().unwrap();
}

fn json(body: &str) -> serde_json::Value {
    // Chunked bodies (SSE) are not parsed here; JSON answers carry Content-Length.
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
}

fn health(addr: SocketAddr) -> serde_json::Value {
    json(&http(addr, "GET", "/health", None, "").1)
}

fn wait_health(addr: SocketAddr, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let t0 = Instant::now();
    loop {
        let h = health(addr);
        if ok(&h) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "{what}: {h}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn openai_python() -> PathBuf {
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pyenv.sh"))
        .arg("openai")
        .output()
        .expect("bash runs scripts/pyenv.sh");
    assert!(
        out.status.success(),
        "scripts/pyenv.sh openai could not prepare the openai client:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn openai_client_plain_streamed_steered_and_concurrent() {
    let model = steerlab::testing::default_model();
    let dir = tempfile::tempdir().unwrap();
    let vdir = dir.path().join("vectors");
    std::fs::create_dir(&vdir).unwrap();
    let vfile = vdir.join("wave.safetensors");
    wave_vector(576, 14, "smollm2").save(&vfile).unwrap();
    let (prompt, max_tokens, scale) = ("Tell me about your favourite food.", "24", "4");

    // What `steerlab generate --steer` prints with the same settings (greedy, chat template).
    let out = Command::new(BIN)
        .args([
            "generate",
            "--chat",
            "--prompt",
            prompt,
            "--max-new-tokens",
            max_tokens,
        ])
        .arg("--steer")
        .arg(format!("{}:{scale}", vfile.display()))
        .arg("--model")
        .arg(&model)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = String::from_utf8(out.stdout).unwrap();
    let expected = expected.strip_suffix('\n').unwrap_or(&expected);
    let expected_file = dir.path().join("expected.txt");
    std::fs::write(&expected_file, expected).unwrap();

    let key = "test-key-123";
    let (_server, addr) = serve(&[
        "--model",
        model.to_str().unwrap(),
        "--vectors",
        vdir.to_str().unwrap(),
        "--api-key",
        key,
        "--model-id",
        "smollm2",
    ]);
    let py = openai_python();
    let out = Command::new(py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_serve_openai.py"))
        .args(["--base-url", &format!("http://{addr}/v1")])
        .args(["--model", "smollm2", "--api-key", key, "--vector", "wave"])
        .args([
            "--scale",
            scale,
            "--prompt",
            prompt,
            "--max-tokens",
            max_tokens,
        ])
        .arg("--expected-steered")
        .arg(&expected_file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json(stdout.trim());
    assert_eq!(summary["ok"], true);
    assert_eq!(summary["steered"], expected);
    assert_ne!(summary["plain"], summary["steered"]);
    // Every request above ended normally (none failed or was cut).
    let h = health(addr);
    assert_eq!(h["failed"], 0, "{h}");
}

#[test]
fn full_queue_is_429_and_disconnects_cancel() {
    let model = steerlab::testing::default_model();
    let (_server, addr) = serve(&[
        "--model",
        model.to_str().unwrap(),
        "--parallel",
        "1",
        "--queue",
        "1",
    ]);
    let long = r#"{"prompt": "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,", "max_tokens": 2000, "temperature": 0, "stream": true}"#;
    let mut a = TcpStream::connect(addr).unwrap();
    send(&mut a, "POST", "/v1/completions", None, long);
    wait_health(addr, "A active", |h| h["active"] == 1);
    let mut b = TcpStream::connect(addr).unwrap();
    send(&mut b, "POST", "/v1/completions", None, long);
    wait_health(addr, "B queued", |h| h["queued"] == 1);
    let (status, body) = http(addr, "POST", "/v1/completions", None, long);
    assert_eq!(status, 429, "{body}");
    assert_eq!(json(&body)["error"]["type"], "rate_limit_error");
    // A streams while B waits; closing A cancels it and B starts.
    let mut buf = [0u8; 256];
    let n = a.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(a);
    wait_health(addr, "A cancelled, B active", |h| {
        h["cancelled"] == 1 && h["active"] == 1 && h["queued"] == 0
    });
    drop(b);
    wait_health(addr, "B cancelled", |h| {
        h["cancelled"] == 2 && h["active"] == 0
    });
    // A non-streamed request whose client goes away is cancelled too.
    let mut c = TcpStream::connect(addr).unwrap();
    let long_plain = long.replace("true", "false");
    send(&mut c, "POST", "/v1/completions", None, &long_plain);
    wait_health(addr, "C active", |h| h["active"] == 1);
    drop(c);
    wait_health(addr, "C cancelled", |h| {
        h["cancelled"] == 3 && h["active"] == 0
    });
    // The server still answers.
    let (status, body) = http(
        addr,
        "POST",
        "/v1/completions",
        None,
        r#"{"prompt": "Hello", "max_tokens": 2, "temperature": 0}"#,
    );
    assert_eq!(status, 200, "{body}");
    wait_health(addr, "Hello completed", |h| {
        h["completed"] == 1 && h["active"] == 0 && h["failed"] == 0 && h["cancelled"] == 3
    });
}

/// The library server on the tiny fixture model with one vector, an API key and small limits.
fn tiny_server() -> Server {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama");
    let model = Arc::new(Model::load(&path, &LoadOptions::default()).unwrap());
    let v = wave_vector(model.hidden_size(), 1, "tiny");
    let store = VectorStore::from_vectors(vec![("wave".into(), v)], &model).unwrap();
    let mut cfg = ServeConfig::local("tiny", 0);
    cfg.api_key = Some("k".into());
    cfg.aliases = vec!["tiny-alias".into()];
    cfg.limits = Limits {
        max_body_bytes: 2048,
        max_prompt_tokens: 20,
        max_tokens: 64,
        default_chat_max_tokens: 8,
        ..Limits::default()
    };
    Server::start(model, store, cfg).unwrap()
}

#[test]
fn errors_are_400_401_404_413_with_the_field() {
    let server = tiny_server();
    let addr = server.addr();
    assert!(addr.ip().is_loopback());
    let k = Some("k");
    // 401: no key, wrong key; the key works on every /v1 endpoint.
    for key in [None, Some("kk"), Some("")] {
        let (status, body) = http(addr, "GET", "/v1/models", key, "");
        assert_eq!(status, 401, "{body}");
        assert_eq!(json(&body)["error"]["type"], "authentication_error");
    }
    let (status, body) = http(addr, "POST", "/v1/completions", None, r#"{"prompt":"a"}"#);
    assert_eq!(status, 401, "{body}");
    let (status, body) = http(addr, "GET", "/v1/models", k, "");
    assert_eq!(status, 200);
    assert_eq!(json(&body)["data"][0]["id"], "tiny");
    let (status, body) = http(addr, "GET", "/v1/vectors", k, "");
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["data"][0]["id"], "wave");
    assert_eq!(v["data"][0]["layers"], serde_json::json!([1]));
    // 404: unknown endpoint, unknown model.
    let (status, body) = http(addr, "GET", "/v1/nothing", k, "");
    assert_eq!(status, 404, "{body}");
    let (status, body) = http(
        addr,
        "POST",
        "/v1/completions",
        k,
        r#"{"model":"gpt-4","prompt":"a"}"#,
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(json(&body)["error"]["code"], "model_not_found");
    // An alias (a cached default's short name) names the served model; the answer carries the id.
    let (status, body) = http(
        addr,
        "POST",
        "/v1/completions",
        k,
        r#"{"model":"TINY-alias","prompt":"a","max_tokens":2}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["model"], "tiny");
    // 400s naming the field.
    let cases = [
        ("/v1/completions", "{not json", None),
        (
            "/v1/completions",
            r#"{"prompt":"a","max_tokens":"9"}"#,
            Some("max_tokens"),
        ),
        (
            "/v1/completions",
            r#"{"prompt":"a","max_tokens":65}"#,
            Some("max_tokens"),
        ),
        (
            "/v1/completions",
            r#"{"prompt":"a","top_p":2}"#,
            Some("top_p"),
        ),
        (
            "/v1/completions",
            r#"{"prompt":"a","steering":[{"vector":"../wave"}]}"#,
            Some("steering[0].vector"),
        ),
        (
            "/v1/completions",
            r#"{"prompt":"a","steering":[{"vector":"/etc/passwd"}]}"#,
            Some("steering[0].vector"),
        ),
        (
            "/v1/completions",
            r#"{"prompt":"a","steering":[{"vector":"wave"},{"vector":"nope"}]}"#,
            Some("steering[1].vector"),
        ),
        (
            "/v1/completions",
            r#"{"prompt":"a","steering":[{"vector":"wave","scale":"big"}]}"#,
            Some("steering[0].scale"),
        ),
        (
            "/v1/completions",
            &format!(r#"{{"prompt":"{}"}}"#, "word ".repeat(60)),
            Some("prompt"),
        ),
        (
            "/v1/chat/completions",
            r#"{"messages":"hi"}"#,
            Some("messages"),
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = http(addr, "POST", path, k, body);
        assert_eq!(status, 400, "{body}: {answer}");
        let e = json(&answer);
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["param"].as_str(), field, "{body}: {answer}");
        if let Some(f) = field {
            assert!(
                e["error"]["message"].as_str().unwrap().contains(f),
                "{answer}"
            );
        }
    }
    // 413: a body declared over the limit is refused before it is read (only the headers are
    // sent, so the server closes a connection with nothing unread).
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer k\r\nContent-Length: 4096\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("larger than the limit of 2048 bytes"), "{raw}");
    // A steered request works and says what it applied; the same request without the vector
    // differs (the tiny model is random, but the vector is large).
    let steered = r#"{"prompt":"a b c","max_tokens":6,"temperature":0,
        "steering":[{"vector":"wave","scale":30,"positions":"all"}]}"#;
    let (status, body) = http(addr, "POST", "/v1/completions", k, steered);
    assert_eq!(status, 200, "{body}");
    let r = json(&body);
    assert_eq!(r["steering"]["applied"][0]["vector"], "wave");
    assert_eq!(
        r["steering"]["applied"][0]["layers"],
        serde_json::json!([1])
    );
    assert!(r["usage"]["completion_tokens"].as_u64().unwrap() <= 6);
    // Streaming: server-sent events ending in [DONE].
    let (status, body) = http(
        addr,
        "POST",
        "/v1/completions",
        k,
        r#"{"prompt":"a b c","max_tokens":4,"temperature":0,"stream":true}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("data: {") && body.contains("data: [DONE]"),
        "{body}"
    );
    server.stop().unwrap();
    assert!(
        TcpStream::connect(addr).is_err(),
        "the port is closed after stop"
    );
}
