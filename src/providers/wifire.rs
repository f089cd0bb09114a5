//! Wifire (ISP): a GET that primes the cookie jar, a JSON login, the
//! balance, then a logout whose failure never replaces the balance read.
//! The account number is URL-encoded (the original interpolated it raw).
//! `resultCode` and `statusCode` are compared as Python's `== 0` does; the
//! credentials are sent typed as the provider file typed them.

use super::pyjson::{equals_zero, Json};
use super::{balance_at, fail, json, send, send_unchecked, Code, Collect, Provider, Session, Step};

/// `WifireRussia`.
#[derive(Debug)]
pub struct WifireRussia;

impl Provider for WifireRussia {
    fn name(&self) -> &'static str {
        "WifireRussia"
    }

    fn default_base(&self) -> &'static str {
        "https://my.wifire.ru"
    }

    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a> {
        Box::pin(async move {
            let what = "GET /api/v1/get-way";
            let url = format!(
                "{}?accountNumber={}",
                s.url("/api/v1/get-way"),
                super::t2::urlencode(&s.identifier)
            );
            send(s.client.get(url), Step::First, what).await?;
            let what = "POST /api/v2/login";
            let body = Json::Object(vec![
                ("accountNumber", s.identifier_json()),
                ("password", s.password_json()),
                ("captchaCode", Json::str("")),
                ("save", Json::str("true")),
            ]);
            let req = s
                .client
                .post(s.url("/api/v2/login"))
                .header("Content-Type", "application/json")
                .body(body.dumps());
            let resp = send(req, Step::Later, what).await?;
            let login = json(resp, Code::CannotProceed, what).await?;
            if !equals_zero(login.get("resultCode")) {
                return Err(fail(
                    Code::CannotProceed,
                    format!("{what}: login refused (`resultCode` is not 0)"),
                ));
            }
            let what = "GET /api/v1/get-balance";
            let result = match send(
                s.client.get(s.url("/api/v1/get-balance")),
                Step::Later,
                what,
            )
            .await
            {
                Ok(resp) => match json(resp, Code::ParsingError, what).await {
                    Ok(b) if equals_zero(b.get("statusCode")) => {
                        balance_at(&b, &["accountBalance"], what)
                    }
                    Ok(_) => Err(fail(
                        Code::ParsingError,
                        format!("{what}: `statusCode` is not 0"),
                    )),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = send_unchecked(s.client.get(s.url("/logout")), "GET /logout").await {
                tracing::debug!(error = %e.message, "wifire logout failed");
            }
            result
        })
    }
}
