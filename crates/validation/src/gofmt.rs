//! Rendering values the way upstream's `field.Error` prints them: strings with Go's `%q`, numbers
//! bare, slices and structs with `%#v` (`[]string{"a", "b"}`, `[]string(nil)`), nil pointers as
//! `null`.

/// Go's `strconv.Quote`: printable characters kept, the usual escapes, `\xNN`/`\uNNNN` otherwise.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: no controls, no spaces other than U+0020, no
/// invisible format characters.
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32, 0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF)
}

/// `%#v` of a slice of (possibly named) string type: `[]string{"a", "b"}`, `[]string{}` when
/// empty, `[]string(nil)` when absent.
pub(crate) fn slice(type_name: &str, values: Option<&[String]>) -> String {
    match values {
        None => format!("[]{type_name}(nil)"),
        Some(values) => {
            let items: Vec<String> = values.iter().map(|v| quote(v)).collect();
            format!("[]{type_name}{{{}}}", items.join(", "))
        }
    }
}

/// `[]string{…}`.
pub(crate) fn strings(values: Option<&[String]>) -> String {
    slice("string", values)
}

/// A `*string`-like value: quoted, or `null` when nil.
pub(crate) fn opt(value: Option<&str>) -> String {
    value.map_or_else(|| "null".to_string(), quote)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_matches_go() {
        let cases = [
            ("http", "\"http\""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("tab\there\n", "\"tab\\there\\n\""),
            ("\u{1}", "\"\\x01\""),
            ("\u{7f}", "\"\\x7f\""),
            ("é✓", "\"é✓\""),
            ("\u{a0}", "\"\\u00a0\""),
            ("\u{200b}", "\"\\u200b\""),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }

    #[test]
    fn slices() {
        assert_eq!(strings(None), "[]string(nil)");
        assert_eq!(strings(Some(&[])), "[]string{}");
        assert_eq!(
            strings(Some(&["10.96.0.9".to_string(), "fd00::1".to_string()])),
            "[]string{\"10.96.0.9\", \"fd00::1\"}"
        );
        assert_eq!(slice("core.IPFamily", Some(&["IPv4".to_string()])), "[]core.IPFamily{\"IPv4\"}");
        assert_eq!(opt(None), "null");
        assert_eq!(opt(Some("SingleStack")), "\"SingleStack\"");
    }
}
