//! RFC 5531 section 8.1 (at-most-once on top of at-least-once): the duplicate-request cache.
//!
//! ONC RPC clients retransmit a call with the same xid when a reply does not arrive, possibly
//! on a new connection from a new port. The cache remembers, per call, either that it is still
//! running or the reply it produced, so a retransmission is answered with the recorded reply
//! (or waits for the running call) instead of executing the procedure twice.
//!
//! **Key.** A call is identified by [`DrcKey`]: the client's identity, the xid, program, version
//! and procedure. The identity must survive a reconnect, so it is *not* the socket address:
//! - AUTH_SYS: the credential's machine name, uid, gid and stamp (the stamp is chosen once per
//!   client process, so two processes on one host with the same uid stay apart);
//! - any other flavor (AUTH_NONE): the client's IP address without the port.
//!
//! Besides the key, an entry remembers the argument length and a hash of the arguments' first
//! bytes; a call that matches the key but not the arguments is a new call that reuses an xid
//! (e.g. a restarted client) and is executed, replacing the entry.
//!
//! **Bound.** At most `capacity` entries and `max_bytes` bytes of recorded replies; the oldest
//! finished entries are evicted first (running calls are never evicted).

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

use crate::auth::{AuthFlavor, OpaqueAuth};

/// Default number of calls remembered.
pub const DEFAULT_DRC_CAPACITY: usize = 4096;
/// Default bound on the bytes of replies remembered (large replies push old entries out).
pub const DEFAULT_DRC_MAX_BYTES: usize = 64 << 20;
/// Bytes of arguments hashed into the entry's checksum.
const ARG_HASH_PREFIX: usize = 256;

/// Who sent a call, in a way that survives reconnects (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientIdentity {
    /// AUTH_SYS machine name, uid, gid and stamp.
    AuthSys {
        machinename: String,
        uid: u32,
        gid: u32,
        stamp: u32,
    },
    /// The client's IP address (AUTH_NONE and other flavors).
    Address(IpAddr),
}

impl ClientIdentity {
    /// The identity for a call with credential `cred` from `ip`.
    pub fn of(cred: &OpaqueAuth, ip: IpAddr) -> ClientIdentity {
        if cred.flavor == AuthFlavor::AUTH_SYS {
            if let Some(p) = cred.as_auth_sys() {
                return ClientIdentity::AuthSys {
                    machinename: p.machinename,
                    uid: p.uid,
                    gid: p.gid,
                    stamp: p.stamp,
                };
            }
        }
        ClientIdentity::Address(ip)
    }
}

/// The key of a cached call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DrcKey {
    pub client: ClientIdentity,
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
}

/// What the cache says about a call.
pub enum DrcLookup {
    /// New call: run it, then give the reply to [`DrcTicket::complete`].
    Execute(DrcTicket),
    /// Retransmission of a finished call: send this reply record again.
    Replay(Bytes),
    /// Retransmission of a call still running: wait for its reply on this channel.
    InProgress(watch::Receiver<Option<Bytes>>),
}

/// Obligation to report the reply of a call that the cache let run.
pub struct DrcTicket {
    tx: Option<watch::Sender<Option<Bytes>>>,
    core: Option<(Arc<Core>, DrcKey)>,
}

impl DrcTicket {
    /// Records `reply` (the whole reply message) for retransmissions and wakes their waiters.
    pub fn complete(mut self, reply: Bytes) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let len = reply.len();
        tx.send_replace(Some(reply));
        if let Some((core, key)) = self.core.take() {
            let mut inner = core.lock();
            let mine = tx.subscribe();
            if let Some(e) = inner.map.get_mut(&key) {
                if e.state.same_channel(&mine) {
                    e.bytes = len;
                    inner.bytes += len;
                }
            }
            core.evict(&mut inner);
        }
    }
}

struct Entry {
    args_len: usize,
    args_hash: u64,
    /// Size of the recorded reply (0 while running).
    bytes: usize,
    state: watch::Receiver<Option<Bytes>>,
}

impl Entry {
    fn running(&self) -> bool {
        self.state.borrow().is_none() && self.state.has_changed().is_ok()
    }
}

struct Inner {
    map: HashMap<DrcKey, Entry>,
    order: VecDeque<DrcKey>,
    /// Bytes of recorded replies.
    bytes: usize,
}

struct Core {
    capacity: usize,
    max_bytes: usize,
    inner: Mutex<Inner>,
}

impl Core {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the oldest finished entries while over the entry or byte bound.
    fn evict(&self, inner: &mut Inner) {
        let mut budget = inner.order.len();
        while (inner.map.len() > self.capacity || inner.bytes > self.max_bytes) && budget > 0 {
            budget -= 1;
            let Some(key) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&key).is_some_and(Entry::running) {
                inner.order.push_back(key);
            } else if let Some(e) = inner.map.remove(&key) {
                inner.bytes -= e.bytes;
            }
        }
    }
}

/// A bounded duplicate-request cache shared by all connections of a server.
pub struct DuplicateRequestCache {
    core: Arc<Core>,
}

fn args_hash(args: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    args[..args.len().min(ARG_HASH_PREFIX)].hash(&mut h);
    h.finish()
}

impl DuplicateRequestCache {
    /// A cache of at most `capacity` calls (0 disables it: every call executes) holding at most
    /// [`DEFAULT_DRC_MAX_BYTES`] of replies.
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(capacity, DEFAULT_DRC_MAX_BYTES)
    }

    /// A cache of at most `capacity` calls and `max_bytes` bytes of recorded replies.
    pub fn with_limits(capacity: usize, max_bytes: usize) -> Self {
        DuplicateRequestCache {
            core: Arc::new(Core {
                capacity,
                max_bytes,
                inner: Mutex::new(Inner {
                    map: HashMap::new(),
                    order: VecDeque::new(),
                    bytes: 0,
                }),
            }),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.core.lock().map.len()
    }

    /// True when no call is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of recorded replies held.
    pub fn bytes(&self) -> usize {
        self.core.lock().bytes
    }

    /// Looks `key` up; a new call is entered as running.
    pub fn lookup(&self, key: DrcKey, args: &[u8]) -> DrcLookup {
        if self.core.capacity == 0 {
            return DrcLookup::Execute(DrcTicket {
                tx: None,
                core: None,
            });
        }
        let hash = args_hash(args);
        let mut inner = self.core.lock();
        if let Some(e) = inner.map.get(&key) {
            if e.args_len == args.len() && e.args_hash == hash {
                let recorded = e.state.borrow().clone();
                if let Some(reply) = recorded {
                    return DrcLookup::Replay(reply);
                }
                if e.running() {
                    return DrcLookup::InProgress(e.state.clone());
                }
                // The running call was abandoned (its task ended without a reply): run the
                // retransmission.
            }
        }
        let (tx, rx) = watch::channel(None);
        let old = inner.map.insert(
            key.clone(),
            Entry {
                args_len: args.len(),
                args_hash: hash,
                bytes: 0,
                state: rx,
            },
        );
        match old {
            Some(old) => inner.bytes -= old.bytes,
            None => inner.order.push_back(key.clone()),
        }
        self.core.evict(&mut inner);
        DrcLookup::Execute(DrcTicket {
            tx: Some(tx),
            core: Some((self.core.clone(), key)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(xid: u32) -> DrcKey {
        DrcKey {
            client: ClientIdentity::Address("127.0.0.1".parse().unwrap()),
            xid,
            prog: 1,
            vers: 1,
            proc_: 1,
        }
    }

    #[tokio::test]
    async fn replay_in_progress_and_bound() {
        let drc = DuplicateRequestCache::new(2);
        let DrcLookup::Execute(t) = drc.lookup(key(1), b"a") else {
            panic!("first call must execute")
        };
        let DrcLookup::InProgress(mut rx) = drc.lookup(key(1), b"a") else {
            panic!("running call must not execute again")
        };
        t.complete(Bytes::from_static(b"reply"));
        rx.wait_for(|v| v.is_some()).await.unwrap();
        assert!(matches!(drc.lookup(key(1), b"a"), DrcLookup::Replay(r) if &r[..] == b"reply"));
        // Same key, different arguments: a new call.
        assert!(matches!(drc.lookup(key(1), b"b"), DrcLookup::Execute(_)));
        for x in 2..10 {
            if let DrcLookup::Execute(t) = drc.lookup(key(x), b"") {
                t.complete(Bytes::new());
            }
        }
        assert!(drc.len() <= 2);
    }

    #[test]
    fn byte_bound_evicts_old_replies() {
        let drc = DuplicateRequestCache::with_limits(100, 1000);
        for x in 0..10 {
            if let DrcLookup::Execute(t) = drc.lookup(key(x), b"") {
                t.complete(Bytes::from(vec![0u8; 300]));
            }
        }
        assert!(drc.bytes() <= 1000, "{} bytes held", drc.bytes());
        assert_eq!(drc.len(), 3);
        assert!(matches!(drc.lookup(key(9), b""), DrcLookup::Replay(_)));
    }
}
