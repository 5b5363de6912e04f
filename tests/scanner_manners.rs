//! Per-registry manners on the wire: many scans of one registry at once never have more
//! requests in flight than the host's limit, whatever the number of repositories.

mod emulator;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emulator::{Emulator, Request, Response};
use tagline::image::ImageName;
use tagline::scanner::{scan, Manners, ScanOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_scans_of_one_registry_keep_to_its_in_flight_limit() {
    let arrivals = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let seen = Arc::clone(&arrivals);
    let answer = Duration::from_millis(150);
    let e = Emulator::start(move |r: &Request| {
        seen.lock().unwrap().push(Instant::now());
        let repo = r
            .path
            .trim_start_matches("/v2/")
            .trim_end_matches("/tags/list");
        Response::json(200, format!(r#"{{"name":"{repo}","tags":["1.0.0"]}}"#)).delayed(answer)
    })
    .await;
    let options = ScanOptions {
        insecure: true,
        manners: Manners {
            max_in_flight: 2,
            requests_per_second: 0.0,
        },
        ..ScanOptions::default()
    };
    let mut scans = tokio::task::JoinSet::new();
    for i in 0..8 {
        let image = ImageName::parse(&format!("{}/team/app{i}", e.host())).unwrap();
        let options = options.clone();
        scans.spawn(async move { scan(&image, &options).await });
    }
    while let Some(done) = scans.join_next().await {
        assert_eq!(done.unwrap().unwrap().tags, ["1.0.0"]);
    }
    let mut at = arrivals.lock().unwrap().clone();
    at.sort();
    assert_eq!(at.len(), 8, "one request per repository");
    // A third request can only start once one of the first two has been answered, so no
    // three arrivals fall within one answer time (arrivals can be late, never early).
    for w in at.windows(3) {
        assert!(
            w[2] - w[0] >= answer - Duration::from_millis(5),
            "three requests within {:?}",
            w[2] - w[0]
        );
    }
}
