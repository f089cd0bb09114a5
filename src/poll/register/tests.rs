use std::time::Duration;

use super::*;

fn reg(id: &str, ttl_secs: u64) -> Registration {
    Registration {
        id: id.to_owned(),
        url: format!("http://127.0.0.1:9/{id}"),
        interval: Duration::from_secs(10),
        ttl: Duration::from_secs(ttl_secs),
        labels: Vec::new(),
        mapping: None,
    }
}

#[tokio::test(start_paused = true)]
async fn registrations_expire_after_their_ttl_without_heartbeat() {
    let mut s = RegistryState::default();
    let wall = Utc::now();
    let upsert =
        |s: &mut RegistryState, r: Registration| s.upsert(r, Instant::now(), wall, None, 10);
    assert_eq!(upsert(&mut s, reg("a", 60)), Ok(Upsert::Created));
    assert_eq!(upsert(&mut s, reg("b", 300)), Ok(Upsert::Created));
    assert_eq!(
        s.next_expiry(),
        Some(Instant::now() + Duration::from_secs(60))
    );

    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(s.expire(Instant::now()), Vec::<String>::new());
    // A heartbeat pushes the expiry back by a whole TTL.
    assert_eq!(upsert(&mut s, reg("a", 60)), Ok(Upsert::Refreshed));
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(s.expire(Instant::now()), Vec::<String>::new());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(s.expire(Instant::now()), ["a"]);
    assert_eq!(s.len(), 1);
    // A changed definition is an update, not a new registration.
    let mut moved = reg("b", 300);
    moved.url = "http://127.0.0.1:10/b".to_owned();
    assert_eq!(upsert(&mut s, moved), Ok(Upsert::Updated));
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(s.expire(Instant::now()), ["b"]);
    assert!(s.is_empty());
    assert_eq!(s.next_expiry(), None);
}

#[test]
fn the_registry_is_bounded() {
    let mut s = RegistryState::default();
    let now = Instant::now();
    assert!(s.upsert(reg("a", 60), now, Utc::now(), None, 1).is_ok());
    let refused = s
        .upsert(reg("b", 60), now, Utc::now(), None, 1)
        .unwrap_err();
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // A heartbeat of a known id is never refused by the limit.
    assert!(s.upsert(reg("a", 60), now, Utc::now(), None, 1).is_ok());
    assert!(s.remove("a"));
    assert!(!s.remove("a"));
}

#[test]
fn tokens_compare_in_constant_time_and_exactly() {
    assert!(constant_time_eq(b"secret", b"secret"));
    assert!(!constant_time_eq(b"secret", b"secreT"));
    assert!(!constant_time_eq(b"secret", b"secret2"));
    assert!(!constant_time_eq(b"", b"x"));
}
