//! The `memshelf-agent` binary.

use clap::Parser;
use memshelf_agent::config::{Cli, Config};
use tracing::info;

fn main() -> std::process::ExitCode {
    let cfg = match Config::resolve(Cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("memshelf-agent: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    memshelf_agent::log::init(cfg.log_format, cfg.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("memshelf-agent: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        let agent = match memshelf_agent::start(cfg).await {
            Ok(a) => a,
            Err(e) => {
                eprintln!("memshelf-agent: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        let signal = wait_for_signal().await;
        info!(signal = %signal, "shutting down");
        agent.shutdown().await;
        std::process::ExitCode::SUCCESS
    })
}

async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Cannot install handlers: run until killed.
        std::future::pending::<()>().await;
        return "none";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
