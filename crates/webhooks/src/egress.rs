//! The outbound guard: which networks webhook requests (deliveries, the Test button, probes)
//! may reach. Checked on the addresses a host resolves to, at connect time, so a name that
//! resolved to an allowed address when the webhook was saved and to a denied one later
//! (DNS rebinding) is still refused. Creating or probing a webhook whose host resolves only
//! to denied networks is refused too, naming the field `url`.

use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{client::SendError, spec::SpecError};

/// The `[egress]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Networks no webhook request may reach, as CIDR (`169.254.0.0/16`), in a list or one
    /// comma-separated string (`HOOKMQ_EGRESS__DENY_NETWORKS=169.254.0.0/16,fe80::/10`).
    /// Default: the link-local networks and the other cloud metadata addresses, and the
    /// unspecified addresses (see `DENIED_BY_DEFAULT`).
    #[serde(deserialize_with = "networks")]
    pub deny_networks: Vec<IpNet>,
    /// If not empty, the only networks webhook requests may reach (`deny_networks` still
    /// applies inside them). Default: empty, any network not denied.
    #[serde(deserialize_with = "networks")]
    pub allow_networks: Vec<IpNet>,
}

/// The networks denied by default: link-local (where most clouds' metadata services
/// answer, 169.254.169.254), AWS's IPv6 and Alibaba's metadata addresses, and the
/// unspecified addresses (a connection to 0.0.0.0 reaches this machine).
const DENIED_BY_DEFAULT: [&str; 6] = [
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "0.0.0.0/8",
    "::/128",
];

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            deny_networks: DENIED_BY_DEFAULT
                .iter()
                .filter_map(|net| net.parse().ok())
                .collect(),
            allow_networks: Vec::new(),
        }
    }
}

/// A list of networks, or one string of them separated by commas (as an environment
/// variable gives it).
fn networks<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    hookmq_broker::config::string_list(deserializer)?
        .iter()
        .map(|text| {
            text.parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not a network (CIDR such as 10.0.0.0/8) nor an address"
                    ))
                })
        })
        .collect()
}

/// The guard, shared by every webhook's client.
#[derive(Debug, Clone, Default)]
pub struct Egress {
    config: Arc<EgressConfig>,
}

impl Egress {
    /// A guard applying `config`.
    #[must_use]
    pub fn new(config: EgressConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// Whether a request may go to `ip` (IPv4-mapped IPv6 addresses count as IPv4).
    #[must_use]
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let config = &self.config;
        let allowed = config.allow_networks.is_empty()
            || config.allow_networks.iter().any(|net| net.contains(&ip));
        allowed && !config.deny_networks.iter().any(|net| net.contains(&ip))
    }

    /// The addresses `host` resolves to that a request may reach, with `port`.
    ///
    /// # Errors
    /// [`SendError::Denied`] if every address is denied; [`SendError::Connection`] if the
    /// name does not resolve.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, SendError> {
        // An IPv6 literal comes bracketed in a URL.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let all: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| SendError::Connection(format!("resolving {host}: {e}")))?
                .collect(),
        };
        let permitted: Vec<SocketAddr> = all
            .iter()
            .copied()
            .filter(|address| self.permits(address.ip()))
            .collect();
        if permitted.is_empty() && !all.is_empty() {
            let addresses: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
            return Err(SendError::Denied(format!(
                "{host} resolves only to networks the egress policy denies ({}; see \
                 egress.deny_networks and egress.allow_networks)",
                addresses.join(", ")
            )));
        }
        Ok(permitted)
    }

    /// At create and probe time: refuses a URL whose host resolves only to denied networks.
    /// A host that does not resolve (yet) passes; its deliveries fail until it does.
    ///
    /// # Errors
    /// [`SpecError`] on field `url`.
    pub async fn check(&self, host: &str, port: u16) -> Result<(), SpecError> {
        match self.resolve(host, port).await {
            Err(SendError::Denied(reason)) => Err(SpecError::new("url", reason)),
            _ => Ok(()),
        }
    }

    /// The resolver for hyper's connector (`https` URLs): only permitted addresses.
    pub(crate) fn resolver(&self) -> Resolver {
        Resolver(self.clone())
    }
}

/// [`Egress::resolve`] as a hyper-util resolver. hyper-util does not resolve an IP literal,
/// so the client checks those itself before sending.
#[derive(Debug, Clone)]
pub(crate) struct Resolver(Egress);

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let egress = self.0.clone();
        Box::pin(async move {
            // The connector sets the port on what it gets back.
            egress
                .resolve(name.as_str(), 0)
                .await
                .map(Vec::into_iter)
                .map_err(|error| match error {
                    SendError::Denied(_) => io::Error::new(io::ErrorKind::PermissionDenied, error),
                    other => io::Error::other(other),
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(deny: &[&str], allow: &[&str]) -> Egress {
        let parse = |nets: &[&str]| nets.iter().map(|n| n.parse().expect("net")).collect();
        Egress::new(EgressConfig {
            deny_networks: parse(deny),
            allow_networks: parse(allow),
        })
    }

    #[test]
    fn link_local_is_denied_by_default_and_everything_else_permitted() {
        let guard = Egress::new(EgressConfig::default());
        for denied in [
            "169.254.169.254",
            "fe80::1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
            "0.0.0.0",
            "::",
        ] {
            assert!(!guard.permits(denied.parse().expect("ip")), "{denied}");
        }
        for permitted in ["127.0.0.1", "10.1.2.3", "::1", "2001:db8::1"] {
            assert!(guard.permits(permitted.parse().expect("ip")), "{permitted}");
        }
    }

    #[test]
    fn an_allow_list_admits_only_its_networks_and_deny_wins_inside_it() {
        let guard = egress(&["10.0.0.9/32"], &["10.0.0.0/8"]);
        assert!(guard.permits("10.0.0.8".parse().expect("ip")));
        assert!(!guard.permits("10.0.0.9".parse().expect("ip")));
        assert!(!guard.permits("127.0.0.1".parse().expect("ip")));
    }

    #[tokio::test]
    async fn a_denied_literal_or_name_is_refused_and_an_allowed_one_resolves() {
        let guard = egress(&["127.0.0.2/32"], &[]);
        let denied = guard.resolve("127.0.0.2", 80).await;
        assert!(matches!(denied, Err(SendError::Denied(_))), "{denied:?}");
        let error = guard.check("127.0.0.2", 80).await.expect_err("refused");
        assert_eq!(error.field, "url");
        assert!(error.reason.contains("egress.deny_networks"), "{error}");
        assert_eq!(
            guard.resolve("[::1]", 8080).await,
            Ok(vec!["[::1]:8080".parse().expect("address")])
        );
        // `localhost` keeps whichever of its addresses are permitted.
        let loopback = egress(&["127.0.0.0/8"], &[]);
        if let Ok(addresses) = loopback.resolve("localhost", 80).await {
            assert!(addresses.iter().all(|a| !a.ip().is_ipv4()), "{addresses:?}");
        }
    }

    #[test]
    fn networks_parse_from_a_list_or_a_comma_separated_string() {
        let from_list: EgressConfig =
            serde_json::from_str(r#"{"deny_networks": ["10.0.0.0/8", "192.0.2.7"]}"#)
                .expect("list");
        let from_text: EgressConfig =
            serde_json::from_str(r#"{"deny_networks": "10.0.0.0/8, 192.0.2.7"}"#).expect("text");
        assert_eq!(from_list, from_text);
        assert_eq!(from_list.deny_networks[1].to_string(), "192.0.2.7/32");
        let bad = serde_json::from_str::<EgressConfig>(r#"{"allow_networks": ["nope"]}"#)
            .expect_err("refused");
        assert!(
            bad.to_string().contains("\"nope\" is not a network"),
            "{bad}"
        );
    }
}
