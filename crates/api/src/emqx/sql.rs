//! The rule SQL hookmq runs: the form EMQX's Webhook page writes,
//! `SELECT * FROM "t/#", "$events/client_connected" WHERE topic =~ 't/#' or topic =~ 'u/1'`.
//! Sources are topic filters (`message.publish`) and `$events/...` topics; the `WHERE`
//! clause may only pick topics, for all message events at once. Anything else is refused
//! with what is supported, never run differently from EMQX.

use hookmq_broker::hooks::EventKind;

/// What a rule selects: event kinds, and the topic filters message events must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    /// The kinds, in [`EventKind::ALL`] order.
    pub(crate) events: Vec<EventKind>,
    /// Filters for message events (`["#"]`: every topic not starting with `$`).
    pub(crate) topics: Vec<String>,
    /// The sources as written after `FROM` (EMQX's `from`).
    pub(crate) from: Vec<String>,
}

/// What hookmq supports, said in every refusal.
const SUPPORTED: &str = "hookmq runs rules of the form SELECT * FROM \"<topic filter>\", \
                         \"$events/<event>\", ... [WHERE topic =~ '<filter>' or topic =~ '<filter>' ...]";

/// The `$events/...` topic of an event kind (`message.publish` has none: it is selected by
/// topic filters).
pub(crate) fn event_topic(kind: EventKind) -> Option<&'static str> {
    Some(match kind {
        EventKind::ClientConnected => "$events/client_connected",
        EventKind::ClientConnack => "$events/client_connack",
        EventKind::ClientDisconnected => "$events/client_disconnected",
        EventKind::CheckAuthnComplete => "$events/client_check_authn_complete",
        EventKind::CheckAuthzComplete => "$events/client_check_authz_complete",
        EventKind::SessionSubscribed => "$events/session_subscribed",
        EventKind::SessionUnsubscribed => "$events/session_unsubscribed",
        EventKind::MessagePublish => return None,
        EventKind::MessageDelivered => "$events/message_delivered",
        EventKind::MessageAcked => "$events/message_acked",
        EventKind::MessageDropped => "$events/message_dropped",
        EventKind::DeliveryDropped => "$events/delivery_dropped",
        EventKind::AlarmActivated => "$events/sys/alarm_activated",
        EventKind::AlarmDeactivated => "$events/sys/alarm_deactivated",
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Text(String),
    Star,
    Comma,
    Matches,
    Equals,
}

fn tokens(sql: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = sql.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '*' => out.push(Token::Star),
            ',' => out.push(Token::Comma),
            '=' if chars.peek().is_some_and(|&(_, next)| next == '~') => {
                chars.next();
                out.push(Token::Matches);
            }
            '=' => out.push(Token::Equals),
            '"' | '\'' => {
                let text: String = chars
                    .by_ref()
                    .map(|(_, c)| c)
                    .take_while(|&d| d != c)
                    .collect();
                let closed = sql[at + 1..].contains(c);
                if !closed {
                    return Err(format!("a string opened at character {at} is not closed"));
                }
                out.push(Token::Text(text));
            }
            c if c.is_ascii_alphanumeric() || c == '_' => {
                let mut word = String::from(c);
                while let Some(&(_, d)) = chars.peek() {
                    if !(d.is_ascii_alphanumeric() || d == '_' || d == '.') {
                        break;
                    }
                    word.push(d);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
            other => return Err(format!("`{other}` at character {at} is not supported")),
        }
    }
    Ok(out)
}

fn keyword(token: Option<&Token>, word: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
}

/// Parses a rule's SQL.
///
/// # Errors
/// What is wrong, and what is supported.
pub(crate) fn parse(sql: &str) -> Result<Selection, String> {
    let refuse = |why: String| format!("{why}; {SUPPORTED}");
    let tokens = tokens(sql).map_err(refuse)?;
    let mut at = tokens.iter().peekable();
    if !keyword(at.next(), "select") || at.next() != Some(&Token::Star) {
        return Err(refuse("only SELECT * is supported".into()));
    }
    if !keyword(at.next(), "from") {
        return Err(refuse("SELECT * must be followed by FROM".into()));
    }
    let mut sources = Vec::new();
    loop {
        match at.next() {
            Some(Token::Text(source)) => sources.push(source.clone()),
            _ => {
                return Err(refuse(
                    "FROM takes quoted topics, separated by commas".into(),
                ));
            }
        }
        if at.peek() != Some(&&Token::Comma) {
            break;
        }
        at.next();
    }
    let mut wanted = Vec::new();
    if keyword(at.peek().copied(), "where") {
        at.next();
        loop {
            let (
                Some(Token::Word(field)),
                Some(operator @ (Token::Matches | Token::Equals)),
                Some(Token::Text(filter)),
            ) = (at.next(), at.next(), at.next())
            else {
                return Err(refuse(
                    "WHERE may only compare topic, as topic =~ '<filter>'".into(),
                ));
            };
            if field != "topic" {
                return Err(refuse(format!("WHERE on `{field}` is not supported")));
            }
            // `=` compares the topic as text: the same as `=~` only without wildcards.
            if *operator == Token::Equals && filter.contains(['+', '#']) {
                return Err(refuse(format!(
                    "topic = '{filter}' compares text, not a filter: write topic =~ '{filter}'"
                )));
            }
            wanted.push(filter.clone());
            if !keyword(at.peek().copied(), "or") {
                break;
            }
            at.next();
        }
    }
    if let Some(extra) = at.next() {
        return Err(refuse(format!("unexpected {extra:?} after the selection")));
    }
    select(&sources, wanted)
}

/// The selection of a rule's sources and `WHERE` filters.
fn select(sources: &[String], wanted: Vec<String>) -> Result<Selection, String> {
    let mut events = Vec::new();
    let mut from_topics = Vec::new();
    for source in sources {
        if source.starts_with("$events/") {
            let kind = EventKind::ALL
                .into_iter()
                .find(|&k| event_topic(k) == Some(source.as_str()))
                .ok_or_else(|| {
                    let known: Vec<_> =
                        EventKind::ALL.into_iter().filter_map(event_topic).collect();
                    format!(
                        "`{source}` is not an event hookmq sends (it sends {}); {SUPPORTED}",
                        known.join(", ")
                    )
                })?;
            events.push(kind);
        } else if !from_topics.contains(source) {
            from_topics.push(source.clone());
        }
    }
    if !from_topics.is_empty() {
        events.push(EventKind::MessagePublish);
    }
    events.sort_by_key(|&k| k as u8);
    events.dedup();
    let other_message_events = events
        .iter()
        .any(|&k| k.is_message_event() && k != EventKind::MessagePublish);
    let everything = |topics: &[String]| topics.iter().all(|t| t == "#");
    let message_events = events.iter().any(|k| k.is_message_event());
    if !wanted.is_empty() && !message_events {
        return Err(format!(
            "WHERE topic =~ ... picks messages, and the rule selects no message event; {SUPPORTED}"
        ));
    }
    let topics = if wanted.is_empty() {
        if other_message_events && !from_topics.is_empty() && !everything(&from_topics) {
            return Err(format!(
                "without WHERE the message events in FROM take every topic while the topics in \
                 FROM take only theirs; add WHERE topic =~ '<filter>' for each of them, as \
                 EMQX's Webhook page does; {SUPPORTED}"
            ));
        }
        if from_topics.is_empty() {
            vec!["#".to_owned()]
        } else {
            from_topics
        }
    } else {
        let mut sorted_from = from_topics.clone();
        let mut sorted_wanted = wanted.clone();
        sorted_from.sort();
        sorted_wanted.sort();
        sorted_wanted.dedup();
        if !from_topics.is_empty() && !everything(&from_topics) && sorted_from != sorted_wanted {
            return Err(format!(
                "the topics in FROM and in WHERE differ: hookmq selects messages by one list of \
                 topic filters (EMQX's Webhook page writes the same list in both); {SUPPORTED}"
            ));
        }
        sorted_wanted
    };
    if events.is_empty() {
        return Err(format!("the rule selects nothing; {SUPPORTED}"));
    }
    Ok(Selection {
        events,
        topics,
        from: sources.to_vec(),
    })
}

/// The SQL EMQX's Webhook page writes for `events` on `topics`.
pub(crate) fn write(events: &[EventKind], topics: &[String]) -> String {
    // A topic holding the usual quote takes the other (SQL strings here have no escapes).
    let quoted = |t: &str| {
        if t.contains('"') {
            format!("'{t}'")
        } else {
            format!("\"{t}\"")
        }
    };
    let mut sources = Vec::new();
    if events.contains(&EventKind::MessagePublish) {
        sources.extend(topics.iter().map(|t| quoted(t)));
    }
    let mut kinds = events.to_vec();
    kinds.sort_by_key(|&k| k as u8);
    sources.extend(kinds.into_iter().filter_map(event_topic).map(quoted));
    let mut sql = format!("SELECT * FROM {}", sources.join(", "));
    let filtered = events
        .iter()
        .any(|&k| k.is_message_event() && k != EventKind::MessagePublish);
    if filtered && topics.iter().any(|t| t != "#") {
        let conditions: Vec<String> = topics
            .iter()
            .map(|t| {
                if t.contains('\'') {
                    format!("topic =~ \"{t}\"")
                } else {
                    format!("topic =~ '{t}'")
                }
            })
            .collect();
        sql.push_str(" WHERE ");
        sql.push_str(&conditions.join(" or "));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(list: &[&str]) -> Vec<String> {
        list.iter().map(|&t| t.to_owned()).collect()
    }

    #[test]
    fn the_webhook_pages_forms_are_read() {
        let all = parse(
            "SELECT\n  *\nFROM\n  \"#\", \"$events/client_connected\", \"$events/client_disconnected\"",
        )
        .expect("all");
        assert_eq!(
            all.events,
            [
                EventKind::ClientConnected,
                EventKind::ClientDisconnected,
                EventKind::MessagePublish
            ]
        );
        assert_eq!(all.topics, topics(&["#"]));
        let messages = parse(
            "select * from \"t/1\", \"t/2\", \"$events/message_delivered\" where topic =~ 't/1' OR topic =~ 't/2'",
        )
        .expect("messages");
        assert_eq!(
            messages.events,
            [EventKind::MessagePublish, EventKind::MessageDelivered]
        );
        assert_eq!(messages.topics, topics(&["t/1", "t/2"]));
        let delivered =
            parse("SELECT * FROM \"$events/message_acked\" WHERE topic =~ 'a/#'").expect("acked");
        assert_eq!(delivered.events, [EventKind::MessageAcked]);
        assert_eq!(delivered.topics, topics(&["a/#"]));
        let events = parse("SELECT * FROM '$events/session_subscribed'").expect("events");
        assert_eq!(events.events, [EventKind::SessionSubscribed]);
    }

    #[test]
    fn what_hookmq_cannot_run_exactly_is_refused_with_what_it_supports() {
        for sql in [
            "SELECT payload FROM \"t/#\"",
            "SELECT * FROM \"t/#\" WHERE payload.x > 1",
            "SELECT * FROM \"t/#\" WHERE clientid = 'c'",
            "SELECT * FROM \"$events/alarm_activated\"",
            "SELECT * FROM \"$events/sys/alarm_cleared\"",
            "SELECT * FROM \"t/1\", \"$events/message_delivered\"",
            "SELECT * FROM \"t/1\" WHERE topic =~ 't/2'",
            "SELECT * FROM t/1",
            "SELECT * FROM \"t/1",
            "SELECT * FROM \"t/1\" LIMIT 1",
            "SELECT * FROM \"t/#\" WHERE topic = 't/#'",
            "SELECT * FROM \"$events/client_connected\" WHERE topic =~ 'a/#'",
            "DELETE FROM \"t\"",
        ] {
            let error = parse(sql).expect_err(sql);
            assert!(error.contains("SELECT * FROM"), "{sql}: {error}");
        }
    }

    #[test]
    fn written_sql_reads_back_as_the_same_selection() {
        for (events, filters) in [
            (EventKind::ALL.to_vec(), topics(&["#"])),
            (vec![EventKind::MessagePublish], topics(&["a/+", "b/#"])),
            (
                vec![EventKind::MessagePublish, EventKind::DeliveryDropped],
                topics(&["a/1", "b"]),
            ),
            (vec![EventKind::MessageDropped], topics(&["x/#"])),
            (
                vec![EventKind::MessagePublish, EventKind::MessageAcked],
                topics(&["it's", "say \"hi\""]),
            ),
            (
                vec![EventKind::ClientConnack, EventKind::SessionUnsubscribed],
                topics(&["#"]),
            ),
        ] {
            let sql = write(&events, &filters);
            let read = parse(&sql).expect(&sql);
            assert_eq!((read.events, read.topics), (events, filters), "{sql}");
        }
    }
}
