//! Vultr (cloud), official API v2: one GET with the API key as bearer
//! token. Vultr reports what is owed: a negative `balance` is credit. The
//! exported balance follows every other provider (credit positive, debt
//! negative), so it is negated; the original's `abs()` made a debt look
//! like credit. 0 is a balance, not an error.

use super::{balance_at, json, send, Code, Collect, Provider, Session, Step};

/// `Vultr`.
#[derive(Debug)]
pub struct Vultr;

impl Provider for Vultr {
    fn name(&self) -> &'static str {
        "Vultr"
    }

    fn default_base(&self) -> &'static str {
        "https://api.vultr.com"
    }

    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a> {
        Box::pin(async move {
            let what = "GET /v2/account";
            let req = s
                .client
                .get(s.url("/v2/account"))
                .bearer_auth(s.password.expose());
            let resp = send(req, Step::First, what).await?;
            let body = json(resp, Code::ParsingError, what).await?;
            // `0.0 - b` rather than `-b`: a zero balance stays 0, not -0.
            balance_at(&body, &["account", "balance"], what).map(|b| 0.0 - b)
        })
    }
}
