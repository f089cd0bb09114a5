//! Prometheus remote write 1.0: `WriteRequest` protobuf, snappy block
//! compression, the three mandatory headers.

use super::{labels_with_app, Body, Encoder, Snapshot};

/// `prometheus.WriteRequest` (only the fields remote write 1.0 needs).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` included.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The samples (one per snapshot).
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// Name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// Value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// The remote-write encoder.
pub struct RemoteWrite {
    /// Endpoint.
    pub url: String,
    /// Optional bearer token, read at each request.
    pub bearer_token: Option<crate::secret::SecretSource>,
}

/// Builds the `WriteRequest`s of a snapshot, at most `max` series each.
pub fn write_requests(snap: &Snapshot, max: usize, app_label: &str) -> Vec<WriteRequest> {
    let mut out = Vec::new();
    let mut current = WriteRequest::default();
    for (app, samples) in &snap.apps {
        for s in samples {
            let mut labels = vec![Label {
                name: "__name__".to_owned(),
                value: s.name.clone(),
            }];
            labels.extend(
                labels_with_app(s, app_label, app)
                    .into_iter()
                    .map(|(k, v)| Label {
                        name: k.to_owned(),
                        value: v.to_owned(),
                    }),
            );
            // `__name__` sorts before every valid label name.
            current.timeseries.push(TimeSeries {
                labels,
                samples: vec![Sample {
                    value: s.value,
                    timestamp: s.timestamp.unwrap_or(snap.now_ms),
                }],
            });
            if current.timeseries.len() >= max.max(1) {
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.timeseries.is_empty() {
        out.push(current);
    }
    out
}

impl Encoder for RemoteWrite {
    fn encode(&self, snap: &Snapshot, max: usize, app_label: &str) -> (Vec<Body>, u64) {
        let bodies = write_requests(snap, max, app_label)
            .into_iter()
            .map(|req| {
                let raw = prost::Message::encode_to_vec(&req);
                let compressed = snap::raw::Encoder::new()
                    .compress_vec(&raw)
                    .expect("snappy compression of an in-memory buffer");
                Body {
                    bytes: compressed.into(),
                    samples: req.timeseries.len() as u64,
                }
            })
            .collect();
        (bodies, 0)
    }

    fn request(
        &self,
        client: &reqwest::Client,
        body: bytes::Bytes,
    ) -> Result<reqwest::RequestBuilder, String> {
        let mut r = client
            .post(&self.url)
            .header("Content-Encoding", "snappy")
            .header("Content-Type", "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body);
        if let Some(src) = &self.bearer_token {
            let t = src.read().map_err(|e| format!("bearer token: {e}"))?;
            r = r.bearer_auth(t.expose());
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
        ts: Option<i64>,
    ) -> crate::exposition::Sample {
        crate::exposition::Sample {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            value_text: String::new(),
            timestamp: ts,
        }
    }

    #[test]
    fn series_get_name_and_app_labels_sorted_and_batches_split() {
        let snap = Snapshot {
            now_ms: 1000,
            apps: vec![(
                "web".to_owned(),
                vec![
                    sample("up", &[("zone", "a"), ("instance", "i")], 1.0, None),
                    sample("t", &[("app", "own")], 2.0, Some(5)),
                    sample("u", &[], 3.0, None),
                ],
            )],
        };
        let reqs = write_requests(&snap, 2, "app");
        assert_eq!(reqs.len(), 2);
        let names: Vec<Vec<(String, String)>> = reqs[0]
            .timeseries
            .iter()
            .map(|t| {
                t.labels
                    .iter()
                    .map(|l| (l.name.clone(), l.value.clone()))
                    .collect()
            })
            .collect();
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            names[0],
            pairs(&[
                ("__name__", "up"),
                ("app", "web"),
                ("instance", "i"),
                ("zone", "a")
            ])
        );
        assert_eq!(
            names[1],
            pairs(&[("__name__", "t"), ("app", "own")]),
            "a series' own app label wins"
        );
        assert_eq!(reqs[0].timeseries[0].samples[0].timestamp, 1000);
        assert_eq!(reqs[0].timeseries[1].samples[0].timestamp, 5);
        // The body decodes back after snappy.
        let (bodies, _) = RemoteWrite {
            url: String::new(),
            bearer_token: None,
        }
        .encode(&snap, 10, "app");
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&bodies[0].bytes)
            .unwrap();
        let back: WriteRequest = prost::Message::decode(&raw[..]).unwrap();
        assert_eq!(back.timeseries.len(), 3);
        assert_eq!(bodies[0].samples, 3);
    }
}
