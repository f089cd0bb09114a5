use super::*;
use crate::providers::config::{Password, DEFAULT_MESSAGES};
use crate::secret::Secret;
use crate::telemetry::SelfMetrics;

/// Panics in the middle of a collection.
struct Panics;

impl Provider for Panics {
    fn name(&self) -> &'static str {
        "Panics"
    }
    fn default_base(&self) -> &'static str {
        ""
    }
    fn collect<'a>(&'a self, _: &'a Session) -> super::super::Collect<'a> {
        Box::pin(async { panic!("a provider bug") })
    }
}

/// Never answers.
struct Hangs;

impl Provider for Hangs {
    fn name(&self) -> &'static str {
        "Hangs"
    }
    fn default_base(&self) -> &'static str {
        ""
    }
    fn collect<'a>(&'a self, _: &'a Session) -> super::super::Collect<'a> {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(365 * 86_400)).await;
            Ok(1.0)
        })
    }
}

fn job(provider: &'static dyn Provider, disabled: bool) -> (ProviderJob, Arc<Store>) {
    let cfg = crate::config::Config::parse("").unwrap().config;
    let store = Arc::new(Store::new(cfg.store_options(), SelfMetrics::new()));
    let def = Identifier {
        provider: provider.name().to_owned(),
        identifier: "acc\"1".to_owned(),
        raw_identifier: crate::providers::config::yaml11::Typed::Str("acc\"1".to_owned()),
        password: Password::Inline(Secret::new("hunter2".to_owned())),
        labels: vec![("zone".to_owned(), "eu".to_owned())],
        tls_verify: true,
        poll_interval: Duration::from_secs(5400),
        disabled,
        base_url: None,
        ca_file: None,
        command: Vec::new(),
    };
    let shared = Arc::new(Shared {
        metric_name: "ssp_balance".to_owned(),
        messages: DEFAULT_MESSAGES
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        label_names: ["team".to_owned(), "zone".to_owned()].into(),
        timeout: Duration::from_secs(30),
    });
    let ua = ["UA one".to_owned()];
    let j = ProviderJob::with_provider(def, provider, shared, &ua, store.clone());
    assert_eq!(j.user_agent(), "UA one");
    (j, store)
}

fn body(store: &Store) -> String {
    String::from_utf8(store.render().to_bytes().to_vec()).unwrap()
}

#[tokio::test]
async fn a_panicking_provider_is_cannot_proceed() {
    let (j, store) = job(&Panics, false);
    j.collect().await;
    let b = body(&store);
    assert!(
        b.contains(r#"ssp_balance{identifier="acc\"1",poll_interval="1h30m",provider="Panics",team="",zone="eu"} -1000004"#),
        "{b}"
    );
    let app = &store.apps()[0];
    assert_eq!(app.status(), "down");
    assert_eq!(
        app.last_error.as_deref(),
        Some("cannot_proceed: the provider panicked")
    );
    assert!(!format!("{j:?}").contains("hunter2"));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_provider_ends_at_the_timeout() {
    let (j, store) = job(&Hangs, false);
    j.collect().await;
    let b = body(&store);
    assert!(
        b.contains(r#"ssp_status{identifier="acc\"1",provider="Hangs",status="no_answer"} 1"#),
        "{b}"
    );
    assert!(
        b.contains(r#"ssp_up{identifier="acc\"1",provider="Hangs"} 0"#),
        "{b}"
    );
    assert!(
        b.contains(r#"ssp_collection_duration_seconds{identifier="acc\"1",provider="Hangs"} 30"#),
        "{b}"
    );
}

#[tokio::test]
async fn init_and_disabled_are_shown_with_their_codes() {
    let (j, store) = job(&Hangs, false);
    j.publish_initial();
    assert!(body(&store).contains("} -1000000"));
    assert_eq!(store.apps()[0].status(), "init");
    let (j, store) = job(&Hangs, true);
    j.publish_initial();
    j.collect().await; // disabled: never runs the provider
    let b = body(&store);
    assert!(b.contains(r#"status="disabled"} 1"#), "{b}");
    assert!(b.contains("} -1000001"), "{b}");
    assert_eq!(store.apps()[0].status(), "disabled");
    assert_eq!(store.apps()[0].source, "provider:Hangs");
    assert_eq!(store.apps()[0].kind.as_str(), "provider");
}
