//! `readrealm-chat`: read the settings, open the store, start the shards, wait for SIGINT or
//! SIGTERM, shut down (every client gets an Engine.IO close), flush the store, exit 0.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use readrealm_chat::chat::auth::TokenVerifier;
use readrealm_chat::chat::cluster_node;
use readrealm_chat::chat::recovery::Recovery;
use readrealm_chat::chat::ChatApp;
use readrealm_chat::metrics::{Metrics, Section};
use readrealm_chat::server::{start_injectable, Ops};
use readrealm_chat::site::Site;
use readrealm_chat::store::Store;
use readrealm_chat::{config_file, logging};
use readrealm_chat::{log_error, log_info};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("backup") {
        return match readrealm_chat::store::backup::command(args.get(1..).unwrap_or_default()) {
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
    // Flags and environment (clap; --help and --version too), over the --config file, over
    // the defaults. A bad setting exits 2 with a message naming the flag and its variable.
    let (flags, settings) = match config_file::load_settings(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(e) => e.exit(),
    };
    if flags.print_config {
        print!("{}", config_file::to_toml(&settings));
        return ExitCode::SUCCESS;
    }
    // Token authentication: a bad key file stops the start like any bad setting (exit 2);
    // the message names the setting and the file, never what the file holds.
    let verifier = match TokenVerifier::from_settings(&settings.auth) {
        Ok(verifier) => verifier,
        Err(e) => {
            eprintln!("readrealm-chat: error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logging::init(settings.ops.log, settings.ops.log_format) {
        eprintln!("readrealm-chat: {e}");
        return ExitCode::FAILURE;
    }
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
    let mut app =
        ChatApp::new(Arc::clone(&store), settings.chat).with_metrics(Arc::clone(&metrics));
    // Connection state recovery: the readers kept at the last graceful shutdown come back
    // with their windows (taken out of the store, so a crash from here on recovers nobody
    // twice).
    let mut kept_loaded = 0;
    let recovery = (!settings.server.recovery_window.is_zero()).then(|| {
        let recovery = Arc::new(Recovery::new(settings.server.recovery_window));
        match store.take_kept_sessions() {
            Ok(Some(saved)) => {
                kept_loaded = recovery.load(&saved, std::time::Instant::now());
                log_info!("recovery_loaded", kept = kept_loaded);
            }
            Ok(None) => {}
            Err(e) => log_error!("recovery_load_failed", cause = e),
        }
        recovery
    });
    // Cluster mode: reach Redis and catch up with the log before accepting clients.
    let cluster = match &settings.cluster {
        Some(cluster) => {
            let prepared = cluster_node::prepare(
                cluster,
                &settings.data_dir,
                &store,
                kept_loaded == 0,
                settings.server.recovery_window,
            );
            match prepared {
                Ok(prepared) => {
                    metrics.add_section(Arc::clone(&prepared.status) as Arc<dyn Section>);
                    app = app.with_cluster(Arc::clone(&prepared.chat));
                    Some(prepared)
                }
                Err(e) => {
                    log_error!("cluster_start_failed", cause = e);
                    eprintln!("readrealm-chat: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        None => None,
    };
    if let Some(recovery) = &recovery {
        app = app.with_recovery(Arc::clone(recovery));
    }
    if let Some(verifier) = verifier {
        log_info!(
            "auth_enabled",
            key = verifier.kind().as_str(),
            issuer = settings.auth.issuer.as_deref().unwrap_or("-"),
            audience = settings.auth.audience.as_deref().unwrap_or("-"),
            leeway_secs = settings.auth.leeway_secs
        );
        app = app.with_auth(verifier);
    }
    let site = Site::load(settings.ops.client_js_path().as_deref());
    let ops = Ops::serving(metrics, Some(site));
    let (server, injector) = match start_injectable(settings.server.clone(), app, ops) {
        Ok(started) => started,
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
    let cluster = match cluster.map(|c| c.start(Arc::clone(&store), injector)) {
        None => None,
        Some(Ok(running)) => Some(running),
        Some(Err(e)) => {
            log_error!("cluster_start_failed", cause = e);
            server.shutdown();
            let _ = server.join();
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", server.local_addr());
    while !STOP.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    log_info!("shutting_down");
    server.shutdown();
    let joined = server.join();
    if let Some(cluster) = cluster {
        // Readers kept for recovery: the others must not see them leave while this node is
        // away for less than the window.
        let keep_for = recovery
            .as_ref()
            .filter(|r| r.kept_count() > 0)
            .map(|_| settings.server.recovery_window);
        cluster.stop(keep_for);
    }
    // The shutdown dropped every connection as recoverable: keep them for the next start.
    if let Some(recovery) = &recovery {
        let kept = recovery.kept_count();
        match store.save_kept_sessions(&recovery.save(std::time::Instant::now())) {
            Ok(()) => log_info!("recovery_saved", kept = kept),
            Err(e) => log_error!("recovery_save_failed", cause = e),
        }
    }
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
