mod support;
use support::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sanity_throughput() {
    let receiver = Receiver::start(&[Reply::Status(200)]).await;
    let dir = std::env::temp_dir().join("hookjar-sanity");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = dispatcher(|c| c.store = hookjar_dispatch::StoreConfig::File(dir.join("db"))).await;
    let api = Api::new(&server);
    api.hook(&receiver.url).await;
    let n = 3000;
    let t0 = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    for _ in 0..n {
        let api = api.clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        set.spawn(async move { api.emit("COURSE_ENROLLMENT").await; drop(permit); });
    }
    while set.join_next().await.is_some() {}
    let emitted = t0.elapsed();
    receiver.wait_for(n, Duration::from_secs(120)).await;
    let delivered = t0.elapsed();
    eprintln!("emitted {n} in {emitted:?} ({:.0}/s); delivered all in {delivered:?} ({:.0}/s)", n as f64 / emitted.as_secs_f64(), n as f64 / delivered.as_secs_f64());
}
