//! Aruba Cloud, legacy WsEndUser API: the credentials in a JSON body, the
//! credit in `Value.Value`. The sign is kept (the original dropped it) and
//! 0 is a balance. The body is the original's `json.dumps` of the
//! credentials, typed as the provider file typed them.

use super::pyjson::Json;
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
            let body = Json::Object(vec![
                ("Username", s.identifier_json()),
                ("Password", s.password_json()),
            ]);
            let req = s
                .client
                .post(s.url(PATH))
                .header("Content-Type", "application/json")
                .body(body.dumps());
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
