//! Mountpoints (EMQX's `listeners.*.mountpoint`): a listener's prefix, put before the topics
//! its clients publish to and the filters they subscribe to, and taken off the topics they
//! receive, so each client sees its own topic space. ACL rules see the client's own topics.

use std::sync::Arc;

use hookmq_codec::ByteString;

use crate::hooks::ClientAttrs;

/// A listener's mountpoint for one client: `${clientid}`, `${username}` and
/// `${client_attrs.<name>}` replaced (a placeholder without a value stays, as EMQX leaves
/// it). `Ok(None)` when the listener has none.
///
/// # Errors
/// A value that would reach out of the client's own space (it holds `/`, `+`, `#` or NUL:
/// a client named `+` must not read every tenant's topics): the client is refused.
pub(crate) fn resolve(
    template: &str,
    client_id: &str,
    username: Option<&str>,
    attrs: &ClientAttrs,
) -> Result<Option<Arc<str>>, String> {
    if template.is_empty() {
        return Ok(None);
    }
    let safe = |what: &str, value: &str| {
        if value.contains(['/', '+', '#', '\0']) {
            Err(format!(
                "its {what} holds /, +, # or NUL, which its mountpoint cannot take"
            ))
        } else {
            Ok(())
        }
    };
    let mut mountpoint = template.to_owned();
    if template.contains("${clientid}") {
        safe("client id", client_id)?;
        mountpoint = mountpoint.replace("${clientid}", client_id);
    }
    if let Some(username) = username.filter(|_| template.contains("${username}")) {
        safe("user name", username)?;
        mountpoint = mountpoint.replace("${username}", username);
    }
    for (name, value) in attrs {
        let placeholder = format!("${{client_attrs.{name}}}");
        if mountpoint.contains(&placeholder) {
            safe(&format!("attribute {name}"), value)?;
            mountpoint = mountpoint.replace(&placeholder, value);
        }
    }
    Ok(Some(mountpoint.into()))
}

/// `topic` under `mountpoint`.
pub(crate) fn topic(mountpoint: &str, topic: &str) -> ByteString {
    ByteString::from(format!("{mountpoint}{topic}"))
}

/// A subscription filter under `mountpoint` (`$share/{group}/` stays in front).
pub(crate) fn filter(mountpoint: &str, filter: &str) -> ByteString {
    if let Some(shared) = filter.strip_prefix("$share/")
        && let Some((group, rest)) = shared.split_once('/')
    {
        return ByteString::from(format!("$share/{group}/{mountpoint}{rest}"));
    }
    topic(mountpoint, filter)
}

/// `topic` as its client sees it: without `mountpoint` (a topic outside it, a retained or
/// bridged one, is sent as it is).
pub(crate) fn strip(mountpoint: &str, topic: &ByteString) -> ByteString {
    match topic.strip_prefix(mountpoint) {
        Some(rest) if !rest.is_empty() => ByteString::from(rest),
        _ => topic.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_filters_and_stripping() {
        let attrs: ClientAttrs = vec![("site".into(), "paris".into())];
        let mp = resolve("t/${client_attrs.site}/${clientid}/", "c1", None, &attrs)
            .expect("safe")
            .expect("set");
        assert_eq!(&*mp, "t/paris/c1/");
        let anonymous = resolve("u/${username}/", "c", None, &attrs).expect("safe");
        assert_eq!(anonymous.as_deref(), Some("u/${username}/"));
        assert_eq!(resolve("", "c", None, &attrs), Ok(None));
        for escape in ["+", "#", "a/b", "x\0"] {
            assert!(
                resolve("site/${clientid}/", escape, None, &attrs).is_err(),
                "{escape:?}"
            );
        }
        assert!(
            resolve("site/", "+", None, &attrs).is_ok(),
            "an id not in the mountpoint is fine"
        );
        assert_eq!(&*topic("m/", "a/b"), "m/a/b");
        assert_eq!(&*filter("m/", "$share/g/a/#"), "$share/g/m/a/#");
        assert_eq!(&*filter("m/", "a/+"), "m/a/+");
        assert_eq!(&*strip("m/", &ByteString::from("m/a/b")), "a/b");
        assert_eq!(&*strip("m/", &ByteString::from("other/a")), "other/a");
    }
}
