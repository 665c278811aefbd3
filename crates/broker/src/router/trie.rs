//! The subscription trie: one node per topic level, with `+` and `#` children, and the
//! subscribers of the filters that end at each node.

use std::collections::HashMap;

use super::{SharedGroup, Subscriber, Subscribers};

/// One level of the trie.
#[derive(Debug, Default)]
pub(crate) struct Node {
    children: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Filters ending in `#` at this level (`a/#` lives in node `a`).
    hash: Subscribers,
    /// Filters ending exactly here.
    exact: Subscribers,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.exact.is_empty()
    }

    /// The subscriber list of `filter`, created if missing.
    pub(crate) fn entry(&mut self, filter: &str) -> &mut Subscribers {
        let mut node = self;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return &mut node.hash;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        &mut node.exact
    }

    /// Applies `change` to the subscriber list of `filter` if it exists, then prunes empty
    /// nodes. Returns what `change` returned.
    pub(crate) fn modify<T>(
        &mut self,
        filter: &str,
        change: impl FnOnce(&mut Subscribers) -> T,
    ) -> Option<T> {
        let levels: Vec<&str> = filter.split('/').collect();
        Self::modify_at(self, &levels, change)
    }

    fn modify_at<T>(
        node: &mut Node,
        levels: &[&str],
        change: impl FnOnce(&mut Subscribers) -> T,
    ) -> Option<T> {
        match levels {
            [] => Some(change(&mut node.exact)),
            ["#"] => Some(change(&mut node.hash)),
            [first, rest @ ..] => {
                if *first == "+" {
                    let child = node.plus.as_deref_mut()?;
                    let out = Self::modify_at(child, rest, change);
                    if child.is_empty() {
                        node.plus = None;
                    }
                    out
                } else {
                    let child = node.children.get_mut(*first)?;
                    let out = Self::modify_at(child, rest, change);
                    if child.is_empty() {
                        node.children.remove(*first);
                    }
                    out
                }
            }
        }
    }

    /// The subscriber list of exactly `filter`, if it has one.
    pub(crate) fn find(&self, filter: &str) -> Option<&Subscribers> {
        let mut node = self;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return Some(&node.hash);
            }
            node = if level == "+" {
                node.plus.as_deref()?
            } else {
                node.children.get(level)?
            };
        }
        Some(&node.exact)
    }

    /// Calls `visit` with the subscribers of every filter matching `topic`.
    pub(crate) fn matches<'a>(&'a self, topic: &str, visit: &mut impl FnMut(&'a Subscribers)) {
        // [MQTT-4.7.2-1]: wildcards at the first level do not match `$` topics.
        let dollar = topic.starts_with('$');
        let mut levels = topic.split('/');
        let first = levels.next().unwrap_or("");
        if !dollar {
            visit_nonempty(&self.hash, visit);
        }
        if let Some(child) = self.children.get(first) {
            child.walk(levels.clone(), visit);
        }
        if !dollar && let Some(plus) = &self.plus {
            plus.walk(levels, visit);
        }
    }

    fn walk<'a, 't>(
        &'a self,
        mut levels: impl Iterator<Item = &'t str> + Clone,
        visit: &mut impl FnMut(&'a Subscribers),
    ) {
        // `a/#` also matches `a` itself.
        visit_nonempty(&self.hash, visit);
        match levels.next() {
            None => visit_nonempty(&self.exact, visit),
            Some(level) => {
                if let Some(child) = self.children.get(level) {
                    child.walk(levels.clone(), visit);
                }
                if let Some(plus) = &self.plus {
                    plus.walk(levels, visit);
                }
            }
        }
    }

    /// Calls `visit` with every (filter, subscribers) pair; for listings.
    pub(crate) fn for_each<'a>(
        &'a self,
        path: &mut Vec<&'a str>,
        visit: &mut impl FnMut(String, &'a Subscribers),
    ) {
        if !self.exact.is_empty() && !path.is_empty() {
            visit(path.join("/"), &self.exact);
        }
        if !self.hash.is_empty() {
            path.push("#");
            visit(path.join("/"), &self.hash);
            path.pop();
        }
        for (level, child) in &self.children {
            path.push(level);
            child.for_each(path, visit);
            path.pop();
        }
        if let Some(plus) = &self.plus {
            path.push("+");
            plus.for_each(path, visit);
            path.pop();
        }
    }
}

fn visit_nonempty<'a>(subs: &'a Subscribers, visit: &mut impl FnMut(&'a Subscribers)) {
    if !subs.is_empty() {
        visit(subs);
    }
}

impl Subscribers {
    pub(crate) fn is_empty(&self) -> bool {
        self.direct.is_empty() && self.shared.is_empty()
    }

    /// Whether there is a direct subscriber (`group` none) or a member of `group`.
    pub(crate) fn has(&self, group: Option<&str>) -> bool {
        match group {
            None => !self.direct.is_empty(),
            Some(name) => self.shared.iter().any(|g| &*g.name == name),
        }
    }

    /// Adds or replaces the subscription of `subscriber.session_id` (in `group` if shared).
    /// Returns whether it existed.
    pub(crate) fn upsert(&mut self, group: Option<&str>, subscriber: Subscriber) -> bool {
        let list = match group {
            None => &mut self.direct,
            Some(name) => {
                let index = match self.shared.iter().position(|g| &*g.name == name) {
                    Some(i) => i,
                    None => {
                        self.shared.push(SharedGroup::new(name));
                        self.shared.len() - 1
                    }
                };
                &mut self.shared[index].members
            }
        };
        if let Some(existing) = list
            .iter_mut()
            .find(|s| s.session_id == subscriber.session_id)
        {
            *existing = subscriber;
            true
        } else {
            list.push(subscriber);
            false
        }
    }

    /// Removes the subscription of `session_id`; returns whether it existed.
    pub(crate) fn remove(&mut self, group: Option<&str>, session_id: u64) -> bool {
        match group {
            None => {
                let before = self.direct.len();
                self.direct.retain(|s| s.session_id != session_id);
                before != self.direct.len()
            }
            Some(name) => {
                let Some(index) = self.shared.iter().position(|g| &*g.name == name) else {
                    return false;
                };
                let members = &mut self.shared[index].members;
                let before = members.len();
                members.retain(|s| s.session_id != session_id);
                let removed = before != members.len();
                if members.is_empty() {
                    self.shared.swap_remove(index);
                }
                removed
            }
        }
    }
}
