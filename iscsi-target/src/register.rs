//! `--register`: announcing every LUN to the pvd master (DESIGN.md "Control path"), retrying
//! until the master answers.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

use pvd_mapping::server::ServerInfo;

use crate::config::ServerConfig;

/// The portal to announce: `--advertise`, else the listen address, else (listening on a
/// wildcard address) the local address this host uses to reach `master`.
pub fn advertised_portal(cfg: &ServerConfig, local: SocketAddr, master: &str) -> String {
    if let Some(a) = &cfg.advertise {
        return a.clone();
    }
    if !local.ip().is_unspecified() {
        return local.to_string();
    }
    let towards_master = master
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .and_then(|m| {
            let s = UdpSocket::bind(("0.0.0.0", 0)).ok()?;
            s.connect(m).ok()?;
            s.local_addr().ok()
        });
    match towards_master {
        Some(a) => SocketAddr::new(a.ip(), local.port()).to_string(),
        None => SocketAddr::new([127, 0, 0, 1].into(), local.port()).to_string(),
    }
}

/// What the master is told about each LUN.
pub fn server_infos(cfg: &ServerConfig, portal: &str) -> Vec<ServerInfo> {
    let mut out = Vec::new();
    for t in &cfg.targets {
        for (n, l) in t.luns.iter().enumerate() {
            let capacity = lun_capacity(&l.path).unwrap_or(0);
            let bs = l.block_size as u64;
            out.push(ServerInfo {
                portal: portal.to_string(),
                iqn: t.iqn.clone(),
                lun: n as u64,
                capacity_bytes: capacity / bs * bs,
                block_size: l.block_size,
            });
        }
    }
    out
}

fn lun_capacity(path: &std::path::Path) -> std::io::Result<u64> {
    use std::io::Seek;
    let mut f = std::fs::File::open(path)?;
    f.seek(std::io::SeekFrom::End(0))
}

/// Registers every LUN of `cfg` (served at `local`) with `master`; logs the outcome.
pub async fn register(master: String, cfg: ServerConfig, local: SocketAddr) {
    let portal = advertised_portal(&cfg, local, &master);
    let infos = server_infos(&cfg, &portal);
    match pvd_mapping::master::register_luns(&master, infos).await {
        Ok(ids) => tracing::info!(%master, ?ids, %portal, "LUNs registered"),
        Err(e) => tracing::error!(%master, error = %e, "registering with the master failed"),
    }
}
