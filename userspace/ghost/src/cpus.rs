//! CPU sets and the kernel's cpulist syntax (`0-2,5`).

use std::fmt;

/// The most CPUs ghost-rs handles (its `nr_cpu_ids` limit).
pub const MAX_CPUS: usize = 1024;

/// A set of CPU ids, ordered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSet {
    bits: Vec<u64>,
}

impl CpuSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `cpu`.
    pub fn insert(&mut self, cpu: usize) {
        let (w, b) = (cpu / 64, cpu % 64);
        if self.bits.len() <= w {
            self.bits.resize(w + 1, 0);
        }
        self.bits[w] |= 1 << b;
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: usize) -> bool {
        self.bits
            .get(cpu / 64)
            .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
    }

    /// The CPUs, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.bits.len() * 64).filter(|&c| self.contains(c))
    }

    /// How many CPUs.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lowest CPU, if any.
    pub fn first(&self) -> Option<usize> {
        self.iter().next()
    }

    /// Parses a cpulist (`0-2,5`; empty for none). Blanks around the parts
    /// and empty parts (`1,,2`) are tolerated; the kernel's stride syntax
    /// (`0-7:2/4`) and `N` (last CPU) are not. The error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = Self::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let num = |t: &str| -> Result<usize, String> {
                // Decimal digits only, as the kernel prints them (no `+`).
                let n: usize = Some(t)
                    .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|t| t.parse().ok())
                    .ok_or_else(|| format!("`{t}` is not a CPU number"))?;
                if n >= MAX_CPUS {
                    return Err(format!("CPU {n} is above the limit of {}", MAX_CPUS - 1));
                }
                Ok(n)
            };
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (num(a.trim())?, num(b.trim())?),
                None => (num(part)?, num(part)?),
            };
            if lo > hi {
                return Err(format!("range `{part}` is backwards"));
            }
            for c in lo..=hi {
                set.insert(c);
            }
        }
        Ok(set)
    }
}

impl std::str::FromStr for CpuSet {
    type Err = String;

    /// [`CpuSet::parse`].
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl FromIterator<usize> for CpuSet {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut set = Self::new();
        for cpu in iter {
            set.insert(cpu);
        }
        set
    }
}

impl fmt::Display for CpuSet {
    /// The cpulist form, ranges collapsed (`0-2,5`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpus: Vec<usize> = self.iter().collect();
        let mut i = 0;
        let mut first = true;
        while i < cpus.len() {
            let mut j = i;
            while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
                j += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if i == j {
                write!(f, "{}", cpus[i])?;
            } else {
                write!(f, "{}-{}", cpus[i], cpus[j])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print_round_trip() {
        for s in ["", "0", "1-3", "0-2,5", "0,2,4-7,1023"] {
            assert_eq!(CpuSet::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(CpuSet::parse("3,1,2").unwrap().to_string(), "1-3");
        assert!(CpuSet::parse("1-").is_err());
        assert!(CpuSet::parse("3-1").is_err());
        assert!(CpuSet::parse("1024").is_err());
        assert!(CpuSet::parse("x").is_err());
    }

    #[test]
    fn parse_edge_cases() {
        let p = |s: &str| CpuSet::parse(s).map(|c| c.to_string());
        // Blanks, newlines (a file read back) and empty parts.
        assert_eq!(p(" 1 , 3 \n").as_deref(), Ok("1,3"));
        assert_eq!(p("1,,2,").as_deref(), Ok("1-2"));
        assert_eq!(p("2 - 4").as_deref(), Ok("2-4"));
        assert_eq!(p("\n").as_deref(), Ok(""));
        // Overlaps and duplicates collapse; a one-CPU range is one CPU.
        assert_eq!(p("0-3,2-5,5,5").as_deref(), Ok("0-5"));
        assert_eq!(p("7-7").as_deref(), Ok("7"));
        // Word boundaries of the bitmap.
        assert_eq!(p("63-64").as_deref(), Ok("63-64"));
        assert_eq!(p("0,64,128").as_deref(), Ok("0,64,128"));
        assert_eq!(p("1023").as_deref(), Ok("1023"));
        // Rejected, each with a reason.
        for bad in [
            "-1",
            "1-",
            "-",
            "1-2-3",
            "0x1",
            "+1",
            "1.5",
            "1 2",
            "0-7:2/4",
            "N",
            "99999999999999999999999",
        ] {
            assert!(p(bad).is_err(), "`{bad}` parsed");
        }
        assert_eq!(
            CpuSet::parse("3-1").unwrap_err(),
            "range `3-1` is backwards"
        );
        assert_eq!(
            CpuSet::parse("0-1024").unwrap_err(),
            "CPU 1024 is above the limit of 1023"
        );
    }

    #[test]
    fn set_operations() {
        let mut s = CpuSet::new();
        assert!(s.is_empty());
        assert_eq!(s.first(), None);
        assert!(!s.contains(5000));
        s.insert(70);
        s.insert(3);
        assert_eq!(s.len(), 2);
        assert_eq!(s.first(), Some(3));
        assert!(s.contains(70) && !s.contains(69));
        assert_eq!(s.iter().collect::<Vec<_>>(), [3, 70]);
        let t: CpuSet = [70, 3, 3].into_iter().collect();
        assert_eq!(s, t);
        assert_eq!("3,70".parse::<CpuSet>(), Ok(t));
    }
}
