//! The ACL file: TOML `[[rules]]`, first match wins.
//!
//! ```toml
//! [[rules]]
//! permission = "allow"              # allow | deny
//! username = "dashboard"            # or clientid = "...", ipaddr = "10.0.0.0/8", all = true
//! action = "subscribe"              # publish | subscribe | all
//! topics = ["$SYS/#", "devices/${clientid}/#", "eq exact/+/filter"]
//! ```
//!
//! `${username}` and `${clientid}` are substituted per client; a rule topic whose placeholder
//! has no value (no user name), or whose value holds `+` or `#`, does not match. `eq ` asks
//! for the subscription filter to be exactly that string. For SUBSCRIBE the broker passes a
//! shared subscription's filter without its `$share/{group}/` prefix.

use std::{net::IpAddr, path::Path};

use hookmq_codec::topic;
use serde::Deserialize;

use super::AuthError;

/// What a client wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Publish to a topic name.
    Publish,
    /// Subscribe to a topic filter.
    Subscribe,
}

/// A rule's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Allow.
    Allow,
    /// Deny.
    Deny,
}

/// The client a decision is about.
#[derive(Debug, Clone, Copy)]
pub struct ClientIdentity<'a> {
    /// Client identifier.
    pub client_id: &'a str,
    /// User name, if any.
    pub username: Option<&'a str>,
    /// Peer address.
    pub ip: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RuleAction {
    Publish,
    Subscribe,
    All,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    permission: Permission,
    username: Option<String>,
    clientid: Option<String>,
    ipaddr: Option<String>,
    #[serde(default)]
    all: bool,
    action: RuleAction,
    topics: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rules: Vec<RawRule>,
}

/// An address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self {
            network: address,
            prefix,
        })
    }

    fn contains(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if self.network.is_ipv4() => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            other => other,
        };
        let (network, ip, bits) = match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(u32::from(n)), u128::from(u32::from(i)), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (u128::from(n), u128::from(i), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        if host_bits >= 128 {
            return true;
        }
        (network >> host_bits) == (ip >> host_bits)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Who {
    Username(String),
    ClientId(String),
    Address(Cidr),
    All,
}

/// One rule topic, parsed at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleTopic {
    text: String,
    /// `eq`: exact string match of the subscription filter.
    exact: bool,
    /// Whether `${username}` or `${clientid}` must be substituted.
    templated: bool,
}

#[derive(Debug, Clone)]
struct Rule {
    permission: Permission,
    who: Who,
    action: RuleAction,
    topics: Vec<RuleTopic>,
}

/// Loaded ACL rules.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    rules: Vec<Rule>,
}

impl Acl {
    /// Reads and parses an ACL file.
    ///
    /// # Errors
    /// [`AuthError`] naming the file, the rule (1-based) and the field.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses rules from TOML text; `origin` names it in errors.
    ///
    /// # Errors
    /// [`AuthError::Acl`] naming the rule and field.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, AuthError> {
        let fail = |reason: String| AuthError::Acl {
            origin: origin.to_owned(),
            reason,
        };
        let raw: RawFile =
            toml::from_str(text).map_err(|e| fail(e.to_string().trim().to_owned()))?;
        let mut rules = Vec::with_capacity(raw.rules.len());
        for (index, rule) in raw.rules.into_iter().enumerate() {
            let at = |field: &str, what: &str| fail(format!("rule {}: {field}: {what}", index + 1));
            let mut who = Vec::new();
            if let Some(name) = rule.username {
                who.push(Who::Username(name));
            }
            if let Some(id) = rule.clientid {
                who.push(Who::ClientId(id));
            }
            if let Some(address) = rule.ipaddr {
                let cidr = Cidr::parse(&address).ok_or_else(|| {
                    at(
                        "ipaddr",
                        &format!("`{address}` is not an IP address or CIDR block"),
                    )
                })?;
                who.push(Who::Address(cidr));
            }
            if rule.all {
                who.push(Who::All);
            }
            if who.len() != 1 {
                return Err(at(
                    "username",
                    "exactly one of username, clientid, ipaddr or all = true is required",
                ));
            }
            let mut topics = Vec::with_capacity(rule.topics.len());
            for text in rule.topics {
                let (exact, filter) = match text.strip_prefix("eq ") {
                    Some(rest) => (true, rest.to_owned()),
                    None => (false, text),
                };
                let templated = filter.contains("${username}") || filter.contains("${clientid}");
                let probe = filter
                    .replace("${username}", "u")
                    .replace("${clientid}", "c");
                if !topic::is_valid_filter(&probe) {
                    return Err(at(
                        "topics",
                        &format!("`{filter}` is not a valid topic filter"),
                    ));
                }
                topics.push(RuleTopic {
                    text: filter,
                    exact,
                    templated,
                });
            }
            if topics.is_empty() {
                return Err(at("topics", "at least one topic is required"));
            }
            let who = who.pop().unwrap_or(Who::All);
            rules.push(Rule {
                permission: rule.permission,
                who,
                action: rule.action,
                topics,
            });
        }
        Ok(Self { rules })
    }

    /// Number of rules.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first matching rule's permission, or `None` when no rule matches.
    #[must_use]
    pub fn check(
        &self,
        who: &ClientIdentity<'_>,
        action: Action,
        topic: &str,
    ) -> Option<Permission> {
        self.rules
            .iter()
            .find(|rule| {
                rule.applies_to(who, action)
                    && rule.topics.iter().any(|t| t.matches(who, action, topic))
            })
            .map(|rule| rule.permission)
    }
}

impl Rule {
    fn applies_to(&self, client: &ClientIdentity<'_>, action: Action) -> bool {
        let action_fits = match self.action {
            RuleAction::All => true,
            RuleAction::Publish => action == Action::Publish,
            RuleAction::Subscribe => action == Action::Subscribe,
        };
        action_fits
            && match &self.who {
                Who::Username(name) => client.username == Some(name.as_str()),
                Who::ClientId(id) => client.client_id == id,
                Who::Address(cidr) => cidr.contains(client.ip),
                Who::All => true,
            }
    }
}

impl RuleTopic {
    fn matches(&self, client: &ClientIdentity<'_>, action: Action, topic: &str) -> bool {
        let substituted;
        let filter = if self.templated {
            match substitute(&self.text, client) {
                Some(text) => {
                    substituted = text;
                    substituted.as_str()
                }
                None => return false,
            }
        } else {
            self.text.as_str()
        };
        match (self.exact, action) {
            (true, _) => filter == topic,
            (false, Action::Publish) => topic::matches(filter, topic),
            (false, Action::Subscribe) => covers(filter, topic),
        }
    }
}

/// Replaces the placeholders; `None` if a value is missing or could widen the filter.
fn substitute(template: &str, client: &ClientIdentity<'_>) -> Option<String> {
    let mut text = template.to_owned();
    for (placeholder, value) in [
        ("${username}", client.username),
        ("${clientid}", Some(client.client_id)),
    ] {
        if text.contains(placeholder) {
            let value = value?;
            if value.is_empty() || value.contains(['+', '#']) {
                return None;
            }
            text = text.replace(placeholder, value);
        }
    }
    Some(text)
}

/// Whether every topic `subscription` can match is matched by `rule`.
#[must_use]
pub fn covers(rule: &str, subscription: &str) -> bool {
    // [MQTT-4.7.2-1]: a rule starting with a wildcard matches no `$` topic, and a literal `$`
    // subscription matches only `$` topics.
    if rule.starts_with(['+', '#']) && subscription.starts_with('$') {
        return false;
    }
    let mut rule_levels = rule.split('/');
    let mut sub_levels = subscription.split('/');
    loop {
        match (rule_levels.next(), sub_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(s)) if s != "#" => {}
            (Some(r), Some(s)) if r == s && r != "+" && r != "#" => {}
            (None, None) => return true,
            // The first arm already let `a/#` cover `a`; any other rule left over is narrower.
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use test_case::test_case;

    use super::*;

    fn who<'a>(client_id: &'a str, username: Option<&'a str>, ip: &str) -> ClientIdentity<'a> {
        ClientIdentity {
            client_id,
            username,
            ip: ip.parse().expect("ip"),
        }
    }

    #[test_case("a/#", "a/b/+" => true; "hash covers plus")]
    #[test_case("a/#", "a/#" => true; "hash covers hash")]
    #[test_case("a/#", "a" => true; "hash covers its parent")]
    #[test_case("a/+", "a/b" => true; "plus covers literal")]
    #[test_case("a/+", "a/+" => true; "plus covers plus")]
    #[test_case("a/+", "a/#" => false; "plus does not cover hash")]
    #[test_case("a/b", "a/+" => false; "literal does not cover plus")]
    #[test_case("#", "x/y" => true; "hash covers all")]
    #[test_case("#", "$SYS/x" => false; "hash skips dollar")]
    #[test_case("$SYS/#", "$SYS/x" => true; "explicit dollar")]
    #[test_case("a/b", "a/b/c" => false; "longer subscription")]
    fn covering(rule: &str, subscription: &str) -> bool {
        covers(rule, subscription)
    }

    const RULES: &str = r##"
        [[rules]]
        permission = "deny"
        ipaddr = "10.0.0.0/8"
        action = "all"
        topics = ["#"]

        [[rules]]
        permission = "allow"
        username = "admin"
        action = "all"
        topics = ["#", "$SYS/#"]

        [[rules]]
        permission = "allow"
        all = true
        action = "all"
        topics = ["devices/${clientid}/#", "users/${username}/#"]

        [[rules]]
        permission = "allow"
        clientid = "watcher"
        action = "subscribe"
        topics = ["eq news/+"]

        [[rules]]
        permission = "deny"
        ipaddr = "::1"
        action = "publish"
        topics = ["#"]
    "##;

    #[test]
    fn first_match_wins_and_placeholders_substitute() {
        let acl = Acl::from_toml_str(RULES, "test").expect("valid");
        assert_eq!(acl.len(), 5);
        let pub_ = Action::Publish;
        let sub = Action::Subscribe;
        let allow = Some(Permission::Allow);
        let deny = Some(Permission::Deny);
        assert_eq!(
            acl.check(&who("x", Some("admin"), "10.1.2.3"), pub_, "a"),
            deny,
            "IP rule first"
        );
        assert_eq!(
            acl.check(&who("x", Some("admin"), "127.0.0.1"), pub_, "a"),
            allow
        );
        assert_eq!(
            acl.check(&who("x", Some("admin"), "127.0.0.1"), sub, "$SYS/#"),
            allow
        );
        assert_eq!(
            acl.check(&who("d1", None, "127.0.0.1"), pub_, "devices/d1/t"),
            allow
        );
        assert_eq!(
            acl.check(&who("d1", None, "127.0.0.1"), pub_, "devices/d2/t"),
            None
        );
        assert_eq!(
            acl.check(&who("d1", None, "127.0.0.1"), pub_, "users/d1/t"),
            None,
            "no username"
        );
        assert_eq!(
            acl.check(&who("d1", Some("ann"), "127.0.0.1"), sub, "users/ann/#"),
            allow
        );
        assert_eq!(
            acl.check(&who("d1", Some("#"), "127.0.0.1"), pub_, "users/x/t"),
            None,
            "hostile"
        );
        assert_eq!(
            acl.check(&who("d1", Some("+"), "127.0.0.1"), sub, "users/+/#"),
            None,
            "hostile"
        );
        assert_eq!(
            acl.check(&who("watcher", None, "127.0.0.1"), sub, "news/+"),
            allow
        );
        assert_eq!(
            acl.check(&who("watcher", None, "127.0.0.1"), sub, "news/a"),
            None,
            "eq is exact"
        );
        assert_eq!(
            acl.check(&who("watcher", None, "127.0.0.1"), pub_, "news/+"),
            None
        );
        assert_eq!(acl.check(&who("z", None, "::1"), pub_, "t"), deny, "IPv6");
        assert_eq!(
            acl.check(&who("z", None, "::ffff:10.0.0.1"), pub_, "t"),
            deny,
            "mapped IPv4"
        );
    }

    #[test]
    fn cidr_blocks() {
        let block = Cidr::parse("192.168.0.0/16").expect("cidr");
        assert!(block.contains(IpAddr::V4(Ipv4Addr::new(192, 168, 5, 4))));
        assert!(!block.contains(IpAddr::V4(Ipv4Addr::new(192, 169, 0, 1))));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        assert!(
            Cidr::parse("fd00::/8")
                .expect("v6")
                .contains("fd12::1".parse().expect("ip"))
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
    }

    #[test_case("[[rules]]\npermission = \"allow\"\nall = true\naction = \"all\"\ntopics = [\"#\"]\ncolour = 1", "colour"; "unknown field")]
    #[test_case("[[rules]]\npermission = \"allow\"\nall = true\naction = \"all\"\ntopics = [\"a/#/b\"]", "rule 1: topics"; "bad filter")]
    #[test_case("[[rules]]\npermission = \"allow\"\nipaddr = \"10.0.0.0/99\"\naction = \"all\"\ntopics = [\"#\"]", "rule 1: ipaddr"; "bad cidr")]
    #[test_case("[[rules]]\npermission = \"allow\"\naction = \"all\"\ntopics = [\"#\"]", "rule 1: username"; "nobody")]
    #[test_case("[[rules]]\npermission = \"maybe\"\nall = true\naction = \"all\"\ntopics = [\"#\"]", "maybe"; "bad permission")]
    fn invalid_files_are_explained(text: &str, expected: &str) {
        let error = Acl::from_toml_str(text, "acl.toml")
            .expect_err("invalid")
            .to_string();
        assert!(error.contains(expected), "{error}");
        assert!(error.starts_with("acl.toml"), "{error}");
    }
}
