//! Almatel (ISP): a form login answered with JSON `{"ok": true}`, then the
//! cabinet page, where the balance is an HTML span in Russian number format
//! (`1 234,56`): the span's first direct text node, as the original's
//! XPath `.../span/text()` took it, so markup inside the span
//! (`387,32 <small>руб./мес.</small>`) is not part of the number.

use scraper::{Html, Selector};

use super::{fail, json, parse_amount, send, text, Code, Collect, Provider, Session, Step};

/// `AlmatelRussia`.
#[derive(Debug)]
pub struct AlmatelRussia;

/// The marker the cabinet page must contain.
const MARKER: &str = "lk__profile-balance";

/// The original's XPath
/// `//div[@class="lk__profile--block lk__profile-balance"]/div/div/span[@class="question-block-value"]`
/// (exact class attributes, as XPath compares them).
const BALANCE: &str = r#"div[class="lk__profile--block lk__profile-balance"] > div > div > span[class="question-block-value"]"#;

impl Provider for AlmatelRussia {
    fn name(&self) -> &'static str {
        "AlmatelRussia"
    }

    fn default_base(&self) -> &'static str {
        "https://almatel.ru"
    }

    fn collect<'a>(&'a self, s: &'a Session) -> Collect<'a> {
        Box::pin(async move {
            let what = "POST /lk/login.php";
            let login = s.url("/lk/login.php");
            let req = s
                .client
                .post(&login)
                .header("Referer", &login)
                .header("X-Requested-With", "XMLHttpRequest")
                .form(&[
                    ("login", s.identifier.as_str()),
                    ("password", s.password.expose()),
                ]);
            let resp = send(req, Step::First, what).await?;
            let body = json(resp, Code::CannotProceed, what).await?;
            if body.get("ok") != Some(&serde_json::Value::Bool(true)) {
                return Err(fail(
                    Code::CannotProceed,
                    format!("{what}: login refused (`ok` is not true)"),
                ));
            }
            let what = "GET /lk/";
            let resp = send(s.client.get(s.url("/lk/")), Step::Later, what).await?;
            let page = text(resp, what).await?;
            if !page.contains(MARKER) {
                return Err(fail(
                    Code::CannotProceed,
                    format!("{what}: no {MARKER} on the page (not logged in)"),
                ));
            }
            balance_in(&page).map_err(|m| fail(Code::ParsingError, format!("{what}: {m}")))
        })
    }
}

/// The balance on the cabinet page.
pub fn balance_in(page: &str) -> Result<f64, String> {
    let doc = Html::parse_document(page);
    let sel = Selector::parse(BALANCE).expect("a valid selector");
    let mut spans = doc.select(&sel).peekable();
    if spans.peek().is_none() {
        return Err("no balance element on the page (changed layout?)".to_owned());
    }
    // The first text node that is a direct child of a matching span, in
    // document order (the first hit of the original's XPath).
    let first = spans
        .flat_map(|el| el.children())
        .find_map(|n| n.value().as_text().map(|t| t.to_string()));
    let Some(t) = first else {
        return Err("the balance element holds no text".to_owned());
    };
    parse_amount(&t).ok_or_else(|| format!("balance {:?} is not a number", t.trim()))
}
