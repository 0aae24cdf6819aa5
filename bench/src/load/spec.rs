//! Command-line value types of the load generator: object sizes (`4KiB`, `1MiB-4MiB`),
//! durations (`30s`, `500ms`, `2m`) and operation mixes (`put=30,get=60`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Object size: fixed (`4KiB`) or uniform over an inclusive range (`1MiB-4MiB`).
///
/// Units are those of the gateway's `--cache-size` ([`hugbucket::config::parse_size`]) (`B`, `K`/`KB`/`KiB`, `M`…,
/// all binary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeSpec {
    /// Smallest size in bytes.
    pub min: u64,
    /// Largest size in bytes (equal to `min` for a fixed size).
    pub max: u64,
}

impl SizeSpec {
    /// A fixed size.
    pub fn fixed(n: u64) -> Self {
        Self { min: n, max: n }
    }

    /// The size of object `key` under `seed`: `min` for a fixed size, otherwise a value in
    /// `min..=max` derived from (seed, key), so a later run recomputes the same size.
    pub fn size_for(&self, seed: u64, key: &str) -> u64 {
        if self.min == self.max {
            return self.min;
        }
        let h = blake3::Hasher::new_derive_key("hugbucket-bench object size v1")
            .update(&seed.to_le_bytes())
            .update(key.as_bytes())
            .finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&h.as_bytes()[..8]);
        let span = self.max - self.min;
        match span.checked_add(1) {
            Some(n) => self.min + u64::from_le_bytes(b) % n,
            None => u64::from_le_bytes(b),
        }
    }
}

impl FromStr for SizeSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let one = |t: &str| {
            hugbucket::config::parse_size(t).map_err(|e| format!("{e} (e.g. 4KiB, 1MiB)"))
        };
        match s.split_once('-') {
            None => Ok(Self::fixed(one(s)?)),
            Some((lo, hi)) => {
                let (min, max) = (one(lo)?, one(hi)?);
                if min > max {
                    return Err(format!(
                        "size range {s:?}: the lower bound exceeds the upper"
                    ));
                }
                Ok(Self { min, max })
            }
        }
    }
}

impl fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            f.write_str(&human_bytes(self.min))
        } else {
            write!(f, "{}-{}", human_bytes(self.min), human_bytes(self.max))
        }
    }
}

/// `4 KiB`, `1.5 MiB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h`, `1.5s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => v,
        "ms" => v / 1e3,
        "m" | "min" => v * 60.0,
        "h" => v * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 1e9 {
        return Err(format!("duration {s:?} out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Weighted operation mix, e.g. `put=30,get=60,list=5,delete=5`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix<K> {
    entries: Vec<(K, u32)>,
    total: u32,
}

impl<K: Copy + FromStr<Err = String>> FromStr for Mix<K> {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        let mut total = 0u32;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = part
                .split_once('=')
                .ok_or_else(|| format!("mix entry {part:?} is not NAME=WEIGHT"))?;
            let w: u32 = w
                .trim()
                .parse()
                .map_err(|_| format!("mix weight in {part:?} is not a whole number"))?;
            let kind: K = name.trim().parse()?;
            total = total
                .checked_add(w)
                .ok_or_else(|| "mix weights too large".to_string())?;
            if w > 0 {
                entries.push((kind, w));
            }
        }
        if total == 0 {
            return Err(format!("mix {s:?} has no positive weight"));
        }
        Ok(Self { entries, total })
    }
}

impl<K: Copy> Mix<K> {
    /// The operation for a uniformly distributed `r`.
    pub fn pick(&self, r: u64) -> K {
        let mut x = (r % u64::from(self.total)) as u32;
        for (k, w) in &self.entries {
            if x < *w {
                return *k;
            }
            x -= w;
        }
        // Unreachable: the weights sum to `total`; the last entry is a safe answer.
        self.entries[self.entries.len() - 1].0
    }

    /// The operations with a positive weight.
    pub fn kinds(&self) -> impl Iterator<Item = K> + '_ {
        self.entries.iter().map(|(k, _)| *k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_fixed_and_ranges() {
        assert_eq!("4KiB".parse::<SizeSpec>().unwrap(), SizeSpec::fixed(4096));
        assert_eq!("123".parse::<SizeSpec>().unwrap(), SizeSpec::fixed(123));
        assert_eq!(
            "1MiB-4MiB".parse::<SizeSpec>().unwrap(),
            SizeSpec {
                min: 1 << 20,
                max: 4 << 20
            }
        );
        assert_eq!(
            "1k-2k".parse::<SizeSpec>().unwrap(),
            SizeSpec {
                min: 1024,
                max: 2048
            }
        );
        for bad in ["", "4XB", "4MiB-1MiB", "-1MiB", "1MiB-", "a-b", "1-2-3"] {
            assert!(
                bad.parse::<SizeSpec>().is_err(),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(SizeSpec::fixed(4096).to_string(), "4 KiB");
        assert_eq!(
            "1MiB-1.5MiB".parse::<SizeSpec>().unwrap().to_string(),
            "1 MiB-1.5 MiB"
        );
    }

    #[test]
    fn range_sizes_are_deterministic_and_in_range() {
        let s: SizeSpec = "1000-1100".parse().unwrap();
        let mut seen = std::collections::HashSet::new();
        for i in 0..500 {
            let key = format!("k{i}");
            let n = s.size_for(7, &key);
            assert!((1000..=1100).contains(&n));
            assert_eq!(n, s.size_for(7, &key));
            seen.insert(n);
        }
        // Spread over the range, not a constant.
        assert!(seen.len() > 50, "{} distinct sizes", seen.len());
        assert_eq!(SizeSpec::fixed(9).size_for(1, "x"), 9);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        for bad in ["", "s", "10x", "-1s", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    enum Op {
        A,
        B,
    }
    impl FromStr for Op {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            match s {
                "a" => Ok(Op::A),
                "b" => Ok(Op::B),
                _ => Err(format!("unknown op {s}")),
            }
        }
    }

    #[test]
    fn mix_weights() {
        let m: Mix<Op> = "a=1,b=3".parse().unwrap();
        let mut counts = std::collections::HashMap::new();
        for r in 0..4000u64 {
            *counts.entry(m.pick(r)).or_insert(0) += 1;
        }
        assert_eq!(counts[&Op::A], 1000);
        assert_eq!(counts[&Op::B], 3000);
        let only_b: Mix<Op> = "a=0,b=2".parse().unwrap();
        assert_eq!(only_b.kinds().collect::<Vec<_>>(), vec![Op::B]);
        for bad in ["", "a=0", "c=1", "a", "a=x"] {
            assert!(bad.parse::<Mix<Op>>().is_err(), "{bad:?} should be refused");
        }
    }
}
