//! Build script.
//!
//! The Rust code generated from `schema/*.capnp` is committed under
//! `src/generated/`, so a normal build needs no `capnp` compiler. Building
//! with `--features regen-capnp` regenerates it (needs the `capnp` binary,
//! Debian package `capnproto`); CI does that and fails when the committed
//! code differs from what the schema produces.

fn main() {
    println!("cargo:rerun-if-changed=schema/metric_data.capnp");
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "regen-capnp")]
    regenerate();
    revision();
}

/// Exposes the git revision (for `exporter_proxy_build_info`) when the
/// source is a git checkout; `unknown` otherwise (e.g. a source tarball).
fn revision() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=EXPORTER_PROXY_REVISION={rev}");
}

#[cfg(feature = "regen-capnp")]
fn regenerate() {
    capnpc::CompilerCommand::new()
        .src_prefix("schema")
        .file("schema/metric_data.capnp")
        .output_path("src/generated")
        .default_parent_module(vec!["generated".into()])
        .run()
        .expect("capnp compile failed: is the `capnp` binary (Debian: capnproto) installed?");
}
