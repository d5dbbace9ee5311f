//! Label selectors: validation of the `metav1.LabelSelector` struct
//! (meta/v1/validation `ValidateLabelSelector`), its conversion to a
//! matcher (`LabelSelectorAsSelector`), and the string syntax of
//! `?labelSelector=` (k8s.io/apimachinery/pkg/labels/selector.go `Parse`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::field::{self, BadValue, Cause, Path, go_quote, go_string_map, go_string_slice};
use super::formats::{is_qualified_name, is_valid_label_value};
use super::metadata::validate_label_name;

/// A selector operator (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Equals,
    NotEquals,
    GreaterThan,
    LessThan,
}

/// One requirement of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

impl Requirement {
    /// `Requirement.Matches`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In | Operator::Equals => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn | Operator::NotEquals => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Some(bound)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|b| b.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    v > bound
                } else {
                    v < bound
                }
            }
        }
    }
}

/// A parsed selector: all requirements must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// `labels.NewRequirement`: checks key, operator arity and values; the
/// error is the aggregate of field errors upstream returns.
pub fn new_requirement(
    key: &str,
    operator: Operator,
    values: Vec<String>,
) -> Result<Requirement, String> {
    let mut errs: Vec<Cause> = Vec::new();
    let key_errs = is_qualified_name(key);
    if !key_errs.is_empty() {
        errs.push(field::invalid(&Path::new("key"), key, &key_errs.join("; ")));
    }
    let vp = Path::new("values");
    let vals = || BadValue::Go(go_string_slice(Some(&values)));
    match operator {
        Operator::In | Operator::NotIn if values.is_empty() => errs.push(field::invalid(
            &vp,
            vals(),
            "for 'in', 'notin' operators, values set can't be empty",
        )),
        Operator::Equals | Operator::NotEquals if values.len() != 1 => errs.push(field::invalid(
            &vp,
            vals(),
            "exact-match compatibility requires one single value",
        )),
        Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
            errs.push(field::invalid(
                &vp,
                vals(),
                "values set must be empty for exists and does not exist",
            ))
        }
        Operator::GreaterThan | Operator::LessThan => {
            if values.len() != 1 {
                errs.push(field::invalid(
                    &vp,
                    vals(),
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(field::invalid(
                        &vp.index(i),
                        v,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let value_errs = is_valid_label_value(v);
        if !value_errs.is_empty() {
            errs.push(field::invalid(
                &vp.index(i).key(key),
                v,
                &value_errs.join("; "),
            ));
        }
    }
    match errs.len() {
        0 => Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        }),
        1 => Err(errs[0].error_string()),
        _ => Err(format!(
            "[{}]",
            errs.iter()
                .map(Cause::error_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `metav1.LabelSelectorAsSelector`.
pub fn from_label_selector(sel: &LabelSelector) -> Result<Selector, String> {
    let mut requirements = Vec::new();
    for (k, v) in sel.match_labels.iter().flatten() {
        requirements.push(new_requirement(k, Operator::Equals, vec![v.clone()])?);
    }
    for expr in sel.match_expressions.iter().flatten() {
        let op = match expr.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                return Err(format!(
                    "{} is not a valid label selector operator",
                    go_quote(other)
                ));
            }
        };
        requirements.push(new_requirement(
            &expr.key,
            op,
            expr.values.clone().unwrap_or_default(),
        )?);
    }
    Ok(Selector { requirements })
}

/// `ValidateLabelSelector` with invalid label values not allowed.
pub fn validate_label_selector(sel: &LabelSelector, path: &Path) -> Vec<Cause> {
    let mut errs =
        super::metadata::validate_labels(sel.match_labels.as_ref(), &path.child("matchLabels"));
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        errs.extend(validate_requirement(
            expr,
            &path.child("matchExpressions").index(i),
            false,
        ));
    }
    errs
}

/// `ValidateLabelSelectorRequirement`; `unknown_operators` is its
/// `AllowUnknownOperatorInRequirement` option.
pub(super) fn validate_requirement(
    req: &LabelSelectorRequirement,
    path: &Path,
    unknown_operators: bool,
) -> Vec<Cause> {
    let values = req.values.as_deref().unwrap_or_default();
    let mut errs = validate_operator(&req.operator, values, path, unknown_operators);
    errs.extend(validate_label_name(&req.key, &path.child("key")));
    for (i, v) in values.iter().enumerate() {
        for m in is_valid_label_value(v) {
            errs.push(field::invalid(&path.child("values").index(i), v, &m));
        }
    }
    errs
}

/// The operator's rule on values, which label and field selector
/// requirements share: `In` and `NotIn` need values, `Exists` and
/// `DoesNotExist` take none.
pub(super) fn validate_operator(
    operator: &str,
    values: &[String],
    path: &Path,
    unknown_operators: bool,
) -> Vec<Cause> {
    match operator {
        "In" | "NotIn" if values.is_empty() => vec![field::required(
            &path.child("values"),
            "must be specified when `operator` is 'In' or 'NotIn'",
        )],
        "Exists" | "DoesNotExist" if !values.is_empty() => vec![field::forbidden(
            &path.child("values"),
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )],
        "In" | "NotIn" | "Exists" | "DoesNotExist" => Vec::new(),
        _ if unknown_operators => Vec::new(),
        other => vec![field::invalid(
            &path.child("operator"),
            other,
            "not a valid selector operator",
        )],
    }
}

/// Go's `%#v` of a `v1.LabelSelector` value.
pub fn go_label_selector(sel: &LabelSelector) -> String {
    let exprs = match &sel.match_expressions {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|r| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(&r.key),
                        go_quote(&r.operator),
                        go_string_slice(r.values.as_deref())
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        go_string_map(sel.match_labels.as_ref()),
        exprs
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    NotEquals,
    Equals,
    DoubleEquals,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    In,
    NotIn,
}

/// The lexer of labels.Parse: identifiers run until whitespace or a
/// special character.
fn lex(s: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let special = |c: char| matches!(c, '!' | '=' | '>' | '<' | '(' | ')' | ',');
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let next = chars.get(i + 1).copied();
        let (tok, len) = match (c, next) {
            ('!', Some('=')) => (Token::NotEquals, 2),
            ('!', _) => (Token::Not, 1),
            ('=', Some('=')) => (Token::DoubleEquals, 2),
            ('=', _) => (Token::Equals, 1),
            ('>', _) => (Token::Gt, 1),
            ('<', _) => (Token::Lt, 1),
            ('(', _) => (Token::Open, 1),
            (')', _) => (Token::Close, 1),
            (',', _) => (Token::Comma, 1),
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !special(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                tokens.push(match word.as_str() {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Ident(word),
                });
                continue;
            }
        };
        tokens.push(tok);
        i += len;
    }
    Ok(tokens)
}

/// `labels.Parse`: the `?labelSelector=` syntax (`a=b,c!=d,e in (f,g),!h,i`,
/// `j>1`). An empty string selects everything.
pub fn parse_selector(s: &str) -> Result<Selector, String> {
    let tokens = lex(s)?;
    let mut requirements = Vec::new();
    let mut i = 0;
    let ident = |t: Option<&Token>| match t {
        Some(Token::Ident(s)) => Some(s.clone()),
        _ => None,
    };
    while i < tokens.len() {
        let req = if tokens[i] == Token::Not {
            let key = ident(tokens.get(i + 1)).ok_or_else(|| {
                format!("unable to parse requirement: found '{s}', expected: identifier after '!'")
            })?;
            i += 2;
            new_requirement(&key, Operator::DoesNotExist, Vec::new())?
        } else {
            let key = ident(tokens.get(i)).ok_or_else(|| format!("unable to parse requirement: found '{s}', expected: !, identifier, or 'end of string'"))?;
            i += 1;
            match tokens.get(i) {
                None | Some(Token::Comma) => new_requirement(&key, Operator::Exists, Vec::new())?,
                Some(
                    op @ (Token::Equals
                    | Token::DoubleEquals
                    | Token::NotEquals
                    | Token::Gt
                    | Token::Lt),
                ) => {
                    let operator = match op {
                        Token::NotEquals => Operator::NotEquals,
                        Token::Gt => Operator::GreaterThan,
                        Token::Lt => Operator::LessThan,
                        _ => Operator::Equals,
                    };
                    i += 1;
                    let value = match tokens.get(i) {
                        Some(Token::Ident(v)) => {
                            i += 1;
                            v.clone()
                        }
                        Some(Token::In) => {
                            i += 1;
                            "in".to_string()
                        }
                        Some(Token::NotIn) => {
                            i += 1;
                            "notin".to_string()
                        }
                        _ => String::new(),
                    };
                    new_requirement(&key, operator, vec![value])?
                }
                Some(op @ (Token::In | Token::NotIn)) => {
                    let operator = if *op == Token::In {
                        Operator::In
                    } else {
                        Operator::NotIn
                    };
                    i += 1;
                    if tokens.get(i) != Some(&Token::Open) {
                        return Err(format!(
                            "unable to parse requirement: found '{s}', expected: '('"
                        ));
                    }
                    i += 1;
                    let mut values = Vec::new();
                    let mut expect_value = true;
                    loop {
                        match tokens.get(i) {
                            Some(Token::Close) => {
                                if expect_value && !values.is_empty() {
                                    values.push(String::new());
                                }
                                i += 1;
                                break;
                            }
                            Some(Token::Comma) => {
                                if expect_value {
                                    values.push(String::new());
                                }
                                expect_value = true;
                                i += 1;
                            }
                            Some(Token::Ident(v)) if expect_value => {
                                values.push(v.clone());
                                expect_value = false;
                                i += 1;
                            }
                            _ => {
                                return Err(format!(
                                    "unable to parse requirement: found '{s}', expected: ',', ')' or identifier"
                                ));
                            }
                        }
                    }
                    new_requirement(&key, operator, values)?
                }
                Some(_) => {
                    return Err(format!(
                        "unable to parse requirement: found '{s}', expected: in, notin, =, ==, !=, gt, lt"
                    ));
                }
            }
        };
        requirements.push(req);
        match tokens.get(i) {
            None => break,
            Some(Token::Comma) => {
                i += 1;
                if i >= tokens.len() {
                    return Err(format!("found '', expected: identifier after ',' in '{s}'"));
                }
            }
            Some(_) => return Err(format!("found '{s}', expected: ',' or 'end of string'")),
        }
    }
    Ok(Selector { requirements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // labels.Parse + Matches (selector_test.go TestSelectorMatches, subset).
    #[test]
    fn parse_and_match() {
        let l = labels(&[("app", "web"), ("tier", "fe"), ("n", "5")]);
        for (sel, want) in [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,db)", true),
            ("app notin (web)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("app=web,tier=be", false),
            ("n>4", true),
            ("n<5", false),
            ("x in (a,)", false),
        ] {
            assert_eq!(parse_selector(sel).unwrap().matches(&l), want, "{sel}");
        }
        assert!(
            parse_selector("app=")
                .unwrap()
                .matches(&labels(&[("app", "")]))
        );
    }

    #[test]
    fn parse_errors() {
        assert!(parse_selector("app=web,").is_err());
        assert!(parse_selector("app in web").is_err());
        assert_eq!(
            parse_selector("n>x").unwrap_err(),
            "values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert!(parse_selector("bad key=1").is_err());
        assert!(parse_selector("a=b c").is_err());
    }

    // ValidateLabelSelectorRequirement.
    #[test]
    fn struct_validation() {
        let sel: LabelSelector = serde_json::from_value(serde_json::json!({
            "matchExpressions": [
                {"key": "a", "operator": "In"},
                {"key": "b", "operator": "Exists", "values": ["x"]},
                {"key": "c", "operator": "Has"}
            ]
        }))
        .unwrap();
        let errs: Vec<String> = validate_label_selector(&sel, &Path::new("spec").child("selector"))
            .iter()
            .map(Cause::error_string)
            .collect();
        assert_eq!(
            errs,
            vec![
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                "spec.selector.matchExpressions[2].operator: Invalid value: \"Has\": not a valid selector operator",
            ]
        );
        assert!(from_label_selector(&sel).is_err());
    }

    #[test]
    fn selector_struct_matches_and_renders() {
        let sel: LabelSelector =
            serde_json::from_value(serde_json::json!({"matchLabels": {"app": "web"}})).unwrap();
        let s = from_label_selector(&sel).unwrap();
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[("app", "db")])));
        assert_eq!(
            go_label_selector(&sel),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
    }
}
