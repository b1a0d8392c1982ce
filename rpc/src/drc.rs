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
//! **Bound.** At most `capacity` entries; the oldest finished entries are evicted first.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use tokio::sync::watch;

use crate::auth::{AuthFlavor, OpaqueAuth};

/// Default number of calls remembered.
pub const DEFAULT_DRC_CAPACITY: usize = 4096;
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
}

impl DrcTicket {
    /// Records `reply` (the whole reply message) for retransmissions and wakes their waiters.
    pub fn complete(mut self, reply: Bytes) {
        if let Some(tx) = self.tx.take() {
            tx.send_replace(Some(reply));
        }
    }
}

struct Entry {
    args_len: usize,
    args_hash: u64,
    state: watch::Receiver<Option<Bytes>>,
}

struct Inner {
    map: HashMap<DrcKey, Entry>,
    order: VecDeque<DrcKey>,
}

/// A bounded duplicate-request cache shared by all connections of a server.
pub struct DuplicateRequestCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

fn args_hash(args: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    args[..args.len().min(ARG_HASH_PREFIX)].hash(&mut h);
    h.finish()
}

impl DuplicateRequestCache {
    /// A cache of at most `capacity` calls (0 disables it: every call executes).
    pub fn new(capacity: usize) -> Self {
        DuplicateRequestCache {
            capacity,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }

    /// True when no call is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks `key` up; a new call is entered as running.
    pub fn lookup(&self, key: DrcKey, args: &[u8]) -> DrcLookup {
        if self.capacity == 0 {
            return DrcLookup::Execute(DrcTicket { tx: None });
        }
        let hash = args_hash(args);
        let mut inner = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(e) = inner.map.get(&key) {
            if e.args_len == args.len() && e.args_hash == hash {
                let cur = e.state.borrow().clone();
                return match cur {
                    Some(reply) => DrcLookup::Replay(reply),
                    None if e.state.has_changed().is_err() => {
                        // The running call was abandoned (its task ended without a reply):
                        // run the retransmission.
                        let (tx, rx) = watch::channel(None);
                        inner.map.insert(
                            key,
                            Entry {
                                args_len: args.len(),
                                args_hash: hash,
                                state: rx,
                            },
                        );
                        DrcLookup::Execute(DrcTicket { tx: Some(tx) })
                    }
                    None => DrcLookup::InProgress(e.state.clone()),
                };
            }
        }
        let (tx, rx) = watch::channel(None);
        let fresh = inner
            .map
            .insert(
                key.clone(),
                Entry {
                    args_len: args.len(),
                    args_hash: hash,
                    state: rx,
                },
            )
            .is_none();
        if fresh {
            inner.order.push_back(key);
        }
        self.evict(&mut inner);
        DrcLookup::Execute(DrcTicket { tx: Some(tx) })
    }

    fn evict(&self, inner: &mut Inner) {
        let mut budget = inner.order.len();
        while inner.map.len() > self.capacity && budget > 0 {
            budget -= 1;
            let Some(key) = inner.order.pop_front() else {
                break;
            };
            let running = inner
                .map
                .get(&key)
                .is_some_and(|e| e.state.borrow().is_none() && e.state.has_changed().is_ok());
            if running {
                inner.order.push_back(key);
            } else {
                inner.map.remove(&key);
            }
        }
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
}
