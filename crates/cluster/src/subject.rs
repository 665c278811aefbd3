//! MQTT topics and filters as NATS subjects.
//!
//! A topic `a/b/c` is published on `<prefix>.m.a.b.c`: each level one token. A level may hold
//! what a NATS token may not (`.`, `*`, `>`, white space, nothing at all), so those bytes
//! are written `%XX` (and `%` itself), and an empty level is a lone `%`: the mapping is
//! one-to-one, so a filter's subjects match exactly the topics the filter matches (MQTT's
//! rule that `#` and `+` do not match `$` topics at the first level is applied by the
//! receiving node's router). A filter maps `+` to `*` and a final `#` to `>`, plus the
//! parent subject itself, since `a/#` matches `a` too.

use std::fmt::Write as _;

/// The subject a message on `topic` is published on.
#[must_use]
pub fn of_topic(prefix: &str, topic: &str) -> String {
    let mut subject = format!("{prefix}.m");
    for level in topic.split('/') {
        subject.push('.');
        push_token(&mut subject, level);
    }
    subject
}

/// The subjects a node subscribes to for `filter` (a `$share/` filter is not one of
/// these: shared subscriptions are balanced by each node on its own).
#[must_use]
pub fn of_filter(prefix: &str, filter: &str) -> Vec<String> {
    let mut subject = format!("{prefix}.m");
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let last = i + 1 == levels.len();
        match *level {
            "#" if last => {
                // `a/#` matches `a` and everything below it; `#` alone everything.
                let mut subjects = vec![format!("{subject}.>")];
                if i > 0 {
                    subjects.push(subject);
                }
                return subjects;
            }
            "+" => subject.push_str(".*"),
            other => {
                subject.push('.');
                push_token(&mut subject, other);
            }
        }
    }
    vec![subject]
}

/// The NATS queue group of `$share/{group}/{filter}`: the same on every node, one per
/// shared subscription (group and filter).
#[must_use]
pub fn queue_group(prefix: &str, group: &str, filter: &str) -> String {
    let mut queue = format!("{prefix}.share.");
    push_token(&mut queue, group);
    queue.push('.');
    for byte in filter.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_') {
            queue.push(char::from(byte));
        } else {
            let _ = write!(queue, "%{byte:02X}");
        }
    }
    queue
}

/// `text` as one NATS token (a node name in a subject).
pub(crate) fn token(text: &str) -> String {
    let mut out = String::new();
    push_token(&mut out, text);
    out
}

/// Appends one level as a NATS token.
fn push_token(subject: &mut String, level: &str) {
    if level.is_empty() {
        subject.push('%');
        return;
    }
    for byte in level.bytes() {
        if matches!(byte, b'.' | b'*' | b'>' | b'%') || byte.is_ascii_whitespace() || byte < 0x20 {
            let _ = write!(subject, "%{byte:02X}");
        } else {
            // Other bytes (UTF-8 included) go as they are: `level` is valid UTF-8 and only
            // ASCII bytes were escaped, so the subject stays valid UTF-8.
            subject.push(char::from(byte));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_become_one_token_per_level_with_awkward_bytes_escaped() {
        assert_eq!(of_topic("h", "a/b/c"), "h.m.a.b.c");
        assert_eq!(of_topic("h", "/a//"), "h.m.%.a.%.%");
        assert_eq!(
            of_topic("h", "v1.2/*/>/50%/a b"),
            "h.m.v1%2E2.%2A.%3E.50%25.a%20b"
        );
        assert_eq!(of_topic("h", "$SYS/x"), "h.m.$SYS.x");
    }

    #[test]
    fn queue_groups_name_the_group_and_the_filter() {
        assert_eq!(queue_group("h", "g", "jobs/#"), "h.share.g.jobs%2F%23");
        assert_ne!(queue_group("h", "g", "a/+"), queue_group("h", "g", "a/#"));
    }

    #[test]
    fn filters_map_wildcards_and_a_final_hash_also_matches_its_parent() {
        assert_eq!(of_filter("h", "a/+/c"), ["h.m.a.*.c"]);
        assert_eq!(of_filter("h", "a/#"), ["h.m.a.>", "h.m.a"]);
        assert_eq!(of_filter("h", "#"), ["h.m.>"]);
        assert_eq!(of_filter("h", "+/#"), ["h.m.*.>", "h.m.*"]);
        assert_eq!(of_filter("h", "a.b/+"), ["h.m.a%2Eb.*"]);
    }
}
