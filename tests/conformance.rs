//! The dispatcher conformance suite, end to end: it passes the reference dispatcher,
//! it fails dispatchers that depart from the spec, and its reports are well-formed.

use hookjar_conformance::check::Quiet;
use hookjar_conformance::suite::{self, CASE_IDS, Options, Target, TimeMode};
use hookjar_conformance::{Report, Status};
use hookjar_core::RetryPolicy;
use hookjar_dispatch::{Config, Dispatcher, StoreConfig};
use hookjar_tests::report_settings;
use std::time::Duration;

/// Runs the suite against a reference dispatcher started with `config` (virtual time),
/// while the suite expects Skilljar's defaults.
async fn suite_against(config: Config, options: Options) -> Report {
    let key = config.api_key.clone();
    let dispatcher = Dispatcher::start(config, "127.0.0.1:0").await.unwrap();
    let target = Target {
        url: dispatcher.url(),
        api_key: key,
        time: TimeMode::Virtual,
        policy: RetryPolicy::default(),
    };
    let report = suite::run(&target, &options, &mut Quiet).await.unwrap();
    dispatcher.shutdown().await;
    report
}

fn config() -> Config {
    Config {
        api_key: "k".into(),
        store: StoreConfig::InMemory,
        ..Config::default()
    }
}

fn status_of(report: &Report, id: &str) -> Status {
    report
        .cases
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no case {id} in {report:#?}"))
        .status
}

#[tokio::test(start_paused = true)]
async fn self_hosted_suite_passes_every_case() {
    let report = suite::run_self_hosted(&Options::default(), &mut Quiet)
        .await
        .unwrap();
    let failed: Vec<_> = report
        .cases
        .iter()
        .filter(|c| c.status != Status::Pass)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let ids: Vec<&str> = report.cases.iter().map(|c| c.id.as_str()).collect();
    let mut expected = CASE_IDS.to_vec();
    expected.sort();
    let mut got = ids.clone();
    got.sort();
    assert_eq!(got, expected, "every case runs exactly once");
    assert!(report.passed());
    // The report, without durations and ports, is pinned.
    report_settings().bind(|| {
        insta::assert_snapshot!("conformance__report_table", report.to_table(false, false));
    });
}

#[tokio::test(start_paused = true)]
async fn suite_fails_a_dispatcher_with_the_wrong_backoff() {
    let mut c = config();
    c.policy.base_delay = Duration::from_secs(3);
    let report = suite_against(
        c,
        Options {
            only: vec!["S14".into(), "S15".into(), "S18.transport".into()],
            ..Options::default()
        },
    )
    .await;
    assert_eq!(status_of(&report, "S14.backoff"), Status::Fail);
    assert_eq!(status_of(&report, "S15.exhaustion"), Status::Fail);
    assert_eq!(status_of(&report, "S18.transport"), Status::Fail);
    let seen = &report.cases[0].seen;
    assert!(
        seen.contains("gap before retry 1 was 3.000s, expected 2s"),
        "{seen}"
    );
    assert!(!report.passed());
}

#[tokio::test(start_paused = true)]
async fn suite_fails_a_dispatcher_that_gives_up_early() {
    let mut c = config();
    c.policy.max_retries = 59;
    let report = suite_against(
        c,
        Options {
            only: vec!["S15".into()],
            ..Options::default()
        },
    )
    .await;
    assert_eq!(status_of(&report, "S15.exhaustion"), Status::Fail);
    assert!(
        report.cases[0].seen.starts_with("60 POSTs"),
        "{:?}",
        report.cases[0].seen
    );
}

/// Portability (b): Skilljar returns a set password in clear, so `serve
/// --reveal-secrets` must pass (the suite used to require the mask and failed it).
#[tokio::test(start_paused = true)]
async fn suite_passes_a_dispatcher_that_reveals_passwords() {
    let mut c = config();
    c.reveal_secrets = true;
    let report = suite_against(
        c,
        Options {
            only: vec!["S3".into()],
            ..Options::default()
        },
    )
    .await;
    assert_eq!(status_of(&report, "S3.resource"), Status::Pass);
    assert_eq!(status_of(&report, "S3.password-read-back"), Status::Pass);
    assert_eq!(status_of(&report, "S3.write-back"), Status::Pass);
}

/// Portability (d): a dispatcher with another retry policy passes when the suite is
/// told that policy, and fails when it is not.
#[tokio::test(start_paused = true)]
async fn suite_checks_the_policy_it_is_given() {
    let policy = RetryPolicy {
        base_delay: Duration::from_secs(3),
        max_delay: Duration::from_secs(600),
        max_retries: 12,
        ..RetryPolicy::default()
    };
    let only = Options {
        only: vec!["S14".into(), "S15".into(), "S18.transport".into()],
        ..Options::default()
    };
    let run = |expected: RetryPolicy| {
        let only = only.clone();
        async move {
            let mut c = config();
            c.policy = policy;
            let dispatcher = Dispatcher::start(c, "127.0.0.1:0").await.unwrap();
            let target = Target {
                url: dispatcher.url(),
                api_key: "k".into(),
                time: TimeMode::Virtual,
                policy: expected,
            };
            let report = suite::run(&target, &only, &mut Quiet).await.unwrap();
            dispatcher.shutdown().await;
            report
        }
    };
    let told = run(policy).await;
    assert!(told.passed(), "{}", told.to_table(false, false));
    assert_eq!(status_of(&told, "S15.exhaustion"), Status::Pass);
    let not_told = run(RetryPolicy::default()).await;
    assert_eq!(status_of(&not_told, "S14.backoff"), Status::Fail);
    assert_eq!(status_of(&not_told, "S15.exhaustion"), Status::Fail);
}

#[tokio::test(start_paused = true)]
async fn quick_skips_exhaustion_and_only_filters() {
    let report = suite_against(
        config(),
        Options {
            quick: true,
            only: vec!["s15".into(), "S17".into()],
            ..Options::default()
        },
    )
    .await;
    assert_eq!(report.cases.len(), 5, "{report:#?}");
    assert_eq!(status_of(&report, "S15.exhaustion"), Status::Skip);
    assert_eq!(status_of(&report, "S15.drops-pending"), Status::Skip);
    assert_eq!(status_of(&report, "S15.exhaustion-transport"), Status::Skip);
    assert_eq!(status_of(&report, "S17.success"), Status::Pass);
    assert!(report.passed(), "a skip does not fail a run");
}

#[test]
fn only_selects_whole_clauses_and_ids() {
    let only = |o: &[&str]| -> Vec<&str> {
        let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        CASE_IDS
            .iter()
            .copied()
            .filter(|id| suite::selected(id, &o))
            .collect()
    };
    assert_eq!(
        only(&["S1"]),
        [
            "S1.list",
            "S1.order",
            "S1.page-size",
            "S1.max-page-size",
            "S1.links",
            "S1.full-resources"
        ]
    );
    assert_eq!(only(&["s18.transport"]), ["S18.transport"]);
    assert_eq!(only(&["S7."]).len(), 8);
    assert_eq!(
        only(&["S13", "X5"]),
        [
            "X5.no-extra-headers",
            "S13.ping",
            "S13.ping-failure",
            "S13.ping-unknown",
            "S13.ping-inactive",
            "S13.ping-2xx",
            "S13.ping-no-answer",
            "X5.same-bytes"
        ]
    );
    assert_eq!(only(&[]).len(), CASE_IDS.len());
    assert!(only(&["S1.l"]).is_empty(), "no partial names");
}

#[tokio::test(start_paused = true)]
async fn junit_report_is_valid_xml_with_one_testcase_per_case() {
    let mut c = config();
    c.policy.max_retries = 59;
    let report = suite_against(
        c,
        Options {
            only: vec!["S3.resource".into(), "S5".into(), "S15".into()],
            ..Options::default()
        },
    )
    .await;
    let xml = report.to_junit();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("8"));
    assert_eq!(suite.attribute("failures"), Some("1"));
    let names: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter_map(|n| n.attribute("name"))
        .collect();
    assert_eq!(
        names,
        [
            "S5.auth",
            "S5.ping",
            "S5.key-only-as-username",
            "S5.refusals",
            "S3.resource",
            "S15.exhaustion",
            "S15.drops-pending",
            "S15.exhaustion-transport"
        ]
    );
    let failure = doc
        .descendants()
        .find(|n| n.has_tag_name("failure"))
        .unwrap();
    assert!(failure.attribute("message").unwrap().contains("60 POSTs"));
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let target = Target {
        url: url.clone(),
        api_key: "k".into(),
        time: TimeMode::Scaled(1.0),
        policy: RetryPolicy::default(),
    };
    let err = suite::run(&target, &Options::default(), &mut Quiet)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("check --server and --api-key"), "{msg}");
}

/// `--receiver-addr` / `--receiver-url`: the mock listens where it is told, and the
/// dispatcher is given the URL it is told (here `localhost` instead of the address).
#[tokio::test(start_paused = true)]
async fn the_receiver_listens_and_is_reached_where_it_is_told() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dispatcher = Dispatcher::start(config(), "127.0.0.1:0").await.unwrap();
    let target = Target {
        url: dispatcher.url(),
        api_key: "k".into(),
        time: TimeMode::Virtual,
        policy: RetryPolicy::default(),
    };
    let options = Options {
        only: vec!["S7".into(), "S8.basic-auth".into()],
        receiver_addr: Some(format!("127.0.0.1:{port}").parse().unwrap()),
        receiver_url: Some(format!("http://localhost:{port}/")),
        ..Options::default()
    };
    let report = suite::run(&target, &options, &mut Quiet).await.unwrap();
    assert!(report.passed(), "{}", report.to_table(false, false));
    assert_eq!(status_of(&report, "S7.method"), Status::Pass);

    let bad = Options {
        receiver_url: Some("localhost:9000".into()),
        ..Options::default()
    };
    let err = suite::run(&target, &bad, &mut Quiet).await.unwrap_err();
    assert!(err.to_string().contains("--receiver-url"), "{err}");
    dispatcher.shutdown().await;
}
