//! The ReadRealm book chat (docs/API.md) on socketioxide + axum (tokio), history in memory: a
//! baseline that readrealm-chat is compared with (tools/compare, tools/loadgen).
//!
//! `readrealm-baseline-socketioxide --listen HOST:PORT [chat flags]` prints
//! `listening on HOST:PORT` on stdout once it accepts connections. This file owns the flags and
//! the server's setup; `chat` the contract, `validate` the payload rules.

mod chat;
mod validate;

use std::io::Write;
use std::time::Duration;

use socketioxide::extract::SocketRef;
use socketioxide::SocketIo;

use chat::{Chat, Limits};

struct Settings {
    listen: String,
    limits: Limits,
    max_payload: u64,
    ping_interval: Duration,
    ping_timeout: Duration,
}

const USAGE: &str = "usage: readrealm-baseline-socketioxide [--listen HOST:PORT] [--max-rooms N] \
[--message-rate R] [--message-burst B] [--max-content-length C] [--max-payload BYTES] \
[--ping-interval MS] [--ping-timeout MS]";

fn parse_args() -> Result<Settings, String> {
    let mut s = Settings {
        listen: "0.0.0.0:3000".into(),
        limits: Limits::default(),
        // docs/API.md's maximum payload, socket.io's maxHttpBufferSize default.
        max_payload: 1_000_000,
        ping_interval: Duration::from_millis(25_000),
        ping_timeout: Duration::from_millis(20_000),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, value) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), v.to_owned()),
            None => {
                let v = args
                    .next()
                    .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?;
                (arg, v)
            }
        };
        let bad = |what: &str| format!("{flag}: not {what}: {value}");
        let positive = |v: &str| v.parse::<f64>().ok().filter(|x| x.is_finite() && *x > 0.0);
        let whole = |v: &str| v.parse::<u64>().ok().filter(|x| *x > 0);
        match flag.as_str() {
            "--listen" => s.listen = value.clone(),
            "--max-rooms" => {
                s.limits.max_rooms = whole(&value).ok_or_else(|| bad("a positive whole number"))? as usize
            }
            "--message-rate" => {
                s.limits.message_rate = positive(&value).ok_or_else(|| bad("a positive number"))?
            }
            "--message-burst" => {
                s.limits.message_burst = positive(&value).ok_or_else(|| bad("a positive number"))?
            }
            "--max-content-length" => {
                s.limits.max_content_chars =
                    whole(&value).ok_or_else(|| bad("a positive whole number"))? as usize
            }
            "--max-payload" => s.max_payload = whole(&value).ok_or_else(|| bad("a positive whole number"))?,
            "--ping-interval" => {
                s.ping_interval =
                    Duration::from_millis(whole(&value).ok_or_else(|| bad("a positive whole number"))?)
            }
            "--ping-timeout" => {
                s.ping_timeout =
                    Duration::from_millis(whole(&value).ok_or_else(|| bad("a positive whole number"))?)
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    Ok(s)
}

#[tokio::main]
async fn main() {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("readrealm-baseline-socketioxide: {e}");
            std::process::exit(2);
        }
    };
    let (layer, io) = SocketIo::builder()
        .max_payload(settings.max_payload)
        // A WebSocket message over the maximum payload closes the connection, as in socket.io
        // (socketioxide's own default lets WebSocket messages reach 64 MiB).
        .ws_max_message_size(settings.max_payload as usize)
        .ws_max_frame_size(settings.max_payload as usize)
        // Packets queued per connection before emit fails (socketioxide's default is 128): high
        // enough that a burst of broadcasts to a slow reader is queued, not dropped, as socket.io
        // does (it has no such bound).
        .max_buffer_size(100_000)
        .ping_interval(settings.ping_interval)
        .ping_timeout(settings.ping_timeout)
        .build_layer();
    let chat = Chat::new(settings.limits);
    io.ns("/", move |s: SocketRef| chat.on_connect(s));

    let app = axum::Router::new().layer(layer);
    let listener = match tokio::net::TcpListener::bind(&settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "readrealm-baseline-socketioxide: cannot listen on {}: {e}",
                settings.listen
            );
            std::process::exit(1);
        }
    };
    let addr = listener
        .local_addr()
        .map_or_else(|_| settings.listen.clone(), |a| a.to_string());
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
    // SIGTERM or Ctrl-C ends the process at once (nothing to flush: the history is in memory).
    tokio::spawn(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async {
                match term.as_mut() {
                    Some(t) => { t.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
        }
        std::process::exit(0);
    });
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("readrealm-baseline-socketioxide: {e}");
        std::process::exit(1);
    }
}
