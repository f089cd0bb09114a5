//! Families of different apps under one name, decided the same way whatever
//! order the apps came in.
//!
//! * **Untyped joins typed.** An exporter that exposes a family untyped
//!   (VictoriaMetrics' `go_gc_duration_seconds` with its `quantile` samples
//!   and `_sum`/`_count`) next to another app that types it (Prometheus'
//!   summary) would clash on the type and on the derived names. When the
//!   untyped samples fit the typed family (the bare name with `quantile` for
//!   a summary, `_bucket` with `le` for a histogram, `_sum` and `_count`; the
//!   bare name for a counter or gauge), the untyped families of that app are
//!   merged into one family of the other's type. This happens both when the
//!   untyped app comes second (its push is joined) and when it came first
//!   (its stored set is rebuilt joined when the typed family arrives), so
//!   the page is the same in both orders.
//! * **A real conflict between polled targets** (a counter against a gauge,
//!   or a derived name another target's family uses) is won by the target
//!   whose name sorts first: if it comes second, the other target's data is
//!   dropped and that target shows down with the reason; its next poll is
//!   refused. A restart cannot flip the outcome. Pushed apps keep the older
//!   rule: the family stays with the apps that have it, the newcomer is
//!   refused.
//!
//! Runs under the store lock, with work proportional to the push (a few
//! index lookups per family), except in the rare case of an actual join.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;

use super::{
    encode_block, normalise_bounds, AppEntry, AppKind, FamilyBlock, Prepared, PushError,
    RejectReason, State, Undo,
};
use crate::exposition::{self, MetricType, ParseLimits};

/// Suffixes by which an untyped family may belong to a typed family.
const PART_SUFFIXES: [&str; 4] = ["", "_bucket", "_sum", "_count"];

/// Whether samples of untyped family `name` may join family `base` of type
/// `typ`, and the label each of them must then carry.
fn part_of(typ: MetricType, base: &str, name: &str) -> Option<Option<&'static str>> {
    let suffix = name.strip_prefix(base)?;
    match (typ, suffix) {
        (MetricType::Counter | MetricType::Gauge, "") => Some(None),
        (MetricType::Summary, "") => Some(Some("quantile")),
        (MetricType::Histogram, "_bucket") => Some(Some("le")),
        (MetricType::Summary | MetricType::Histogram, "_sum" | "_count") => Some(None),
        _ => None,
    }
}

/// The names of the families an untyped family `name` could join.
fn candidate_bases(name: &str) -> impl Iterator<Item = &str> {
    PART_SUFFIXES
        .iter()
        .filter_map(move |s| name.strip_suffix(s))
        .filter(|b| !b.is_empty())
}

/// `families` (sorted by name) with their untyped parts of family `base`
/// merged into one family of type `typ`; `None` when there is nothing to
/// join or the samples do not fit.
fn joined(
    families: &[Arc<FamilyBlock>],
    base: &str,
    typ: MetricType,
) -> Option<Vec<Arc<FamilyBlock>>> {
    if families
        .iter()
        .any(|f| f.name == base && f.typ != MetricType::Untyped)
    {
        return None;
    }
    let parts: Vec<&Arc<FamilyBlock>> = families
        .iter()
        .filter(|f| f.typ == MetricType::Untyped && part_of(typ, base, &f.name).is_some())
        .collect();
    if parts.is_empty() {
        return None;
    }
    let mut samples = Vec::new();
    let mut help = None;
    for part in &parts {
        let need = part_of(typ, base, &part.name).flatten();
        let body = part.body.text();
        let text = std::str::from_utf8(&body).ok()?;
        let exp = exposition::parse(text, &ParseLimits::default()).ok()?;
        for s in exp.families.into_iter().flat_map(|f| f.samples) {
            if let Some(label) = need {
                let value = s.labels.iter().find(|(k, _)| k == label)?;
                value.1.parse::<f64>().ok()?;
            }
            samples.push(s);
        }
        if help.is_none() {
            help.clone_from(&part.help);
        }
    }
    let mut exp = exposition::Exposition {
        families: vec![exposition::Family {
            name: base.to_owned(),
            help,
            typ,
            samples,
        }],
        dropped: Default::default(),
    };
    normalise_bounds(&mut exp);
    let family = exp.families.pop()?;
    let mut block = encode_block(family.name, typ, family.help, &family.samples, &[]);
    if parts.iter().any(|p| p.body.is_packed()) {
        // Kept in the form the store keeps its text in.
        block.body = block.body.packed();
    }
    // Bounds written alike (`le="1.0"` and `le="1"`) may now be one series.
    let unique: BTreeSet<u64> = block.keys.iter().copied().collect();
    if unique.len() != block.keys.len() {
        return None;
    }
    let mut out: Vec<Arc<FamilyBlock>> = families
        .iter()
        .filter(|f| !parts.iter().any(|p| Arc::ptr_eq(p, f)))
        .cloned()
        .collect();
    out.push(Arc::new(block));
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Some(out)
}

fn is_polled(kind: AppKind) -> bool {
    matches!(kind, AppKind::Poll | AppKind::Registered)
}

impl State {
    /// Other apps that own family `name`.
    fn other_owners(&self, name: &str, app: &str) -> Vec<String> {
        self.families
            .get(name)
            .map(|i| i.owners.iter().filter(|o| *o != app).cloned().collect())
            .unwrap_or_default()
    }

    /// Joins untyped families with typed ones across `p` and the stored
    /// apps, and settles type conflicts between polled targets. Changes to
    /// other apps are recorded in `undo`.
    pub(super) fn join(
        &mut self,
        p: &mut Prepared,
        kind: AppKind,
        undo: &mut Vec<Undo>,
    ) -> Result<(), PushError> {
        // The push's untyped families joining typed ones of other apps.
        let untyped: Vec<String> = p
            .families
            .iter()
            .filter(|f| f.typ == MetricType::Untyped)
            .map(|f| f.name.clone())
            .collect();
        for name in &untyped {
            for base in candidate_bases(name) {
                let Some(idx) = self.families.get(base) else {
                    continue;
                };
                if idx.typ == MetricType::Untyped || self.other_owners(base, &p.app).is_empty() {
                    continue;
                }
                if let Some(families) = joined(&p.families, base, idx.typ) {
                    p.families = families;
                }
            }
        }
        // Other apps' untyped families joining the push's typed ones.
        let typed: Vec<(String, MetricType)> = p
            .families
            .iter()
            .filter(|f| f.typ != MetricType::Untyped)
            .map(|f| (f.name.clone(), f.typ))
            .collect();
        for (base, typ) in &typed {
            for suffix in PART_SUFFIXES {
                let name = format!("{base}{suffix}");
                if self.families.get(&name).map(|i| i.typ) != Some(MetricType::Untyped) {
                    continue;
                }
                for owner in self.other_owners(&name, &p.app) {
                    let Some(families) = joined(&self.apps[&owner].families, base, *typ) else {
                        continue;
                    };
                    let old = self.remove_app(&owner).expect("an owner has an entry");
                    let mut info = old.info.clone();
                    info.series = families.iter().map(super::series::count).sum();
                    self.insert_app(AppEntry {
                        info,
                        families,
                        deadline: old.deadline,
                        owner: 0,
                        seq: 0,
                    });
                    undo.push(Undo::Indexed(owner, Some(old)));
                }
            }
        }
        if is_polled(kind) {
            self.settle_conflicts(p, undo)?;
        }
        Ok(())
    }

    /// Between polled targets, the one whose name sorts first keeps a family
    /// both claim with different types (or a derived name of it).
    fn settle_conflicts(&mut self, p: &Prepared, undo: &mut Vec<Undo>) -> Result<(), PushError> {
        let mut losers: BTreeSet<String> = BTreeSet::new();
        let mut first: Option<(String, String)> = None;
        for fam in &p.families {
            let mut rivals: Vec<String> = Vec::new();
            if self
                .families
                .get(&fam.name)
                .is_some_and(|i| i.typ != fam.typ)
            {
                rivals.extend(self.other_owners(&fam.name, &p.app));
            }
            for reserved in fam.typ.reserved_names(&fam.name) {
                if let Some(holder) = self.reserved.get(&reserved) {
                    if *holder != fam.name {
                        rivals.extend(self.other_owners(&holder.clone(), &p.app));
                    }
                }
            }
            for rival in rivals {
                let polled = self
                    .apps
                    .get(&rival)
                    .is_some_and(|e| is_polled(e.info.kind));
                if !polled {
                    // A pushed app keeps its family; `check` refuses the poll.
                    return Ok(());
                }
                if rival < p.app {
                    first.get_or_insert((rival, fam.name.clone()));
                } else {
                    losers.insert(rival);
                }
            }
        }
        if let Some((rival, family)) = first {
            return Err(PushError::new(
                RejectReason::Conflict,
                &p.app,
                format!(
                    "family {family} conflicts with target {rival:?} (another type or a derived \
                     name): of two polled targets the one whose name sorts first keeps it"
                ),
            ));
        }
        let now = Utc::now();
        for loser in losers {
            let old = self.remove_app(&loser).expect("an owner has an entry");
            let mut info = old.info.clone();
            info.up = Some(false);
            info.series = 0;
            info.last_error = Some(format!(
                "data dropped: target {:?} has a family that conflicts with this target's \
                 (another type or a derived name), and of two polled targets the one whose \
                 name sorts first keeps it",
                p.app
            ));
            info.last_error_time = Some(now);
            self.insert_app(AppEntry {
                info,
                families: Vec::new(),
                deadline: old.deadline,
                owner: 0,
                seq: 0,
            });
            undo.push(Undo::Indexed(loser, Some(old)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreOptions};
    use crate::telemetry::SelfMetrics;

    const PROM: &str = "# HELP gc GC pauses.\n# TYPE gc summary\ngc{quantile=\"0\"} 1\ngc{quantile=\"1\"} 2\ngc_sum 3\ngc_count 4\n";
    const VM: &str = "gc{quantile=\"0\"} 5\ngc{quantile=\"1\"} 6\ngc_sum 7\ngc_count 8\n";

    fn store() -> Store {
        Store::new(
            StoreOptions {
                app_label: Some("target".to_owned()),
                ..StoreOptions::default()
            },
            SelfMetrics::new(),
        )
    }

    fn poll(s: &Store, app: &str, text: &str) -> Result<usize, PushError> {
        s.push(app, text, AppKind::Poll, "test")
    }

    /// The pushed families of the page (without the self-metrics).
    fn page(s: &Store) -> String {
        let body = String::from_utf8(s.render().to_bytes().to_vec()).unwrap();
        body[..body.find("# HELP exporter_proxy_").unwrap()].to_owned()
    }

    /// Asserts that `page` is `header` followed by `blocks` in some order
    /// (the apps' blocks go in the order they last changed).
    #[track_caller]
    fn assert_blocks(page: &str, header: &str, blocks: &[&str]) {
        let rest = page
            .strip_prefix(header)
            .unwrap_or_else(|| panic!("no {header:?} at the start of:\n{page}"));
        let mut left = blocks.to_vec();
        let mut at = rest;
        while !at.is_empty() {
            let i = left
                .iter()
                .position(|b| at.starts_with(b))
                .unwrap_or_else(|| panic!("unexpected text at {at:?} in:\n{page}"));
            at = &at[left.remove(i).len()..];
        }
        assert!(left.is_empty(), "missing {left:?} in:\n{page}");
    }

    #[test]
    fn an_untyped_summary_joins_the_typed_one_in_either_order() {
        let a = store();
        poll(&a, "prometheus", PROM).unwrap();
        poll(&a, "victoria", VM).unwrap();
        let b = store();
        poll(&b, "victoria", VM).unwrap();
        poll(&b, "prometheus", PROM).unwrap();
        let header = "# HELP gc GC pauses.\n# TYPE gc summary\n";
        let blocks = [
            "gc{target=\"prometheus\",quantile=\"0\"} 1\ngc{target=\"prometheus\",quantile=\"1\"} 2\n\
            gc_sum{target=\"prometheus\"} 3\ngc_count{target=\"prometheus\"} 4\n",
            "gc{target=\"victoria\",quantile=\"0\"} 5\ngc{target=\"victoria\",quantile=\"1\"} 6\n\
            gc_count{target=\"victoria\"} 8\ngc_sum{target=\"victoria\"} 7\n",
        ];
        assert_blocks(&page(&a), header, &blocks);
        assert_blocks(&page(&b), header, &blocks);
        // The next polls change nothing.
        poll(&a, "victoria", VM).unwrap();
        poll(&b, "prometheus", PROM).unwrap();
        assert_blocks(&page(&a), header, &blocks);
        assert_blocks(&page(&b), header, &blocks);
        // Without the typed family, the untyped one is untyped again.
        a.remove("prometheus");
        poll(&a, "victoria", VM).unwrap();
        assert!(page(&a).contains("# TYPE gc untyped\n"), "{}", page(&a));
    }

    #[test]
    fn untyped_histogram_parts_and_plain_names_join() {
        let s = store();
        poll(&s, "typed", "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n# TYPE c counter\nc 1\n").unwrap();
        poll(
            &s,
            "loose",
            "h_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\nc 5\n",
        )
        .unwrap();
        let page = page(&s);
        assert!(
            page.contains("# TYPE c counter\nc{target=\"typed\"} 1\nc{target=\"loose\"} 5\n"),
            "{page}"
        );
        // Bounds written as Go writes them, as for typed histograms.
        assert!(
            page.contains("h_bucket{target=\"loose\",le=\"1\"} 1\n"),
            "{page}"
        );
        assert!(!page.contains("untyped"), "{page}");
    }

    #[test]
    fn samples_that_do_not_fit_do_not_join() {
        let s = store();
        poll(&s, "prometheus", PROM).unwrap();
        // A bare `gc` sample without `quantile` is no summary quantile.
        let e = poll(&s, "victoria", "gc 1\ngc_sum 2\n").unwrap_err();
        assert_eq!(e.reason, RejectReason::Conflict);
        // An untyped `h` is no part of a histogram `h`.
        poll(
            &s,
            "typed",
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        )
        .unwrap();
        assert!(poll(&s, "zzz", "h 1\n").is_err());
    }

    #[test]
    fn the_polled_target_that_sorts_first_wins_a_type_conflict_in_either_order() {
        let counter = "# TYPE m counter\nm 1\n";
        let gauge = "# TYPE m gauge\nm 2\n";
        let a = store();
        poll(&a, "alpha", counter).unwrap();
        let e = poll(&a, "beta", gauge).unwrap_err();
        assert!(
            e.message
                .contains("the one whose name sorts first keeps it"),
            "{e}"
        );
        assert!(e.message.contains("\"alpha\""), "{e}");
        let b = store();
        poll(&b, "beta", gauge).unwrap();
        poll(&b, "alpha", counter).unwrap();
        assert!(poll(&b, "beta", gauge).is_err());
        assert_eq!(page(&a), page(&b));
        assert_eq!(page(&b), "# TYPE m counter\nm{target=\"alpha\"} 1\n");
        let beta = b.apps().into_iter().find(|i| i.name == "beta").unwrap();
        assert_eq!(beta.status(), "down");
        assert!(beta.last_error.unwrap().contains("sorts first"));
        // Pushed apps keep the first-come rule.
        let p = store();
        p.push("zeta", gauge, AppKind::Push, "test").unwrap();
        assert!(poll(&p, "alpha", counter).is_err());
    }

    #[test]
    fn parts_of_each_type() {
        use MetricType::*;
        assert_eq!(part_of(Summary, "a", "a"), Some(Some("quantile")));
        assert_eq!(part_of(Summary, "a", "a_sum"), Some(None));
        assert_eq!(part_of(Summary, "a", "a_bucket"), None);
        assert_eq!(part_of(Histogram, "a", "a_bucket"), Some(Some("le")));
        assert_eq!(part_of(Histogram, "a", "a"), None);
        assert_eq!(part_of(Counter, "a", "a"), Some(None));
        assert_eq!(part_of(Gauge, "a", "a_sum"), None);
        let bases: Vec<&str> = candidate_bases("x_sum").collect();
        assert_eq!(bases, ["x_sum", "x"]);
    }
}
