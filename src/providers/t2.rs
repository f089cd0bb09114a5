//! T2 B2C (mobile operator), implemented as documented but known broken:
//! since mid-2024 the portal requires a one-time code sent by e-mail or
//! SMS, which an unattended exporter cannot enter. The flow: the cabinet
//! page (CSRF meta tags copied to cookies and the `x-csrftoken` header, a
//! `session-cookie` expected), a Keycloak password grant, then the balance
//! with the access token. A refused grant is `cannot_proceed` and the log
//! says why.
//!
//! As in the original, `session-cookie` is looked up in the whole jar
//! (redirect hops and narrower paths included), and the token request
//! sends the jar's cookies together with the CSRF ones: every cookie of the
//! jar plus `csrf-token-name` and `csrf-token-value`, whatever their path.

use scraper::{Html, Selector};

use super::{balance_at, fail, json, send, text, Code, Collect, Provider, Session, Step};

/// `T2RussiaB2C`.
#[derive(Debug)]
pub struct T2RussiaB2C;

const TOKEN: &str = "/auth/realms/tele2-b2c/protocol/openid-connect/token";

/// The explanation logged and shown when the login is refused.
pub const OTP_NOTE: &str = "the T2 portal requires a one-time code (e-mail or SMS) since mid-2024, which an exporter cannot enter";

fn meta(doc: &Html, name: &str) -> Option<String> {
    let sel = Selector::parse(&format!(r#"meta[name="{name}"]"#)).ok()?;
    doc.select(&sel)
        .next()
        .and_then(|e| e.value().attr("content"))
        .map(str::to_owned)
}

impl Provider for T2RussiaB2C {
    fn name(&self) -> &'static str {
        "T2RussiaB2C"
    }

    fn default_base(&self) -> &'static str {
        "https://msk.t2.ru"
    }

    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a> {
        Box::pin(async move {
            let what = "GET /lk";
            let resp = send(s.client.get(s.url("/lk")), Step::First, what).await?;
            let page = text(resp, what).await?;
            // The original's `cookies_dict`: the whole jar after the page.
            let mut cookies = s.jar.all();
            let has_session = cookies.iter().any(|(n, _)| n == "session-cookie");
            let mut csrf: Option<(String, String)> = None;
            if page.contains("csrf-token-name") {
                let doc = Html::parse_document(&page);
                match (
                    meta(&doc, "csrf-token-name"),
                    meta(&doc, "csrf-token-value"),
                ) {
                    (Some(n), Some(v)) => csrf = Some((n, v)),
                    _ => {
                        return Err(fail(
                            Code::CannotProceed,
                            format!("{what}: CSRF meta tags missing"),
                        ))
                    }
                }
            }
            if !has_session {
                return Err(fail(
                    Code::CannotProceed,
                    format!("{what}: no session-cookie"),
                ));
            }
            let what = "POST openid-connect/token";
            let token_url = s.url(TOKEN);
            let mut req = s
                .client
                .post(&token_url)
                .header("Authority", host(&s.base))
                .header("x-requested-with", "XMLHttpRequest")
                .form(&[
                    ("username", s.identifier.as_str()),
                    ("password", s.password.expose()),
                    ("client_id", "digital-suite-web-app"),
                    ("grant_type", "password"),
                    ("password_type", "password"),
                ]);
            if let Some((name, value)) = &csrf {
                req = req.header("x-csrftoken", value);
                for (k, v) in [("csrf-token-name", name), ("csrf-token-value", value)] {
                    match cookies.iter_mut().find(|(n, _)| n == k) {
                        Some(slot) => slot.1.clone_from(v),
                        None => cookies.push((k.to_owned(), v.clone())),
                    }
                }
            }
            // An explicit Cookie header replaces reqwest's jar: it carries
            // the jar's cookies for the URL and every other one.
            if let Some(h) = url::Url::parse(&token_url)
                .ok()
                .and_then(|u| s.jar.header_with(&u, &cookies))
            {
                req = req.header(reqwest::header::COOKIE, h);
            }
            let refused = |detail: String| {
                tracing::warn!(identifier = %s.identifier, "T2 login refused: {OTP_NOTE}");
                fail(Code::CannotProceed, format!("{what}: {detail}; {OTP_NOTE}"))
            };
            let resp = send(req, Step::Later, what)
                .await
                .map_err(|e| refused(e.message))?;
            let grant = json(resp, Code::CannotProceed, what)
                .await
                .map_err(|e| refused(e.message))?;
            let token = grant
                .get("access_token")
                .and_then(|t| t.as_str())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| refused("no access_token".to_owned()))?
                .to_owned();
            let what = "GET /api/subscribers/<identifier>/balance";
            let path = format!("/api/subscribers/{}/balance", urlencode(&s.identifier));
            let resp = send(
                s.client.get(s.url(&path)).bearer_auth(token),
                Step::Later,
                what,
            )
            .await?;
            let body = json(resp, Code::ParsingError, what).await?;
            if super::at(&body, &["meta", "status"]).and_then(|v| v.as_str()) != Some("OK") {
                return Err(fail(
                    Code::ParsingError,
                    format!("{what}: meta.status is not OK"),
                ));
            }
            balance_at(&body, &["data", "value"], what)
        })
    }
}

fn host(base: &str) -> &str {
    base.split_once("://").map_or(base, |(_, h)| h)
}

/// Percent-encodes a path segment.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
