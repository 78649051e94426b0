//! The committed CRD YAML in `deploy/crds/` must match what the types generate.

use std::fs;
use std::path::PathBuf;

use kelp_api::crd::{CRD_DIR, render_all};

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(CRD_DIR)
}

#[test]
fn crds_are_up_to_date() {
    let dir = crd_dir();
    let update = std::env::var_os("KELP_UPDATE_CRDS").is_some_and(|v| v == "1");
    let files = render_all();
    let mut stale = Vec::new();
    for file in &files {
        let path = dir.join(&file.file_name);
        if fs::read_to_string(&path).ok().as_deref() == Some(file.yaml.as_str()) {
            continue;
        }
        if update {
            fs::create_dir_all(&dir).unwrap();
            fs::write(&path, &file.yaml).unwrap();
        } else {
            stale.push(file.file_name.clone());
        }
    }
    for entry in fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let generated = files.iter().any(|f| f.file_name == name);
        if name.starts_with("kubeless.io_") && !generated {
            if update {
                fs::remove_file(dir.join(&name)).unwrap();
            } else {
                stale.push(format!("{name} (no longer generated)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{CRD_DIR} is out of date: {stale:?}\n\
         regenerate with: KELP_UPDATE_CRDS=1 cargo test -p kelp-api --test crds"
    );
}

#[test]
fn rendered_yaml_reads_back_as_the_same_crds() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

    for (file, crd) in render_all().iter().zip(kelp_api::crd::crds()) {
        let read: CustomResourceDefinition = serde_saphyr::from_str(&file.yaml).unwrap();
        assert_eq!(read, crd, "{}", file.file_name);
        let version = &crd.spec.versions[0];
        assert!(version.subresources.as_ref().unwrap().status.is_some(), "{}", file.file_name);
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.group, kelp_api::GROUP);
        assert_eq!(version.name, kelp_api::VERSION);
    }
}
