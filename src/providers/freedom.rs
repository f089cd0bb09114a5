//! Freedom-VRN (ISP): a JSON-RPC-like API; `auth` gives a token sent as
//! `Ic-Token` to `getClient`, whose `client.billing.balance` is the balance.
//! A refused password is `cannot_proceed` (the original said `no_answer`).
//! `error` is compared as Python's `== 0` does (`0`, `0.0` and `false`
//! pass); the credentials are sent typed as the provider file typed them.

use super::pyjson::{equals_zero, Json};
use super::{balance_at, fail, json, send, Code, Collect, Provider, Session, Step};

/// `FreedomVrnRussia`.
#[derive(Debug)]
pub struct FreedomVrnRussia;

const API: &str = "/lk/api/v1";

impl Provider for FreedomVrnRussia {
    fn name(&self) -> &'static str {
        "FreedomVrnRussia"
    }

    fn default_base(&self) -> &'static str {
        "https://lk-api.freedom-vrn.ru"
    }

    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a> {
        Box::pin(async move {
            let what = "POST /lk/api/v1 auth";
            let body = Json::Object(vec![
                ("method", Json::str("auth")),
                (
                    "params",
                    Json::Object(vec![
                        ("username", s.identifier_json()),
                        ("password", s.password_json()),
                    ]),
                ),
            ]);
            let req = s
                .client
                .post(s.url(API))
                .header("Content-Type", "application/json")
                .body(body.dumps());
            let resp = send(req, Step::First, what).await?;
            let auth = json(resp, Code::NoAnswer, what).await?;
            if !equals_zero(auth.get("error")) {
                return Err(fail(
                    Code::CannotProceed,
                    format!("{what}: login refused (`error` is not 0)"),
                ));
            }
            let token = match auth.get("token").and_then(|t| t.as_str()) {
                Some(t) if !t.is_empty() => t.to_owned(),
                _ => {
                    return Err(fail(
                        Code::CannotProceed,
                        format!("{what}: no token in the answer"),
                    ))
                }
            };
            let what = "POST /lk/api/v1 getClient";
            let body = Json::Object(vec![
                ("method", Json::str("getClient")),
                ("params", Json::Object(Vec::new())),
            ]);
            let req = s
                .client
                .post(s.url(API))
                .header("Ic-Token", token)
                .header("Content-Type", "application/json")
                .body(body.dumps());
            let resp = send(req, Step::Later, what).await?;
            let client = json(resp, Code::ParsingError, what).await?;
            balance_at(&client, &["client", "billing", "balance"], what)
        })
    }
}
