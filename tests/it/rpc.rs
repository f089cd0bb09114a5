//! The Cap'n Proto RPC receiver, driven by a capnp-rpc client.

use capnp_rpc::{rpc_twoparty_capnp, twoparty, RpcSystem};
use exporter_proxy::generated::metric_data_capnp::metrics_receiver;
use futures::AsyncReadExt;
use tokio_util::compat::TokioAsyncReadCompatExt;

use crate::support::*;

/// A capnp-rpc client of the proxy's RPC listener at `addr`, its RPC
/// system running as a local task (capnp-rpc is !Send: call it inside a
/// `LocalSet`).
pub(crate) async fn client(addr: std::net::SocketAddr) -> metrics_receiver::Client {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (reader, writer) = stream.compat().split();
    let network = Box::new(twoparty::VatNetwork::new(
        futures::io::BufReader::new(reader),
        futures::io::BufWriter::new(writer),
        rpc_twoparty_capnp::Side::Client,
        Default::default(),
    ));
    let mut system = RpcSystem::new(network, None);
    let client: metrics_receiver::Client = system.bootstrap(rpc_twoparty_capnp::Side::Server);
    tokio::task::spawn_local(system);
    client
}

/// One RPC push: the proxy's answer (accepted, error message), or `Err`
/// with capnp's message when the call itself failed.
pub(crate) async fn push(
    addr: std::net::SocketAddr,
    app: &str,
    text: &str,
) -> Result<(bool, String), String> {
    let app = app.to_owned();
    let text = text.to_owned();
    // capnp-rpc is !Send: run the client on a LocalSet.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            let client = client(addr).await;
            let mut req = client.push_request();
            {
                let mut m = req.get().init_metrics();
                m.set_app_name(&app[..]);
                m.set_data(&text[..]);
            }
            let resp = tokio::time::timeout(STEP, req.send().promise)
                .await
                .expect("an answer in time")
                .map_err(|e| e.to_string())?;
            let r = resp.get().unwrap();
            Ok((
                r.get_accepted(),
                r.get_error().unwrap().to_string().unwrap(),
            ))
        })
        .await
}

/// Pushes over RPC; returns (accepted, error).
async fn rpc_push(addr: std::net::SocketAddr, app: &str, text: &str) -> (bool, String) {
    push(addr, app, text).await.unwrap()
}

#[tokio::test]
async fn rpc_push_answers_accepted_or_why_not() {
    let app = TestApp::start().await;
    let (ok, err) = rpc_push(app.rpc, "r", "# TYPE r_up gauge\nr_up 1\n").await;
    assert!(ok, "{err}");
    assert_eq!(err, "");
    assert!(metric("r_up").value("1").is_in(&app.metrics().await));
    let (ok, err) = rpc_push(app.rpc, "r", "r_up{x=} 2\n").await;
    assert!(!ok);
    assert!(err.contains("app \"r\": line 1"), "{err}");
    let body = app.metrics().await;
    assert!(
        metric("r_up").value("1").is_in(&body),
        "previous set intact"
    );
    assert_eq!(
        metric("exporter_proxy_pushes_total")
            .label("listener", "rpc")
            .label("result", "accepted")
            .get(&body),
        Some(1.0)
    );
    app.stop().await;
}
