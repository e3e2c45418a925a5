//! `readrealm-chat`: read the settings, open the store, start the shards, wait for SIGINT or
//! SIGTERM, shut down (every client gets an Engine.IO close), flush the store, exit 0.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use readrealm_chat::chat::ChatApp;
use readrealm_chat::config::{env_name, Settings, FLAGS};
use readrealm_chat::metrics::Metrics;
use readrealm_chat::server::Ops;
use readrealm_chat::site::Site;
use readrealm_chat::store::Store;
use readrealm_chat::{log_error, log_info};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn usage() -> String {
    let mut text = String::from(
        "usage: readrealm-chat [FLAG VALUE]... [--print-config]\n       \
         readrealm-chat backup --data-dir DIR --to NEW_DIR\n\n\
         ReadRealm Chat: the book chat server (Socket.IO v5 on /socket.io/).\n\n\
         flags (each also read from its environment variable; flags win):\n",
    );
    for (flag, help) in FLAGS {
        text.push_str(&format!(
            "  {flag:<22} {help}\n  {:<22} env {}\n",
            "",
            env_name(flag)
        ));
    }
    text
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{}", usage());
        return ExitCode::SUCCESS;
    }
    if args.first().map(String::as_str) == Some("backup") {
        return match readrealm_chat::store::backup::command(&args[1..]) {
            Ok(done) => {
                println!("{done}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("readrealm-chat backup: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let print_config = args.iter().any(|a| a == "--print-config");
    args.retain(|a| a != "--print-config");
    let settings = match Settings::from_env_and_args(&args) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("readrealm-chat: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    if print_config {
        print!("{}", readrealm_chat::config_file::to_toml(&settings));
        return ExitCode::SUCCESS;
    }
    readrealm_chat::logging::set_level(settings.ops.log);
    let store = match Store::open(&settings.data_dir, settings.sync_writes) {
        Ok(store) => Arc::new(store),
        Err(e) => {
            log_error!(
                "store_open_failed",
                data_dir = settings.data_dir.display(),
                cause = e
            );
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let metrics = Metrics::new(settings.server.shards);
    let app = ChatApp::new(Arc::clone(&store), settings.chat).with_metrics(Arc::clone(&metrics));
    let site = Site::load(settings.ops.client_js_path().as_deref());
    let ops = Ops::serving(metrics, Some(site));
    let server = match readrealm_chat::server::start_with(settings.server.clone(), app, ops) {
        Ok(server) => server,
        Err(e) => {
            log_error!("listen_failed", listen = settings.server.listen, cause = e);
            return ExitCode::FAILURE;
        }
    };
    log_info!(
        "listening",
        addr = server.local_addr(),
        shards = settings.server.shards,
        data_dir = settings.data_dir.display(),
        version = env!("CARGO_PKG_VERSION")
    );
    println!("listening on {}", server.local_addr());
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    log_info!("shutting_down");
    server.shutdown();
    let joined = server.join();
    let flushed = store.flush();
    match (joined, flushed) {
        (Ok(()), Ok(())) => {
            log_info!("stopped");
            ExitCode::SUCCESS
        }
        (Err(e), _) => {
            log_error!("shard_failed", cause = e);
            ExitCode::FAILURE
        }
        (_, Err(e)) => {
            log_error!("store_flush_failed", cause = e);
            ExitCode::FAILURE
        }
    }
}
