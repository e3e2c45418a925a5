//! Idle HTTP keep-alive connections (`--request-timeout`): a connection that has answered its
//! requests and then sends nothing is closed, without a response, one request timeout after
//! its last answer; not earlier while requests keep coming, and not never. Guards the request
//! deadline queue (one queued entry per connection, a later deadline re-queued when the entry
//! surfaces; src/server/shard.rs). Stalled heads (408) are in tests/limits.rs.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// The request timeout the tests run with.
const TIMEOUT: Duration = Duration::from_millis(400);
/// How much earlier than one timeout after the answer a close may come: the server starts the
/// clock when it writes the answer, a little before the client has read it.
const EARLY: Duration = Duration::from_millis(50);
/// How much later a close may come (a loaded machine, timer slack).
const LATE: Duration = Duration::from_millis(600);

fn server() -> TestServer {
    start_socketio(|c| {
        c.request_timeout = TIMEOUT;
        // Sessions opened by the handshakes below never send CONNECT; they must not matter.
        c.connect_timeout = Duration::from_secs(30);
        quiet(c);
    })
}

/// One request on `http`, answered 200; the instant the answer was read.
fn handshake_on(server: &TestServer, http: &mut Http) -> Instant {
    let response = http.get(&server.polling_target(None));
    assert_eq!(response.status, 200, "{response:?}");
    Instant::now()
}

/// Wait for the server to close `http` (no bytes first); how long after `since` it did.
fn close_after(http: &mut Http, since: Instant) -> Duration {
    assert!(
        http.closed_within(TIMEOUT + LATE),
        "the idle connection is still open {:?} after its last answer",
        since.elapsed()
    );
    since.elapsed()
}

#[test]
fn a_keep_alive_connection_is_served_while_active_and_closed_one_timeout_after_its_last_answer() {
    let server = server();
    let mut http = server.http();
    // Requests for 2.5 timeouts, each well within the timeout of the one before: the first
    // deadlines surface while a later one is due, and must not close the connection.
    let started = Instant::now();
    let mut last = handshake_on(&server, &mut http);
    while started.elapsed() < TIMEOUT * 5 / 2 {
        thread::sleep(TIMEOUT / 3);
        last = handshake_on(&server, &mut http);
    }
    let closed = close_after(&mut http, last);
    assert!(
        closed >= TIMEOUT - EARLY,
        "closed {closed:?} after the last answer, before the {TIMEOUT:?} timeout"
    );
}

#[test]
fn idle_connections_close_in_the_order_of_their_last_answers() {
    let server = server();
    // Three connections answered 150 ms apart, in the order b, a, c (a opened first), so the
    // deadline queue holds a's first entry ahead of b's later deadline.
    let mut a = server.http();
    let mut b = server.http();
    let mut c = server.http();
    handshake_on(&server, &mut a);
    let b_last = handshake_on(&server, &mut b);
    thread::sleep(Duration::from_millis(150));
    let a_last = handshake_on(&server, &mut a);
    thread::sleep(Duration::from_millis(150));
    let c_last = handshake_on(&server, &mut c);
    let waits: Vec<_> = [(a, a_last), (b, b_last), (c, c_last)]
        .into_iter()
        .map(|(mut http, last)| thread::spawn(move || close_after(&mut http, last)))
        .collect();
    for (name, wait) in ["a", "b", "c"].into_iter().zip(waits) {
        let closed = wait.join().expect("the waiting thread");
        assert!(
            closed >= TIMEOUT - EARLY,
            "{name} closed {closed:?} after its last answer, before the {TIMEOUT:?} timeout"
        );
    }
}
