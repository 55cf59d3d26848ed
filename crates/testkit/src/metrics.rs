//! Reading Prometheus text exposition (what `/metrics` serves) in tests.

use std::collections::HashMap;

/// The samples of metric `name` (exactly that name: not `name_bucket`), each one's labels and
/// value. Label values must not hold `,` or `}` (no metric the tests read has such values).
pub fn samples<'a>(text: &'a str, name: &str) -> Vec<(HashMap<&'a str, &'a str>, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            let labels = labels
                .split(',')
                .filter_map(|pair| pair.split_once('='))
                .map(|(key, value)| (key, value.trim_matches('"')))
                .collect();
            Some((labels, value.trim().parse().ok()?))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include all of `wanted`; `None` when there
/// are no such samples.
pub fn total(text: &str, name: &str, wanted: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|(labels, _)| wanted.iter().all(|(k, v)| labels.get(k) == Some(v)))
        .map(|(_, value)| value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::{samples, total};

    const TEXT: &str = "# HELP a_total A.\n# TYPE a_total counter\na_total{code=\"200\",verb=\"GET\"} 3\na_total{code=\"404\",verb=\"GET\"} 1.5\na_total_bucket{le=\"1\"} 9\nplain 7\n";

    #[test]
    fn samples_of_exactly_one_name_with_their_labels() {
        let found = samples(TEXT, "a_total");
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].0["code"], found[0].0["verb"], found[0].1), ("200", "GET", 3.0));
        assert_eq!(samples(TEXT, "plain")[0].1, 7.0);
        assert_eq!(total(TEXT, "a_total", &[("verb", "GET")]), Some(4.5));
        assert_eq!(total(TEXT, "a_total", &[("code", "404")]), Some(1.5));
        assert_eq!(total(TEXT, "a_total", &[("code", "500")]), None);
        assert_eq!(total(TEXT, "missing", &[]), None);
    }
}
