//! Zeroconf (mDNS / DNS-SD) announcement of the Wyoming TCP listeners as
//! `_wyoming._tcp.local.`, the service type Home Assistant discovers (as
//! `wyoming-piper --zeroconf` registers it), so a voxpipe on the network
//! shows up under Settings → Devices & services without typing its address.
//!
//! Opt-in (`[wyoming] zeroconf = "NAME"` or `--wyoming-zeroconf NAME`): a
//! server announcing itself on a LAN is a choice. Each TCP listener is one
//! service instance: `NAME` alone for one listener, `NAME-<pipeline>` when
//! there are several (a dialect pipeline is a second integration). Unix
//! sockets are not announced. A listener bound to an unspecified address
//! (`0.0.0.0`) is announced with every address of the host's interfaces.

use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use mdns_sd::{ServiceDaemon, ServiceInfo};

/// The DNS-SD service type Home Assistant browses for.
pub const SERVICE_TYPE: &str = "_wyoming._tcp.local.";

/// The running announcement; dropping it (or [`Announcer::stop`]) withdraws it.
pub struct Announcer {
    daemon: ServiceDaemon,
    registered: Vec<String>,
}

/// A TCP listener to announce: its bound address and its pipeline's name.
pub struct Announced {
    pub addr: SocketAddr,
    pub pipeline: String,
}

/// Instance names for `listeners`: `name`, or `name-<pipeline>` (and the
/// port, should two listeners serve the same pipeline) when there are several.
fn instance_names(name: &str, listeners: &[Announced]) -> Vec<String> {
    if listeners.len() == 1 {
        return vec![name.to_string()];
    }
    listeners
        .iter()
        .map(|l| {
            let shared = listeners
                .iter()
                .filter(|o| o.pipeline == l.pipeline)
                .count()
                > 1;
            if shared {
                format!("{name}-{}-{}", l.pipeline, l.addr.port())
            } else {
                format!("{name}-{}", l.pipeline)
            }
        })
        .collect()
}

/// A valid DNS label for the host part: letters, digits and `-`.
fn host_label() -> String {
    let raw =
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "voxpipe".into());
    let label: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(63)
        .collect();
    if label.trim_matches('-').is_empty() {
        "voxpipe".into()
    } else {
        label
    }
}

/// Announces every listener under `name`.
pub fn announce(name: &str, listeners: &[Announced]) -> anyhow::Result<Announcer> {
    let daemon = ServiceDaemon::new().context("starting the mDNS responder")?;
    let host = format!("{}.local.", host_label());
    let mut registered = Vec::new();
    for (listener, instance) in listeners.iter().zip(instance_names(name, listeners)) {
        let ip = listener.addr.ip();
        let addresses: Vec<IpAddr> = if ip.is_unspecified() {
            Vec::new()
        } else {
            vec![ip]
        };
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            &instance,
            &host,
            &addresses[..],
            listener.addr.port(),
            None,
        )
        .with_context(|| format!("zeroconf instance `{instance}`"))?;
        if addresses.is_empty() {
            info = info.enable_addr_auto();
        }
        registered.push(info.get_fullname().to_string());
        daemon
            .register(info)
            .with_context(|| format!("announcing `{instance}`"))?;
        tracing::info!(instance = %instance, port = listener.addr.port(), pipeline = %listener.pipeline, "wyoming announced over zeroconf ({SERVICE_TYPE})");
    }
    Ok(Announcer { daemon, registered })
}

impl Announcer {
    /// Withdraws the announcements (mDNS "goodbye" packets) and stops the
    /// responder.
    pub fn stop(self) {
        for fullname in &self.registered {
            if let Ok(done) = self.daemon.unregister(fullname) {
                let _ = done.recv_timeout(std::time::Duration::from_secs(1));
            }
        }
        if let Ok(done) = self.daemon.shutdown() {
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_named_after_their_pipelines_when_there_are_several() {
        let l = |port: u16, pipeline: &str| Announced {
            addr: SocketAddr::from(([0, 0, 0, 0], port)),
            pipeline: pipeline.into(),
        };
        assert_eq!(instance_names("vox", &[l(10200, "default")]), ["vox"]);
        assert_eq!(
            instance_names("vox", &[l(10200, "default"), l(10201, "sichuanese")]),
            ["vox-default", "vox-sichuanese"]
        );
        assert_eq!(
            instance_names("vox", &[l(10200, "default"), l(10201, "default")]),
            ["vox-default-10200", "vox-default-10201"]
        );
    }
}
