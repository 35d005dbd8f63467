//! `troupe serve`: the local API (`server`) from the command line, on this process's engine and
//! the same library as the window. Prints the address and the key it accepts (the window's, made
//! and saved now when there is none; `--key` or `TROUPE_API_KEY` for scripts), loads the model
//! in the background (requests meanwhile get 503 with Retry-After) and serves until Ctrl+C.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::app::vocabulary::ApiSettings;
use crate::app::Troupe;
use crate::server::{self, Options};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The address to listen on; anything but this computer's (127.0.0.1, ::1) needs
    /// --allow-network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// The port (default: Settings → Local API's, 7337 unless changed).
    #[arg(long)]
    pub port: Option<u16>,
    /// The key clients must send as 'Authorization: Bearer KEY' (default: the window's).
    #[arg(long, env = "TROUPE_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Listen beyond this computer on purpose: anyone on the network who has the key can talk
    /// to your characters.
    #[arg(long)]
    pub allow_network: bool,
    /// A browser origin allowed to call the API (CORS), e.g. http://localhost:8000 (repeatable).
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub origins: Vec<String>,
}

pub async fn serve(troupe: &Troupe, model: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    let mut settings = troupe.settings();
    let key = match args.key {
        Some(k) => k,
        None => window_key(troupe, &mut settings.api)?,
    };
    let mut origins = settings.api.origins.clone();
    origins.extend(args.origins);
    let options = Options {
        host: args.host,
        port: args.port.unwrap_or(settings.api.port),
        key: key.clone(),
        origins,
        allow_network: args.allow_network,
    };
    let (t, s) = (troupe.clone(), settings.clone());
    let loading = tokio::spawn(async move { t.start_engine(&s, model.as_deref()).await });
    let reader = troupe.clone();
    let running =
        server::start(troupe.clone(), Arc::new(move || reader.settings()), options).await?;
    if !args.host.is_loopback() {
        eprintln!(
            "warning: listening on {} — anyone on the network with the key can use it",
            args.host
        );
    }
    println!("Troupe's API: http://{}/v1", running.address);
    println!("Key: {key}");
    println!("Models: GET /v1/models (the loaded model, and troupe/<id> for every character)");
    match loading.await {
        Ok(Ok(())) => eprintln!(
            "[model ready: {}]",
            troupe.engine_status().ready_name().unwrap_or_default()
        ),
        Ok(Err(e)) => eprintln!("[the model did not load: {e}; characters answer once one does]"),
        Err(e) => eprintln!("[the model did not load: {e}]"),
    }
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl+C")?;
    eprintln!("[stopping: replies under way finish first]");
    running.stop().await;
    Ok(())
}

/// The key the window shows; made and saved now when there is none yet.
fn window_key(troupe: &Troupe, api: &mut ApiSettings) -> anyhow::Result<String> {
    if api.ensure_key() {
        troupe
            .save_api_settings(api)
            .context("cannot save the new API key in the settings")?;
    }
    Ok(api.key.clone().unwrap_or_default())
}
