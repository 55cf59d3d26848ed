//! `k8s.io/apimachinery/pkg/util/duration.HumanDuration`: a short, ~2–3 significant figure
//! rendering of an age, as every `Age` cell shows it.

use chrono::Duration;

/// upstream `duration.HumanDuration`: `"5s"`, `"3m2s"`, `"15m"`, `"5h3m"`, `"20h"`, `"3d4h"`,
/// `"20d"`, `"2y40d"`, `"9y"`; `"0s"` for up to two seconds in the future (clock skew) and
/// `"<invalid>"` beyond that.
#[must_use]
pub fn human_duration(d: Duration) -> String {
    // Go's int(d.Seconds()) truncates towards zero, as num_seconds does.
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{days}d") } else { format!("{days}d{h}h") };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        let dy = days % 365;
        return if dy == 0 { format!("{years}y") } else { format!("{years}y{dy}d") };
    }
    format!("{years}y")
}

#[cfg(test)]
mod tests {
    use super::human_duration;
    use chrono::Duration;

    #[test]
    fn boundaries() {
        let ms = Duration::milliseconds;
        let s = Duration::seconds;
        let cases: &[(Duration, &str)] = &[
            (s(-3), "<invalid>"),
            (s(-2), "<invalid>"),
            (ms(-1999), "0s"),
            (s(-1), "0s"),
            (ms(-500), "0s"),
            (s(0), "0s"),
            (ms(1999), "1s"),
            (s(5), "5s"),
            (s(119), "119s"),
            (s(120), "2m"),
            (s(121), "2m1s"),
            (s(3 * 60 + 2), "3m2s"),
            (s(9 * 60 + 59), "9m59s"),
            (s(10 * 60), "10m"),
            (s(10 * 60 + 59), "10m"),
            (s(179 * 60 + 59), "179m"),
            (s(3 * 3600), "3h"),
            (s(3 * 3600 + 60), "3h1m"),
            (s(5 * 3600), "5h"),
            (s(7 * 3600 + 59 * 60 + 59), "7h59m"),
            (s(8 * 3600), "8h"),
            (s(47 * 3600 + 3599), "47h"),
            (s(48 * 3600), "2d"),
            (s(3 * 86400 + 4 * 3600), "3d4h"),
            (s(7 * 86400 + 23 * 3600), "7d23h"),
            (s(8 * 86400), "8d"),
            (s(729 * 86400), "729d"),
            (s(730 * 86400), "2y"),
            (s(770 * 86400), "2y40d"),
            (s((8 * 365 - 1) * 86400), "7y364d"),
            (s(8 * 365 * 86400), "8y"),
            (s(20 * 365 * 86400 + 100 * 86400), "20y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "duration {d:?}");
        }
    }
}
