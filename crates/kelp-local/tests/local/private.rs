//! What a function may not see of the platform: other users see none of the data directory, and
//! an instance gets the host's tool and locale settings, not the whole environment of the
//! process that runs the platform (broker passwords, cloud credentials).

use crate::support::{SERIAL, config, deployment, get, serve, text_spec};
use http::StatusCode;
use kelp_local::Platform;
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn the_data_directories_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("platform");
    let _platform = Platform::new(config(&data, 0)).unwrap();
    for sub in ["", "code", "cache", "run", "logs"] {
        let mode = std::fs::metadata(data.join(sub)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", data.join(sub).display());
    }
}

/// Cargo runs this test with `CARGO_MANIFEST_DIR` and `CARGO_PKG_NAME` set: variables of the
/// platform's environment that are no host setting, standing for a broker's password.
#[tokio::test]
async fn instances_do_not_inherit_the_platform_environment() {
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some(), "cargo sets it for tests");
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let platform = Platform::new(config(dir.path(), 0)).unwrap();
    let served = serve(&platform).await;
    let code = "import os\ndef env(event, context):\n    \
                return ' '.join(sorted(k for k in os.environ if k in ('PATH', 'CARGO_MANIFEST_DIR', 'CARGO_PKG_NAME')))\n";
    platform.deploy(deployment("env", text_spec("python3", "env.env", code), Default::default())).await.unwrap();
    let reply = get(&format!("{}/default/env/", served.base)).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "PATH"));
    platform.shutdown().await;
}
