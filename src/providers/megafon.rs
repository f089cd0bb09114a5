//! MegaFon B2C (mobile operator), the "react_lk" web cabinet: a session
//! check sets the `NEW-CSRF-TOKEN` cookie, the form login with that token
//! returns a JWT, the balance is read with it, then the session is logged
//! out. Unlike the original, a captcha stays `captcha`, a lock-out stays
//! `rate_limit`, and a failed logout never replaces a balance read.
//!
//! As in the original, the CSRF cookie is looked up in the whole jar (a
//! redirect hop or a narrower path may have set it), the login sends every
//! cookie of the jar, and a 200 answer carrying `jwtToken` is a success
//! whatever text it also contains.

use reqwest::RequestBuilder;

use super::{balance_at, fail, json, send, send_unchecked, Code, Collect, Provider, Session, Step};

/// `MegafonRussiaB2C`.
#[derive(Debug)]
pub struct MegafonRussiaB2C;

/// Login answers, checked in the original's order.
const LOGIN_ANSWERS: [(&str, Code, &str); 5] = [
    (
        "Неправильный формат телефона",
        Code::CannotProceed,
        "wrong phone number format",
    ),
    (
        "Неправильный номер телефона или пароль",
        Code::CannotProceed,
        "wrong phone number or password",
    ),
    (
        "Введите код с картинки",
        Code::Captcha,
        "the portal asks for a captcha",
    ),
    (
        "Как получить пароль",
        Code::CannotProceed,
        "the login form was shown again",
    ),
    (
        "Превышено количество попыток входа с использованием пароля",
        Code::RateLimit,
        "too many password attempts",
    ),
];

fn common(req: RequestBuilder) -> RequestBuilder {
    req.header("X-App-Type", "react_lk")
        .header("X-Cabinet-Capabilities", "web-2020")
}

impl Provider for MegafonRussiaB2C {
    fn name(&self) -> &'static str {
        "MegafonRussiaB2C"
    }

    fn default_base(&self) -> &'static str {
        "https://api.megafon.ru"
    }

    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a> {
        Box::pin(async move {
            let what = "GET /mlk/api/auth/sessionCheck";
            // Its cookies, redirect hops included, are in the jar.
            send(
                common(s.client.get(s.url("/mlk/api/auth/sessionCheck"))),
                Step::First,
                what,
            )
            .await?;
            let csrf = s.jar.get("NEW-CSRF-TOKEN").ok_or_else(|| {
                fail(
                    Code::CannotProceed,
                    format!("{what}: no NEW-CSRF-TOKEN cookie"),
                )
            })?;
            let what = "POST /mlk/api/login";
            let login = s.url("/mlk/api/login");
            let mut req = common(s.client.post(&login)).header("X-CSRF-TOKEN", csrf);
            // The original's `cookies=<the whole jar>`.
            if let Some(cookies) = url::Url::parse(&login)
                .ok()
                .and_then(|u| s.jar.header_with(&u, &s.jar.all()))
            {
                req = req.header(reqwest::header::COOKIE, cookies);
            }
            let req = req.form(&[
                ("login", s.identifier.as_str()),
                ("password", s.password.expose()),
            ]);
            let resp = send_unchecked(req, what).await?;
            let status = resp.status();
            let body = super::text(resp, what).await?;
            let jwt = jwt_in(status, &body);
            if jwt.is_none() {
                for (needle, code, meaning) in LOGIN_ANSWERS {
                    if body.contains(needle) {
                        return Err(fail(code, format!("{what}: {meaning}")));
                    }
                }
                super::check_status(status, Step::Later, what)?;
            }
            let jwt = jwt.ok_or_else(|| {
                fail(
                    Code::CannotProceed,
                    format!("{what}: no jwtToken in the answer"),
                )
            })?;
            let bearer = format!("Bearer {jwt}");
            let what = "GET /mlk/api/main/balance";
            let req = common(s.client.get(s.url("/mlk/api/main/balance")))
                .header("X-Cabinet-Authorization", &bearer);
            let result = match send(req, Step::Later, what).await {
                Ok(resp) => match json(resp, Code::ParsingError, what).await {
                    Ok(b) => balance_at(&b, &["balanceWithLimit"], what),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            // Logout whatever happened; its outcome does not matter.
            let req = common(s.client.get(s.url("/mlk/api/logout")))
                .header("X-Cabinet-Authorization", &bearer);
            if let Err(e) = send_unchecked(req, "GET /mlk/api/logout").await {
                tracing::debug!(error = %e.message, "megafon logout failed");
            }
            result
        })
    }
}

/// The JWT of a successful login: a 200 answer whose JSON has a string
/// `jwtToken`.
fn jwt_in(status: reqwest::StatusCode, body: &str) -> Option<String> {
    if status != reqwest::StatusCode::OK {
        return None;
    }
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("jwtToken")?
        .as_str()
        .map(str::to_owned)
}
