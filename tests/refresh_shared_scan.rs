//! `automation::refresh` with a real registry: two ImageRepositories that would send the same
//! requests share one scan, and each keeps its own copy of the tag list in the store (the
//! scan's list is moved to one of them, cloned for the others); a failed scan keeps the last
//! good list for the policies that read it.

mod scanner_support;

use scanner_support::common::{Registry, RegistryOptions};
use tagline::automation::{refresh, Options, Status};
use tagline::store::Store;

fn config(registry: &Registry, dir: &std::path::Path) -> tagline::api::Config {
    let mut yaml = String::new();
    for (name, image) in [
        ("first", registry.image("team/app")),
        ("second", registry.image("team/app")),
        ("missing", registry.image("team/missing")),
    ] {
        yaml += &format!(
            "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata:\n  \
             name: {name}\nspec:\n  image: {image}\n  interval: 1h\n  timeout: 20s\n  \
             insecure: true\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\n\
             metadata:\n  name: {name}\nspec:\n  imageRepositoryRef:\n    name: {name}\n  \
             policy:\n    semver:\n      range: '>=1.0.0'\n"
        );
    }
    std::fs::write(dir.join("objects.yaml"), yaml).unwrap();
    tagline::api::load_dir(dir).expect("valid config")
}

fn status(report: &tagline::automation::Report, kind: &str, name: &str) -> Status {
    report
        .outcomes
        .iter()
        .find(|o| o.kind.to_string() == kind && o.id.name == name)
        .unwrap_or_else(|| panic!("no outcome for {kind} {name}"))
        .status
        .clone()
}

#[tokio::test(flavor = "current_thread")]
async fn identical_repositories_share_one_scan_and_each_keeps_the_tags() {
    let registry = tokio::task::spawn_blocking(|| {
        let r = Registry::start_owned_with_access_log(RegistryOptions::default());
        r.push_tags("team/app", &["1.0.0", "1.2.0", "1.1.0"]);
        r
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config(&registry, dir.path());
    let mut store = Store::in_memory();
    // A list from an earlier scan of the repository that is now missing.
    store.set_tags("default/missing", vec!["1.0.1".into()]);

    let before = registry.requests().len();
    let report = refresh(&config, &mut store, &Options::default()).await;

    for name in ["first", "second"] {
        assert_eq!(
            status(&report, "ImageRepository", name),
            Status::Ok("scanned 3 tags".into())
        );
        assert_eq!(
            store.tags(&format!("default/{name}")).unwrap(),
            ["1.2.0", "1.1.0", "1.0.0"]
        );
        let latest = store.latest(&format!("default/{name}")).unwrap();
        assert_eq!(latest.tag, "1.2.0");
    }
    assert!(matches!(
        status(&report, "ImageRepository", "missing"),
        Status::Failed(_)
    ));
    // The failed scan did not replace the last good list; the policy elected from it.
    assert_eq!(store.tags("default/missing").unwrap(), ["1.0.1"]);
    assert_eq!(store.latest("default/missing").unwrap().tag, "1.0.1");

    // A request's access log line is written when its response is done: wait for the first.
    let started = std::time::Instant::now();
    let listings = loop {
        let listings: Vec<String> = registry.requests()[before..]
            .iter()
            .filter(|l| l.contains("/v2/team/app/tags/list"))
            .cloned()
            .collect();
        if !listings.is_empty() || started.elapsed().as_secs() > 5 {
            break listings;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(listings.len(), 1, "one shared scan: {listings:?}");
}
