//! The cookie jar of one collection, readable whole like the original's
//! `requests.Session().cookies`.
//!
//! reqwest's own jar answers only "the cookies for this URL", and adds
//! nothing to a request that carries its own `Cookie` header. The original
//! read the whole jar (`cookies.get_dict()`, whatever the domain and path,
//! including cookies set on redirect hops) and sent that dictionary back
//! with `cookies=`, which `requests` turns into cookies with path `/` and no
//! domain, added to the jar's own cookies for the URL. [`SessionJar`] keeps
//! every cookie (reqwest stores those of each redirect hop through it), and
//! [`SessionJar::header_with`] writes that combined `Cookie` header.

use std::sync::RwLock;

use cookie_store::{CookieDomain, RawCookie};
use reqwest::header::HeaderValue;
use url::Url;

/// A collection's cookies.
#[derive(Debug, Default)]
pub struct SessionJar(RwLock<cookie_store::CookieStore>);

impl reqwest::cookie::CookieStore for SessionJar {
    fn set_cookies(&self, headers: &mut dyn Iterator<Item = &HeaderValue>, url: &Url) {
        let cookies = headers.filter_map(|h| {
            let s = std::str::from_utf8(h.as_bytes()).ok()?;
            RawCookie::parse(s).ok().map(RawCookie::into_owned)
        });
        self.write().store_response_cookies(cookies, url);
    }

    fn cookies(&self, url: &Url) -> Option<HeaderValue> {
        let pairs: Vec<(String, String)> = self.for_url(url);
        header(&pairs)
    }
}

impl SessionJar {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, cookie_store::CookieStore> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, cookie_store::CookieStore> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The jar's cookies for `url` (domain, path, expiry and `Secure`
    /// matched), as reqwest would send them.
    pub fn for_url(&self, url: &Url) -> Vec<(String, String)> {
        self.read()
            .get_request_values(url)
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect()
    }

    /// Every unexpired cookie whatever its domain and path, one per name:
    /// the original's `get_dict()`, where the last in (domain, path, name)
    /// order wins.
    pub fn all(&self) -> Vec<(String, String)> {
        let store = self.read();
        let mut cookies: Vec<(String, String, String, String)> = store
            .iter_unexpired()
            .map(|c| {
                let domain = match &c.domain {
                    CookieDomain::HostOnly(d) | CookieDomain::Suffix(d) => d.clone(),
                    _ => String::new(),
                };
                (
                    domain,
                    c.path.as_ref().to_owned(),
                    c.name().to_owned(),
                    c.value().to_owned(),
                )
            })
            .collect();
        cookies.sort();
        let mut out: Vec<(String, String)> = Vec::new();
        for (_, _, name, value) in cookies {
            match out.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => out.push((name, value)),
            }
        }
        out
    }

    /// The value of the cookie `name`, wherever it was set.
    pub fn get(&self, name: &str) -> Option<String> {
        self.all()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The `Cookie` header of a request to `url` made with the original's
    /// `cookies=extra`: the jar's cookies for `url`, then every cookie of
    /// `extra` (sent whatever the URL), an exact repeat left out.
    pub fn header_with(&self, url: &Url, extra: &[(String, String)]) -> Option<HeaderValue> {
        let mut pairs = self.for_url(url);
        for (n, v) in extra {
            if !pairs.iter().any(|(pn, pv)| pn == n && pv == v) {
                pairs.push((n.clone(), v.clone()));
            }
        }
        header(&pairs)
    }
}

fn header(pairs: &[(String, String)]) -> Option<HeaderValue> {
    if pairs.is_empty() {
        return None;
    }
    let s = pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    HeaderValue::from_str(&s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::cookie::CookieStore as _;

    fn set(jar: &SessionJar, url: &str, cookie: &str) {
        let h = HeaderValue::from_str(cookie).unwrap();
        jar.set_cookies(&mut std::iter::once(&h), &Url::parse(url).unwrap());
    }

    #[test]
    fn the_whole_jar_is_readable_and_sent_back() {
        let jar = SessionJar::default();
        set(&jar, "http://127.0.0.1:1/a/b/hop", "CSRF=c1; Path=/a/b");
        set(&jar, "http://127.0.0.1:1/", "session=s1; Path=/");
        let login = Url::parse("http://127.0.0.1:1/login").unwrap();
        // reqwest's view: the narrow-path cookie does not match /login.
        assert_eq!(jar.for_url(&login), vec![("session".into(), "s1".into())]);
        // The original's view: every cookie, whatever its path.
        assert_eq!(jar.get("CSRF").as_deref(), Some("c1"));
        let all = jar.all();
        let h = jar.header_with(&login, &all).unwrap();
        assert_eq!(h.to_str().unwrap(), "session=s1; CSRF=c1");
        let extra = [("csrf-token-value".to_owned(), "v".to_owned())];
        let h = jar.header_with(&login, &extra).unwrap();
        assert_eq!(h.to_str().unwrap(), "session=s1; csrf-token-value=v");
    }
}
