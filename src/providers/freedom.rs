//! Freedom-VRN (ISP): a JSON-RPC-like API; `auth` gives a token sent as
//! `Ic-Token` to `getClient`, whose `client.billing.balance` is the balance.
//! A refused password is `cannot_proceed` (the original said `no_answer`).

use serde_json::json;

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
            let body = json!({
                "method": "auth",
                "params": {"username": s.raw_identifier, "password": s.password.expose()},
            });
            let req = s
                .client
                .post(s.url(API))
                .header("Content-Type", "application/json")
                .body(body.to_string());
            let resp = send(req, Step::First, what).await?;
            let auth = json(resp, Code::NoAnswer, what).await?;
            if auth.get("error").and_then(|e| e.as_i64()) != Some(0) {
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
            let req = s
                .client
                .post(s.url(API))
                .header("Ic-Token", token)
                .header("Content-Type", "application/json")
                .body(json!({"method": "getClient", "params": {}}).to_string());
            let resp = send(req, Step::Later, what).await?;
            let client = json(resp, Code::ParsingError, what).await?;
            balance_at(&client, &["client", "billing", "balance"], what)
        })
    }
}
