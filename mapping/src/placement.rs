//! Placement of extents on servers (DESIGN.md "Layout arithmetic"): the `R` replicas of an
//! extent always on distinct servers; the `W` extents of a group on distinct servers whenever
//! enough exist; balanced by free space.
//!
//! Placement only picks servers; which free extent slot of a server is used is the caller's
//! business (the master takes the lowest free slot, so a column's extents tend to be contiguous).

use crate::server::ServerId;
use std::collections::BTreeMap;
use thiserror::Error;

/// Why a placement was impossible.
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum PlacementError {
    #[error("{replicas} replicas need {replicas} distinct servers with free space, only {available} have any")]
    NotEnoughServers { replicas: u32, available: usize },
    #[error("not enough room: {needed} free extents needed, {free} free in total")]
    NoRoom { needed: u64, free: u64 },
    #[error("extent {extent}: no server with free space left that does not already hold a replica of it")]
    NoDistinctServer { extent: u64 },
}

/// A server's free extent count, as placement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerFree {
    pub id: ServerId,
    pub free: u64,
}

/// Chooses servers for the replicas of `extents` (indexes of a disk with `stripes` columns).
/// `existing` holds the servers of extents already placed (they count for group distinctness and
/// for keeping a column on the same server). Returns, for every requested extent, `replicas`
/// distinct servers.
pub fn place(
    servers: &[ServerFree],
    stripes: u32,
    replicas: u32,
    extents: &[u64],
    existing: &BTreeMap<u64, Vec<ServerId>>,
) -> Result<BTreeMap<u64, Vec<ServerId>>, PlacementError> {
    let mut free: Vec<ServerFree> = servers.iter().copied().filter(|s| s.free > 0).collect();
    free.sort_by_key(|s| s.id);
    let available = free.len();
    if extents.is_empty() {
        return Ok(BTreeMap::new());
    }
    if available < replicas as usize {
        return Err(PlacementError::NotEnoughServers {
            replicas,
            available,
        });
    }
    let mut sorted: Vec<u64> = extents.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let needed = sorted.len() as u64 * replicas as u64;
    let total: u64 = free.iter().map(|s| s.free).sum();
    if total < needed {
        return Err(PlacementError::NoRoom {
            needed,
            free: total,
        });
    }
    if !feasible(&free, sorted.len() as u64, replicas) {
        return Err(PlacementError::NoDistinctServer { extent: sorted[0] });
    }
    let w = stripes.max(1) as u64;
    let mut out: BTreeMap<u64, Vec<ServerId>> = BTreeMap::new();
    for (j, &x) in sorted.iter().enumerate() {
        let remaining_after = (sorted.len() - j - 1) as u64;
        let group = x / w;
        let column = x % w;
        let placed =
            |e: u64| -> Option<&Vec<ServerId>> { out.get(&e).or_else(|| existing.get(&e)) };
        // Servers already used by other extents of the group.
        let mut in_group: Vec<ServerId> = Vec::new();
        for c in 0..w {
            if c != column {
                if let Some(v) = placed(group * w + c) {
                    in_group.extend_from_slice(v);
                }
            }
        }
        // The servers of this column in the previous group, to keep a column contiguous.
        let sticky: Option<Vec<ServerId>> = if group > 0 {
            placed((group - 1) * w + column).cloned()
        } else {
            None
        };
        // Preferred: off the group's other servers, most free space, same server as this column
        // in the previous group (contiguity), lowest id.
        let mut trial = free.clone();
        let mut chosen: Vec<ServerId> = Vec::with_capacity(replicas as usize);
        for k in 0..replicas as usize {
            let sticky_k = sticky.as_ref().and_then(|v| v.get(k).copied());
            let best = trial
                .iter_mut()
                .filter(|s| s.free > 0 && !chosen.contains(&s.id))
                .max_by_key(|s| {
                    (
                        !in_group.contains(&s.id),
                        s.free,
                        Some(s.id) == sticky_k,
                        std::cmp::Reverse(s.id),
                    )
                })
                .ok_or(PlacementError::NoDistinctServer { extent: x })?;
            best.free -= 1;
            chosen.push(best.id);
        }
        if !feasible(&trial, remaining_after, replicas) {
            // The preference would strand the remaining extents; the `R` servers with the most
            // free space always keep a feasible problem feasible.
            trial = free.clone();
            chosen.clear();
            for _ in 0..replicas {
                let best = trial
                    .iter_mut()
                    .filter(|s| s.free > 0 && !chosen.contains(&s.id))
                    .max_by_key(|s| (s.free, std::cmp::Reverse(s.id)))
                    .ok_or(PlacementError::NoDistinctServer { extent: x })?;
                best.free -= 1;
                chosen.push(best.id);
            }
        }
        free = trial;
        out.insert(x, chosen);
    }
    Ok(out)
}

/// Whether `m` more extents of `r` distinct servers each fit: a server can give at most one
/// slot to each extent, so it contributes `min(free, m)`.
fn feasible(free: &[ServerFree], m: u64, r: u32) -> bool {
    free.iter().map(|s| s.free.min(m)).sum::<u64>() >= m * r as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: u32, free: u64) -> Vec<ServerFree> {
        (0..n)
            .map(|i| ServerFree {
                id: ServerId(i),
                free,
            })
            .collect()
    }

    #[test]
    fn two_servers_two_columns_keep_columns_apart_and_sticky() {
        let p = place(&servers(2, 10), 2, 1, &[0, 1, 2, 3, 4, 5], &BTreeMap::new()).unwrap();
        for g in 0..3 {
            assert_ne!(p[&(2 * g)], p[&(2 * g + 1)]);
            assert_eq!(p[&(2 * g)], p[&0]);
        }
    }

    #[test]
    fn errors() {
        assert_eq!(
            place(&servers(1, 10), 1, 2, &[0], &BTreeMap::new()),
            Err(PlacementError::NotEnoughServers {
                replicas: 2,
                available: 1
            })
        );
        assert_eq!(
            place(&servers(2, 1), 1, 1, &[0, 1, 2], &BTreeMap::new()),
            Err(PlacementError::NoRoom { needed: 3, free: 2 })
        );
        let lopsided = vec![
            ServerFree {
                id: ServerId(0),
                free: 10,
            },
            ServerFree {
                id: ServerId(1),
                free: 1,
            },
        ];
        assert_eq!(
            place(&lopsided, 1, 2, &[0, 1], &BTreeMap::new()),
            Err(PlacementError::NoDistinctServer { extent: 0 })
        );
    }

    #[test]
    fn tight_fit_found_when_the_preference_would_strand_extents() {
        // 10 extents x 3 replicas = 30 = all free slots; server 4 must hold a replica of every
        // extent.
        let frees = [7, 4, 5, 4, 10];
        let servers: Vec<ServerFree> = frees
            .iter()
            .enumerate()
            .map(|(i, &free)| ServerFree {
                id: ServerId(i as u32),
                free,
            })
            .collect();
        let extents: Vec<u64> = (0..10).collect();
        let p = place(&servers, 2, 3, &extents, &BTreeMap::new()).unwrap();
        for reps in p.values() {
            assert!(reps.contains(&ServerId(4)));
        }
    }
}
