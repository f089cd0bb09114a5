//! A template for a new provider: copy this file to `src/providers/<name>.rs`,
//! rename the struct, follow the portal's flow, then
//!
//! 1. add `pub mod <name>;` and the struct to [`super::all`] in `mod.rs`;
//! 2. add the name under `identifiers.properties` in
//!    `schema/ssp-exporter.schema.json` (`$ref: #/$defs/identifier_list`);
//! 3. add a mock portal and its tests to `tests/it/providers.rs`.
//!
//! The rules every provider follows: build requests from `s.client` (it has
//! the user agent, the cookie jar, TLS settings and the timeout), send them
//! with [`super::send`] and the right [`super::Step`], read bodies with
//! [`super::text`] / [`super::json`], find the balance with
//! [`super::balance_at`] or [`super::parse_amount`], keep the sign, and
//! return a [`super::Failure`] with the most specific [`super::Code`].
//! Never put a password, token, cookie or body in a message.
//!
//! This template is not registered: it is an example that compiles.

use super::{balance_at, json, send, Code, Collect, Provider, Session, Step};

/// An example portal answering `GET /api/balance` with `{"balance": 1.5}`.
#[derive(Debug)]
pub struct Template;

impl Provider for Template {
    fn name(&self) -> &'static str {
        "Template"
    }

    fn default_base(&self) -> &'static str {
        "https://portal.example"
    }

    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a> {
        Box::pin(async move {
            let what = "GET /api/balance";
            let req = s
                .client
                .get(s.url("/api/balance"))
                .basic_auth(&s.identifier, Some(s.password.expose()));
            let resp = send(req, Step::First, what).await?;
            let body = json(resp, Code::ParsingError, what).await?;
            balance_at(&body, &["balance"], what)
        })
    }
}
