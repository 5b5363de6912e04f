//! `tagline check`: every kind the folder holds is listed with where it came from, the
//! notification kinds included.

mod common;

use common::{tagline, ConfigDir};

#[test]
fn check_lists_receivers_providers_and_alerts() {
    let config = ConfigDir::new();
    config.write(
        "notify.yaml",
        "apiVersion: v1
kind: Secret
metadata:
  name: webhook-token
stringData:
  token: not-shown
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata:
  name: registry
spec:
  type: generic-hmac
  resources:
    - kind: ImageRepository
      name: app
  secretRef:
    name: webhook-token
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Provider
metadata:
  name: flux
spec:
  type: generic-hmac
  address: http://127.0.0.1:9/hook/abc
  secretRef:
    name: webhook-token
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
metadata:
  name: pushes
spec:
  providerRef:
    name: flux
  eventSources:
    - kind: ImageUpdateAutomation
      name: '*'
",
    );
    let out = tagline()
        .args(["check", "--config"])
        .arg(config.path())
        .output()
        .expect("run tagline check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    for (want, document) in [
        ("Receiver default/registry generic-hmac (", 2),
        ("Provider default/flux generic-hmac (", 3),
        ("Alert default/pushes -> Provider default/flux (", 4),
    ] {
        let origin = format!("notify.yaml (document {document}))");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(want) && l.ends_with(&origin)),
            "no {want:?} from {origin} in\n{stdout}"
        );
    }
    assert!(!stdout.contains("not-shown"), "{stdout}");
}
