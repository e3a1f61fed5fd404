//! Chat templates: renders a model's Jinja template with minijinja as HF's
//! `apply_chat_template(tokenize=False)` does (trim/lstrip blocks, `raise_exception`,
//! `strftime_now`, `tojson` with Python spacing, Python string methods). Must not tokenize.
use crate::model::{ModelError, Result};

fn template_error(e: minijinja::Error) -> ModelError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    ModelError::ChatTemplate(msg)
}

/// Deepest nesting of macro calls, loops and includes a chat template may reach.
pub const MAX_TEMPLATE_DEPTH: usize = 48;

pub(super) fn render_chat_template(template: &str, ctx: minijinja::Value) -> Result<String> {
    let mut env = minijinja::Environment::new();
    // Real chat templates nest a few levels; minijinja's default (500 macro calls, loops or
    // includes deep) overflows an 8 MiB stack before it stops a self-recursive macro, and a
    // stack overflow aborts the process (found by fuzzing, FUZZING.md).
    env.set_recursion_limit(MAX_TEMPLATE_DEPTH);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<minijinja::Value, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_function("strftime_now", |fmt: String| strftime_now(&fmt));
    env.add_filter("tojson", tojson);
    env.set_unknown_method_callback(py_method);
    let template = strip_generation_tags(template);
    let tpl = env.template_from_str(&template).map_err(template_error)?;
    tpl.render(ctx).map_err(template_error)
}

/// Removes HF's `{% generation %}` / `{% endgeneration %}` tags (they only mark assistant text
/// for training masks), keeping their content; whitespace control on these two tags is ignored.
fn strip_generation_tags(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{%") {
        // The closing `%}` comes after the opening `{%` (in `{%}` they share the `%`).
        let Some(len) = rest[start + 2..].find("%}") else {
            break;
        };
        let end = start + 2 + len;
        let inner =
            rest[start + 2..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..start]);
        if inner != "generation" && inner != "endgeneration" {
            out.push_str(&rest[start..end + 2]);
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `tojson` as HF defines it (`json.dumps(x, ensure_ascii=False, indent=indent)`, keys in
/// insertion order, Python's `", "` / `": "` separators).
fn tojson(
    value: minijinja::Value,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<String, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    py_json(&value, indent, 0, &mut out)?;
    Ok(out)
}

fn py_json(
    v: &minijinja::Value,
    indent: Option<usize>,
    level: usize,
    out: &mut String,
) -> std::result::Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&v.to_string()),
        ValueKind::String => out.push_str(
            &serde_json::Value::String(v.as_str().unwrap_or_default().into()).to_string(),
        ),
        ValueKind::Map => {
            let keys: Vec<minijinja::Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, level + 1);
                out.push_str(&serde_json::Value::String(k.to_string()).to_string());
                out.push_str(": ");
                py_json(&v.get_item(k)?, indent, level + 1, out)?;
            }
            newline(out, level);
            out.push('}');
        }
        _ => match v.try_iter() {
            Ok(items) => {
                let items: Vec<minijinja::Value> = items.collect();
                if items.is_empty() {
                    out.push_str("[]");
                    return Ok(());
                }
                out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(item_sep);
                    }
                    newline(out, level + 1);
                    py_json(x, indent, level + 1, out)?;
                }
                newline(out, level);
                out.push(']');
            }
            Err(_) => out.push_str(&serde_json::Value::String(v.to_string()).to_string()),
        },
    }
    Ok(())
}

/// Python methods HF templates call on strings and dicts (`.strip()`, `.startswith()`,
/// `.split()`, `.items()`, `.get()` ...).
fn py_method(
    _state: &minijinja::State,
    value: &minijinja::Value,
    method: &str,
    args: &[minijinja::Value],
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    use minijinja::{Error, ErrorKind, Value};
    let arg_str =
        |i: usize| -> Option<String> { args.get(i).and_then(|a| a.as_str().map(String::from)) };
    let unknown = || Error::new(ErrorKind::UnknownMethod, format!("unknown method {method}"));
    if let Some(s) = value.as_str() {
        let chars = arg_str(0);
        let strip_set = |c: char| match &chars {
            Some(set) => set.contains(c),
            None => c.is_whitespace(),
        };
        return Ok(match method {
            "strip" => Value::from(s.trim_matches(strip_set)),
            "lstrip" => Value::from(s.trim_start_matches(strip_set)),
            "rstrip" => Value::from(s.trim_end_matches(strip_set)),
            "upper" => Value::from(s.to_uppercase()),
            "lower" => Value::from(s.to_lowercase()),
            "title" => {
                let mut out = String::with_capacity(s.len());
                let mut prev_alpha = false;
                for c in s.chars() {
                    if prev_alpha {
                        out.extend(c.to_lowercase());
                    } else {
                        out.extend(c.to_uppercase());
                    }
                    prev_alpha = c.is_alphabetic();
                }
                Value::from(out)
            }
            "capitalize" => {
                let mut it = s.chars();
                let out: String = match it.next() {
                    Some(f) => f
                        .to_uppercase()
                        .chain(it.as_str().to_lowercase().chars())
                        .collect(),
                    None => String::new(),
                };
                Value::from(out)
            }
            "startswith" | "endswith" => {
                let pats: Vec<String> = match args.first() {
                    Some(a) if a.as_str().is_some() => {
                        vec![a.as_str().unwrap_or_default().to_string()]
                    }
                    Some(a) => a
                        .try_iter()?
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect(),
                    None => return Err(Error::new(ErrorKind::MissingArgument, method.to_string())),
                };
                let hit = pats.iter().any(|p| {
                    if method == "startswith" {
                        s.starts_with(p.as_str())
                    } else {
                        s.ends_with(p.as_str())
                    }
                });
                Value::from(hit)
            }
            "split" => {
                let max = args
                    .get(1)
                    .and_then(|a| i64::try_from(a.clone()).ok())
                    .unwrap_or(-1);
                let parts: Vec<Value> = match arg_str(0) {
                    Some(sep) if max >= 0 => s
                        .splitn(max as usize + 1, sep.as_str())
                        .map(Value::from)
                        .collect(),
                    Some(sep) => s.split(sep.as_str()).map(Value::from).collect(),
                    None => s.split_whitespace().map(Value::from).collect(),
                };
                Value::from(parts)
            }
            "replace" => match (arg_str(0), arg_str(1)) {
                (Some(a), Some(b)) => Value::from(s.replace(a.as_str(), &b)),
                _ => return Err(Error::new(ErrorKind::MissingArgument, "replace(old, new)")),
            },
            "find" => match arg_str(0) {
                Some(p) => Value::from(
                    s.find(p.as_str())
                        .map(|i| s[..i].chars().count() as i64)
                        .unwrap_or(-1),
                ),
                None => return Err(Error::new(ErrorKind::MissingArgument, "find(sub)")),
            },
            "count" => match arg_str(0) {
                Some(p) if !p.is_empty() => Value::from(s.matches(p.as_str()).count()),
                _ => return Err(Error::new(ErrorKind::MissingArgument, "count(sub)")),
            },
            "join" => match args.first() {
                Some(a) => {
                    let items: Vec<String> = a.try_iter()?.map(|x| x.to_string()).collect();
                    Value::from(items.join(s))
                }
                None => return Err(Error::new(ErrorKind::MissingArgument, "join(items)")),
            },
            "isdigit" => Value::from(!s.is_empty() && s.chars().all(|c| c.is_ascii_digit())),
            "isspace" => Value::from(!s.is_empty() && s.chars().all(char::is_whitespace)),
            _ => return Err(unknown()),
        });
    }
    if value.kind() == minijinja::value::ValueKind::Map {
        return Ok(match method {
            "items" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    let v = value.get_item(&k)?;
                    out.push(Value::from(vec![k, v]));
                }
                Value::from(out)
            }
            "keys" => Value::from(value.try_iter()?.collect::<Vec<_>>()),
            "values" => {
                let mut out = Vec::new();
                for k in value.try_iter()? {
                    out.push(value.get_item(&k)?);
                }
                Value::from(out)
            }
            "get" => {
                let key = args.first().cloned().unwrap_or_default();
                let v = value.get_item(&key)?;
                if v.is_undefined() {
                    args.get(1).cloned().unwrap_or(Value::from(()))
                } else {
                    v
                }
            }
            _ => return Err(unknown()),
        });
    }
    Err(unknown())
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// `strftime_now(fmt)`: the current UTC time, supporting `%Y %m %d %-d %e %B %b %A %a %H %M %S %%`.
fn strftime_now(fmt: &str) -> std::result::Result<String, minijinja::Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(strftime(fmt, secs))
}

/// Formats a unix time (UTC) with a strftime subset.
fn strftime(fmt: &str, unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let tod = unix.rem_euclid(86_400);
    let (y, m, d) = crate::numeric::date::civil_from_days(days);
    let wd = crate::numeric::date::weekday(days); // index into WEEKDAYS (Monday first)
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = it.next().unwrap_or('%');
        let no_pad = spec == '-';
        if no_pad {
            spec = it.next().unwrap_or('d');
        }
        let num = |v: i64| {
            if no_pad {
                v.to_string()
            } else {
                format!("{v:02}")
            }
        };
        match spec {
            'Y' => out.push_str(&y.to_string()),
            'm' => out.push_str(&num(m)),
            'd' => out.push_str(&num(d)),
            'e' => out.push_str(&format!("{d:>2}")),
            'B' => out.push_str(MONTHS[(m - 1) as usize]),
            'b' => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            'A' => out.push_str(WEEKDAYS[wd]),
            'a' => out.push_str(&WEEKDAYS[wd][..3]),
            'H' => out.push_str(&num(tod / 3600)),
            'M' => out.push_str(&num(tod / 60 % 60)),
            'S' => out.push_str(&num(tod % 60)),
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push(other);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_known_dates() {
        // 2024-02-29 13:05:09 UTC was a Thursday.
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %A %b", 1_709_211_909),
            "2024-02-29 13:05:09 Thursday Feb"
        );
        assert_eq!(strftime("%d %B %Y", 0), "01 January 1970");
        assert_eq!(strftime("%-d %B", 86_400 * 40), "10 February");
    }

    #[test]
    fn template_python_methods_and_errors() {
        let ctx = minijinja::context! { x => "  Hi there  ", d => minijinja::context!{ a => 1 } };
        let out = render_chat_template(
            "{{ x.strip() }}|{{ x.strip().lower().startswith(('hi', 'yo')) }}|{{ x.split()|length }}|{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}|{{ d.get('b', 7) }}",
            ctx,
        )
        .unwrap();
        assert_eq!(out, "Hi there|True|2|a=1|7");
        let err = render_chat_template(
            "{{ raise_exception('roles must alternate') }}",
            minijinja::context! {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("roles must alternate"), "{err}");
    }

    #[test]
    fn tojson_matches_python_spacing() {
        let ctx =
            minijinja::context! { t => minijinja::context!{ name => "f", args => vec![1, 2] } };
        let out = render_chat_template("{{ t|tojson }}", ctx).unwrap();
        assert_eq!(out, r#"{"name": "f", "args": [1, 2]}"#);
    }
}
