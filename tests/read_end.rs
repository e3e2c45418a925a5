//! How far the shard reads a socket (`server/shard/read.rs`, `ReadUntil`): a short read ends
//! the reading of an edge-triggered socket, except when the readiness event also said the peer
//! ended its stream, which raises no new event and so must be read at once.
//!
//! Over real sockets: the client sends its last bytes and its FIN in one TCP segment
//! (`MSG_MORE`, then `shutdown(Write)`: the kernel puts the FIN on the held-back segment), so
//! the server's one readiness event carries both. A shard that stopped at the short read would
//! never learn of the end of stream and would hold the connection until the request deadline
//! (10 s here); it must close it at once.

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use support::{start_engineio, Http};

/// Far below the request deadline (10 s), far above a loaded machine's scheduling delay.
const EOF_WITHIN: Duration = Duration::from_secs(2);

#[test]
fn bytes_and_end_of_stream_in_one_segment_close_the_connection_at_once() {
    let server = start_engineio(|_| {});
    let mut http = Http::connect(server.addr);
    // A first request answered: the connection is accepted, registered and idle, so the next
    // segment reaches the server as a readiness event on a registered socket.
    http.stream
        .write_all(b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 4096];
    let n = http.stream.read(&mut first).expect("the first answer");
    let head = String::from_utf8_lossy(first.get(..n).unwrap_or_default()).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    std::thread::sleep(Duration::from_millis(50));

    // Part of a request head, then the end of stream, in one segment.
    let partial = b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    let sent = socket2::SockRef::from(&http.stream)
        .send_with_flags(partial, libc::MSG_MORE)
        .expect("send");
    assert_eq!(sent, partial.len());
    http.stream.shutdown(Shutdown::Write).unwrap();

    http.stream.set_read_timeout(Some(EOF_WITHIN)).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    match http.stream.read_to_end(&mut rest) {
        Ok(_) => {}
        // A reset also ends the connection; only a timeout means it was held open.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the server did not close the connection within {EOF_WITHIN:?} of the client's \
             end of stream ({e}; {} bytes read after {:?})",
            rest.len(),
            started.elapsed()
        ),
    }
    // The incomplete head is never answered (the stream ended before its end).
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}
