//! Aruba Cloud, legacy WsEndUser API: the credentials in a JSON body, the
//! credit in `Value.Value`. The sign is kept (the original dropped it) and
//! 0 is a balance.

use serde_json::json;

use super::{balance_at, fail, json, send, Code, Collect, Provider, Session, Step};

/// `ArubaCloud`.
#[derive(Debug)]
pub struct ArubaCloud;

const PATH: &str = "/WsEndUser/v2.9/WsEndUser.svc/json/GetCredit";

impl Provider for ArubaCloud {
    fn name(&self) -> &'static str {
        "ArubaCloud"
    }

    fn default_base(&self) -> &'static str {
        "https://api.dc3.computing.cloud.it"
    }

    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a> {
        Box::pin(async move {
            let what = "POST GetCredit";
            let body = json!({"Username": s.identifier, "Password": s.password.expose()});
            let req = s
                .client
                .post(s.url(PATH))
                .header("Content-Type", "application/json")
                .body(body.to_string());
            let resp = send(req, Step::First, what).await?;
            let body = json(resp, Code::ParsingError, what).await?;
            // The API answers refused credentials with 200 and `Success: false`.
            if body.get("Success") == Some(&serde_json::Value::Bool(false)) {
                return Err(fail(
                    Code::CannotProceed,
                    format!("{what}: the portal refused the credentials (Success: false)"),
                ));
            }
            balance_at(&body, &["Value", "Value"], what)
        })
    }
}
