//! Topic names and filters (spec §4.7): validation, matching and `$share/{group}/{filter}`.

/// Whether `name` is a valid topic name for PUBLISH: non-empty, at most 65,535 bytes, no
/// wildcard characters (`[MQTT-4.7.3-1]`, `[MQTT-3.3.2-2]`).
#[must_use]
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 65_535 && !name.contains(['+', '#'])
}

/// Whether `filter` is a valid topic filter: non-empty, `#` only as the whole last level,
/// `+` only as a whole level (`[MQTT-4.7.1-1]`, `[MQTT-4.7.1-2]`).
#[must_use]
pub fn is_valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.len() > 65_535 {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "#" => return levels.peek().is_none(),
            "+" => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// Whether a topic filter contains `+` or `#`.
#[must_use]
pub fn has_wildcard(filter: &str) -> bool {
    filter.contains(['+', '#'])
}

/// Whether `topic` matches `filter`. A filter starting with a wildcard does not match a topic
/// starting with `$` (`[MQTT-4.7.2-1]`). Both are assumed valid.
///
/// One pass over the bytes, level by level (`/` is ASCII, so it never splits a UTF-8
/// character): this runs for every subscription and webhook trigger a message meets.
#[must_use]
pub fn matches(filter: &str, topic: &str) -> bool {
    let (filter, topic) = (filter.as_bytes(), topic.as_bytes());
    if topic.first() == Some(&b'$') && matches!(filter.first(), Some(b'+' | b'#')) {
        return false;
    }
    let (mut f, mut t) = (0, 0);
    loop {
        // Both positions are at the start of a level.
        match filter.get(f) {
            // In a valid filter `#` is the whole last level: it matches whatever is left.
            Some(b'#') => return true,
            Some(b'+') if filter.get(f + 1).is_none_or(|&c| c == b'/') => {
                while t < topic.len() && topic[t] != b'/' {
                    t += 1;
                }
                f += 1;
            }
            _ => {
                while f < filter.len() && filter[f] != b'/' {
                    if topic.get(t) != Some(&filter[f]) {
                        return false;
                    }
                    f += 1;
                    t += 1;
                }
                if t < topic.len() && topic[t] != b'/' {
                    return false;
                }
            }
        }
        // Both levels ended: at a `/` or at the end.
        match (f < filter.len(), t < topic.len()) {
            (false, false) => return true,
            (true, true) => {
                f += 1;
                t += 1;
            }
            // `a/#` also matches `a` (`[MQTT-4.7.1-2]`).
            (true, false) => return &filter[f..] == b"/#",
            (false, true) => return false,
        }
    }
}

/// A subscription's filter split into its shared group, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFilter<'a> {
    /// The share name of `$share/{group}/...`, `None` for a normal subscription.
    pub group: Option<&'a str>,
    /// The filter messages are matched against.
    pub filter: &'a str,
}

/// Why a subscription filter is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The filter breaks the wildcard rules.
    #[error("[MQTT-4.7.1-1] invalid topic filter")]
    Invalid,
    /// `$share/` without a share name, or a share name with `+`, `#` or `/`.
    #[error("[MQTT-4.8.2-1] invalid share name")]
    InvalidShareName,
    /// `$share/{group}` without a filter after the share name.
    #[error("[MQTT-4.8.2-2] shared subscription without a topic filter")]
    MissingSharedFilter,
}

/// Splits `$share/{group}/{filter}` and validates both parts; a plain filter is validated and
/// returned with no group.
///
/// # Errors
/// [`FilterError`] when the filter or the share name is invalid.
pub fn parse_subscription(filter: &str) -> Result<SharedFilter<'_>, FilterError> {
    if let Some(rest) = filter.strip_prefix("$share/") {
        let (group, inner) = rest
            .split_once('/')
            .ok_or(FilterError::MissingSharedFilter)?;
        if group.is_empty() || group.contains(['+', '#']) {
            return Err(FilterError::InvalidShareName);
        }
        if !is_valid_filter(inner) {
            return Err(if inner.is_empty() {
                FilterError::MissingSharedFilter
            } else {
                FilterError::Invalid
            });
        }
        return Ok(SharedFilter {
            group: Some(group),
            filter: inner,
        });
    }
    if filter == "$share" {
        return Err(FilterError::MissingSharedFilter);
    }
    if is_valid_filter(filter) {
        Ok(SharedFilter {
            group: None,
            filter,
        })
    } else {
        Err(FilterError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use test_case::test_case;

    use super::*;

    #[test_case("a/b/#" => true; "hash last")]
    #[test_case("#" => true; "hash alone")]
    #[test_case("+/b/+" => true; "plus levels")]
    #[test_case("a/#/c" => false; "hash in middle")]
    #[test_case("a/b#" => false; "hash inside level")]
    #[test_case("a/+b" => false; "plus inside level")]
    #[test_case("" => false; "empty")]
    #[test_case("/" => true; "two empty levels")]
    fn filter_validity(filter: &str) -> bool {
        is_valid_filter(filter)
    }

    #[test_case("a/b" => true; "plain")]
    #[test_case("a/+" => false; "plus")]
    #[test_case("a/#" => false; "hash")]
    #[test_case("" => false; "empty")]
    fn name_validity(name: &str) -> bool {
        is_valid_name(name)
    }

    #[test_case("a/b", "a/b" => true; "exact")]
    #[test_case("a/+", "a/b" => true; "plus")]
    #[test_case("a/+", "a/b/c" => false; "plus one level")]
    #[test_case("a/#", "a" => true; "hash matches parent")]
    #[test_case("a/#", "a/b/c" => true; "hash deep")]
    #[test_case("#", "$SYS/x" => false; "hash skips dollar")]
    #[test_case("+/x", "$SYS/x" => false; "plus skips dollar")]
    #[test_case("$SYS/#", "$SYS/x" => true; "dollar explicit")]
    #[test_case("+/+", "/x" => true; "empty first level")]
    #[test_case("a/b", "a/b/" => false; "trailing slash")]
    fn matching(filter: &str, topic: &str) -> bool {
        matches(filter, topic)
    }

    /// The definition, level by level, that the byte-wise [`matches`] must agree with.
    fn matches_by_levels(filter: &str, topic: &str) -> bool {
        if topic.starts_with('$') && filter.starts_with(['+', '#']) {
            return false;
        }
        let mut filter_levels = filter.split('/');
        let mut topic_levels = topic.split('/');
        loop {
            match (filter_levels.next(), topic_levels.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(f), Some(t)) if f == t => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    /// Every string of up to 5 symbols from `a`, `b`, `/`, `$`, `+`, `#` as filter (the valid
    /// ones) against every such topic name: the two agree on all of them.
    #[test]
    fn byte_matcher_agrees_with_levels() {
        fn all(symbols: &[char], max: usize) -> Vec<String> {
            let mut out = vec![String::new()];
            let mut layer = vec![String::new()];
            for _ in 0..max {
                layer = layer
                    .iter()
                    .flat_map(|s| symbols.iter().map(move |c| format!("{s}{c}")))
                    .collect();
                out.extend(layer.iter().cloned());
            }
            out
        }
        let filters: Vec<_> = all(&['a', 'b', '/', '$', '+', '#'], 5)
            .into_iter()
            .filter(|f| is_valid_filter(f))
            .collect();
        let topics: Vec<_> = all(&['a', 'b', '/', '$'], 5)
            .into_iter()
            .filter(|t| is_valid_name(t))
            .collect();
        let mut checked = 0;
        for filter in &filters {
            for topic in &topics {
                assert_eq!(
                    matches(filter, topic),
                    matches_by_levels(filter, topic),
                    "{filter} vs {topic}"
                );
                checked += 1;
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    #[test]
    fn shared_subscriptions() {
        assert_eq!(
            parse_subscription("$share/g/a/+"),
            Ok(SharedFilter {
                group: Some("g"),
                filter: "a/+"
            })
        );
        assert_eq!(
            parse_subscription("a/#"),
            Ok(SharedFilter {
                group: None,
                filter: "a/#"
            })
        );
        assert_eq!(
            parse_subscription("$share/g"),
            Err(FilterError::MissingSharedFilter)
        );
        assert_eq!(
            parse_subscription("$share//a"),
            Err(FilterError::InvalidShareName)
        );
        assert_eq!(
            parse_subscription("$share/g+/a"),
            Err(FilterError::InvalidShareName)
        );
        assert_eq!(
            parse_subscription("$share/g/a/#/b"),
            Err(FilterError::Invalid)
        );
    }
}
