#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, the capnp code check, unit
# and integration tests (including the interop tests against promtool,
# netcat, pycapnp and prometheus_client).
#
# Then a short smoke run of the benchmark tool (src/bin/ep-bench, see
# docs/benchmarks.md) against the Pushgateway and nginx: small scale, no
# thresholds; it fails on any error.
#
# Installs what the tests need when it is missing: Debian packages
# (prometheus for promtool, a server to poll and the remote-write
# receiver, prometheus-node-exporter, prometheus-pushgateway,
# victoria-metrics, influxdb, netcat-openbsd, capnproto, python3-venv,
# systemd for systemd-analyze and systemd-socket-activate, nginx for the
# benchmark smoke run, golang-go and golang-github-prometheus-client-golang-dev
# for the Go client tests, chromium for the web UI tests, curl for the
# README's commands, iproute2 for ss) via
# apt-get (as root, or with sudo), and a Python venv in target/test-venv
# with python_test_clients/requirements.txt. The interop tests fail, never
# skip, when a tool is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v prometheus-node-exporter >/dev/null || missing+=(prometheus-node-exporter)
command -v nc.openbsd >/dev/null || missing+=(netcat-openbsd)
command -v capnp >/dev/null || missing+=(capnproto)
command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v influxd >/dev/null || missing+=(influxdb)
command -v python3 >/dev/null || missing+=(python3)
# The expfmt differential oracle (tests/go/expfmt_oracle) builds offline on these.
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/prometheus/common/expfmt ] || missing+=(golang-github-prometheus-common-dev)
if ! command -v systemd-analyze >/dev/null || ! command -v systemd-socket-activate >/dev/null; then
    missing+=(systemd)
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then missing+=(python3-venv); fi
command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
[ -x /usr/sbin/nginx ] || missing+=(nginx)
# Go's client_golang (tests/go/, built offline in GOPATH mode by tests/it/golang.rs).
command -v go >/dev/null || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/prometheus/client_golang/prometheus/push ] ||
    missing+=(golang-github-prometheus-client-golang-dev)
# The web UI tests drive a headless browser.
command -v chromium >/dev/null || missing+=(chromium)
# The README test runs its shell blocks, which use curl.
command -v curl >/dev/null || missing+=(curl)
# The listen backlog test reads it with ss.
command -v ss >/dev/null || missing+=(iproute2)
# libfuzzer-sys compiles libFuzzer's C++ sources when the fuzz targets are checked.
command -v c++ >/dev/null || missing+=(g++)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    as_root apt-get update -q
    # nginx's package tries to start its own service, which fails where port
    # 80 is taken or no init system runs: tolerate that, then check below
    # that every tool is there.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        echo "warning: apt-get install reported an error; checking the tools" >&2
    for tool in promtool nc.openbsd capnp prometheus-pushgateway /usr/sbin/nginx go; do
        command -v "$tool" >/dev/null || { echo "missing after install: $tool" >&2; exit 1; }
    done
fi

venv=target/test-venv
if ! cmp -s python_test_clients/requirements.txt "$venv/.requirements"; then
    echo "== creating the Python venv $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r python_test_clients/requirements.txt
    cp python_test_clients/requirements.txt "$venv/.requirements"
fi
export EXPORTER_PROXY_TEST_PYTHON="$PWD/$venv/bin/python"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== imports point down the layers (ARCHITECTURE.md, Layers)"
python3 scripts/check_layers.py

echo "== no file over 1,200 lines, no function over 150 (outside tests and generated code)"
python3 scripts/check_sizes.py

echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "== the fuzz targets still build against the library"
# fuzz/ is a workspace of its own, outside `cargo test`: without this, an API
# change leaves its targets broken until the next fuzzing run.
cargo check --locked --quiet --manifest-path fuzz/Cargo.toml --bins

echo "== committed capnp code matches schema/"
saved=$(mktemp -d)
cp -r src/generated "$saved/"
cargo build --locked --quiet --features regen-capnp
if ! diff -r "$saved/generated" src/generated; then
    echo "src/generated differs from what schema/ produces: commit the regenerated code" >&2
    exit 1
fi
rm -rf "$saved"

echo "== systemd-analyze verify systemd/*"
# verify checks that ExecStart's binary exists and is executable, so the
# units are checked from a copy whose ExecStart points at the binary just
# built; everything else is verified as committed. It exits 0 on unknown
# keys and other warnings: any output counts as a failure. No running
# systemd is needed.
units=$(mktemp -d)
cp systemd/exporter-proxy.service systemd/exporter-proxy.socket "$units/"
sed -i "s|^ExecStart=/usr/bin/exporter-proxy |ExecStart=$PWD/target/debug/exporter-proxy |" "$units/exporter-proxy.service"
grep -q "^ExecStart=$PWD/target/debug/exporter-proxy " "$units/exporter-proxy.service" || {
    echo "systemd/exporter-proxy.service: ExecStart is not /usr/bin/exporter-proxy ..." >&2
    exit 1
}
if ! verify_out=$(systemd-analyze verify --man=no "$units/exporter-proxy.socket" "$units/exporter-proxy.service" 2>&1) || [ -n "$verify_out" ]; then
    echo "$verify_out" >&2
    echo "systemd-analyze verify failed" >&2
    exit 1
fi
rm -rf "$units"

echo "== cargo test"
test_log=$(mktemp)
cargo test --locked 2>&1 | tee "$test_log"

echo "== benchmark smoke run (ep-bench, 3 apps x 20 series, no thresholds)"
# Debug binaries, already built by cargo test; bounded in time.
cargo build --locked --quiet --bins
timeout 120 target/debug/ep-bench --scales 3x20 --clients 2 --max-pushes 40 --push-secs 1 \
    --latency-samples 10 --scrape-secs 0.3 --rounds 1 --change-samples 2 --load-secs 20
echo "== steady-state smoke run (ep-bench --steady, 5 apps x 20 series, 3 s per target, no thresholds)"
timeout 120 target/debug/ep-bench --steady --steady-apps 5 --steady-series 20 --steady-push-period 1 \
    --steady-scrape-period 0.5 --steady-secs 3 --steady-push-conns 2 --load-secs 20
echo "== steady-state smoke run, pushes only (ep-bench --steady --steady-pushes-only)"
timeout 120 target/debug/ep-bench --steady --steady-pushes-only --steady-apps 5 --steady-series 20 \
    --steady-push-period 1 --steady-secs 2 --steady-settle-secs 1 --steady-push-conns 2 --load-secs 20

# One closing line for the whole suite: the sum of every test binary's
# "test result" line (the last one printed is the empty doc-test run).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$test_log"
rm -f "$test_log"
