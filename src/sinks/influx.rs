//! InfluxDB line protocol: `measurement[,tag=value...] value=<float> <ms>`,
//! one line per series, measurement = metric name, tags = labels plus the
//! app, an explicit timestamp (never a timestamp as a tag).

use std::fmt::Write as _;

use super::{labels_with_app, Body, Encoder, Snapshot};

/// Which write API to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// `POST /write?db=<database>&precision=ms` (InfluxDB 1.x).
    V1 {
        /// Database name.
        database: String,
    },
    /// `POST /api/v2/write?org=&bucket=&precision=ms` with `Authorization: Token`.
    V2 {
        /// Organisation.
        org: String,
        /// Bucket.
        bucket: String,
    },
}

/// The line-protocol encoder.
pub struct Influx {
    /// The full write URL, query included.
    pub write_url: reqwest::Url,
    /// Token.
    pub token: Option<crate::secret::SecretSource>,
}

impl Influx {
    /// The write URL for a base URL and an API.
    pub fn write_url(base: &str, api: &Api) -> Result<reqwest::Url, String> {
        let base = base.trim_end_matches('/');
        let (path, query): (&str, Vec<(&str, &str)>) = match api {
            Api::V1 { database } => ("/write", vec![("db", database), ("precision", "ms")]),
            Api::V2 { org, bucket } => (
                "/api/v2/write",
                vec![("org", org), ("bucket", bucket), ("precision", "ms")],
            ),
        };
        let mut url = reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| format!("invalid URL {base:?}: {e}"))?;
        url.query_pairs_mut().extend_pairs(query);
        Ok(url)
    }
}

/// Escapes a measurement name: commas and spaces.
fn escape_measurement(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ',' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes a tag key or value: commas, equals signs and spaces. Newlines
/// cannot be represented in line protocol: they become a literal `\n`.
fn escape_tag(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Encodes one sample as a line, or `None` when its value cannot be
/// represented (InfluxDB has no NaN or infinities).
pub fn line(
    out: &mut String,
    s: &crate::exposition::Sample,
    app_label: &str,
    app: &str,
    now_ms: i64,
) -> bool {
    if !s.value.is_finite() {
        return false;
    }
    escape_measurement(out, &s.name);
    // InfluxDB refuses empty tag values: such labels are left out, which is
    // also what Prometheus means by an empty label.
    for (k, v) in labels_with_app(s, app_label, app) {
        if v.is_empty() {
            continue;
        }
        out.push(',');
        escape_tag(out, k);
        out.push('=');
        escape_tag(out, v);
    }
    let _ = writeln!(out, " value={} {}", s.value, s.timestamp.unwrap_or(now_ms));
    true
}

impl Encoder for Influx {
    fn encode(&self, snap: &Snapshot, max: usize, app_label: &str) -> (Vec<Body>, u64) {
        let mut bodies = Vec::new();
        let mut skipped = 0;
        let mut text = String::new();
        let mut n = 0u64;
        for (app, samples) in &snap.apps {
            for s in samples {
                if !line(&mut text, s, app_label, app, snap.now_ms) {
                    skipped += 1;
                    continue;
                }
                n += 1;
                if n as usize >= max.max(1) {
                    bodies.push(Body {
                        bytes: std::mem::take(&mut text).into(),
                        samples: n,
                    });
                    n = 0;
                }
            }
        }
        if n > 0 {
            bodies.push(Body {
                bytes: text.into(),
                samples: n,
            });
        }
        (bodies, skipped)
    }

    fn request(
        &self,
        client: &reqwest::Client,
        body: bytes::Bytes,
    ) -> Result<reqwest::RequestBuilder, String> {
        let mut r = client.post(self.write_url.clone());
        if let Some(src) = &self.token {
            let t = src.read().map_err(|e| format!("token: {e}"))?;
            r = r.header("Authorization", format!("Token {}", t.expose()));
        }
        Ok(r.header("Content-Type", "text/plain; charset=utf-8")
            .body(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> crate::exposition::Sample {
        crate::exposition::Sample {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            value_text: String::new(),
            timestamp: None,
        }
    }

    #[test]
    fn escaping_and_layout() {
        let mut out = String::new();
        let s = sample(
            "http_requests_total",
            &[("path", "/a b,c=d"), ("empty", ""), ("nl", "x\ny")],
            1.5,
        );
        assert!(line(&mut out, &s, "app", "my app", 1700));
        assert_eq!(
            out,
            "http_requests_total,app=my\\ app,nl=x\\ny,path=/a\\ b\\,c\\=d value=1.5 1700\n"
        );
        out.clear();
        assert!(!line(&mut out, &sample("x", &[], f64::NAN), "app", "a", 1));
        assert!(!line(
            &mut out,
            &sample("x", &[], f64::INFINITY),
            "app",
            "a",
            1
        ));
        assert!(out.is_empty());
    }

    #[test]
    fn batches_and_unrepresentable_counts() {
        let snap = Snapshot {
            now_ms: 5,
            apps: vec![(
                "a".to_owned(),
                vec![
                    sample("x", &[], 1.0),
                    sample("y", &[], f64::NAN),
                    sample("z", &[], 2.0),
                ],
            )],
        };
        let i = Influx {
            write_url: Influx::write_url(
                "http://h:1",
                &Api::V1 {
                    database: "d".into(),
                },
            )
            .unwrap(),
            token: None,
        };
        assert_eq!(i.write_url.as_str(), "http://h:1/write?db=d&precision=ms");
        let v2 = Influx::write_url(
            "http://h:1/",
            &Api::V2 {
                org: "o g".into(),
                bucket: "b".into(),
            },
        )
        .unwrap();
        assert_eq!(
            v2.as_str(),
            "http://h:1/api/v2/write?org=o+g&bucket=b&precision=ms"
        );
        let (bodies, skipped) = i.encode(&snap, 1, "app");
        assert_eq!(skipped, 1);
        assert_eq!(bodies.len(), 2);
        assert_eq!(&bodies[0].bytes[..], b"x,app=a value=1 5\n");
    }
}
