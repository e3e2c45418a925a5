//! `readrealm-chat`: read the settings, start the shards, wait for SIGINT/SIGTERM, shut down.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use readrealm_chat::config::{env_name, ServerConfig, FLAGS};
use readrealm_chat::socketio::{Event, Handler, Refusal, Socket};
use serde_json::Value;

/// The protocol core on its own: Socket.IO clients connect to `/`; no chat events are
/// handled yet (unknown events are ignored, as CHAT_API.md says).
struct ProtocolOnly;

impl Handler for ProtocolOnly {
    type State = ();

    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn on_connect(&self, _socket: &mut Socket<'_, ()>, _auth: &Value) -> Result<(), Refusal> {
        Ok(())
    }

    fn on_event(&self, _socket: &mut Socket<'_, ()>, _event: Event) {}
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn usage() -> String {
    let mut text = String::from("usage: readrealm-chat [FLAG VALUE]...\n\nflags (each also read from its environment variable):\n");
    for (flag, help) in FLAGS {
        text.push_str(&format!(
            "  {flag:<18} {help}\n  {:<18} env {}\n",
            "",
            env_name(flag)
        ));
    }
    text
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    let config = match ServerConfig::from_env_and_args(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("readrealm-chat: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let server = match readrealm_chat::server::start(config.clone(), ProtocolOnly) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("readrealm-chat: cannot listen on {}: {e}", config.listen);
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "readrealm-chat listening on {} with {} shards",
        server.local_addr(),
        config.shards
    );
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("readrealm-chat: shutting down");
    server.shutdown();
    match server.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("readrealm-chat: {e}");
            ExitCode::FAILURE
        }
    }
}
