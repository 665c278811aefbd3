//! Tests of the ACL: parsing, errors, subjects, actions, placeholders and filter covering.

use test_case::test_case;

use super::*;

fn who<'a>(client_id: &'a str, username: Option<&'a str>, ip: &str) -> ClientIdentity<'a> {
    ClientIdentity {
        client_id,
        username,
        ip: ip.parse().expect("ip"),
    }
}

fn anyone() -> ClientIdentity<'static> {
    who("c", Some("u"), "127.0.0.1")
}

fn acl(text: &str) -> Acl {
    Acl::from_toml_str(text, "acl.toml").expect("valid ACL")
}

const ALLOW: Option<Permission> = Some(Permission::Allow);
const DENY: Option<Permission> = Some(Permission::Deny);
const PUB: Action = Action::Publish;
const SUB: Action = Action::Subscribe;

fn covers_plain(rule: &str, subscription: &str) -> bool {
    covers(
        rule.split('/').map(LevelRef::parse),
        &anyone(),
        subscription,
    )
}

#[test_case("a/#", "a/b/+" => true; "hash covers plus below")]
#[test_case("a/#", "a/#" => true; "hash covers hash")]
#[test_case("a/#", "a" => true; "hash covers its parent")]
#[test_case("a/#", "a/b" => true; "hash covers literal")]
#[test_case("a/#", "b/#" => false; "hash other branch")]
#[test_case("a/#", "+/b" => false; "hash vs plus above")]
#[test_case("a/#", "#" => false; "hash vs everything")]
#[test_case("a/+", "a/b" => true; "plus covers literal")]
#[test_case("a/+", "a/+" => true; "plus covers plus")]
#[test_case("a/+", "a/" => true; "plus covers empty level")]
#[test_case("a/+", "a/#" => false; "plus does not cover hash")]
#[test_case("a/+", "a/b/c" => false; "plus one level only")]
#[test_case("a/+", "a" => false; "plus needs the level")]
#[test_case("a/b", "a/b" => true; "literal equal")]
#[test_case("a/b", "a/+" => false; "literal vs plus")]
#[test_case("a/b", "a/#" => false; "literal vs hash")]
#[test_case("a/b", "a/b/c" => false; "longer subscription")]
#[test_case("a/b", "a" => false; "shorter subscription")]
#[test_case("+/b", "a/b" => true; "leading plus covers literal")]
#[test_case("+/b", "+/b" => true; "leading plus covers plus")]
#[test_case("+/b", "$SYS/b" => false; "leading plus skips dollar")]
#[test_case("+/+", "a/+" => true; "plus plus")]
#[test_case("+/+", "+/#" => false; "plus plus vs hash")]
#[test_case("+/#", "#" => true; "plus hash covers hash")]
#[test_case("+/#", "+/#" => true; "plus hash covers plus hash")]
#[test_case("+/#", "a" => true; "plus hash covers one level")]
#[test_case("+/+/#", "#" => false; "two levels needed")]
#[test_case("+/+/#", "+/#" => false; "two levels needed, plus")]
#[test_case("a/+/#", "a/#" => false; "parent not covered")]
#[test_case("a/+/#", "a/b/#" => true; "deeper hash")]
#[test_case("a/+/#", "a/b" => true; "plus then hash parent")]
#[test_case("#", "x/y" => true; "hash covers all")]
#[test_case("#", "#" => true; "hash covers hash alone")]
#[test_case("#", "+/+" => true; "hash covers plus plus")]
#[test_case("#", "$SYS/x" => false; "hash skips dollar")]
#[test_case("#", "$SYS/#" => false; "hash skips dollar hash")]
#[test_case("#", "$" => false; "hash skips bare dollar")]
#[test_case("$SYS/#", "$SYS/x" => true; "explicit dollar")]
#[test_case("$SYS/#", "$SYS/#" => true; "explicit dollar hash")]
#[test_case("$SYS/#", "#" => false; "dollar rule vs hash")]
#[test_case("$SYS/#", "+/x" => false; "dollar rule vs plus")]
#[test_case("$SYS/+", "$SYS/broker" => true; "dollar plus")]
#[test_case("$SYS/+", "$SYS/#" => false; "dollar plus vs hash")]
#[test_case("a//b", "a//b" => true; "empty level literal")]
#[test_case("a/+/b", "a//b" => true; "plus covers empty level inside")]
#[test_case("/#", "/a" => true; "empty first level")]
#[test_case("/#", "a" => false; "empty first level vs other")]
fn covering(rule: &str, subscription: &str) -> bool {
    covers_plain(rule, subscription)
}

/// Every valid filter and name of up to `depth` levels from `alphabet`.
fn universe(alphabet: &[&str], depth: usize) -> Vec<String> {
    let mut all: Vec<String> = alphabet.iter().map(|&level| level.to_owned()).collect();
    let mut last = all.clone();
    for _ in 1..depth {
        last = last
            .iter()
            .flat_map(|prefix| {
                alphabet
                    .iter()
                    .map(move |level| format!("{prefix}/{level}"))
            })
            .collect();
        all.extend(last.iter().cloned());
    }
    all
}

/// `covers` agrees with its definition (every name the subscription matches, the rule
/// matches) over a small universe, and the level walker agrees with the codec's `matches`.
#[test]
fn covering_agrees_with_matching() {
    let filters: Vec<String> = universe(&["a", "+", "#", "$SYS", ""], 3)
        .into_iter()
        .filter(|f| topic::is_valid_filter(f))
        .collect();
    // `z` appears in no filter, and names are one level deeper than filters.
    let names: Vec<String> = universe(&["a", "z", "$SYS", ""], 4)
        .into_iter()
        .filter(|n| topic::is_valid_name(n))
        .collect();
    let matched: Vec<Vec<bool>> = filters
        .iter()
        .map(|filter| {
            names
                .iter()
                .map(|name| {
                    let expected = topic::matches(filter, name);
                    let levels = filter.split('/').map(LevelRef::parse);
                    assert_eq!(
                        matches_name(levels, &anyone(), name),
                        expected,
                        "{filter} / {name}"
                    );
                    expected
                })
                .collect()
        })
        .collect();
    for (rule, rule_matches) in filters.iter().zip(&matched) {
        for (subscription, sub_matches) in filters.iter().zip(&matched) {
            let expected = sub_matches
                .iter()
                .zip(rule_matches)
                .all(|(&sub, &rule)| !sub || rule);
            assert_eq!(
                covers_plain(rule, subscription),
                expected,
                "rule {rule:?} covers {subscription:?}"
            );
        }
    }
}

/// With harmless values, a filter with placeholders behaves exactly like the filter with the
/// values written in, for publish, subscribe and `eq`.
#[test]
fn placeholders_behave_like_written_values() {
    let templates = [
        "${clientid}/#",
        "d/${clientid}/+",
        "+/${username}",
        "x-${clientid}/${username}/#",
        "${username}",
    ];
    let topics: Vec<String> = universe(&["d", "d1", "ann", "x-d1", "+", "#"], 3)
        .into_iter()
        .filter(|t| topic::is_valid_filter(t))
        .collect();
    let client = who("d1", Some("ann"), "127.0.0.1");
    let mut allowed = 0;
    for template in templates {
        let written = template
            .replace("${clientid}", "d1")
            .replace("${username}", "ann");
        for eq in ["", "eq "] {
            let templated = parse_topic(&format!("{eq}{template}")).expect("template");
            let plain = parse_topic(&format!("{eq}{written}")).expect("plain");
            assert!(templated.template.is_some() && plain.template.is_none());
            for topic in &topics {
                for action in [PUB, SUB] {
                    if action == PUB && !topic::is_valid_name(topic) {
                        continue;
                    }
                    let matched = templated.matches(&client, action, topic);
                    assert_eq!(
                        matched,
                        plain.matches(&client, action, topic),
                        "{eq}{template} {action:?} {topic}"
                    );
                    allowed += usize::from(matched);
                }
            }
        }
    }
    assert!(allowed > 50, "the comparison is not vacuous: {allowed}");
}

const SUBJECTS_ACL: &str = r##"
    [[rules]]
    permission = "allow"
    username = "alice"
    action = "all"
    topics = ["by/username"]

    [[rules]]
    permission = "allow"
    clientid = "sensor-1"
    action = "all"
    topics = ["by/clientid"]

    [[rules]]
    permission = "allow"
    ipaddr = "192.0.2.7"
    action = "all"
    topics = ["by/ip"]

    [[rules]]
    permission = "allow"
    ipaddr = "10.0.0.0/8"
    action = "all"
    topics = ["by/cidr4"]

    [[rules]]
    permission = "allow"
    ipaddr = "2001:db8::1"
    action = "all"
    topics = ["by/ip6"]

    [[rules]]
    permission = "allow"
    ipaddr = "fd00::/8"
    action = "all"
    topics = ["by/cidr6"]

    [[rules]]
    permission = "allow"
    all = true
    action = "all"
    topics = ["by/all"]
"##;

#[test_case("x", Some("alice"), "127.0.0.1", "by/username" => ALLOW; "username")]
#[test_case("x", Some("bob"), "127.0.0.1", "by/username" => None; "other username")]
#[test_case("alice", None, "127.0.0.1", "by/username" => None; "no username")]
#[test_case("sensor-1", None, "127.0.0.1", "by/clientid" => ALLOW; "client id")]
#[test_case("sensor-2", Some("sensor-1"), "127.0.0.1", "by/clientid" => None; "other client id")]
#[test_case("x", None, "192.0.2.7", "by/ip" => ALLOW; "exact ipv4")]
#[test_case("x", None, "192.0.2.8", "by/ip" => None; "other ipv4")]
#[test_case("x", None, "::ffff:192.0.2.7", "by/ip" => ALLOW; "mapped ipv4")]
#[test_case("x", None, "10.200.3.4", "by/cidr4" => ALLOW; "in cidr4")]
#[test_case("x", None, "11.0.0.1", "by/cidr4" => None; "outside cidr4")]
#[test_case("x", None, "::ffff:10.0.0.1", "by/cidr4" => ALLOW; "mapped in cidr4")]
#[test_case("x", None, "2001:db8::1", "by/ip6" => ALLOW; "exact ipv6")]
#[test_case("x", None, "2001:db8::2", "by/ip6" => None; "other ipv6")]
#[test_case("x", None, "fd12:3456::1", "by/cidr6" => ALLOW; "in cidr6")]
#[test_case("x", None, "fe80::1", "by/cidr6" => None; "outside cidr6")]
#[test_case("x", None, "10.0.0.1", "by/cidr6" => None; "ipv4 vs ipv6 rule")]
#[test_case("x", None, "203.0.113.1", "by/all" => ALLOW; "all")]
fn subjects(client_id: &str, username: Option<&str>, ip: &str, topic: &str) -> Option<Permission> {
    let acl = acl(SUBJECTS_ACL);
    assert_eq!(acl.len(), 7);
    let client = who(client_id, username, ip);
    let publish = acl.check(&client, PUB, topic);
    assert_eq!(publish, acl.check(&client, SUB, topic), "action all");
    publish
}

#[test]
fn first_match_wins() {
    let deny_first = acl(r##"
        [[rules]]
        permission = "deny"
        all = true
        action = "publish"
        topics = ["a/secret"]

        [[rules]]
        permission = "allow"
        all = true
        action = "publish"
        topics = ["a/#"]
    "##);
    let client = anyone();
    assert_eq!(deny_first.check(&client, PUB, "a/secret"), DENY);
    assert_eq!(deny_first.check(&client, PUB, "a/public"), ALLOW);
    assert_eq!(deny_first.check(&client, PUB, "b"), None, "no rule");

    let allow_first = acl(r##"
        [[rules]]
        permission = "allow"
        all = true
        action = "publish"
        topics = ["a/#"]

        [[rules]]
        permission = "deny"
        all = true
        action = "publish"
        topics = ["a/secret"]
    "##);
    assert_eq!(allow_first.check(&client, PUB, "a/secret"), ALLOW);
}

#[test]
fn a_rule_applies_only_to_its_action() {
    let acl = acl(r##"
        [[rules]]
        permission = "allow"
        all = true
        action = "publish"
        topics = ["p/#"]

        [[rules]]
        permission = "allow"
        all = true
        action = "subscribe"
        topics = ["s/#"]

        [[rules]]
        permission = "deny"
        all = true
        action = "all"
        topics = ["b/#"]
    "##);
    let client = anyone();
    assert_eq!(acl.check(&client, PUB, "p/x"), ALLOW);
    assert_eq!(acl.check(&client, SUB, "p/x"), None);
    assert_eq!(acl.check(&client, SUB, "s/x"), ALLOW);
    assert_eq!(acl.check(&client, PUB, "s/x"), None);
    assert_eq!(acl.check(&client, PUB, "b/x"), DENY);
    assert_eq!(acl.check(&client, SUB, "b/+"), DENY);
}

const PLACEHOLDERS_ACL: &str = r##"
    [[rules]]
    permission = "allow"
    all = true
    action = "all"
    topics = ["devices/${clientid}/#", "users/${username}/#", "${clientid}/home",
              "dev-${clientid}/${username}-${clientid}", "eq inbox/${username}"]
"##;

#[test_case("d1", None, PUB, "devices/d1/t" => ALLOW; "client id substituted")]
#[test_case("d1", None, PUB, "devices/d2/t" => None; "another client's topic")]
#[test_case("d1", None, SUB, "devices/d1/+/x" => ALLOW; "covered subscription")]
#[test_case("d1", None, SUB, "devices/+/x" => None; "wildcard over clients")]
#[test_case("d1", None, SUB, "devices/#" => None; "hash over clients")]
#[test_case("d1", None, PUB, "users/d1/t" => None; "no username, no match")]
#[test_case("d1", Some("ann"), PUB, "users/ann/t" => ALLOW; "username substituted")]
#[test_case("d1", Some("ann"), SUB, "users/ann/#" => ALLOW; "username subscription")]
#[test_case("d1", Some("ann"), PUB, "users/bob/t" => None; "another user's topic")]
#[test_case("d1", Some("+"), SUB, "users/+/#" => None; "hostile plus username")]
#[test_case("d1", Some("+"), PUB, "users/x/t" => None; "hostile plus username publish")]
#[test_case("d1", Some("#"), PUB, "users/x/t" => None; "hostile hash username")]
#[test_case("d1", Some("#"), SUB, "users/#" => None; "hostile hash username subscribe")]
#[test_case("d1", Some("a/b"), PUB, "users/a/b/t" => None; "slash in username")]
#[test_case("d1", Some(""), PUB, "users//t" => None; "empty username")]
#[test_case("+", None, SUB, "devices/+/x" => None; "hostile plus client id")]
#[test_case("home", None, PUB, "home/home" => ALLOW; "placeholder first level")]
#[test_case("$SYS", None, PUB, "$SYS/home" => None; "dollar client id at start")]
#[test_case("$x", None, PUB, "devices/$x/t" => ALLOW; "dollar client id inside")]
#[test_case("c7", Some("ann"), PUB, "dev-c7/ann-c7" => ALLOW; "placeholders inside levels")]
#[test_case("c7", Some("ann"), PUB, "dev-c7/ann-c8" => None; "placeholders inside levels differ")]
#[test_case("c7", Some("ann"), SUB, "dev-c7/ann-c7" => ALLOW; "placeholders inside levels sub")]
#[test_case("c7", Some("ann"), SUB, "dev-c7/+" => None; "plus over templated level")]
#[test_case("c7", Some("ann"), SUB, "inbox/ann" => ALLOW; "eq with placeholder")]
#[test_case("c7", Some("ann"), SUB, "inbox/+" => None; "eq with placeholder is exact")]
#[test_case("c7", Some("+"), SUB, "inbox/+" => None; "eq with hostile username")]
fn placeholders(
    client_id: &str,
    username: Option<&str>,
    action: Action,
    topic: &str,
) -> Option<Permission> {
    acl(PLACEHOLDERS_ACL).check(&who(client_id, username, "127.0.0.1"), action, topic)
}

#[test_case(SUB, "news/+" => ALLOW; "same filter")]
#[test_case(SUB, "news/a" => None; "narrower filter is not equal")]
#[test_case(SUB, "news/#" => None; "wider filter")]
#[test_case(PUB, "news/a" => None; "publish name")]
#[test_case(SUB, "secret/#" => DENY; "eq hash")]
#[test_case(SUB, "secret/a" => None; "eq hash is not a wildcard")]
#[test_case(PUB, "secret/a" => None; "eq hash never matches publish")]
#[test_case(PUB, "plain/topic" => ALLOW; "eq literal publish")]
fn eq_topics(action: Action, topic: &str) -> Option<Permission> {
    let acl = acl(r##"
        [[rules]]
        permission = "allow"
        clientid = "watcher"
        action = "all"
        topics = ["eq news/+", "eq plain/topic"]

        [[rules]]
        permission = "deny"
        all = true
        action = "all"
        topics = ["eq secret/#"]
    "##);
    acl.check(&who("watcher", None, "127.0.0.1"), action, topic)
}

#[test]
fn dollar_topics_need_an_explicit_rule() {
    let acl = acl(r##"
        [[rules]]
        permission = "allow"
        username = "dashboard"
        action = "subscribe"
        topics = ["$SYS/#"]

        [[rules]]
        permission = "allow"
        all = true
        action = "all"
        topics = ["#", "+/status"]
    "##);
    let dashboard = who("d", Some("dashboard"), "127.0.0.1");
    let other = anyone();
    assert_eq!(acl.check(&dashboard, SUB, "$SYS/broker/#"), ALLOW);
    assert_eq!(acl.check(&dashboard, SUB, "$SYS/#"), ALLOW);
    assert_eq!(acl.check(&other, SUB, "$SYS/#"), None);
    assert_eq!(acl.check(&other, SUB, "$SYS/status"), None);
    assert_eq!(acl.check(&other, PUB, "$SYS/status"), None);
    assert_eq!(acl.check(&other, PUB, "$internal"), None);
    assert_eq!(acl.check(&other, SUB, "#"), ALLOW);
    assert_eq!(acl.check(&other, PUB, "a/status"), ALLOW);
}

#[test]
fn empty_file_has_no_rules() {
    for text in ["", "# nothing\n", "rules = []"] {
        let acl = acl(text);
        assert!(acl.is_empty());
        assert_eq!(acl.len(), 0);
        assert_eq!(acl.check(&anyone(), PUB, "a"), None);
    }
}

#[test]
fn load_reads_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("acl.toml");
    std::fs::write(&path, SUBJECTS_ACL).expect("write");
    assert_eq!(Acl::load(&path).expect("load").len(), 7);
    let missing = dir.path().join("absent.toml");
    let error = Acl::load(&missing).expect_err("missing").to_string();
    assert!(
        error.contains("absent.toml: cannot read the file"),
        "{error}"
    );
    std::fs::write(&path, "[[rules]]\nwho = 1\n").expect("write");
    let error = Acl::load(&path).expect_err("bad").to_string();
    assert!(
        error.starts_with(&format!("{}:2: rule 1: `who`", path.display())),
        "{error}"
    );
}

const GOOD: &str =
    "[[rules]]\npermission = \"allow\"\nall = true\naction = \"all\"\ntopics = [\"#\"]\n";

/// A file whose first rule is valid and whose second (from line 7) has `body`.
fn second_rule(body: &str) -> String {
    format!("{GOOD}\n[[rules]]\n{body}\n")
}

const REST: &str = "action = \"all\"\ntopics = [\"#\"]";

#[test_case("permission = \"allow\"\nall = true\ncolour = 1\n", 10, "colour", "unknown field `colour`"; "unknown field")]
#[test_case("permission = \"maybe\"\nall = true\n", 8, "permission", "found \"maybe\""; "bad permission")]
#[test_case("permission = 1\nall = true\n", 8, "permission", "expected a string, found 1"; "permission not a string")]
#[test_case("all = true\n", 7, "permission", "missing"; "missing permission")]
#[test_case("permission = \"deny\"\n", 7, "username", "exactly one of"; "no subject")]
#[test_case("permission = \"deny\"\nall = false\n", 7, "username", "exactly one of"; "all false alone")]
#[test_case("permission = \"deny\"\nusername = \"a\"\nclientid = \"b\"\n", 10, "clientid", "`username` is set too"; "two subjects")]
#[test_case("permission = \"deny\"\nall = \"yes\"\n", 9, "all", "expected true or false"; "all not a bool")]
#[test_case("permission = \"deny\"\nusername = \"\"\n", 9, "username", "must not be empty"; "empty username")]
#[test_case("permission = \"deny\"\nipaddr = \"10.0.0.0/33\"\n", 9, "ipaddr", "prefix length 33"; "cidr prefix too long")]
#[test_case("permission = \"deny\"\nipaddr = \"fd00::/129\"\n", 9, "ipaddr", "prefix length 129"; "cidr6 prefix too long")]
#[test_case("permission = \"deny\"\nipaddr = \"10.0.0/8\"\n", 9, "ipaddr", "not an IP address"; "short ipv4")]
#[test_case("permission = \"deny\"\nipaddr = \"10.0.0.0/+8\"\n", 9, "ipaddr", "not an IP address"; "signed prefix")]
#[test_case("permission = \"deny\"\nipaddr = \"10.0.0.0/\"\n", 9, "ipaddr", "not an IP address"; "empty prefix")]
#[test_case("permission = \"deny\"\nipaddr = \"localhost\"\n", 9, "ipaddr", "not an IP address"; "host name")]
fn invalid_rules_are_named(body: &str, line: usize, field: &str, reason: &str) {
    let text = second_rule(&format!("{body}{REST}"));
    let error = Acl::from_toml_str(&text, "acl.toml").expect_err("invalid");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("acl.toml:{line}: rule 2: `{field}`: ")),
        "{message}"
    );
    assert!(message.contains(reason), "{message}");
}

#[test_case("action = \"read\"\ntopics = [\"#\"]", 10, "action", "found \"read\""; "bad action")]
#[test_case("topics = [\"#\"]", 7, "action", "missing"; "missing action")]
#[test_case("action = \"all\"", 7, "topics", "missing"; "missing topics")]
#[test_case("action = \"all\"\ntopics = []", 11, "topics", "at least one"; "no topics")]
#[test_case("action = \"all\"\ntopics = \"#\"", 11, "topics", "expected a list"; "topics not a list")]
#[test_case("action = \"all\"\ntopics = [\"a\", 3]", 11, "topics", "topic 2: expected a string"; "topic not a string")]
#[test_case("action = \"all\"\ntopics = [\"a/#/b\"]", 11, "topics", "topic 1 \"a/#/b\": not a valid topic filter"; "bad filter")]
#[test_case("action = \"all\"\ntopics = [\"\"]", 11, "topics", "not a valid topic filter"; "empty filter")]
#[test_case("action = \"all\"\ntopics = [\"eq \"]", 11, "topics", "not a valid topic filter"; "empty eq filter")]
#[test_case("action = \"all\"\ntopics = [\"a/${user}\"]", 11, "topics", "unknown placeholder `${user}`"; "unknown placeholder")]
#[test_case("action = \"all\"\ntopics = [\"a/${username\"]", 11, "topics", "unclosed placeholder"; "unclosed placeholder")]
#[test_case("action = \"all\"\ntopics = [\"a/${username}+\"]", 11, "topics", "not a valid topic filter"; "placeholder with wildcard")]
fn invalid_actions_and_topics_are_named(rest: &str, line: usize, field: &str, reason: &str) {
    let text = second_rule(&format!("permission = \"allow\"\nall = true\n{rest}"));
    let message = Acl::from_toml_str(&text, "acl.toml")
        .expect_err("invalid")
        .to_string();
    assert!(
        message.starts_with(&format!("acl.toml:{line}: rule 2: `{field}`: ")),
        "{message}"
    );
    assert!(message.contains(reason), "{message}");
}

#[test]
fn rule_errors_carry_their_parts() {
    let text = second_rule("permission = \"allow\"\nall = true\ncolour = 1\naction = \"all\"");
    match Acl::from_toml_str(&text, "acl.toml") {
        Err(AuthError::AclRule {
            origin,
            line,
            rule,
            field,
            ..
        }) => {
            assert_eq!(
                (origin.as_str(), line, rule, field.as_str()),
                ("acl.toml", 10, 2, "colour")
            );
        }
        other => panic!("expected a rule error, got {other:?}"),
    }
}

#[test_case("[[rules]\n", "line 1"; "bad toml")]
#[test_case("[[rule]]\nall = true\n", "unknown field `rule`"; "unknown top-level key")]
#[test_case("rules = 3\n", "expected a sequence"; "rules not a list")]
#[test_case("rules = [1]\n", "expected a map"; "rule not a table")]
fn syntax_errors_are_named(text: &str, reason: &str) {
    let error = Acl::from_toml_str(text, "acl.toml").expect_err("invalid");
    assert!(matches!(error, AuthError::AclSyntax { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("acl.toml: "), "{message}");
    assert!(message.contains(reason), "{message}");
}

#[test_case("10.0.0.0/8", "10.255.255.255" => true; "v4 block top")]
#[test_case("10.0.0.0/8", "9.255.255.255" => false; "v4 block below")]
#[test_case("10.1.2.3/8", "10.9.9.9" => true; "host bits ignored")]
#[test_case("192.0.2.7", "192.0.2.7" => true; "v4 single")]
#[test_case("192.0.2.7/32", "192.0.2.6" => false; "v4 slash 32")]
#[test_case("0.0.0.0/0", "203.0.113.9" => true; "v4 everything")]
#[test_case("0.0.0.0/0", "::1" => false; "v4 everything is not v6")]
#[test_case("0.0.0.0/0", "::ffff:1.2.3.4" => true; "v4 everything includes mapped")]
#[test_case("::/0", "2001:db8::1" => true; "v6 everything")]
#[test_case("::/0", "1.2.3.4" => false; "v6 everything is not v4")]
#[test_case("2001:db8::/32", "2001:db8:ffff::1" => true; "v6 block")]
#[test_case("2001:db8::/32", "2001:db9::1" => false; "v6 outside")]
#[test_case("2001:db8::1/128", "2001:db8::1" => true; "v6 single")]
#[test_case("::1", "::1" => true; "v6 loopback")]
#[test_case("::1", "127.0.0.1" => false; "v6 loopback is not v4 loopback")]
#[test_case("::ffff:10.0.0.0/104", "10.1.1.1" => true; "mapped block holds v4")]
#[test_case("::ffff:10.0.0.0/104", "11.1.1.1" => false; "mapped block outside")]
fn address_blocks(block: &str, ip: &str) -> bool {
    Cidr::parse(block)
        .expect("block")
        .contains(ip.parse().expect("ip"))
}
