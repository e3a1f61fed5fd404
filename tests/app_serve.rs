//! GUI test of the Serve switch in the Steer panel (egui_kittest): with the tiny fixture model
//! loaded through the scripted picker and a vector in the list, switching Serve on starts the
//! OpenAI-compatible server on loopback, the panel shows its URL and a curl line naming the
//! vector, a real HTTP client gets the vector listed and a steered answer, and switching it off
//! closes the port.
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use steerlab::app::{PanelId, ScriptedPicker, StartOptions, SteerlabApp};
use steerlab::steer::vector::VectorMeta;
use steerlab::steer::SteeringVector;

mod common;
use common::{shows, wait_for_jobs};

fn post(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, raw.split_once("\r\n\r\n").unwrap().1.to_string())
}

#[test]
fn serve_switch_starts_and_stops_the_server() {
    common::home();
    let picker = ScriptedPicker::new();
    let start = StartOptions {
        panel: Some(PanelId::Model),
        ..Default::default()
    };
    let app = SteerlabApp::new(Box::new(picker.clone()), None, start);
    // Tall enough that the Serve section is on screen below the vector list.
    let mut h = Harness::builder()
        .with_size([1280.0, 1400.0])
        .allow_missing_glyphs()
        .build_ui_state(|ui, app: &mut SteerlabApp| app.show(ui), app);
    h.run();
    picker.push(Some(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/llama"),
    ));
    h.get_by_label("Open folder…").click();
    wait_for_jobs(&mut h);
    let hidden = {
        let m = h.state().state.model.as_ref().expect("the fixture loads");
        m.model.hidden_size()
    };
    let d: Vec<f32> = (0..hidden).map(|i| (i as f32 * 0.7 + 1.0).sin()).collect();
    let v = SteeringVector::new(
        BTreeMap::from([(1usize, d)]),
        VectorMeta::new("test", "tiny", hidden),
    )
    .unwrap();
    h.state_mut().state.steer.add_vector("my vec".into(), v);
    h.state_mut().state.steer.serve_port = 0;
    h.state_mut().select(PanelId::Steer);
    h.run();
    assert!(h.state().state.steer.server.is_none());

    h.get_by_label("Serve OpenAI API").click();
    h.run();
    let addr = match &h.state().state.steer.server {
        Some(s) => s.addr(),
        None => panic!("not serving: {:?}", h.state().state.steer.serve_error),
    };
    assert!(addr.ip().is_loopback());
    assert!(shows(&h, &format!("Serving at http://{addr}/v1")));
    let curl = h
        .state()
        .state
        .steer
        .server
        .as_ref()
        .unwrap()
        .curl_example();
    assert!(curl.starts_with(&format!("curl http://{addr}/v1/chat/completions")));
    assert!(curl.contains(r#""vector": "my_vec""#), "{curl}");
    assert!(h.query_by_label("Copy curl").is_some());

    // The server answers with the app's vector.
    let (status, body) = post(addr, "GET", "/v1/vectors", "");
    assert_eq!(status, 200, "{body}");
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listing["data"][0]["id"], "my_vec");
    let (status, body) = post(
        addr,
        "POST",
        "/v1/completions",
        r#"{"prompt":"a b","max_tokens":3,"temperature":0,"steering":[{"vector":"my_vec","scale":2}]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["steering"]["applied"][0]["vector"], "my_vec");

    // Off: the server goes and the port closes.
    h.get_by_label("Serve OpenAI API").click();
    h.run();
    assert!(h.state().state.steer.server.is_none());
    assert!(!shows(&h, "Serving at"));
    let t0 = Instant::now();
    while TcpStream::connect(addr).is_ok() {
        assert!(t0.elapsed() < Duration::from_secs(10), "port still open");
        std::thread::sleep(Duration::from_millis(20));
    }
}
