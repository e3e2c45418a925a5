//! The WebSocket transport: `GET /socket.io/?EIO=4&transport=websocket` upgraded with
//! tokio-tungstenite (small buffers, so 100,000 idle clients stay cheap), one Engine.IO packet
//! per text frame. A reader task answers pings and feeds the handler; a writer task drains the
//! queue, flushing once per batch of queued packets. The socket is read through
//! [`TimestampedStream`], so each packet reaches the handler with the kernel's receive time of
//! the read that completed its frame (see `tsstream` for that definition).

use crate::net::{self, Target};
use crate::transport::{protocol_error, Conn, ConnectAnswer, Handler, Out};
use crate::tsstream::TimestampedStream;
use futures_util::{SinkExt, StreamExt};
use std::io;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

fn ws_err(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e.to_string())
}

pub async fn connect<H: Handler>(
    target: &Target,
    src: Ipv4Addr,
    payload: Option<&str>,
    mut handler: H,
) -> io::Result<Conn> {
    let (stream, clock) = TimestampedStream::new(net::connect(target, src).await?)?;
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", target.host);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .map_err(ws_err)?;
    // Engine.IO open packet, then the Socket.IO CONNECT and its answer.
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().starts_with('0') => {}
        other => {
            return Err(protocol_error(format!(
                "expected open packet, got {other:?}"
            )))
        }
    }
    ws.send(Message::text(format!("40{}", payload.unwrap_or(""))))
        .await
        .map_err(ws_err)?;
    let answer = loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let s = t.as_str();
                if s.starts_with("40") {
                    break ConnectAnswer::parse(s)?;
                } else if s == "2" {
                    ws.send(Message::text("3")).await.map_err(ws_err)?;
                } else if s.starts_with("44") {
                    return Err(protocol_error(format!("connect refused: {s}")));
                } else if let Some(p) = s.strip_prefix('4') {
                    handler(p, clock.last());
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(ws_err(e)),
            None => return Err(protocol_error("closed before CONNECT answer")),
        }
    };

    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let closed = Arc::new(AtomicBool::new(false));
    let pong_tx = tx.clone();
    let reader_closed = closed.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Text(t) => {
                    let s = t.as_str();
                    if s == "2" {
                        let _ = pong_tx.send(Out::Packet("3".to_string()));
                    } else if let Some(p) = s.strip_prefix('4') {
                        handler(p, clock.last());
                    } else if s.starts_with('1') {
                        break;
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        reader_closed.store(true, Ordering::Relaxed);
        drop(pong_tx);
    });
    let writer_closed = closed.clone();
    let writer = tokio::spawn(async move {
        'outer: while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(out) = next.take() {
                match out {
                    Out::Packet(p) => {
                        if sink.feed(Message::text(p)).await.is_err() {
                            break 'outer;
                        }
                    }
                    Out::Close => {
                        let _ = sink.send(Message::Close(None)).await;
                        break 'outer;
                    }
                }
                next = rx.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        writer_closed.store(true, Ordering::Relaxed);
        let _ = sink.close().await;
    });
    let tasks = vec![reader.abort_handle(), writer.abort_handle()];
    Ok(Conn::new(tx, closed, tasks, answer))
}
