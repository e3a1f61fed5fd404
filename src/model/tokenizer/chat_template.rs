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

/// Deepest nesting of lists, maps and namespaces a value assigned with `{% set %}` may have.
pub const MAX_SET_VALUE_DEPTH: usize = 64;

/// Most lists, maps and scalars (counted with repeats) a value assigned with `{% set %}` may
/// hold.
pub const MAX_SET_VALUE_NODES: usize = 100_000;

/// Longest rendered chat prompt, in bytes.
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

/// Stack of the thread a chat template renders on, independent of the caller's. With every
/// `{% set %}` checked, a value nests at most [`MAX_SET_VALUE_DEPTH`] levels plus about 74 per
/// nested frame (one expression: the parser's limit) over the few frames the limits allow
/// (under 1 000 levels in the tests; a 2 MiB thread prints 5 000 and overflows at 20 000).
const RENDER_STACK_BYTES: usize = 32 << 20;

/// Instructions a render may execute: a fixed allowance plus a share per message.
fn fuel_for(ctx: &minijinja::Value) -> u64 {
    let messages = ctx
        .get_attr("messages")
        .ok()
        .and_then(|m| m.len())
        .unwrap_or(0) as u64;
    5_000_000 + 100_000 * messages
}

/// The checks every `{% set %}` value goes through (templates may not use these names): one for
/// namespace attributes (`set ns.x = ...`), one for variables.
const NAMESPACE_GUARD: &str = "__steerlab_namespace_value";
const VARIABLE_GUARD: &str = "__steerlab_set_value";

/// Renders a chat template on its own thread with a bounded instruction count and output size.
///
/// A template can recurse (self-calling macros, recursive loops: bounded by
/// [`MAX_TEMPLATE_DEPTH`]) and can make values that contain themselves: a namespace is the only
/// mutable value, and `{% set ns.n = ns %}` makes minijinja print it without end (a stack
/// overflow aborts the process). Every `{% set ... = VALUE %}` is therefore rewritten to pass
/// the value through a check: a namespace attribute may not receive a namespace (so no cycle can
/// form), and no value may nest deeper than [`MAX_SET_VALUE_DEPTH`] or hold more than
/// [`MAX_SET_VALUE_NODES`] items (so loops and statement chains cannot build unbounded
/// nestings). Loops and output are bounded by an instruction budget and [`MAX_RENDERED_BYTES`].
pub(super) fn render_chat_template(template: &str, ctx: minijinja::Value) -> Result<String> {
    let template = guard_namespace_assignments(&strip_generation_tags(template))?;
    let fuel = fuel_for(&ctx);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("chat-template".into())
            .stack_size(RENDER_STACK_BYTES)
            .spawn_scoped(scope, || render_on_this_thread(&template, ctx, fuel))
            .map_err(|e| ModelError::ChatTemplate(format!("cannot start the render thread: {e}")))?
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

fn render_on_this_thread(template: &str, ctx: minijinja::Value, fuel: u64) -> Result<String> {
    let mut env = minijinja::Environment::new();
    // Real chat templates nest a few levels; minijinja's default (500 macro calls, loops or
    // includes deep) overflows an 8 MiB stack before it stops a self-recursive macro, and a
    // stack overflow aborts the process (found by fuzzing, FUZZING.md).
    env.set_recursion_limit(MAX_TEMPLATE_DEPTH);
    env.set_fuel(Some(fuel));
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
    env.add_function(NAMESPACE_GUARD, |v| check_set_value(v, false));
    env.add_function(VARIABLE_GUARD, |v| check_set_value(v, true));
    env.add_filter("tojson", tojson);
    env.set_unknown_method_callback(py_method);
    let tpl = env.template_from_str(template).map_err(template_error)?;
    let mut out = BoundedWriter(Vec::new());
    tpl.render_captured_to(ctx, &mut out).map_err(|e| {
        if out.0.len() >= MAX_RENDERED_BYTES {
            ModelError::ChatTemplate(format!(
                "the rendered prompt is longer than {} MiB",
                MAX_RENDERED_BYTES >> 20
            ))
        } else {
            template_error(e)
        }
    })?;
    String::from_utf8(out.0)
        .map_err(|_| ModelError::ChatTemplate("the rendered prompt is not UTF-8".into()))
}

/// Collects the output, failing once it would pass [`MAX_RENDERED_BYTES`].
struct BoundedWriter(Vec<u8>);

impl std::io::Write for BoundedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED_BYTES {
            self.0.resize(MAX_RENDERED_BYTES, 0);
            return Err(std::io::Error::other("output too long"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Wraps the value of every `{% set a.b = VALUE %}` (also `a.b, c = ...`) as
/// `NAMESPACE_GUARD((VALUE))` and of every `{% set a = VALUE %}` as `VARIABLE_GUARD((VALUE))`,
/// using minijinja's own lexer so strings, comments and raw blocks are skipped. The insertions stay on the statement's line, so error lines are unchanged. A
/// template that does not tokenize is returned as is (compiling it reports the error).
fn guard_namespace_assignments(template: &str) -> Result<String> {
    use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
    let ws = WhitespaceConfig {
        keep_trailing_newline: false,
        lstrip_blocks: true,
        trim_blocks: true,
    };
    let mut tokens = Vec::new();
    for t in tokenize(template, false, Default::default(), ws) {
        match t {
            Ok((tok, span)) => {
                if let Token::Ident(name) = tok {
                    if name == NAMESPACE_GUARD || name == VARIABLE_GUARD {
                        return Err(ModelError::ChatTemplate(format!(
                            "line {}: `{name}` is reserved",
                            span.start_line
                        )));
                    }
                }
                tokens.push((tok, span));
            }
            Err(_) => return Ok(template.to_string()),
        }
    }
    // (offset, text) insertions, in increasing offset order.
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let mut i = 0;
    while i + 1 < tokens.len() {
        if !(matches!(tokens[i].0, Token::BlockStart)
            && matches!(tokens[i + 1].0, Token::Ident("set")))
        {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        let mut dotted = false;
        while j < tokens.len()
            && !matches!(
                tokens[j].0,
                Token::Assign | Token::BlockEnd | Token::Pipe | Token::BlockStart
            )
        {
            dotted |= matches!(tokens[j].0, Token::Dot);
            j += 1;
        }
        if j < tokens.len() && matches!(tokens[j].0, Token::Assign) {
            let value_start = tokens[j].1.end_offset as usize;
            let mut k = j + 1;
            while k < tokens.len() && !matches!(tokens[k].0, Token::BlockEnd) {
                k += 1;
            }
            if k == tokens.len() {
                break;
            }
            let guard = if dotted {
                NAMESPACE_GUARD
            } else {
                VARIABLE_GUARD
            };
            inserts.push((value_start, format!("{guard}((")));
            inserts.push((tokens[k].1.start_offset as usize, "))".into()));
            j = k;
        }
        i = j.max(i + 1);
    }
    let mut out = String::with_capacity(template.len() + inserts.len() * 16);
    let mut at = 0;
    for (offset, text) in inserts {
        out.push_str(&template[at..offset]);
        out.push_str(&text);
        at = offset;
    }
    out.push_str(&template[at..]);
    Ok(out)
}

/// The check [`guard_namespace_assignments`] puts around every `{% set %}` value: returns it
/// unchanged (an iterator as a list) or refuses it. Namespaces are walked like maps; they are
/// refused where `allow_namespaces` is false (the value of a namespace attribute).
fn check_set_value(
    value: minijinja::Value,
    allow_namespaces: bool,
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    use minijinja::value::{ObjectRepr, ValueKind};
    use minijinja::{Error, ErrorKind, Value};
    let refuse = |why: String| Err(Error::new(ErrorKind::InvalidOperation, why));
    let namespace_type = minijinja::functions::namespace(None)?
        .as_object()
        .map(|o| o.type_name());
    let value = if value.kind() == ValueKind::Iterable {
        Value::from(
            value
                .try_iter()?
                .take(MAX_SET_VALUE_NODES + 1)
                .collect::<Vec<_>>(),
        )
    } else {
        value
    };
    let mut stack = vec![(value.clone(), 0usize)];
    let mut nodes = 0usize;
    while let Some((v, depth)) = stack.pop() {
        nodes += 1;
        if nodes > MAX_SET_VALUE_NODES {
            return refuse(format!(
                "a value assigned with `set` may hold at most {MAX_SET_VALUE_NODES} items"
            ));
        }
        let Some(obj) = v.as_object() else { continue };
        if !allow_namespaces && Some(obj.type_name()) == namespace_type {
            return refuse(
                "a namespace may not be stored in a namespace (it could come to contain itself)"
                    .into(),
            );
        }
        if matches!(obj.repr(), ObjectRepr::Plain) {
            continue; // macros, loops, functions: printed by name, never walked
        }
        if depth >= MAX_SET_VALUE_DEPTH {
            return refuse(format!(
                "a value assigned with `set` may nest at most {MAX_SET_VALUE_DEPTH} levels"
            ));
        }
        let is_map = v.kind() == ValueKind::Map;
        for item in v.try_iter()?.take(MAX_SET_VALUE_NODES + 1) {
            if is_map {
                stack.push((v.get_item(&item)?, depth + 1));
            }
            stack.push((item, depth + 1));
        }
    }
    Ok(value)
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

    fn render(t: &str) -> std::result::Result<String, String> {
        render_chat_template(t, minijinja::context! { messages => vec!["a", "b"] })
            .map_err(|e| e.to_string())
    }

    /// Fuzz finding (chat_template seeds 202, 209): printing a namespace that contains itself
    /// recursed until the stack overflowed and aborted the process. Each of these aborted
    /// before the namespace check.
    #[test]
    fn a_namespace_cycle_is_an_error_not_a_stack_overflow() {
        for t in [
            "{% set ns = namespace(n=0) %}{% set ns.n = ns %}{{ ns.n }}",
            "{% set ns = namespace(n=0) %}{%- set ns.n = ns -%}{{ ns }}",
            "{% set ns = namespace(n=0) %}{% set ns.n = [1, {'a': ns}] %}{{ ns|tojson }}",
            // Two namespaces, each holding the other.
            "{% set a = namespace(x=0) %}{% set b = namespace(y=a) %}{% set a.x = b %}{{ a ~ '' }}",
            "{% set ns = namespace(n=0) %}{% set ns.n, y = ns, 1 %}{{ ns == ns }}",
        ] {
            let e = render(t).unwrap_err();
            assert!(e.contains("namespace may not be stored"), "{t}: {e}");
        }
    }

    /// Neither a loop nor a chain of statements can build a nesting deeper than the limit
    /// (printing one of 100 000 levels overflows any normal stack).
    #[test]
    fn deep_nesting_through_a_namespace_is_an_error() {
        let t = "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}";
        let e = render(t).unwrap_err();
        assert!(e.contains("nest at most 64"), "{e}");
        // A chain of statements (no loop) is bounded the same way.
        let chain = "{% set x = [[[[[[[[[[x]]]]]]]]]] %}".repeat(10);
        let e = render(&format!("{{% set x = 1 %}}{chain}{{{{ x }}}}")).unwrap_err();
        assert!(e.contains("nest at most 64"), "{e}");
        let chain = "{% set n = namespace(a=n) %}".repeat(70);
        let e = render(&format!("{{% set n = 1 %}}{chain}{{{{ n }}}}")).unwrap_err();
        assert!(e.contains("nest at most 64"), "{e}");
        let t = "{% set ns = namespace(x=[]) %}{% for i in range(20) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x|length }}";
        let e = render(t).unwrap_err();
        assert!(e.contains("at most 100000 items"), "{e}");
    }

    /// The deepest value a template builds with `set` checked (nested literals in nested
    /// loops, to the recursion limit) prints on the render thread even when the caller's
    /// thread is small.
    #[test]
    fn the_deepest_value_without_a_set_prints() {
        let open = "[".repeat(70);
        let close = "]".repeat(70);
        let deepest = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                // The most nested loops the limits allow, each 69 levels deeper.
                (1..=64).rev().find_map(|n| {
                    let t = format!(
                        "{{% set x = 1 %}}{}{{{{ x|string|length }}}}{}",
                        format!("{{% for x in {open}x{close} %}}").repeat(n),
                        "{% endfor %}".repeat(n)
                    );
                    render(&t).ok().map(|out| (n, out))
                })
            })
            .unwrap()
            .join()
            .unwrap();
        let (n, out) = deepest.expect("some depth renders");
        assert!(n >= 5, "{n}"); // 9 with minijinja 2.24 (parser and recursion limits)
        assert_eq!(out, (2 * n * 69 + 1).to_string());
    }

    #[test]
    fn recursion_and_runaway_loops_are_errors() {
        let e = render("{% macro m(x) %}{{ m(x) }}{% endmacro %}{{ m(1) }}").unwrap_err();
        assert!(e.contains("recursion"), "{e}");
        let e = render(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        )
        .unwrap_err();
        assert!(e.contains("fuel"), "{e}");
        let e = render("{% set s = 'x' * 100000 %}{% for i in range(10000) %}{{ s }}{% endfor %}")
            .unwrap_err();
        assert!(e.contains("longer than 16 MiB"), "{e}");
    }

    /// What real templates do with namespaces still works, the rewrite leaves strings,
    /// comments and raw blocks alone, and error lines are unchanged.
    #[test]
    fn namespace_assignments_keep_working() {
        let t = "{% set ns = namespace(found=false, idx=0, tools=[], sys='') %}\n{% for m in messages %}{% set ns.idx = loop.index0 %}{% set ns.tools = ns.tools + [{'n': m}] %}{% endfor %}{%- set ns.found, ns.sys = true, 'S' -%}{{ ns.idx }} {{ ns.found }} {{ ns.sys }} {{ ns.tools|tojson }}{# {% set ns.idx = ns %} #}{% raw %}{% set ns.x = 1 %}{% endraw %}{{ '{% set ns.y = ns %}' }}";
        assert_eq!(
            render(t).unwrap(),
            "1 True S [{\"n\": \"a\"}, {\"n\": \"b\"}]{% set ns.x = 1 %}{% set ns.y = ns %}"
        );
        let e =
            render("{% set ns = namespace() %}\n\n{% set ns.a = 1 %}{{ ns.a + 'x' }}").unwrap_err();
        assert!(e.contains("<string>:3"), "{e}");
        for t in [
            "{{ __steerlab_namespace_value(1) }}",
            "{% set __steerlab_set_value = 1 %}",
        ] {
            let e = render(t).unwrap_err();
            assert!(e.contains("reserved"), "{e}");
        }
    }

    #[test]
    fn tojson_matches_python_spacing() {
        let ctx =
            minijinja::context! { t => minijinja::context!{ name => "f", args => vec![1, 2] } };
        let out = render_chat_template("{{ t|tojson }}", ctx).unwrap();
        assert_eq!(out, r#"{"name": "f", "args": [1, 2]}"#);
    }
}
