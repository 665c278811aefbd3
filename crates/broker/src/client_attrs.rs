//! Client attributes at connect (EMQX's `mqtt.client_attrs_init`): each rule evaluates an
//! expression over what the client sent and sets the result as an attribute; an empty
//! result (or one that does not evaluate) sets nothing, as in EMQX.
//!
//! Expressions are the part of EMQX's variform that extraction needs: the variables
//! `clientid`, `username`, `cn`, `dn` (of a verified client certificate), `peerhost` and
//! `user_property.<name>` (v5 CONNECT); quoted strings and integers; and the functions
//! `tokens(s, sep)`, `nth(n, list)` (from 1), `substr(s, start[, len])` (from 0),
//! `concat(a, b, ...)`, `coalesce(a, b, ...)` (the first non-empty), `lower(s)`, `upper(s)`
//! and `trim(s)`. Anything else is refused when the configuration loads.

use serde::{Deserialize, Serialize};

/// One `[[mqtt.client_attrs_init]]` rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientAttrInit {
    /// What to evaluate, e.g. `nth(1, tokens(clientid, '-'))`.
    pub expression: String,
    /// The attribute it sets (letters, digits and `_`).
    pub set_as_attr: String,
}

/// What an expression reads from a connecting client.
#[derive(Debug, Default)]
pub(crate) struct Sources<'a> {
    pub(crate) clientid: &'a str,
    pub(crate) username: Option<&'a str>,
    pub(crate) cn: Option<&'a str>,
    pub(crate) dn: Option<&'a str>,
    pub(crate) peerhost: String,
    pub(crate) user_properties: &'a [(String, String)],
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Text(String),
    Number(i64),
    Var(String),
    Call(Func, Vec<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Tokens,
    Nth,
    Substr,
    Concat,
    Coalesce,
    Lower,
    Upper,
    Trim,
}

impl Func {
    fn named(name: &str) -> Option<(Self, std::ops::RangeInclusive<usize>)> {
        Some(match name {
            "tokens" => (Self::Tokens, 2..=2),
            "nth" => (Self::Nth, 2..=2),
            "substr" => (Self::Substr, 2..=3),
            "concat" => (Self::Concat, 1..=32),
            "coalesce" => (Self::Coalesce, 1..=32),
            "lower" => (Self::Lower, 1..=1),
            "upper" => (Self::Upper, 1..=1),
            "trim" => (Self::Trim, 1..=1),
            _ => return None,
        })
    }
}

/// A value while evaluating.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Number(i64),
    List(Vec<String>),
}

impl Value {
    fn text(self) -> Option<String> {
        match self {
            Self::Text(text) => Some(text),
            Self::Number(n) => Some(n.to_string()),
            Self::List(_) => None,
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expression(Node);

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn skip_blanks(&mut self) {
        while let Some(c) = self.text[self.at..]
            .chars()
            .next()
            .filter(|c| c.is_whitespace())
        {
            self.at += c.len_utf8();
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_blanks();
        if self.text[self.at..].starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn node(&mut self) -> Result<Node, String> {
        self.skip_blanks();
        let rest = &self.text[self.at..];
        if let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') {
            let end = rest[1..]
                .find(quote)
                .ok_or_else(|| format!("a string at character {} is not closed", self.at))?;
            self.at += end + 2;
            return Ok(Node::Text(rest[1..=end].to_owned()));
        }
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.' || *c == '-')
            .collect();
        if word.is_empty() {
            return Err(format!("expected a value at character {}", self.at));
        }
        self.at += word.len();
        if let Ok(number) = word.parse::<i64>() {
            return Ok(Node::Number(number));
        }
        if !self.eat('(') {
            return variable(&word).map(|()| Node::Var(word));
        }
        let (func, arity) =
            Func::named(&word).ok_or_else(|| format!("unknown function `{word}`"))?;
        let mut args = Vec::new();
        if !self.eat(')') {
            loop {
                args.push(self.node()?);
                if self.eat(')') {
                    break;
                }
                if !self.eat(',') {
                    return Err(format!("expected `,` or `)` at character {}", self.at));
                }
            }
        }
        if !arity.contains(&args.len()) {
            return Err(format!(
                "`{word}` takes {arity:?} arguments, not {}",
                args.len()
            ));
        }
        Ok(Node::Call(func, args))
    }
}

/// Whether `name` is a variable expressions may read.
fn variable(name: &str) -> Result<(), String> {
    match name {
        "clientid" | "username" | "cn" | "dn" | "peerhost" => Ok(()),
        _ if name
            .strip_prefix("user_property.")
            .is_some_and(|key| !key.is_empty()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "unknown variable `{name}` (use clientid, username, cn, dn, peerhost or user_property.<name>)"
        )),
    }
}

impl Expression {
    /// Parses `text`.
    ///
    /// # Errors
    /// What is wrong, and where.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut parser = Parser { text, at: 0 };
        let node = parser.node()?;
        parser.skip_blanks();
        if parser.at < text.len() {
            return Err(format!("unexpected `{}`", &text[parser.at..]));
        }
        Ok(Self(node))
    }

    /// The value for a client, `None` when it is empty or does not evaluate.
    pub(crate) fn evaluate(&self, sources: &Sources<'_>) -> Option<String> {
        eval(&self.0, sources)?
            .text()
            .filter(|text| !text.is_empty())
    }
}

fn eval(node: &Node, sources: &Sources<'_>) -> Option<Value> {
    let text = |node: &Node| eval(node, sources).and_then(Value::text);
    Some(match node {
        Node::Text(text) => Value::Text(text.clone()),
        Node::Number(n) => Value::Number(*n),
        Node::Var(name) => Value::Text(read(name, sources)?),
        Node::Call(func, args) => match func {
            Func::Tokens => {
                // As EMQX's (`string:lexemes`): each character of `sep` separates.
                let (whole, sep) = (text(&args[0])?, text(&args[1])?);
                Value::List(
                    whole
                        .split(|c| sep.contains(c))
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            Func::Nth => {
                let Value::Number(n) = eval(&args[0], sources)? else {
                    return None;
                };
                let Value::List(list) = eval(&args[1], sources)? else {
                    return None;
                };
                let index = usize::try_from(n).ok()?.checked_sub(1)?;
                Value::Text(list.get(index)?.clone())
            }
            Func::Substr => {
                let whole: Vec<char> = text(&args[0])?.chars().collect();
                let start = usize::try_from(number(&args[1], sources)?)
                    .ok()?
                    .min(whole.len());
                let end = match args.get(2) {
                    Some(len) => start.saturating_add(usize::try_from(number(len, sources)?).ok()?),
                    None => whole.len(),
                }
                .min(whole.len());
                Value::Text(whole[start..end].iter().collect())
            }
            Func::Concat => Value::Text(args.iter().map(text).collect::<Option<String>>()?),
            Func::Coalesce => Value::Text(
                args.iter()
                    .filter_map(text)
                    .find(|t| !t.is_empty())
                    .unwrap_or_default(),
            ),
            Func::Lower => Value::Text(text(&args[0])?.to_lowercase()),
            Func::Upper => Value::Text(text(&args[0])?.to_uppercase()),
            Func::Trim => Value::Text(text(&args[0])?.trim().to_owned()),
        },
    })
}

fn number(node: &Node, sources: &Sources<'_>) -> Option<i64> {
    match eval(node, sources)? {
        Value::Number(n) => Some(n),
        Value::Text(text) => text.parse().ok(),
        Value::List(_) => None,
    }
}

fn read(name: &str, sources: &Sources<'_>) -> Option<String> {
    match name {
        "clientid" => Some(sources.clientid.to_owned()),
        "username" => sources.username.map(str::to_owned),
        "cn" => sources.cn.map(str::to_owned),
        "dn" => sources.dn.map(str::to_owned),
        "peerhost" => Some(sources.peerhost.clone()),
        _ => {
            let key = name.strip_prefix("user_property.")?;
            sources
                .user_properties
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        }
    }
}

/// Checks a rule: its expression parses and its attribute name is usable.
///
/// # Errors
/// What is wrong.
pub(crate) fn check(rule: &ClientAttrInit) -> Result<Expression, (&'static str, String)> {
    let name = &rule.set_as_attr;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(("set_as_attr", "use letters, digits and _".to_owned()));
    }
    Expression::parse(&rule.expression).map_err(|why| ("expression", why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(expression: &str, sources: &Sources<'_>) -> Option<String> {
        Expression::parse(expression)
            .expect(expression)
            .evaluate(sources)
    }

    #[test]
    fn emqxs_examples_evaluate() {
        let props = vec![("group".to_owned(), "g7".to_owned())];
        let sources = Sources {
            clientid: "sensor-eu-0042",
            username: Some("Alice"),
            cn: Some("device-9"),
            peerhost: "10.0.0.5".into(),
            user_properties: &props,
            ..Sources::default()
        };
        assert_eq!(
            value("nth(2, tokens(clientid, '-'))", &sources).as_deref(),
            Some("eu")
        );
        assert_eq!(
            value("substr(clientid, 7, 2)", &sources).as_deref(),
            Some("eu")
        );
        assert_eq!(
            value("substr(clientid, 10)", &sources).as_deref(),
            Some("0042")
        );
        assert_eq!(value("lower(username)", &sources).as_deref(), Some("alice"));
        assert_eq!(
            value("concat(cn, '@', peerhost)", &sources).as_deref(),
            Some("device-9@10.0.0.5")
        );
        assert_eq!(
            value("user_property.group", &sources).as_deref(),
            Some("g7")
        );
        assert_eq!(
            value("coalesce(dn, cn)", &sources).as_deref(),
            Some("device-9")
        );
        assert_eq!(value("dn", &sources), None, "absent sets nothing");
        assert_eq!(value("nth(9, tokens(clientid, '-'))", &sources), None);
        assert_eq!(value("user_property.none", &sources), None);
        assert_eq!(
            value("nth(3, tokens(clientid, '-_'))", &sources).as_deref(),
            Some("0042")
        );
        assert_eq!(
            value("\u{3000}lower(username)\u{3000}", &sources).as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn what_is_not_supported_is_refused() {
        for bad in [
            "nth(1)",
            "regex_extract(clientid, 'x')",
            "clientid + 1",
            "password",
            "lower(",
            "'open",
        ] {
            assert!(Expression::parse(bad).is_err(), "{bad}");
        }
        let rule = ClientAttrInit {
            expression: "clientid".into(),
            set_as_attr: "a-b".into(),
        };
        assert_eq!(check(&rule).expect_err("name").0, "set_as_attr");
    }
}
