//! Several attacks at once, three rounds in a row, against one server: the resident memory
//! must stay within the bound during each round and must not creep up from round to round
//! (a leak), and the descriptors must come back each time.

use std::io::Write;
use std::thread;
use std::time::Duration;

use crate::client::{connected_ws, raw_frame, ws_write_raw, POLLING_TARGET, WS_TARGET};
use crate::scene::Scene;
use crate::support::{parse_open, ws_connect, Http};

/// Resident memory may differ this much between the end of round 1 and of round 3.
const CREEP_LIMIT: u64 = 16 * 1024 * 1024;

fn round(scene: &Scene) {
    let addr = scene.addr();
    let mut workers = Vec::new();
    // 300 heads stopped half-way (answered 408 after the request timeout).
    workers.push(thread::spawn(move || {
        let mut conns: Vec<Http> = (0..300).map(|_| Http::connect(addr)).collect();
        for conn in &mut conns {
            conn.send_raw(format!("GET {POLLING_TARGET} HTTP/1.1\r\nX-Slow: ").as_bytes());
        }
        thread::sleep(Duration::from_millis(300));
    }));
    // 30 WebSockets each send a 900 KB message holding 300,000 JSON values.
    workers.push(thread::spawn(move || {
        let text = format!("42[\"chatMessage\",[{}]]", vec!["0"; 300_000].join(","));
        let frame = raw_frame(1, text.as_bytes(), true);
        let mut sockets: Vec<_> = (0..30).map(|_| connected_ws(addr)).collect();
        for ws in &mut sockets {
            let _ = ws.get_mut().write_all(&frame);
        }
        thread::sleep(Duration::from_millis(300));
    }));
    // 30 polling sessions each POST a 900 KB chat message nobody reads the answer to.
    workers.push(thread::spawn(move || {
        let body = format!(
            "40\x1e42[\"chatMessage\",{{\"bookId\":5,\"userId\":\"u\",\"username\":\"n\",\"content\":\"{}\"}}]",
            "z".repeat(900_000)
        );
        for _ in 0..30 {
            let answer = Http::connect(addr).get(POLLING_TARGET);
            let sid = parse_open(&answer.text())["sid"].as_str().unwrap().to_owned();
            let mut conn = Http::connect(addr);
            let _ = conn.post(&format!("{POLLING_TARGET}&sid={sid}"), body.as_bytes());
        }
    }));
    // 5 connections each ask for 3,000 namespaces that do not exist and never read.
    workers.push(thread::spawn(move || {
        let mut sockets: Vec<_> = (0..5).map(|_| connected_ws(addr)).collect();
        for ws in &mut sockets {
            let mut bytes = Vec::new();
            for i in 0..3000 {
                bytes.extend(raw_frame(1, format!("40/scan{i},").as_bytes(), true));
            }
            ws_write_raw(ws, &bytes);
        }
        thread::sleep(Duration::from_millis(300));
    }));
    // 200 Engine.IO sessions opened and abandoned.
    workers.push(thread::spawn(move || {
        let sockets: Vec<_> = (0..200)
            .map(|_| ws_connect(addr, WS_TARGET).expect("websocket"))
            .collect();
        thread::sleep(Duration::from_millis(300));
        drop(sockets);
    }));
    for worker in workers {
        worker.join().expect("attack worker");
    }
}

#[test]
fn mixed_attack_rounds_keep_memory_and_descriptors_bounded() {
    let scene = Scene::start(&[]);
    let mut after = Vec::new();
    for _ in 0..3 {
        round(&scene);
        scene.wait_more_traffic(20);
        // Let the server notice every close.
        thread::sleep(Duration::from_millis(500));
        after.push(scene.server.rss_bytes());
    }
    eprintln!(
        "mixed attack: RSS after each round {:?} KiB",
        after.iter().map(|b| b / 1024).collect::<Vec<_>>()
    );
    let creep = after[2].saturating_sub(after[0]);
    assert!(
        creep < CREEP_LIMIT,
        "RSS crept up by {} KiB from round 1 to round 3 ({after:?})",
        creep / 1024
    );
    scene.finish("mixed attack rounds");
}
