//! CronJob schedules: the grammar of robfig/cron's `ParseStandard` (five
//! fields, month and weekday names, `*`/`?`, ranges, steps, lists, the
//! `@yearly`…`@hourly` descriptors and `@every <duration>`) with its error
//! messages, which kube-apiserver returns verbatim, and the next activation
//! time after an instant in a time zone (`SpecSchedule.Next`).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// Set on a field written `*` or `?` (robfig's `starBit`): a day-of-month
/// or day-of-week field so written makes the day match need both fields.
const STAR: u64 = 1 << 63;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Bit sets per field (bit n set when value n matches).
    Spec {
        minute: u64,
        hour: u64,
        dom: u64,
        month: u64,
        dow: u64,
    },
    /// `@every <duration>`: every this many whole seconds (at least one).
    Every(i64),
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Go's `strconv.Atoi` with robfig's `mustParseInt` messages.
fn parse_int(expr: &str) -> Result<u32, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": invalid syntax"
        ));
    }
    let n: i64 = expr.parse().map_err(|_| {
        format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": value out of range"
        )
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    u32::try_from(n).map_err(|_| format!("end of range ({n}) above maximum: {expr}"))
}

fn parse_int_or_name(expr: &str, b: &Bounds) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    match b.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => parse_int(expr),
    }
}

/// robfig's `getRange`: one element of a comma list.
fn range(expr: &str, b: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end, mut extra);
    if low_high[0] == "*" || low_high[0] == "?" {
        (start, end, extra) = (b.min, b.max, STAR);
    } else {
        start = parse_int_or_name(low_high[0], b)?;
        end = match low_high.len() {
            1 => start,
            2 => parse_int_or_name(low_high[1], b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        extra = 0;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok(bits | extra)
}

/// robfig's `getField`: a comma list of ranges.
fn field(expr: &str, b: &Bounds) -> Result<u64, String> {
    expr.split(',')
        .try_fold(0u64, |acc, r| Ok(acc | range(r, b)?))
}

/// Go's `time.ParseDuration` for the units a schedule uses (`h`, `m`, `s`,
/// `ms`), as whole seconds.
fn parse_go_duration(s: &str) -> Option<f64> {
    let mut rest = s;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(0.0);
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[u..];
    }
    Some(total)
}

fn descriptor(spec: &str) -> Result<Schedule, String> {
    let fields = |s: &str| parse_fields(&s.split_whitespace().collect::<Vec<_>>());
    match spec {
        "@yearly" | "@annually" => fields("0 0 1 1 *"),
        "@monthly" => fields("0 0 1 * *"),
        "@weekly" => fields("0 0 * * 0"),
        "@daily" | "@midnight" => fields("0 0 * * *"),
        "@hourly" => fields("0 * * * *"),
        _ => match spec.strip_prefix("@every ") {
            Some(d) => match parse_go_duration(d) {
                Some(secs) => Ok(Schedule::Every((secs.floor() as i64).max(1))),
                None => Err(format!(
                    "failed to parse duration {spec}: time: invalid duration \"{d}\""
                )),
            },
            None => Err(format!("unrecognized descriptor: {spec}")),
        },
    }
}

fn parse_fields(fields: &[&str]) -> Result<Schedule, String> {
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    Ok(Schedule::Spec {
        minute: field(fields[0], &MINUTES)?,
        hour: field(fields[1], &HOURS)?,
        dom: field(fields[2], &DOM)?,
        month: field(fields[3], &MONTHS)?,
        dow: field(fields[4], &DOW)?,
    })
}

/// `cron.ParseStandard`. A `TZ=`/`CRON_TZ=` prefix is accepted (the
/// CronJob validation forbids it separately) and its zone returned.
pub fn parse(spec: &str) -> Result<(Schedule, Option<String>), String> {
    if spec.is_empty() {
        return Err("empty spec string".into());
    }
    let mut spec = spec;
    let mut zone = None;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        let eq = spec.find('=').unwrap_or(0);
        let sp = spec.find(' ').unwrap_or(spec.len());
        let name = &spec[eq + 1..sp];
        if let Err(e) = load_zone(name) {
            return Err(format!("provided bad location {name}: {e}"));
        }
        zone = Some(name.to_string());
        spec = spec[sp..].trim();
    }
    let schedule = if spec.starts_with('@') {
        descriptor(spec)?
    } else {
        parse_fields(&spec.split_whitespace().collect::<Vec<_>>())?
    };
    Ok((schedule, zone))
}

/// Go's `time.LoadLocation`: "" and "UTC" are UTC, "Local" the system
/// zone, anything else an IANA name.
pub fn load_zone(name: &str) -> Result<TimeZone, String> {
    match name {
        "" | "UTC" => Ok(TimeZone::UTC),
        "Local" => Ok(TimeZone::system()),
        _ => TimeZone::get(name).map_err(|_| format!("unknown time zone {name}")),
    }
}

fn day_matches(dom: u64, dow: u64, d: Date) -> bool {
    let dom_match = dom & (1 << d.day()) != 0;
    let dow_match = dow & (1 << d.weekday().to_sunday_zero_offset()) != 0;
    if dom & STAR != 0 || dow & STAR != 0 {
        dom_match && dow_match
    } else {
        dom_match || dow_match
    }
}

impl Schedule {
    /// The first activation strictly after `after`, in `tz`; `None` when
    /// none falls within five years (as `SpecSchedule.Next`'s zero time).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let (minute, hour, dom, month, dow) = match *self {
            Schedule::Every(secs) => {
                let base = Timestamp::from_second(after.as_second()).ok()?;
                return base.checked_add(secs.seconds()).ok();
            }
            Schedule::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
            } => (minute, hour, dom, month, dow),
        };
        let start = after.to_zoned(tz.clone()).datetime();
        let mut day = start.date();
        let last = day.checked_add(5.years()).ok()?;
        while day <= last {
            if month & (1 << day.month()) != 0 && day_matches(dom, dow, day) {
                for h in 0..24i8 {
                    if hour & (1 << h) == 0 {
                        continue;
                    }
                    for m in 0..60i8 {
                        if minute & (1 << m) == 0 {
                            continue;
                        }
                        let dt = DateTime::from_parts(day, jiff::civil::time(h, m, 0, 0));
                        let Ok(z) = dt.to_zoned(tz.clone()) else {
                            continue;
                        };
                        // A civil time the zone skips (DST gap) is not run.
                        if z.datetime() != dt {
                            continue;
                        }
                        let t = z.timestamp();
                        if t > after {
                            return Some(t);
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(spec: &str, after: &str) -> String {
        let (s, _) = parse(spec).unwrap();
        s.next(ts(after), &TimeZone::UTC).unwrap().to_string()
    }

    #[test]
    fn robfig_error_messages() {
        assert_eq!(
            parse("* * *").unwrap_err(),
            "expected exactly 5 fields, found 3: [* * *]"
        );
        assert_eq!(
            parse("61 * * * *").unwrap_err(),
            "end of range (61) above maximum (59): 61"
        );
        assert_eq!(
            parse("x * * * *").unwrap_err(),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse("* * 0 * *").unwrap_err(),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            parse("5-2 * * * *").unwrap_err(),
            "beginning of range (5) beyond end of range (2): 5-2"
        );
        assert_eq!(
            parse("*/0 * * * *").unwrap_err(),
            "step of range should be a positive number: */0"
        );
        assert_eq!(
            parse("@often").unwrap_err(),
            "unrecognized descriptor: @often"
        );
        assert_eq!(parse("").unwrap_err(), "empty spec string");
        assert!(parse("0 9 * jan-mar MON-fri").is_ok());
        assert!(parse("@every 1h30m").is_ok());
    }

    #[test]
    fn next_times() {
        assert_eq!(
            next("* * * * *", "2024-01-01T00:00:30Z"),
            "2024-01-01T00:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-01-01T00:15:00Z"),
            "2024-01-01T00:30:00Z"
        );
        assert_eq!(
            next("@daily", "2024-01-01T10:00:00Z"),
            "2024-01-02T00:00:00Z"
        );
        // 2024-01-01 is a Monday; dom and dow both restricted: either.
        assert_eq!(
            next("0 0 15 * 5", "2024-01-01T00:00:00Z"),
            "2024-01-05T00:00:00Z"
        );
        // With a `*` day of week, only the day of month.
        assert_eq!(
            next("0 0 15 * *", "2024-01-01T00:00:00Z"),
            "2024-01-15T00:00:00Z"
        );
        assert_eq!(
            next("@every 90s", "2024-01-01T00:00:00.5Z"),
            "2024-01-01T00:01:30Z"
        );
        // February 31st never comes.
        let (s, _) = parse("0 0 31 2 *").unwrap();
        assert!(s.next(ts("2024-01-01T00:00:00Z"), &TimeZone::UTC).is_none());
    }

    #[test]
    fn next_time_in_a_zone() {
        let (s, _) = parse("0 9 * * *").unwrap();
        let tz = load_zone("Europe/Berlin").unwrap();
        assert_eq!(
            s.next(ts("2024-01-01T00:00:00Z"), &tz).unwrap().to_string(),
            "2024-01-01T08:00:00Z"
        );
        assert_eq!(
            load_zone("Mars/Base").unwrap_err(),
            "unknown time zone Mars/Base"
        );
    }
}
