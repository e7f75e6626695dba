//! How a large upload is split into S3 multipart parts.
//!
//! S3 allows at most 10,000 parts of 5 MiB to 5 GiB (the last may be smaller). Every part URL is
//! presigned up front and returned in one response, so the plan also keeps that response small: at
//! most 1,000 parts unless the file is so large that only bigger parts fit in 10,000.

pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
pub const MAX_PART_BYTES: u64 = 5 * 1024 * 1024 * 1024;
pub const MAX_PARTS: u64 = 10_000;
/// Parts returned in one response before the part size grows instead.
pub const PREFERRED_MAX_PARTS: u64 = 1_000;
const MIB: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub part_size: u64,
    pub part_count: u32,
}

impl PartPlan {
    /// The size of part `part_number` (1-based).
    pub fn part_len(&self, total: u64, part_number: u32) -> u64 {
        let start = self.part_size * u64::from(part_number - 1);
        self.part_size.min(total.saturating_sub(start))
    }
}

fn ceil_div(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

fn round_up_to_mib(bytes: u64) -> u64 {
    ceil_div(bytes, MIB) * MIB
}

/// `None` when the size cannot be uploaded in 10,000 parts of at most 5 GiB.
pub fn plan_parts(total: u64, preferred_part_size: u64) -> Option<PartPlan> {
    let preferred = preferred_part_size.clamp(MIN_PART_BYTES, MAX_PART_BYTES);
    let mut part_size = preferred.max(round_up_to_mib(ceil_div(total, PREFERRED_MAX_PARTS)));
    if part_size > MAX_PART_BYTES {
        part_size = preferred.max(round_up_to_mib(ceil_div(total, MAX_PARTS)));
    }
    if part_size > MAX_PART_BYTES {
        return None;
    }
    let part_count = ceil_div(total.max(1), part_size);
    Some(PartPlan {
        part_size,
        part_count: u32::try_from(part_count).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_40_mb_file_with_8_mib_parts_takes_5_parts() {
        let plan = plan_parts(40_000_000, 8 * MIB).unwrap();
        assert_eq!(plan.part_size, 8 * MIB);
        assert_eq!(plan.part_count, 5);
        let sum: u64 = (1..=5).map(|n| plan.part_len(40_000_000, n)).sum();
        assert_eq!(sum, 40_000_000);
        assert_eq!(plan.part_len(40_000_000, 5), 40_000_000 - 4 * 8 * MIB);
    }

    #[test]
    fn parts_never_go_below_s3s_minimum() {
        assert_eq!(plan_parts(20 * MIB, 1).unwrap().part_size, MIN_PART_BYTES);
    }

    #[test]
    fn huge_files_grow_the_part_size_instead_of_the_part_count() {
        let tib = 1024 * 1024 * MIB;
        let plan = plan_parts(tib, 16 * MIB).unwrap();
        assert!(plan.part_count as u64 <= PREFERRED_MAX_PARTS);
        let plan = plan_parts(5 * tib, 16 * MIB).unwrap();
        assert!(plan.part_count as u64 <= MAX_PARTS && plan.part_size <= MAX_PART_BYTES);
        assert!(plan_parts(60 * tib, 16 * MIB).is_none());
    }
}
