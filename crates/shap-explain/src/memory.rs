//! Memory plans: what a run will hold at its peak, estimated item by item before any work,
//! and the budget it must fit (`docs/memory.md`). A plan over its budget is refused with the
//! estimate, so a run that cannot fit fails in a second with a clear error instead of being
//! killed (or aborting on a failed allocation) after the work.

use std::fmt;

use crate::{ExplainError, Result};

/// One mebibyte.
const MIB: u64 = 1 << 20;

/// Bytes of memory, printed with a binary unit (`1.5 GiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        match self.0 {
            x if x >= 1 << 30 => write!(f, "{:.1} GiB", b / (1u64 << 30) as f64),
            x if x >= MIB => write!(f, "{:.0} MiB", b / MIB as f64),
            x if x >= 1 << 10 => write!(f, "{:.0} KiB", b / 1024.0),
            x => write!(f, "{x} bytes"),
        }
    }
}

impl std::str::FromStr for Bytes {
    type Err = String;

    /// `4G`, `512M`, `1.5GiB`, `2048K` or a plain number of bytes (binary units).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        if number.is_empty() {
            return Err(format!("{s:?}: not a size (for example 4G or 512M)"));
        }
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" | "bytes" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("{s:?}: not a size (for example 4G or 512M)"))?;
        let bytes = value * scale as f64;
        if !(bytes.is_finite() && bytes < u64::MAX as f64) {
            return Err(format!("{s:?}: too large a size"));
        }
        if bytes < 1.0 {
            return Err(format!("{s:?}: a size must be at least 1 byte"));
        }
        Ok(Bytes(bytes as u64))
    }
}

/// What a run will hold at its peak beyond what the process holds now, item by item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryPlan {
    items: Vec<(String, u64)>,
}

impl MemoryPlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// The plan with `bytes` more for `what`.
    #[must_use]
    pub fn with(mut self, what: impl Into<String>, bytes: u64) -> Self {
        self.items.push((what.into(), bytes));
        self
    }

    /// The sum of the items (saturating).
    pub fn total(&self) -> u64 {
        self.items
            .iter()
            .fold(0u64, |a, (_, b)| a.saturating_add(*b))
    }

    /// The items, largest first.
    pub fn items(&self) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self.items.iter().map(|(w, b)| (w.as_str(), *b)).collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1));
        v
    }

    /// Refuse the plan when it does not fit `budget`, naming its largest items; `hint` says
    /// what to do about it.
    pub fn check(&self, what: &str, budget: &MemoryBudget, hint: &str) -> Result<()> {
        if self.total() <= budget.bytes {
            return Ok(());
        }
        Err(ExplainError::Memory {
            what: what.to_string(),
            hint: format!("; {hint}"),
            need: self.to_string(),
            budget: budget.to_string(),
        })
    }
}

impl fmt::Display for MemoryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "about {}", Bytes(self.total()))?;
        let items = self.items();
        let shown: Vec<String> = items
            .iter()
            .filter(|(_, b)| *b >= MIB)
            .take(4)
            .map(|(w, b)| format!("{w} {}", Bytes(*b)))
            .collect();
        if !shown.is_empty() {
            write!(f, " ({})", shown.join(", "))?;
        }
        Ok(())
    }
}

/// How much more memory a run may use, and where that limit comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudget {
    /// Bytes the run may add to what the process holds now.
    pub bytes: u64,
    /// Where the limit comes from, in words.
    pub source: String,
}

impl fmt::Display for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} can be had ({})", Bytes(self.bytes), self.source)
    }
}

impl MemoryBudget {
    /// The budget `--max-memory max` gives (the whole process at most `max`), within what
    /// the machine has ([`MemoryBudget::detect`]).
    pub fn at_most(max: Bytes) -> Self {
        let in_use = proc_status_kib("VmRSS").map_or(0, |k| k * 1024);
        let asked = Self {
            bytes: max.0.saturating_sub(in_use),
            source: format!(
                "--max-memory {}, of which {} is in use",
                Bytes(max.0),
                Bytes(in_use)
            ),
        };
        asked.min(Self::detect())
    }

    /// What this machine and process allow now: the smallest of the memory available
    /// (`MemAvailable`), the cgroup's limit less its usage, and the address-space limit
    /// (`ulimit -v`) less the address space mapped already and [`AS_RESERVE`]. The mapped
    /// space counts the allocator's arena reserved up front (1 GiB for mimalloc) although
    /// small allocations are carved out of it: large buffers are mapped on their own, so
    /// only what lies outside counts for them. Unknown limits are left out; with none known,
    /// the budget is unlimited.
    pub fn detect() -> Self {
        let mut best = Self {
            bytes: u64::MAX,
            source: "no limit known".into(),
        };
        if let Some(kib) = meminfo_kib("MemAvailable") {
            best = best.min(Self {
                bytes: kib * 1024,
                source: "memory available".into(),
            });
        }
        if let Some(free) = cgroup_headroom() {
            best = best.min(Self {
                bytes: free,
                source: "the cgroup's memory.max".into(),
            });
        }
        if let (Some(limit), Some(mapped)) = (address_space_limit(), proc_status_kib("VmSize")) {
            best = best.min(Self {
                bytes: limit
                    .saturating_sub(mapped * 1024)
                    .saturating_sub(AS_RESERVE),
                source: format!("address space limit (ulimit -v) {}", Bytes(limit)),
            });
        }
        best
    }

    fn min(self, other: Self) -> Self {
        if other.bytes < self.bytes {
            other
        } else {
            self
        }
    }
}

/// Address space kept out of the budget under `ulimit -v`: libraries loaded later
/// (onnxruntime's), new thread stacks and the allocator's slack.
pub const AS_RESERVE: u64 = 256 * MIB;

/// A `/proc/meminfo` entry, in KiB.
fn meminfo_kib(key: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, key)
}

/// A `/proc/self/status` entry (`VmRSS`, `VmSize`, `VmHWM`), in KiB.
pub fn proc_status_kib(key: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/self/status").ok()?, key)
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// The least headroom under a cgroup v2 memory limit of this process's cgroup or any of its
/// ancestors (Slurm and container runtimes set the limit on a parent): `memory.max` less what
/// is in use that cannot be reclaimed (`memory.current` less the inactive page cache,
/// `inactive_file` in `memory.stat`). `None` when no level sets a limit, or without cgroup v2.
fn cgroup_headroom() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mut dir = std::path::Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let mut least: Option<u64> = None;
    loop {
        if let Some(free) = level_headroom(&dir) {
            least = Some(least.map_or(free, |l| l.min(free)));
        }
        if dir == std::path::Path::new("/sys/fs/cgroup") || !dir.pop() {
            return least;
        }
    }
}

/// The headroom under one cgroup's `memory.max`; `None` when it sets none (`max`).
fn level_headroom(dir: &std::path::Path) -> Option<u64> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
    let max: u64 = read("memory.max")?.trim().parse().ok()?;
    let current: u64 = read("memory.current")?.trim().parse().unwrap_or(0);
    let inactive = read("memory.stat")
        .and_then(|stat| {
            stat.lines()
                .find_map(|l| l.strip_prefix("inactive_file "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    Some(max.saturating_sub(current.saturating_sub(inactive)))
}

/// The soft address-space limit (`ulimit -v`) in bytes; `None` when unlimited or unknown.
fn address_space_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The inputs of [`explain_plan`]: one chunk of an explanation run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSize {
    /// Features of one image (`H * W * C`).
    pub features: usize,
    /// Images explained together (a chunk).
    pub images: usize,
    /// Outputs explained per image.
    pub explained: usize,
    /// Outputs the model returns per row.
    pub model_outputs: usize,
    /// The model's `batch_rows`: `Some(n)` gathers masks of several images into calls of at
    /// most `n` rows; `None` calls the model image by image.
    pub rows: Option<usize>,
    /// Model evaluations per image (the budget).
    pub evals: usize,
    /// Threads evaluating at once.
    pub threads: usize,
}

/// The memory one chunk of an explanation needs beyond the loaded model, item by item
/// (`docs/memory.md` derives each factor from the code's buffers).
pub fn explain_plan(s: RunSize) -> MemoryPlan {
    let m = s.features as u64;
    // Gathered calls hold at most the masks of one step of each image in flight (an Owen
    // step asks for up to 2 x 10 masks, a few more at the root); image-by-image calls hold up
    // to `MAX_BATCH_FLOATS` values (a Permutation pass). Never more than the budget. At most
    // one call per thread and per image runs at once.
    let rows = match s.rows {
        Some(r) => r.min(s.images.saturating_mul(STEP_ROWS)),
        None => STEP_ROWS.max(crate::eval::MAX_BATCH_FLOATS / s.features.max(1)),
    };
    let rows = rows.min(s.evals).max(1);
    let (n, k, rows, threads) = (
        s.images as u64,
        s.explained as u64,
        rows as u64,
        s.threads.clamp(1, s.images.max(1)) as u64,
    );
    let mul = |xs: &[u64]| xs.iter().fold(1u64, |a, &x| a.saturating_mul(x));
    MemoryPlan::new()
        .with("partition tree", mul(&[TREE_BYTES_PER_FEATURE, m]))
        .with("images and masker state", mul(&[n, m, 4, 5]))
        .with("recursion state", mul(&[n, 2, m, k, 8]))
        .with("values", mul(&[n, m, k, 8, 2]))
        .with("model batches", mul(&[threads, rows, m, 4, 3]))
        .with(
            "model outputs",
            mul(&[threads, rows, s.model_outputs as u64, 4, 2]),
        )
}

/// The partition tree of `shape`; a failed allocation is [`ExplainError::Memory`].
pub(crate) fn tree(shape: shap_mask::ImageShape) -> Result<shap_mask::PartitionTree> {
    use shap_mask::TreeError;
    shap_mask::PartitionTree::new(shape).map_err(|e| match e {
        TreeError::Memory { bytes, .. } => ExplainError::Memory {
            what: format!("the partition tree of {shape} images"),
            hint: String::new(),
            need: Bytes(bytes as u64).to_string(),
            budget: "the allocation failed".into(),
        },
        _ => ExplainError::InvalidShape(shape),
    })
}

/// `n` copies of `v`, or [`ExplainError::Memory`] naming `what` when they cannot be
/// allocated (never an abort).
pub fn filled<T: Clone>(n: usize, v: T, what: &str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    match out.try_reserve_exact(n) {
        Ok(()) => {
            out.resize(n, v);
            Ok(out)
        }
        Err(_) => Err(ExplainError::Memory {
            what: what.to_string(),
            hint: String::new(),
            need: Bytes(n.saturating_mul(size_of::<T>()) as u64).to_string(),
            budget: "the allocation failed".into(),
        }),
    }
}

/// Masks one image asks for at a time, at most.
const STEP_ROWS: usize = 24;

/// Bytes per feature the partition tree holds while it is built: child pairs (16 per
/// internal node), leaf order (8), ranges and depths (24 per node, 2M nodes) and the heap of
/// boxes (up to M entries of 80 bytes).
pub const TREE_BYTES_PER_FEATURE: u64 = 16 + 8 + 48 + 80;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!("4G".parse::<Bytes>(), Ok(Bytes(4 << 30)));
        assert_eq!("512MiB".parse::<Bytes>(), Ok(Bytes(512 << 20)));
        assert_eq!("1.5g".parse::<Bytes>(), Ok(Bytes(3 << 29)));
        assert_eq!("100".parse::<Bytes>(), Ok(Bytes(100)));
        for (bad, why) in [
            ("", "not a size"),
            ("G", "not a size"),
            ("-1G", "not a size"),
            ("+4G", "not a size"),
            ("4X", "unknown unit"),
            ("0", "at least 1 byte"),
            ("20000000T", "too large"),
            ("18446744073709551615", "too large"),
        ] {
            let e = bad.parse::<Bytes>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(Bytes(3 << 29).to_string(), "1.5 GiB");
        assert_eq!(Bytes(5 << 20).to_string(), "5 MiB");
    }

    #[test]
    fn a_plan_over_its_budget_is_refused_naming_its_largest_items() {
        let plan = MemoryPlan::new()
            .with("tree", 3 << 30)
            .with("values", 1 << 30)
            .with("x", 10);
        let budget = MemoryBudget {
            bytes: 2 << 30,
            source: "test".into(),
        };
        let e = plan
            .check("explaining", &budget, "hint")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("about 4.0 GiB (tree 3.0 GiB, values 1.0 GiB)"),
            "{e}"
        );
        let roomy = MemoryBudget {
            bytes: 5 << 30,
            ..budget
        };
        assert!(plan.check("explaining", &roomy, "hint").is_ok());
    }

    #[test]
    fn the_tutorial_fits_and_a_huge_image_does_not() {
        let tutorial = RunSize {
            features: 784,
            images: 100,
            explained: 10,
            model_outputs: 10,
            rows: Some(64),
            evals: 500,
            threads: 2,
        };
        assert!(explain_plan(tutorial).total() < 64 * MIB);
        let huge = RunSize {
            features: 2048 * 2048 * 3,
            images: 1,
            explained: 1,
            ..tutorial
        };
        assert!(explain_plan(huge).total() > 3 << 30);
    }

    #[test]
    fn a_cgroups_headroom_leaves_out_reclaimable_page_cache() {
        let dir = std::env::temp_dir().join(format!("shap-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |f: &str, v: &str| std::fs::write(dir.join(f), v).unwrap();
        write("memory.max", "8589934592\n");
        write("memory.current", "7516192768\n");
        write(
            "memory.stat",
            "anon 1073741824\ninactive_file 6442450944\nactive_file 0\n",
        );
        // 8 GiB limit, 7 GiB charged of which 6 GiB is inactive page cache: 7 GiB free.
        assert_eq!(level_headroom(&dir), Some(7 << 30));
        write("memory.max", "max\n");
        assert_eq!(level_headroom(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn status_fields_are_read() {
        let text = "Name:\tx\nVmSize:\t  123456 kB\nVmRSS:\t 42 kB\n";
        assert_eq!(kib_field(text, "VmSize"), Some(123_456));
        assert_eq!(kib_field(text, "VmRSS"), Some(42));
        assert_eq!(kib_field(text, "VmHWM"), None);
    }

    proptest::proptest! {
        /// Every item grows with every size, and a plan is refused exactly when its total
        /// passes the budget.
        #[test]
        fn plans_grow_with_sizes_and_fit_exactly_their_budget(
            features in 1usize..1 << 26,
            images in 1usize..200,
            explained in 1usize..2000,
            model_outputs in 1usize..200_000,
            rows in proptest::option::of(1usize..4096),
            evals in 1usize..100_000,
            threads in 1usize..64,
            which in 0usize..7,
            budget in 0u64..u64::MAX,
        ) {
            let s = RunSize { features, images, explained, model_outputs, rows, evals, threads };
            let mut bigger = s;
            match which {
                0 => bigger.features += 1,
                1 => bigger.images += 1,
                2 => bigger.explained += 1,
                3 => bigger.model_outputs += 1,
                4 => bigger.rows = bigger.rows.map(|r| r + 1),
                5 => bigger.evals += 1,
                _ => bigger.threads += 1,
            }
            let (a, b) = (explain_plan(s), explain_plan(bigger));
            for ((wa, x), (wb, y)) in a.items.iter().zip(&b.items) {
                proptest::prop_assert_eq!(wa, wb);
                // Image-by-image calls hold a fixed number of values, so their rows shrink
                // as images grow: the model items need not grow with the features then.
                let fixed_values = which == 0 && rows.is_none() && wa.starts_with("model");
                proptest::prop_assert!(x <= y || fixed_values, "{} shrank", wa);
            }
            let budget = MemoryBudget { bytes: budget, source: "test".into() };
            proptest::prop_assert_eq!(a.check("x", &budget, "h").is_ok(), a.total() <= budget.bytes);
        }

        /// Sizes print and parse back to within the printed precision.
        #[test]
        fn sizes_print_and_parse_back(bytes in 1u64..1 << 50) {
            let printed = Bytes(bytes).to_string().replace(' ', "");
            let back: Bytes = printed.parse().map_err(proptest::test_runner::TestCaseError::fail)?;
            // Half the last printed digit: 0.05 GiB, 0.5 MiB, 0.5 KiB, exact bytes.
            let tolerance = match printed.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.') {
                "GiB" => 0.05 * (1u64 << 30) as f64,
                "MiB" => 0.5 * MIB as f64,
                "KiB" => 512.0,
                _ => 0.0,
            };
            let err = (back.0 as f64 - bytes as f64).abs();
            proptest::prop_assert!(err <= tolerance + 1.0, "{} -> {} -> {}", bytes, printed, back.0);
        }
    }
}
