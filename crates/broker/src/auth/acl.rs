//! The ACL file: TOML `[[rules]]`, parsed once, checked on every PUBLISH and SUBSCRIBE.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use hookmq_codec::topic;
use serde::Deserialize;
use toml::{Spanned, Value};

use super::AuthError;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Publish to a topic name.
    Publish,
    /// Subscribe to a topic filter.
    Subscribe,
}

/// A rule's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// The action is allowed.
    Allow,
    /// The action is refused.
    Deny,
}

/// The client a decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIdentity<'a> {
    /// The client identifier (the one assigned by the broker if the client sent none).
    pub client_id: &'a str,
    /// The user name from CONNECT, if any.
    pub username: Option<&'a str>,
    /// The peer's address; an IPv4-mapped IPv6 address counts as the IPv4 address.
    pub ip: IpAddr,
}

/// Authorization rules from a TOML file; the first matching rule decides.
///
/// # Format
/// ```toml
/// # allow the dashboard user to watch $SYS
/// [[rules]]
/// permission = "allow"            # "allow" | "deny"
/// username = "dashboard"          # exactly one of username / clientid / ipaddr / all = true
/// action = "subscribe"            # "publish" | "subscribe" | "all"
/// topics = ["$SYS/#"]
///
/// [[rules]]
/// permission = "allow"
/// all = true
/// action = "all"
/// topics = ["devices/${clientid}/#", "users/${username}/#"]
///
/// [[rules]]
/// permission = "deny"
/// ipaddr = "10.0.0.0/8"           # an IP address or CIDR block, IPv4 or IPv6
/// action = "publish"
/// topics = ["eq secret/#"]        # "eq ": exactly this string (EMQX's {eq, ...})
/// ```
///
/// A rule applies to a client when its `username` or `clientid` equals the client's, its
/// `ipaddr` block contains the client's address, or it has `all = true`; and when its `action`
/// is the one asked about (`all` is both). Then it matches if one of its `topics` does:
/// - **PUBLISH**: the topic name matches the rule's filter, as a subscription would
///   ([`hookmq_codec::topic::matches`]).
/// - **SUBSCRIBE**: the rule's filter *covers* the subscription's filter: every topic the
///   subscription could match is matched by the rule. `a/#` covers `a/b/+`, `a/#` and `a`;
///   `a/+` covers `a/b` and `a/+` but not `a/#` nor `a/b/c`; `#` covers everything that does
///   not start with `$` (`$SYS/#` must be named), like it does for messages. A shared
///   subscription is checked with its filter alone, without `$share/{group}/`.
/// - **`eq ` topics**: the topic name or subscription filter must be exactly the rest of the
///   string, wildcards included, so `eq a/#` allows subscribing to `a/#` but not to `a/b`, and
///   never matches a PUBLISH (names have no wildcards). A filter that itself starts with `eq `
///   cannot be written.
///
/// `${username}` and `${clientid}` in a topic are replaced by the client's values. A topic
/// using `${username}` does not match a client without a user name. A topic also does not
/// match when a value could widen it: a value that is empty or contains `+`, `#` or `/`, or
/// that starts with `$` where it would start the filter (it would turn a per-client filter
/// into a `$SYS`-like one).
///
/// Unknown keys, a missing or doubled subject, an invalid filter or placeholder, and an
/// invalid address are errors naming the rule (1-based) and the field.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    rules: Vec<Rule>,
}

/// One parsed rule.
#[derive(Debug, Clone)]
struct Rule {
    permission: Permission,
    subject: Subject,
    publish: bool,
    subscribe: bool,
    topics: Box<[RuleTopic]>,
}

/// Whom a rule is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    Username(Box<str>),
    ClientId(Box<str>),
    Address(Cidr),
    All,
}

/// One topic of a rule, parsed at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleTopic {
    /// `eq `: the name or filter must be exactly `filter`.
    exact: bool,
    /// The filter, placeholders unsubstituted, without `eq `.
    filter: Box<str>,
    /// The filter's levels when it has placeholders; `None` when it is used as it is.
    template: Option<Box<[Level]>>,
}

/// A level of a filter with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Plus,
    Hash,
    Text(Box<str>),
    /// A level with at least one placeholder, e.g. `${clientid}` or `dev-${clientid}`.
    Template(Box<[Segment]>),
}

/// A piece of a level with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(Box<str>),
    Username,
    ClientId,
}

impl Acl {
    /// Reads and parses an ACL file.
    ///
    /// # Errors
    /// [`AuthError::Io`] if the file cannot be read; otherwise as [`Acl::from_toml_str`], with
    /// the path as the origin.
    pub fn load(path: &Path) -> Result<Self, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Io {
            path: path.to_path_buf(),
            action: "read the file",
            source,
        })?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Parses rules from TOML text (format in the type's docs); `origin` names the text in
    /// errors, usually the file's path. A text without rules is valid: nothing matches.
    ///
    /// # Errors
    /// [`AuthError::AclSyntax`] for invalid TOML or a top level other than `[[rules]]`
    /// tables; [`AuthError::AclRule`] naming the line, the rule (1-based) and the field for an
    /// invalid rule.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Self, AuthError> {
        let file: RawFile = toml::from_str(text).map_err(|e| AuthError::AclSyntax {
            origin: origin.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        let rules = file
            .rules
            .into_iter()
            .enumerate()
            .map(|(index, raw)| {
                let at = RuleContext {
                    origin,
                    text,
                    rule: index + 1,
                    start: raw.span().start,
                };
                parse_rule(&at, raw.into_inner())
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// The number of rules.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The permission of the first rule that matches `who` doing `action` on `topic`, or
    /// `None` when no rule matches (the broker then applies its configured default).
    ///
    /// `topic` is a valid topic name for [`Action::Publish`] and a valid topic filter for
    /// [`Action::Subscribe`] (a shared subscription's filter without `$share/{group}/`); the
    /// broker validates both before asking. Never allocates.
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
    fn applies_to(&self, who: &ClientIdentity<'_>, action: Action) -> bool {
        let action_fits = match action {
            Action::Publish => self.publish,
            Action::Subscribe => self.subscribe,
        };
        action_fits
            && match &self.subject {
                Subject::Username(name) => who.username == Some(&**name),
                Subject::ClientId(id) => who.client_id == &**id,
                Subject::Address(block) => block.contains(who.ip),
                Subject::All => true,
            }
    }
}

impl RuleTopic {
    fn matches(&self, who: &ClientIdentity<'_>, action: Action, topic: &str) -> bool {
        match (&self.template, self.exact, action) {
            (None, true, _) => *self.filter == *topic,
            (None, false, Action::Publish) => topic::matches(&self.filter, topic),
            (None, false, Action::Subscribe) => {
                covers(self.filter.split('/').map(LevelRef::parse), who, topic)
            }
            (Some(levels), true, _) => equals(levels.iter().map(Level::as_ref), who, topic),
            (Some(levels), false, Action::Publish) => {
                matches_name(levels.iter().map(Level::as_ref), who, topic)
            }
            (Some(levels), false, Action::Subscribe) => {
                covers(levels.iter().map(Level::as_ref), who, topic)
            }
        }
    }
}

// ----------------------------------------------------------------------------------------
// Matching. Rule filters are walked level by level as `LevelRef`s, so filters with and
// without placeholders share one implementation and nothing is allocated.

/// A level of a rule filter, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LevelRef<'r> {
    Plus,
    Hash,
    Text(&'r str),
    Template(&'r [Segment]),
}

impl<'r> LevelRef<'r> {
    fn parse(level: &'r str) -> Self {
        match level {
            "+" => Self::Plus,
            "#" => Self::Hash,
            text => Self::Text(text),
        }
    }

    /// Whether this level, read literally (wildcards as characters), is `actual`. `first`
    /// says whether it is the filter's first level.
    fn is(self, actual: &str, who: &ClientIdentity<'_>, first: bool) -> bool {
        match self {
            Self::Plus => actual == "+",
            Self::Hash => actual == "#",
            Self::Text(text) => actual == text,
            Self::Template(segments) => template_is(segments, actual, who, first),
        }
    }

    const fn is_wildcard(self) -> bool {
        matches!(self, Self::Plus | Self::Hash)
    }
}

impl Level {
    fn as_ref(&self) -> LevelRef<'_> {
        match self {
            Self::Plus => LevelRef::Plus,
            Self::Hash => LevelRef::Hash,
            Self::Text(text) => LevelRef::Text(text),
            Self::Template(segments) => LevelRef::Template(segments),
        }
    }
}

/// Whether a level with placeholders, filled with `who`'s values, is `actual`.
fn template_is(segments: &[Segment], actual: &str, who: &ClientIdentity<'_>, first: bool) -> bool {
    let mut rest = actual;
    for (index, segment) in segments.iter().enumerate() {
        let piece = match segment {
            Segment::Text(text) => &**text,
            Segment::Username | Segment::ClientId => {
                let value = match segment {
                    Segment::Username => who.username,
                    _ => Some(who.client_id),
                };
                match value {
                    Some(value) if safe_value(value, first && index == 0) => value,
                    _ => return false,
                }
            }
        };
        match rest.strip_prefix(piece) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether a placeholder's value keeps the filter as narrow as written: not empty, no
/// wildcard, no level separator, and no `$` where it would start the filter.
fn safe_value(value: &str, starts_filter: bool) -> bool {
    let widens = value.is_empty()
        || value.contains(['+', '#', '/'])
        || (starts_filter && value.starts_with('$'));
    !widens
}

/// Whether the topic name `name` matches the rule filter `rule` (the filter's placeholders
/// filled by `who`); the same rules as [`topic::matches`].
fn matches_name<'r>(
    rule: impl Iterator<Item = LevelRef<'r>>,
    who: &ClientIdentity<'_>,
    name: &str,
) -> bool {
    let mut rule = rule.peekable();
    if name.starts_with('$') && rule.peek().is_some_and(|level| level.is_wildcard()) {
        return false;
    }
    let mut names = name.split('/');
    for (index, level) in rule.enumerate() {
        match (level, names.next()) {
            (LevelRef::Hash, _) => return true,
            (LevelRef::Plus, Some(_)) => {}
            (_, None) => return false,
            (level, Some(actual)) => {
                if !level.is(actual, who, index == 0) {
                    return false;
                }
            }
        }
    }
    names.next().is_none()
}

/// Whether the rule filter `rule` covers the subscription filter `filter`: every topic name
/// `filter` matches is matched by `rule`.
fn covers<'r>(
    rule: impl Iterator<Item = LevelRef<'r>>,
    who: &ClientIdentity<'_>,
    filter: &str,
) -> bool {
    let mut rule = rule.peekable();
    // [MQTT-4.7.2-1]: a rule starting with a wildcard matches no `$` topic, and a
    // subscription starting with `$` matches only `$` topics.
    if filter.starts_with('$') && rule.peek().is_some_and(|level| level.is_wildcard()) {
        return false;
    }
    let mut subscription = filter.split('/');
    // Whether the levels seen so far make the empty string, which is no topic name.
    let mut prefix_empty = true;
    let mut at_start = true;
    while let Some(level) = rule.next() {
        let actual = subscription.next();
        match (level, actual) {
            (LevelRef::Hash, _) => return true,
            // A subscription's `#` also matches the parent topic, which a rule's `+` does
            // not; so `+/#` covers `#` only where there is no parent (`#`, `/#`), and there
            // both match every (non-`$`) topic below.
            (LevelRef::Plus, Some("#")) => {
                return prefix_empty && rule.peek() == Some(&LevelRef::Hash);
            }
            (LevelRef::Plus, Some(_)) => {}
            (_, None | Some("+" | "#")) => return false,
            (level, Some(actual)) => {
                if !level.is(actual, who, at_start) {
                    return false;
                }
            }
        }
        prefix_empty = at_start && actual.is_some_and(str::is_empty);
        at_start = false;
    }
    subscription.next().is_none()
}

/// Whether the rule filter, filled by `who`, is exactly `filter` (an `eq ` topic).
fn equals<'r>(
    rule: impl Iterator<Item = LevelRef<'r>>,
    who: &ClientIdentity<'_>,
    filter: &str,
) -> bool {
    let mut levels = filter.split('/');
    for (index, level) in rule.enumerate() {
        match levels.next() {
            Some(actual) if level.is(actual, who, index == 0) => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

// ----------------------------------------------------------------------------------------
// Addresses.

/// An address block; the network has its host bits cleared, and an IPv4-mapped IPv6 block
/// is stored as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `192.0.2.7`, `10.0.0.0/8`, `2001:db8::1` or `fd00::/8`. Host bits may be set
    /// (`10.1.2.3/8` is `10.0.0.0/8`).
    fn parse(text: &str) -> Result<Self, String> {
        let not_an_address =
            || format!("`{text}` is not an IP address or CIDR block (e.g. 10.0.0.0/8, fd00::/8)");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| not_an_address())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(digits) => {
                if digits.is_empty()
                    || digits.len() > 3
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(not_an_address());
                }
                let prefix: u8 = digits.parse().map_err(|_| not_an_address())?;
                if prefix > max {
                    return Err(format!(
                        "`{text}`: prefix length {prefix} is longer than the address ({max} bits)"
                    ));
                }
                prefix
            }
        };
        Ok(match address {
            IpAddr::V4(v4) => Self::v4(v4, prefix),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => Self::v4(v4, prefix - 96),
                _ => Self {
                    network: IpAddr::V6(Ipv6Addr::from(mask_u128(u128::from(v6), prefix))),
                    prefix,
                },
            },
        })
    }

    fn v4(address: Ipv4Addr, prefix: u8) -> Self {
        let bits = u32::from(address);
        let masked = u32::MAX
            .checked_shl(u32::from(32 - prefix))
            .map_or(0, |mask| bits & mask);
        Self {
            network: IpAddr::V4(Ipv4Addr::from(masked)),
            prefix,
        }
    }

    fn contains(self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                let host_bits = u32::from(32 - self.prefix);
                (u32::from(network) ^ u32::from(ip))
                    .checked_shr(host_bits)
                    .is_none_or(|different| different == 0)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                mask_u128(u128::from(ip), self.prefix) == u128::from(network)
            }
            _ => false,
        }
    }
}

/// `bits` with all but the first `prefix` bits cleared.
fn mask_u128(bits: u128, prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix))
        .map_or(0, |mask| bits & mask)
}

// ----------------------------------------------------------------------------------------
// Parsing.

/// The file as TOML gives it; each rule keeps its keys and values with their positions so
/// that errors can name the line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

type RawRule = BTreeMap<Spanned<String>, Spanned<Value>>;

/// Where a rule is, for its errors.
struct RuleContext<'a> {
    origin: &'a str,
    text: &'a str,
    /// 1-based.
    rule: usize,
    /// Byte offset of the rule's start.
    start: usize,
}

impl RuleContext<'_> {
    fn error(&self, field: &str, offset: usize, reason: String) -> AuthError {
        let line = self
            .text
            .get(..offset)
            .map_or(0, |before| before.matches('\n').count())
            + 1;
        AuthError::AclRule {
            origin: self.origin.to_owned(),
            line,
            rule: self.rule,
            field: field.to_owned(),
            reason,
        }
    }
}

const FIELDS: &str = "permission, username, clientid, ipaddr, all, action, topics";
const SUBJECTS: &str = "exactly one of username, clientid, ipaddr or all = true";

fn parse_rule(at: &RuleContext<'_>, raw: RawRule) -> Result<Rule, AuthError> {
    let mut entries: Vec<(Spanned<String>, Spanned<Value>)> = raw.into_iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    let mut permission = None;
    let mut actions = None;
    let mut subject: Option<(String, Subject)> = None;
    let mut topics = None;
    for (key, value) in entries {
        let field = key.get_ref().as_str();
        let offset = value.span().start;
        let fail = |reason: String| at.error(field, offset, reason);
        let value = value.into_inner();
        let new_subject = match field {
            "permission" => {
                permission = Some(match string(&value).map_err(&fail)? {
                    "allow" => Permission::Allow,
                    "deny" => Permission::Deny,
                    other => {
                        return Err(fail(format!(
                            "expected \"allow\" or \"deny\", found {other:?}"
                        )));
                    }
                });
                None
            }
            "action" => {
                actions = Some(match string(&value).map_err(&fail)? {
                    "publish" => (true, false),
                    "subscribe" => (false, true),
                    "all" => (true, true),
                    other => {
                        return Err(fail(format!(
                            "expected \"publish\", \"subscribe\" or \"all\", found {other:?}"
                        )));
                    }
                });
                None
            }
            "username" => Some(Subject::Username(non_empty(&value).map_err(&fail)?.into())),
            "clientid" => Some(Subject::ClientId(non_empty(&value).map_err(&fail)?.into())),
            "ipaddr" => Some(Subject::Address(
                Cidr::parse(string(&value).map_err(&fail)?).map_err(&fail)?,
            )),
            "all" => match value {
                Value::Boolean(true) => Some(Subject::All),
                Value::Boolean(false) => None,
                other => return Err(fail(format!("expected true or false, found {other}"))),
            },
            "topics" => {
                topics = Some(parse_topics(&value).map_err(&fail)?);
                None
            }
            other => {
                return Err(fail(format!(
                    "unknown field `{other}` (expected one of {FIELDS})"
                )));
            }
        };
        if let Some(new_subject) = new_subject {
            if let Some((previous, _)) = &subject {
                return Err(fail(format!(
                    "a rule needs {SUBJECTS}, but `{previous}` is set too"
                )));
            }
            subject = Some((field.to_owned(), new_subject));
        }
    }
    let missing = |field: &str, what: &str| at.error(field, at.start, format!("missing: {what}"));
    let permission =
        permission.ok_or_else(|| missing("permission", "\"allow\" or \"deny\" is required"))?;
    let (_, subject) =
        subject.ok_or_else(|| missing("username", &format!("a rule needs {SUBJECTS}")))?;
    let (publish, subscribe) = actions.ok_or_else(|| {
        missing(
            "action",
            "\"publish\", \"subscribe\" or \"all\" is required",
        )
    })?;
    let topics = topics.ok_or_else(|| missing("topics", "a list of topic filters is required"))?;
    Ok(Rule {
        permission,
        subject,
        publish,
        subscribe,
        topics,
    })
}

fn string(value: &Value) -> Result<&str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("expected a string, found {value}"))
}

fn non_empty(value: &Value) -> Result<&str, String> {
    match string(value)? {
        "" => Err("must not be empty".to_owned()),
        text => Ok(text),
    }
}

fn parse_topics(value: &Value) -> Result<Box<[RuleTopic]>, String> {
    let items = value
        .as_array()
        .ok_or_else(|| format!("expected a list of topic filters, found {value}"))?;
    if items.is_empty() {
        return Err("at least one topic filter is required".to_owned());
    }
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let text = item
                .as_str()
                .ok_or_else(|| format!("topic {}: expected a string, found {item}", index + 1))?;
            parse_topic(text).map_err(|reason| format!("topic {} {text:?}: {reason}", index + 1))
        })
        .collect()
}

fn parse_topic(text: &str) -> Result<RuleTopic, String> {
    let (exact, filter) = match text.strip_prefix("eq ") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let levels = filter
        .split('/')
        .map(parse_level)
        .collect::<Result<Vec<_>, _>>()?;
    let templated = levels
        .iter()
        .any(|level| matches!(level, Level::Template(_)));
    // Check the filter with each placeholder standing for a plain value.
    let probe = if templated {
        filter
            .replace("${username}", "x")
            .replace("${clientid}", "x")
    } else {
        filter.to_owned()
    };
    if !topic::is_valid_filter(&probe) {
        return Err("not a valid topic filter".to_owned());
    }
    Ok(RuleTopic {
        exact,
        filter: filter.into(),
        template: templated.then(|| levels.into_boxed_slice()),
    })
}

fn parse_level(level: &str) -> Result<Level, String> {
    if !level.contains("${") {
        return Ok(match level {
            "+" => Level::Plus,
            "#" => Level::Hash,
            text => Level::Text(text.into()),
        });
    }
    let mut segments = Vec::new();
    let mut rest = level;
    while let Some(start) = rest.find("${") {
        if start > 0 {
            segments.push(Segment::Text(rest[..start].into()));
        }
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed placeholder in level {level:?}"))?;
        segments.push(match &after[..end] {
            "username" => Segment::Username,
            "clientid" => Segment::ClientId,
            other => {
                return Err(format!(
                    "unknown placeholder `${{{other}}}` (expected ${{username}} or ${{clientid}})"
                ));
            }
        });
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        segments.push(Segment::Text(rest.into()));
    }
    Ok(Level::Template(segments.into_boxed_slice()))
}

#[cfg(test)]
mod tests;
