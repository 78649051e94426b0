//! Serves the API on `KELP_LISTEN` (default `127.0.0.1:0`; the address is printed) over a store
//! in `KELP_DATA` (default: a new temporary directory), optionally with the token `KELP_TOKEN`.
//! For trying kubectl against it and for quick measurements:
//!
//! ```sh
//! cargo run --release -p kelp-apiserver --example serve
//! ```

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = match std::env::var_os("KELP_DATA") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("kelp-serve-{}", std::process::id())),
    };
    let store = kelp_apiserver::open_store(data.join("kelp.redb")).await?;
    let token = std::env::var("KELP_TOKEN").ok();
    let app = kelp_apiserver::router(kelp_apiserver::ApiServerConfig::new(store).with_token(token));
    let listen = std::env::var("KELP_LISTEN").unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{} (data in {})", listener.local_addr()?, data.display());
    axum::serve(listener, app).await?;
    Ok(())
}
