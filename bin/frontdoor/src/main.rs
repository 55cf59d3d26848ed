//! The `frontdoor` command: wiring and flags. The only place that reads flags or the
//! environment, and the only user of `anyhow`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use frontdoor_apiserver::{ApiServerConfig, KUBERNETES_MINOR};
use frontdoor_store::StoreConfig;

#[derive(Parser)]
#[command(name = "frontdoor", about = "Kubernetes Service networking in one binary", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the single-machine control plane: API server (and, as they land, controllers, node,
    /// proxy, DNS and ingress).
    Up(UpArgs),
    /// Print the frontdoor version and the Kubernetes API version it serves.
    Version,
}

#[derive(Parser)]
struct UpArgs {
    /// Address and port of the HTTPS API server.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Directory for the store, the CA, the token and the kubeconfig.
    #[arg(long, default_value = "/var/lib/frontdoor")]
    data_dir: PathBuf,
    /// Where to write the kubeconfig (default: <data-dir>/kubeconfig).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Address the `kubernetes` Service's endpoints point at (must not be loopback; without it the
    /// Service has no endpoints).
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// ClusterIP range for Services.
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cidr: String,
    /// NodePort range for NodePort and LoadBalancer Services.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// How many recent changes watches can resume from.
    #[arg(long, default_value_t = 100_000)]
    watch_window: usize,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FRONTDOOR_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Version => {
            println!("frontdoor {} (Kubernetes API v1.{KUBERNETES_MINOR})", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Up(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(up(args))
        }
    }
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let config = ApiServerConfig {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        service_cidr: args.service_cidr.clone(),
        node_port_range: args.service_node_port_range.clone(),
        advertise_address: args.advertise_address,
        store: StoreConfig { event_window: args.watch_window, ..StoreConfig::default() },
    };
    let server = frontdoor_apiserver::start(config).await.context("starting the API server")?;
    let kubeconfig_path = args.kubeconfig_out.unwrap_or_else(|| args.data_dir.join("kubeconfig"));
    write_kubeconfig(&kubeconfig_path, &server.kubeconfig)?;
    println!(
        "frontdoor API server ready at https://{} in {} ms; kubeconfig: {}",
        server.local_addr,
        server.started.elapsed().as_millis(),
        kubeconfig_path.display()
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    Ok(())
}

fn write_kubeconfig(path: &std::path::Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
