//! Content negotiation of `/metrics`, as Prometheus' scrape `Accept`
//! header asks for it.
//!
//! Offered: the delimited protobuf format (only with
//! `proto=io.prometheus.client.MetricFamily` and `encoding=delimited`),
//! OpenMetrics text (`application/openmetrics-text`, versions 0.0.1 and
//! 1.0.0; we write 1.0.0) and text 0.0.4. The acceptable range with the
//! highest `q` wins, the first listed on a tie; wildcards and no `Accept`
//! at all get text 0.0.4. Pure.

use axum::http::header::ACCEPT;
use axum::http::HeaderMap;

use crate::store::Format;

/// The format named by `?format=` (`text`, `openmetrics`, `protobuf`).
pub fn format_by_name(name: &str) -> Option<Format> {
    match name {
        "text" => Some(Format::Text),
        "openmetrics" => Some(Format::OpenMetrics),
        "protobuf" => Some(Format::Protobuf),
        _ => None,
    }
}

/// The format to serve for these request headers.
pub fn metrics_format(headers: &HeaderMap) -> Format {
    let mut best: Option<(f32, Format)> = None;
    for range in headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut params: Vec<(String, String)> = Vec::new();
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim().trim_matches('"').to_owned();
            if k == "q" {
                q = v.parse().unwrap_or(0.0);
            } else {
                params.push((k, v));
            }
        }
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let format = match media.as_str() {
            "application/vnd.google.protobuf"
                if param("proto") == Some("io.prometheus.client.MetricFamily")
                    && param("encoding") == Some("delimited") =>
            {
                Format::Protobuf
            }
            "application/openmetrics-text"
                if matches!(param("version"), None | Some("0.0.1" | "1.0.0")) =>
            {
                Format::OpenMetrics
            }
            "text/plain" if matches!(param("version"), None | Some("0.0.4")) => Format::Text,
            "*/*" | "text/*" => Format::Text,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map_or(Format::Text, |(_, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(accept: &str, expected: Format) {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, accept.parse().unwrap());
        assert_eq!(metrics_format(&h), expected, "Accept: {accept}");
    }

    #[test]
    fn prometheus_headers() {
        // Prometheus 2.42's default scrape Accept header.
        check(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            Format::OpenMetrics,
        );
        // With --enable-feature=native-histograms.
        check(
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.8,application/openmetrics-text;version=1.0.0;q=0.7,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            Format::Protobuf,
        );
    }

    #[test]
    fn everything_else_is_text() {
        assert_eq!(metrics_format(&HeaderMap::new()), Format::Text);
        check("*/*", Format::Text);
        check("text/plain", Format::Text);
        check("application/json", Format::Text);
        check("application/openmetrics-text; version=2.0.0", Format::Text);
        check("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=text", Format::Text);
        check("application/openmetrics-text;q=0, text/plain", Format::Text);
        check(
            "text/plain;q=0.9, application/openmetrics-text",
            Format::OpenMetrics,
        );
        check(
            "application/openmetrics-text, text/plain",
            Format::OpenMetrics,
        );
        check("text/plain, application/openmetrics-text", Format::Text);
    }
}
