//! Retrying after a lost race or a transient error.

/// A growing, jittered pause before attempt `attempt + 1` (5, 10, 20 ... 320 ms, plus up to 15 ms),
/// so that writers that collided do not collide again in lockstep.
pub async fn back_off(attempt: u32) {
    // Sub-second clock noise is jitter enough to break lockstep between a handful of writers.
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos() % 16));
    let millis = (5u64 << attempt.min(6)) + jitter;
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
}
