//! A listener that cannot accept (the node out of file descriptors, `ulimit -n`) raises
//! `listener_failed:tcp`, which clears once it accepts again; a webhook on alarm events
//! gets both changes, delivered after the node recovers.

use std::{
    net::TcpStream,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::{
    cluster_webhooks::{call, wait_for},
    receiver::Receiver,
    support::{free_port, log_path, start_hookmq_with_files},
};

#[test]
fn a_listener_out_of_file_descriptors_raises_an_alarm_until_it_accepts_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mqtt, dashboard) = (free_port(), free_port());
    // About 20 files open at rest: room for the API and a webhook, not for 100 clients.
    let _node = start_hookmq_with_files(64, dir.path(), mqtt, dashboard, &[]);
    let api = format!("http://127.0.0.1:{dashboard}/api/v5");
    let receiver = Receiver::start(0);
    let spec = json!({"name": "alarms", "url": format!("http://{}/", receiver.address),
        "events": ["alarm.activated", "alarm.deactivated"]});
    let (status, body) = call(&api, "POST", "/webhooks", Some(spec));
    assert_eq!(status, 201, "{body}");

    let mut sockets: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", mqtt)).ok())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(log_path(dir.path()))
        .unwrap_or_default()
        .contains("alarm is activated")
    {
        assert!(
            Instant::now() < deadline,
            "no alarm with {} clients",
            sockets.len()
        );
        // Waiting on the node's log: its API cannot take a request while it has no file.
        std::thread::sleep(Duration::from_millis(50));
    }
    sockets.clear();

    wait_for(
        &api,
        "/alarms?activated=false",
        "the alarm cleared",
        |status, page| {
            status == 200
                && page["data"].as_array().is_some_and(|alarms| {
                    alarms.iter().any(|a| {
                        a["name"] == "listener_failed:tcp"
                            && a["details"]["reason"]
                                .as_str()
                                .is_some_and(|r| r.contains("Too many open files"))
                    })
                })
        },
    );
    receiver.wait("both changes delivered", |received| {
        let changes: Vec<&str> = received
            .iter()
            .filter(|r| r.name == "listener_failed:tcp")
            .map(|r| r.event.as_str())
            .collect();
        changes == ["alarm.activated", "alarm.deactivated"]
    });
}
