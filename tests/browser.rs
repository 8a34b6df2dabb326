//! The mock's inspector (`/_mock/ui`) and the dispatcher's console (`/ui`) in a real
//! headless Chromium, driven over WebDriver (fantoccini + chromedriver), the way a
//! person uses them: open, wait for text, click, type.
//!
//! Needs `chromium` and `chromedriver` on `PATH` (Debian: `apt-get install chromium
//! chromium-driver`; or point `HOOKJAR_CHROMIUM` / `HOOKJAR_CHROMEDRIVER` at them).
//! Without them each test prints one `skipped: …` line and passes, unless
//! `HOOKJAR_REQUIRE_BROWSER=1` (CI sets it), which makes a missing browser a failure.
//!
//! With `HOOKJAR_SCREENSHOTS=DIR` (relative to the workspace root) the tests save the
//! screenshots shown in the docs: `just screenshots` writes them to `docs/img/`.
//!
//! The servers run in this process on loopback ports; the browser runs with a fresh
//! profile and no network features (the machine may be offline).

use std::io::Write as _;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt as _;
use hookjar_dispatch::{Config, Dispatcher, StoreConfig};
use hookjar_mock::MockReceiver;
use serde_json::{Value, json};

/// How long a step may take to show in the page before the test fails (the live
/// list's own promise, one second, is asserted separately).
const STEP: Duration = Duration::from_secs(10);

const COURSE_COMPLETION: &str = r#"{"event_type":"COURSE_COMPLETION","timestamp":"2026-01-01T00:00:00.000000+00:00","user":{"id":"u1","email":"ada@example.com"},"course":{"id":"c1","title":"Webhooks 101"}}"#;

// ---------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------

/// Chromium and chromedriver, found on `PATH` or named by the environment.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn find_tools() -> Result<Tools, String> {
    let chromium = match std::env::var_os("HOOKJAR_CHROMIUM") {
        Some(p) => Some(PathBuf::from(p)),
        None => on_path(&["chromium", "chromium-browser", "google-chrome"]),
    };
    let chromedriver = match std::env::var_os("HOOKJAR_CHROMEDRIVER") {
        Some(p) => Some(PathBuf::from(p)),
        None => on_path(&["chromedriver"]),
    };
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Ok(Tools {
            chromium,
            chromedriver,
        }),
        (None, None) => Err("neither chromium nor chromedriver is on PATH".into()),
        (None, _) => Err("chromium is not on PATH".into()),
        (_, None) => Err("chromedriver is not on PATH".into()),
    }
}

/// A chromedriver process and a browser session; [`Browser::close`] ends both.
struct Browser {
    client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts chromedriver and a headless Chromium, or says why it cannot: `None` (after
/// one `skipped:` line) when the tools are missing and the browser is not required.
async fn browser(test: &str) -> Option<Browser> {
    let tools = match find_tools() {
        Ok(t) => t,
        Err(why) => {
            if std::env::var("HOOKJAR_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!(
                    "{test}: HOOKJAR_REQUIRE_BROWSER=1 but {why}; install them (apt-get install chromium chromium-driver) or set HOOKJAR_CHROMIUM and HOOKJAR_CHROMEDRIVER"
                );
            }
            // Straight to stderr: the test harness does not capture it.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: {test}: {why} (apt-get install chromium chromium-driver; HOOKJAR_REQUIRE_BROWSER=1 makes this a failure)"
            );
            return None;
        }
    };
    let port = free_port();
    let profile =
        std::env::temp_dir().join(format!("hookjar-browser-{}-{port}", std::process::id()));
    let driver = Command::new(&tools.chromedriver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", tools.chromedriver.display()));
    let mut browser_guard = DriverGuard(Some(driver));

    let caps = json!({
        "goog:chromeOptions": {
            "binary": tools.chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars",
                "--force-device-scale-factor=1", "--window-size=1280,800",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let caps = match caps {
        Value::Object(m) => m,
        _ => unreachable!("a JSON object"),
    };
    let url = format!("http://127.0.0.1:{port}");
    // chromedriver takes a moment to listen: retry the session until it does.
    let started = Instant::now();
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => break c,
            Err(e) if started.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{test}: cannot start a Chromium session through chromedriver: {e}"),
        }
    };
    viewport(&client, 1280, 800).await;
    Some(Browser {
        client,
        driver: browser_guard.0.take().expect("the driver is kept"),
        profile,
    })
}

/// Sizes the window so that the page itself gets `width` × `height` pixels.
async fn viewport(c: &Client, width: u32, height: u32) {
    c.set_window_size(width, height)
        .await
        .expect("the window can be sized");
    let inner = c
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .expect("the page answers");
    let inner: (u32, u32) = serde_json::from_value(inner).expect("two numbers");
    let (w, h) = (
        width + width.saturating_sub(inner.0),
        height + height.saturating_sub(inner.1),
    );
    c.set_window_size(w, h)
        .await
        .expect("the window can be sized");
}

/// Kills chromedriver if starting the session panics.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `body` with a browser, closing the session whatever happens; a panic in the
/// body is re-raised after the browser is gone.
async fn with_browser<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // One browser at a time: four Chromiums on a 2-core machine would make the live
    // list's one-second promise a test of the machine.
    let _one = ONE_BROWSER.lock().await;
    let Some(browser) = browser(test).await else {
        return;
    };
    let result = AssertUnwindSafe(body(browser.client.clone()))
        .catch_unwind()
        .await;
    browser.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

/// Polls `probe` until it gives a value, failing after `within` with `what`.
async fn wait_until<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < within,
            "waited {within:?} for {what}, in vain"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

async fn find(c: &Client, css: &str) -> Element {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
}

/// A property (`innerText`, `dataset.id`, …) of the first element matching `css` (`""`
/// when there is none), read in
/// one step: the pages re-render as data arrives, so a found element may go stale.
async fn read(c: &Client, css: &str, property: &str) -> String {
    let v = c
        .execute(
            "let v = document.querySelector(arguments[0]);
                for (const k of arguments[1].split('.')) v = v == null ? v : v[k];
                return v == null ? '' : String(v);",
            vec![json!(css), json!(property)],
        )
        .await
        .expect("the page answers");
    v.as_str().unwrap_or_default().to_owned()
}

/// The visible text of the first element matching `css`.
async fn text_of(c: &Client, css: &str) -> String {
    read(c, css, "innerText").await.trim().to_owned()
}

/// Waits until the element's visible text contains `needle`; returns the text.
async fn wait_text(c: &Client, css: &str, needle: &str) -> String {
    wait_until(&format!("{css} to show {needle:?}"), STEP, || async {
        let t = text_of(c, css).await;
        t.contains(needle).then_some(t)
    })
    .await
}

/// The visible text of each cell of each row matched by `rows`, read in one go (the
/// pages re-render rows as data arrives).
async fn table(c: &Client, rows: &str) -> Vec<Vec<String>> {
    let v = c
        .execute(
            "return [...document.querySelectorAll(arguments[0])]
                .map((r) => [...r.querySelectorAll('td')].map((td) => td.innerText.trim()));",
            vec![json!(rows)],
        )
        .await
        .expect("the table can be read");
    serde_json::from_value(v).expect("rows of strings")
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let e = find(c, css).await;
    e.clear().await.expect("the field can be cleared");
    e.send_keys(text).await.expect("the field takes text");
}

/// Clicks the element, finding it again if the page re-rendered it meanwhile.
async fn click(c: &Client, css: &str) {
    act(c, css, "click", |e| async move { e.click().await }).await;
}

/// Presses Enter on the element (keyboard use), finding it again if it went stale.
async fn press_enter(c: &Client, css: &str) {
    let enter = fantoccini::key::Key::Enter.to_string();
    act(c, css, "press Enter on", |e| {
        let enter = enter.clone();
        async move { e.send_keys(&enter).await }
    })
    .await;
}

async fn act<F, Fut>(c: &Client, css: &str, what: &str, action: F)
where
    F: Fn(Element) -> Fut,
    Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
{
    let mut last = String::new();
    let start = Instant::now();
    while start.elapsed() < STEP {
        match c.find(Locator::Css(css)).await {
            Ok(e) => match action(e).await {
                Ok(()) => return,
                Err(err) => last = err.to_string(),
            },
            Err(err) => last = err.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    panic!("cannot {what} {css}: {last}");
}

/// Saves a screenshot for the docs when `HOOKJAR_SCREENSHOTS` names a folder.
async fn screenshot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("HOOKJAR_SCREENSHOTS") else {
        return;
    };
    // A relative folder is taken from the workspace root (cargo runs tests in tests/).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let dir = dir.as_path();
    std::fs::create_dir_all(dir).expect("the screenshot folder can be made");
    c.execute(
        "document.activeElement.blur(); window.scrollTo(0, 0); return null;",
        vec![],
    )
    .await
    .expect("the page answers");
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(name), png).expect("the screenshot can be written");
}

async fn post_event(url: &str, user_agent: &str, auth: Option<(&str, &str)>, body: &str) -> u16 {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", user_agent)
        .body(body.to_owned());
    if let Some((u, p)) = auth {
        req = req.basic_auth(u, Some(p));
    }
    req.send()
        .await
        .expect("the mock answers")
        .status()
        .as_u16()
}

/// Logs in to the console page already open.
async fn log_in(c: &Client, key: &str) {
    type_into(c, "#key", key).await;
    click(c, "#login-form button[type=submit]").await;
    wait_until("the console to open", STEP, || async {
        (read(c, "#app", "hidden").await == "false").then_some(())
    })
    .await;
}

/// The array a script returns.
async fn js_array(c: &Client, script: &str) -> Vec<Value> {
    match c.execute(script, vec![]).await.expect("the script runs") {
        Value::Array(items) => items,
        other => panic!("the script returned {other}, not an array"),
    }
}

/// A reference dispatcher for the console tests: key `k3y`, in memory, at `time_scale`.
async fn console_dispatcher(time_scale: f64) -> Dispatcher {
    Dispatcher::start(
        Config {
            api_key: "k3y".into(),
            store: StoreConfig::InMemory,
            time_scale,
            ..Config::default()
        },
        "127.0.0.1:0",
    )
    .await
    .unwrap()
}

/// Calls the dispatcher's API with the key, as any client does.
async fn call_api(
    d: &Dispatcher,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", d.url()))
        .basic_auth("k3y", Some(""));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("the dispatcher answers");
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap_or(Value::Null)
}

/// Opens the inspector and waits until its event stream is connected.
async fn open_inspector(c: &Client, mock: &MockReceiver) {
    c.goto(&format!("{}/_mock/ui", mock.url()))
        .await
        .expect("the inspector loads");
    wait_until("the live stream to connect", STEP, || async {
        (text_of(c, "#live").await == "live").then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------
// The mock's inspector
// ---------------------------------------------------------------------------

/// A request appears in the list within a second, without a reload, its S7
/// violation highlighted; its detail shows headers, the pretty body and the Basic
/// auth user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_lists_a_request_live_and_shows_its_detail() {
    let mock = MockReceiver::builder().start().await.unwrap();
    with_browser(
        "inspector_lists_a_request_live_and_shows_its_detail",
        |c| async move {
            open_inspector(&c, &mock).await;
            c.execute("window.__sameDocument = true; return null;", vec![])
                .await
                .unwrap();

            // A well-formed delivery, then one with a User-Agent Skilljar never sends.
            let ok = post_event(
                &format!("{}/hooks/a", mock.url()),
                "skilljar",
                None,
                COURSE_COMPLETION,
            )
            .await;
            assert_eq!(ok, 200);
            wait_text(&c, "#rows", "/hooks/a").await;
            let sent = Instant::now();
            let status = post_event(
                &format!("{}/hooks/b", mock.url()),
                "curl/8.0",
                Some(("alice", "s3cret")),
                &COURSE_COMPLETION.replace("u1", "u2"),
            )
            .await;
            assert_eq!(status, 200);
            wait_until("request #2 in the list", Duration::from_secs(5), || async {
                c.find(Locator::Css("#rows tr[data-seq='2']")).await.ok()
            })
            .await;
            let took = sent.elapsed();
            assert!(
                took < Duration::from_secs(1),
                "the request took {took:?} to appear"
            );
            let same: Value = c
                .execute("return window.__sameDocument === true;", vec![])
                .await
                .unwrap();
            assert_eq!(same, json!(true), "the page was reloaded");

            // Newest first; the violation is highlighted on its row only.
            let rows = table(&c, "#rows tr").await;
            assert_eq!(rows.len(), 2, "{rows:?}");
            assert!(
                rows[0][1].contains("/hooks/b") && rows[1][1].contains("/hooks/a"),
                "{rows:?}"
            );
            assert!(rows[0][2].contains("COURSE_COMPLETION"), "{rows:?}");
            assert!(rows[0][5].contains("delivered"), "{rows:?}");
            assert!(rows[0][6].contains("S7 user-agent"), "{rows:?}");
            assert_eq!(rows[1][6], "ok", "{rows:?}");
            let class = read(&c, "#rows tr[data-seq='2']", "className").await;
            assert!(class.contains("has-violations"), "{class}");
            let first_class = read(&c, "#rows tr[data-seq='1']", "className").await;
            assert!(!first_class.contains("has-violations"), "{first_class}");

            // The detail: headers, pretty JSON, the Basic auth user, curl.
            click(&c, "#rows tr[data-seq='2'] button.open").await;
            wait_text(&c, "#detail-h", "Request #2").await;
            let header_text = text_of(&c, "#d-headers").await;
            assert!(
                header_text.contains("user-agent") && header_text.contains("curl/8.0"),
                "{header_text}"
            );
            assert!(
                header_text.contains("content-type") && header_text.contains("application/json"),
                "{header_text}"
            );
            let body = read(&c, "#d-body", "textContent").await;
            assert!(
                body.contains("\n  \"event_type\": \"COURSE_COMPLETION\""),
                "not pretty JSON: {body}"
            );
            assert!(body.contains("\"email\": \"ada@example.com\""), "{body}");
            assert_eq!(text_of(&c, "#d-auth").await, "Basic auth user: alice");
            assert!(
                text_of(&c, "#d-violations")
                    .await
                    .contains("S7 user-agent: expected \"skilljar\"")
            );
            let curl = read(&c, "#d-curl", "textContent").await;
            assert!(
                curl.starts_with(&format!("curl '{}/hooks/b'", mock.url())),
                "{curl}"
            );
            assert!(
                curl.contains("-H 'user-agent: curl/8.0'") && curl.contains("--data-raw '{"),
                "{curl}"
            );

            // The same body again is the delivery's retry: the list shows the attempt and
            // the time since the previous one, the detail lists both attempts.
            let status = post_event(
                &format!("{}/hooks/b", mock.url()),
                "curl/8.0",
                Some(("alice", "s3cret")),
                &COURSE_COMPLETION.replace("u1", "u2"),
            )
            .await;
            assert_eq!(status, 200);
            wait_until("request #3 in the list", STEP, || async {
                c.find(Locator::Css("#rows tr[data-seq='3']")).await.ok()
            })
            .await;
            let rows = table(&c, "#rows tr").await;
            let re = regex_lite::Regex::new(r"retry 1 · \+\d+\.\ds$").unwrap();
            assert!(re.is_match(&rows[0][3]), "{rows:?}");
            assert!(
                rows[0][3].starts_with(&rows[1][3][..16]),
                "same digest: {rows:?}"
            );
            let attempts = text_of(&c, "#d-attempts").await;
            assert!(
                attempts.contains("#2 first attempt → 200") && attempts.contains("#3 retry 1 · +"),
                "{attempts}"
            );

            screenshot(&c, "mock-inspector.png").await;
            viewport(&c, 390, 844).await;
            screenshot(&c, "mock-inspector-phone.png").await;
        },
    )
    .await;
}

/// Editing the script in the page changes the next answer; a recorded request can be
/// resent to another URL; the filters narrow the list; clear empties it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_edits_the_script_resends_filters_and_clears() {
    let mock = MockReceiver::builder().start().await.unwrap();
    with_browser(
        "inspector_edits_the_script_resends_filters_and_clears",
        |c| async move {
            open_inspector(&c, &mock).await;
            wait_text(&c, "#script-now", "200").await;

            type_into(&c, "#script-input", "410").await;
            click(&c, "#script-form button[type=submit]").await;
            wait_text(&c, "#script-msg", "Applied: default script is now 410").await;
            assert_eq!(mock.scripts().default.to_string(), "410");
            let status = post_event(
                &format!("{}/hooks/a", mock.url()),
                "skilljar",
                None,
                COURSE_COMPLETION,
            )
            .await;
            assert_eq!(status, 410, "the next answer follows the edited script");
            wait_text(&c, "#rows", "deactivate").await;
            let rows = table(&c, "#rows tr").await;
            assert!(rows[0][4].contains("410"), "{rows:?}");

            // A bad script is refused with the parser's message, and the old one stays.
            type_into(&c, "#script-input", "503*x").await;
            click(&c, "#script-form button[type=submit]").await;
            wait_text(&c, "#script-msg", "Not applied").await;
            assert!(text_of(&c, "#script-msg").await.contains("column 5"));
            assert_eq!(mock.scripts().default.to_string(), "410");

            // Resend #1 to another path of the same receiver: it arrives as #2. The
            // request is opened from the keyboard: its row's button takes Enter.
            press_enter(&c, "#rows tr[data-seq='1'] button.open").await;
            wait_text(&c, "#detail-h", "Request #1").await;
            type_into(&c, "#resend-url", &format!("{}/again", mock.url())).await;
            click(&c, "#resend-form button[type=submit]").await;
            wait_text(&c, "#resend-msg", "Resent: the answer was HTTP 410").await;
            wait_text(&c, "#rows", "/again").await;
            let again = &mock.requests()[1];
            assert_eq!(again.path, "/again");
            assert_eq!(again.header("user-agent"), Some("skilljar"));
            assert_eq!(again.body, COURSE_COMPLETION);

            // Filter by path, then clear.
            find(&c, "#f-path")
                .await
                .select_by_value("/again")
                .await
                .unwrap();
            wait_until("the filter to keep one row", STEP, || async {
                (table(&c, "#rows tr").await.len() == 1).then_some(())
            })
            .await;
            assert!(text_of(&c, "#count").await.contains("1 of 2"));
            click(&c, "#clear").await;
            wait_until("the list to empty", STEP, || async {
                table(&c, "#rows tr").await.is_empty().then_some(())
            })
            .await;
            assert!(mock.requests().is_empty());

            // An edit not applied yet survives the live updates that new requests
            // bring (it used to be overwritten by the current script once the field
            // lost focus).
            type_into(&c, "#script-input", "503*3,200").await;
            c.execute("document.activeElement.blur()", vec![])
                .await
                .unwrap(); // focus leaves the field
            let status = post_event(
                &format!("{}/hooks/b", mock.url()),
                "skilljar",
                None,
                COURSE_COMPLETION,
            )
            .await;
            assert_eq!(status, 410);
            wait_until("the new request to be listed", STEP, || async {
                (table(&c, "#rows tr").await.len() == 1).then_some(())
            })
            .await;
            assert_eq!(
                read(&c, "#script-input", "value").await,
                "503*3,200",
                "the unapplied edit is kept"
            );
        },
    )
    .await;
}

/// Eight inspector tabs on one receiver. A browser keeps at most six HTTP/1.1
/// connections to one host and an event stream holds one for as long as it is open,
/// so with a stream per tab the seventh tab could not even load. Every tab loads,
/// says "live" and lists a new request; closing the tab that opened first (the one
/// holding the shared stream) hands the stream to another, and the rest stay live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_in_eight_tabs_loads_and_stays_live() {
    const TABS: usize = 8;
    let mock = MockReceiver::builder().start().await.unwrap();
    with_browser(
        "inspector_in_eight_tabs_loads_and_stays_live",
        |c| async move {
            // A page that cannot get a connection waits; fail in seconds, not minutes.
            c.update_timeouts(fantoccini::wd::TimeoutConfiguration::new(
                None,
                Some(STEP),
                None,
            ))
            .await
            .unwrap();
            let mut tabs = vec![c.window().await.unwrap()];
            open_inspector(&c, &mock).await;
            for n in 2..=TABS {
                let tab = c.new_window(true).await.unwrap().handle;
                c.switch_to_window(tab.clone()).await.unwrap();
                if let Err(e) = c.goto(&format!("{}/_mock/ui", mock.url())).await {
                    panic!("inspector tab {n} of {TABS} did not load: {e}");
                }
                wait_until(&format!("tab {n} to say live"), STEP, || async {
                    (text_of(&c, "#live").await == "live").then_some(())
                })
                .await;
                tabs.push(tab);
            }

            let every_tab_lists = |path: &'static str, tabs: Vec<fantoccini::wd::WindowHandle>| {
                let c = c.clone();
                async move {
                    for (n, tab) in tabs.into_iter().enumerate() {
                        c.switch_to_window(tab).await.unwrap();
                        wait_until(&format!("{path} in tab {}", n + 1), STEP, || async {
                            text_of(&c, "#rows").await.contains(path).then_some(())
                        })
                        .await;
                        assert_eq!(text_of(&c, "#live").await, "live", "tab {}", n + 1);
                    }
                }
            };
            let status = post_event(
                &format!("{}/hooks/first", mock.url()),
                "skilljar",
                None,
                COURSE_COMPLETION,
            )
            .await;
            assert_eq!(status, 200);
            every_tab_lists("/hooks/first", tabs.clone()).await;

            // The first tab holds the stream; close it.
            c.switch_to_window(tabs.remove(0)).await.unwrap();
            c.close_window().await.unwrap();
            let status = post_event(
                &format!("{}/hooks/second", mock.url()),
                "skilljar",
                None,
                &COURSE_COMPLETION.replace("u1", "u2"),
            )
            .await;
            assert_eq!(status, 200);
            every_tab_lists("/hooks/second", tabs.clone()).await;
        },
    )
    .await;
}

/// The inspector reads only what is new (`?after=SEQ`) instead of the whole journal
/// on every change, yet mirrors the receiver: requests evicted from memory (`keep`)
/// leave the list, and a clear made elsewhere (the API) empties it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspector_reads_only_new_requests_and_follows_evictions_and_clears() {
    let mock = MockReceiver::builder().keep(3).start().await.unwrap();
    with_browser(
        "inspector_reads_only_new_requests_and_follows_evictions_and_clears",
        |c| async move {
            open_inspector(&c, &mock).await;
            let post = |n: u32| {
                let url = format!("{}/hooks/{n}", mock.url());
                async move {
                    let body = COURSE_COMPLETION.replace("u1", &format!("u{n}"));
                    assert_eq!(post_event(&url, "skilljar", None, &body).await, 200);
                }
            };
            // The seqs listed, top to bottom.
            let seqs = || async {
                js_array(&c, "return [...document.querySelectorAll('#rows tr[data-seq]')].map((r) => Number(r.dataset.seq));")
                    .await
                    .iter()
                    .map(|v| v.as_u64().unwrap())
                    .collect::<Vec<_>>()
            };
            // The page's reads of the journal so far, in order.
            let reads = || async {
                js_array(&c, "return performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.includes('/_mock/requests'));")
                    .await
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            };
            for n in 1..=2 {
                post(n).await;
            }
            wait_until("requests #1 and #2 listed", STEP, || async {
                (seqs().await == [2, 1]).then_some(())
            })
            .await;
            let before = reads().await.len();
            for n in 3..=5 {
                post(n).await;
            }
            // Only #3–#5 are in the receiver's memory now, and only they are listed.
            wait_until("#1 and #2 evicted from the list", STEP, || async {
                (seqs().await == [5, 4, 3]).then_some(())
            })
            .await;
            assert!(text_of(&c, "#count").await.contains('3'));

            // Every read of the journal after the first asked only for what was new:
            // those made once #1 and #2 were listed, for what came after #2 at least.
            let reads = reads().await;
            assert!(reads.len() > before, "no read for #3–#5: {reads:?}");
            let afters: Vec<u64> = reads[1..]
                .iter()
                .map(|url| {
                    url.split_once("?after=")
                        .and_then(|(_, n)| n.parse().ok())
                        .unwrap_or_else(|| {
                            panic!("a later read fetched the whole journal again: {url} (all: {reads:?})")
                        })
                })
                .collect();
            assert!(
                afters[before - 1..].iter().all(|&n| n >= 2),
                "a read after #2 was listed asked for requests it had: {reads:?}"
            );

            // A clear through the API (not the page) empties the list; what comes
            // next is listed alone.
            let cleared = reqwest::Client::new()
                .delete(format!("{}/_mock/requests", mock.url()))
                .send()
                .await
                .unwrap();
            assert!(cleared.status().is_success());
            wait_until("the list to empty after the clear", STEP, || async {
                seqs().await.is_empty().then_some(())
            })
            .await;
            post(6).await;
            wait_until("#6 listed alone", STEP, || async {
                (seqs().await == [6]).then_some(())
            })
            .await;
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// The dispatcher's console
// ---------------------------------------------------------------------------

/// Log in, create a webhook to a `503*2,200` mock, emit under `--time-scale 60`:
/// the timeline shows three attempts, the back-offs of S14 (2 s, then 4 s), and
/// redeliver sends the same bytes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_the_retry_timeline_and_redelivers() {
    let mock = MockReceiver::builder()
        .script("503*2,200")
        .unwrap()
        .start()
        .await
        .unwrap();
    // Fast enough (the 6 s of back-off take 0.1 s) yet coarse enough that the
    // scheduler's real jitter (a fraction of a millisecond, scaled 60 ×) stays below
    // the 0.1 s the page shows; at 3600 × one CI run saw 4.0 s shown as 5.6 s.
    let dispatcher = console_dispatcher(60.0).await;
    let console = format!("{}/ui", dispatcher.url());
    let target = format!("{}/hooks/console", mock.url());
    with_browser("console_shows_the_retry_timeline_and_redelivers", |c| async move {
        c.goto(&console).await.expect("the console loads");
        // A wrong key is refused; the right one opens the console.
        type_into(&c, "#key", "wrong").await;
        click(&c, "#login-form button[type=submit]").await;
        wait_text(&c, "#login-msg", "Not logged in: Invalid username/password.").await;
        log_in(&c, "k3y").await;
        let url = c.current_url().await.unwrap();
        assert!(!url.as_str().contains("k3y"), "the key is in the URL: {url}");

        // Create a webhook for COURSE_COMPLETION.
        click(&c, "#new-webhook").await;
        type_into(&c, "#wh-target", &target).await;
        find(&c, "#wh-type").await.select_by_value("COURSE_COMPLETION").await.unwrap();
        click(&c, "#wh-save").await;
        wait_text(&c, "#wh-msg", "Created webhook").await;
        wait_text(&c, "#wh-rows", &target).await;
        let rows = table(&c, "#wh-rows tr").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0][1], "COURSE_COMPLETION");
        assert_eq!(rows[0][2], "active");

        // Emit from the fixture, with an override.
        wait_until("the fixture to load", STEP, || async {
            let v = read(&c, "#emit-body", "value").await;
            v.contains("\"course\"").then_some(())
        })
        .await;
        c.execute(
            "const b = document.getElementById('emit-body'); const e = JSON.parse(b.value); e.course.title = 'Timeline 101'; b.value = JSON.stringify(e, null, 2); return null;",
            vec![],
        )
        .await
        .unwrap();
        click(&c, "#emit").await;
        wait_text(&c, "#emit-msg", "1 delivery queued").await;

        // The delivery log: three attempts, 2 s and 4 s of back-off, delivered.
        click(&c, "#wh-rows tr button[aria-label^='Deliveries']").await;
        wait_text(&c, "#dl-rows", "delivered").await;
        click(&c, "#dl-rows tr button.open").await;
        let attempts = wait_until("three attempts in the timeline", STEP, || async {
            let t = table(&c, "#tl-rows tr").await;
            (t.len() == 3).then_some(t)
        })
        .await;
        let col = |i: usize| attempts.iter().map(|r| r[i].clone()).collect::<Vec<_>>();
        assert_eq!(col(0), ["first", "retry 1", "retry 2"]);
        assert_eq!(col(2), ["HTTP 503", "HTTP 503", "HTTP 200"]);
        assert_eq!(col(4), ["retry", "retry", "delivered"]);
        // The back-off gaps (S14): from each POST's end to the next attempt's due
        // time, so at least 2 s and 4 s, and more only by the scheduler's jitter.
        let gaps = col(5);
        assert_eq!(gaps[2], "—", "{gaps:?}");
        for (shown, backoff) in gaps[..2].iter().zip([2.0, 4.0]) {
            let secs: f64 = shown
                .strip_suffix('s')
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a gap is shown as {shown:?}: {gaps:?}"));
            assert!(
                (backoff..backoff + 0.5).contains(&secs),
                "the back-off gaps (S14): {gaps:?}"
            );
        }
        let dots = c.find_all(Locator::Css("#tl-svg circle.dot")).await.unwrap();
        assert_eq!(dots.len(), 3, "one dot per attempt on the axis");
        assert!(text_of(&c, "#tl-meta").await.starts_with("delivered"));
        let received = mock.requests();
        assert_eq!(received.len(), 3);
        assert!(received[0].body.contains("Timeline 101"), "the override was sent");
        let first = read(&c, "#dl-rows tr", "dataset.id").await;
        assert!(!first.is_empty());

        // The webhook list shows the last attempt.
        wait_text(&c, "#wh-rows", "HTTP 200 delivered").await;
        // Taller than 1280×800 only so the docs' picture shows the whole timeline.
        viewport(&c, 1280, 960).await;
        screenshot(&c, "dispatcher-console.png").await;
        viewport(&c, 390, 844).await;
        screenshot(&c, "dispatcher-console-phone.png").await;
        viewport(&c, 1280, 800).await;

        // Redeliver: the same bytes again, as a new delivery (the mock's script for
        // this body is at its last step, 200).
        click(&c, "#redeliver").await;
        let queued = wait_text(&c, "#tl-msg", "Queued again as delivery").await;
        let new_id = queued.trim_end_matches('.').rsplit(' ').next().unwrap().to_owned();
        assert_ne!(new_id, first);
        wait_text(&c, "#tl-h", &new_id).await;
        wait_until("the redelivery to be delivered", STEP, || async {
            let t = table(&c, "#tl-rows tr").await;
            (t.len() == 1 && t[0][4] == "delivered").then_some(())
        })
        .await;
        let received = mock.requests();
        assert_eq!(received.len(), 4);
        assert_eq!(received[3].body, received[0].body, "a redelivery resends the same bytes");
        assert_eq!(table(&c, "#dl-rows tr").await.len(), 2);
    })
    .await;
    dispatcher.shutdown().await;
}

/// A 4xx deactivates at once: the timeline marks the point and the list the reason, and
/// Re-activate turns the webhook back on. A failing delivery counts down to its next
/// attempt. Ping, Edit, Delete and Log out work from the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_marks_deactivation_counts_down_and_manages_webhooks() {
    let mock = MockReceiver::builder()
        .route("/gone", "410")
        .unwrap()
        .route("/flaky", "503")
        .unwrap()
        .start()
        .await
        .unwrap();
    // Real time: the countdown is seconds long.
    let dispatcher = console_dispatcher(1.0).await;
    let mut ids = Vec::new();
    for path in ["/gone", "/flaky"] {
        let w = call_api(
            &dispatcher,
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(json!({"target_url": format!("{}{path}", mock.url()), "event_type": "COURSE_COMPLETION"})),
        )
        .await;
        ids.push(w["id"].as_str().unwrap().to_owned());
    }
    let (gone, flaky) = (ids[0].clone(), ids[1].clone());
    let emitted = call_api(
        &dispatcher,
        reqwest::Method::POST,
        "/v1/events",
        Some(json!({"event_type": "COURSE_COMPLETION"})),
    )
    .await;
    assert_eq!(emitted["deliveries"], 2);
    let console = format!("{}/ui", dispatcher.url());
    let d = &dispatcher;
    with_browser(
        "console_marks_deactivation_counts_down_and_manages_webhooks",
        |c| async move {
            c.goto(&console).await.expect("the console loads");
            log_in(&c, "k3y").await;
            let gone_row = format!("#wh-rows tr[data-id='{gone}']");
            let flaky_row = format!("#wh-rows tr[data-id='{flaky}']");
            wait_text(&c, &gone_row, "inactive: HTTP_4XX_RESPONSE").await;

            // The deactivation point.
            click(&c, &format!("{gone_row} button[aria-label^='Deliveries']")).await;
            wait_text(&c, "#dl-rows", "failed").await;
            click(&c, "#dl-rows tr button.open").await;
            let rows = wait_until("the failed attempt", STEP, || async {
                let t = table(&c, "#tl-rows tr").await;
                (t.len() == 1).then_some(t)
            })
            .await;
            assert!(
                rows[0][4].starts_with(
                    "deactivate — HTTP 410 on first attempt; deactivated (HTTP_4XX_RESPONSE)"
                ),
                "{rows:?}"
            );
            assert!(
                read(&c, "#tl-rows tr", "className")
                    .await
                    .contains("deactivated")
            );
            let marks = c
                .find_all(Locator::Css("#tl-svg line.deactivated"))
                .await
                .unwrap();
            assert_eq!(marks.len(), 1, "the deactivation point is on the axis");
            assert_eq!(
                read(&c, "#redeliver", "disabled").await,
                "true",
                "an inactive webhook cannot be redelivered to"
            );

            // Re-activate.
            click(&c, &format!("{gone_row} button[aria-label^='Re-activate']")).await;
            wait_text(&c, "#wh-msg", "Re-activated").await;
            wait_until("the webhook to show active", STEP, || async {
                (table(&c, &gone_row).await.first()?.get(2)? == "active").then_some(())
            })
            .await;
            let w = call_api(
                d,
                reqwest::Method::GET,
                &format!("/v1/webhooks/{gone}"),
                None,
            )
            .await;
            assert_eq!(
                (w["active"].clone(), w["deactivate_reason"].clone()),
                (json!(true), Value::Null)
            );

            // The failing delivery counts down to its next retry (2 s, then 4 s, … of real
            // time at scale 1).
            click(&c, &format!("{flaky_row} button[aria-label^='Deliveries']")).await;
            wait_text(&c, "#dl-rows", "pending").await;
            click(&c, "#dl-rows tr button.open").await;
            let next = wait_text(&c, "#tl-next", "Next attempt (retry").await;
            let re = regex_lite::Regex::new(
                r"^Next attempt \(retry (\d+)\) (in (\d+\.\d)s of dispatcher time|is due now)\.$",
            )
            .unwrap();
            let caps = re.captures(&next).unwrap_or_else(|| panic!("{next}"));
            let retry: u32 = caps[1].parse().unwrap();
            if let Some(left) = caps.get(3) {
                let left: f64 = left.as_str().parse().unwrap();
                assert!(left <= f64::from(1u32 << retry) + 0.1, "{next}");
            }

            // Ping (a failed ping changes nothing), edit, delete.
            click(&c, &format!("{flaky_row} button[aria-label^='Ping']")).await;
            wait_text(&c, "#wh-msg", "Ping failed: HTTP 503").await;
            click(&c, &format!("{flaky_row} button[aria-label^='Edit']")).await;
            wait_text(&c, "#wh-form-h", &format!("Edit webhook {flaky}")).await;
            type_into(&c, "#wh-target", &format!("{}/fixed", mock.url())).await;
            click(&c, "#wh-save").await;
            wait_text(&c, "#wh-msg", "Saved webhook").await;
            wait_text(&c, &flaky_row, "/fixed").await;
            let w = call_api(
                d,
                reqwest::Method::GET,
                &format!("/v1/webhooks/{flaky}"),
                None,
            )
            .await;
            assert_eq!(w["target_url"], format!("{}/fixed", mock.url()));
            assert_eq!(
                w["event_type"], "COURSE_COMPLETION",
                "an edit keeps the other fields"
            );

            click(&c, &format!("{gone_row} button[aria-label^='Delete']")).await;
            wait_text(&c, &gone_row, "Really delete?").await;
            click(&c, &format!("{gone_row} button[aria-label^='Delete']")).await;
            wait_text(&c, "#wh-msg", "Deleted").await;
            let page = call_api(d, reqwest::Method::GET, "/v1/webhooks", None).await;
            assert_eq!(page["count"], 1);

            // Log out forgets the key.
            click(&c, "#logout").await;
            wait_text(&c, "#login-msg", "Logged out.").await;
            let kept: Value = c
                .execute("return sessionStorage.length;", vec![])
                .await
                .unwrap();
            assert_eq!(kept, json!(0));
        },
    )
    .await;
    dispatcher.shutdown().await;
}

/// Logging out while a refresh is under way stays logged out: the refresh's remaining
/// calls are not sent without a key, and no 401 they would earn replaces "Logged out."
/// with "Your key was refused". (CI saw this race once; slowing every fetch by 300 ms
/// makes it certain.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_logout_during_a_refresh_sends_nothing_keyless_and_says_logged_out() {
    let dispatcher = console_dispatcher(1.0).await;
    // A webhook, so that each refresh asks for its newest delivery after the list.
    call_api(
        &dispatcher,
        reqwest::Method::POST,
        "/v1/webhooks",
        Some(json!({"target_url": "http://127.0.0.1:9/hook", "event_type": "COURSE_COMPLETION"})),
    )
    .await;
    let console = format!("{}/ui", dispatcher.url());
    with_browser(
        "console_logout_during_a_refresh_sends_nothing_keyless_and_says_logged_out",
        |c| async move {
            c.goto(&console).await.expect("the console loads");
            log_in(&c, "k3y").await;
            // Every fetch from now on waits 300 ms first and is written down.
            c.execute(
                "window.__sent = []; window.__pending = 0;
                 const real = window.fetch;
                 window.fetch = async (path, init) => {
                   const h = (init && init.headers) || {};
                   window.__sent.push({ path: String(path), auth: h.authorization || null });
                   window.__pending++;
                   try {
                     await new Promise((r) => setTimeout(r, 300));
                     return await real(path, init);
                   } finally { window.__pending--; }
                 };
                 document.getElementById('logout').addEventListener(
                   'click', () => { window.__mark = window.__sent.length; }, true);",
                vec![],
            )
            .await
            .expect("the fetch shim installs");
            // The next poll starts a refresh; log out while its first calls wait.
            wait_until("a refresh to be under way", STEP, || async {
                let n = c.execute("return window.__pending;", vec![]).await.ok()?;
                (n.as_u64()? > 0).then_some(())
            })
            .await;
            click(&c, "#logout").await;
            // The refresh is over once nothing has been pending for longer than the shim's
            // delay.
            wait_until("the refresh to finish", STEP, || async {
                let idle = c
                    .execute_async(
                        "const done = arguments[arguments.length - 1];
                         const quiet = () => window.__pending === 0;
                         if (!quiet()) return done(false);
                         setTimeout(() => done(quiet()), 500);",
                        vec![],
                    )
                    .await
                    .ok();
                (idle == Some(json!(true))).then_some(())
            })
            .await;
            let after = js_array(&c, "return window.__sent.slice(window.__mark);").await;
            let keyless: Vec<&Value> = after
                .iter()
                .filter(|r| r["path"].as_str().is_some_and(|p| p.starts_with("/v1/")))
                .collect();
            assert!(
                keyless.is_empty(),
                "after logging out the page still called the API: {keyless:?}"
            );
            assert_eq!(text_of(&c, "#login-msg").await, "Logged out.");
            assert_eq!(read(&c, "#app", "hidden").await, "true");
        },
    )
    .await;
    dispatcher.shutdown().await;
}

/// Past one page: the console lists every webhook (not the first 100), and a webhook
/// with more deliveries than a page shows its newest 100 (not the last page's few).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_lists_past_one_page_of_webhooks_and_deliveries() {
    let mock = MockReceiver::builder().start().await.unwrap();
    let dispatcher = console_dispatcher(1.0).await;
    let mut busy = String::new();
    for i in 0..120 {
        // Only the first takes LESSON_COMPLETION; the rest take COURSE_COMPLETION.
        let event_type = if i == 0 {
            "LESSON_COMPLETION"
        } else {
            "COURSE_COMPLETION"
        };
        let w = call_api(
            &dispatcher,
            reqwest::Method::POST,
            "/v1/webhooks",
            Some(json!({"target_url": format!("{}/w{i}", mock.url()), "event_type": event_type})),
        )
        .await;
        if i == 0 {
            busy = w["id"].as_str().unwrap().to_owned();
        }
    }
    for _ in 0..101 {
        call_api(
            &dispatcher,
            reqwest::Method::POST,
            "/v1/events",
            Some(json!({"event_type": "LESSON_COMPLETION"})),
        )
        .await;
    }
    let console = format!("{}/ui", dispatcher.url());
    with_browser(
        "console_lists_past_one_page_of_webhooks_and_deliveries",
        |c| async move {
            c.goto(&console).await.expect("the console loads");
            log_in(&c, "k3y").await;
            wait_until("all 120 webhooks to be listed", STEP, || async {
                (table(&c, "#wh-rows tr").await.len() == 120).then_some(())
            })
            .await;
            assert_eq!(text_of(&c, "#wh-count").await, "(120)");
            click(
                &c,
                &format!("#wh-rows tr[data-id='{busy}'] button[aria-label^='Deliveries']"),
            )
            .await;
            wait_until("the newest 100 deliveries to be shown", STEP, || async {
                (table(&c, "#dl-rows tr").await.len() == 100).then_some(())
            })
            .await;
        },
    )
    .await;
}
