//! RFC 5531/4506 interoperability with rpcgen and libtirpc: the `pvdtest` program of
//! integration/rpc-test/pvdtest.x is compiled to C with `rpcgen` + gcc; the generated C client
//! calls the pvd RPC server (found through rpcbind and on its port directly), and the pvd
//! client calls the generated C server (found through PMAP GETPORT). Every request variant
//! (strings, variable arrays, all union arms, optional-data lists, a 1 MiB opaque) is checked
//! against the reference computation described in pvdtest.x.

use pvd_integration::rpcbind::{ensure_rpcbind, random_program, RPCBIND_ADDR};
use pvd_integration::{free_port, require_tool, run_ok, Proc};
use pvd_rpc::rpcbind::{register_with_rpcbind, unregister_with_rpcbind, PmapClient, IPPROTO_TCP};
use pvd_rpc::server::reply;
use pvd_rpc::xdr::Opaque;
use pvd_rpc::{AcceptStat, RpcCall, RpcClient, RpcServer};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

const PVDTEST_VERS: u32 = 1;
const PVDTEST_PROCESS: u32 = 1;
const PVDTEST_COUNT: u32 = 2;
const PVDTEST_MAX_NAME: u32 = 255;
const PVDTEST_MAX_NUMBERS: u32 = 64;
const PVDTEST_MAX_BLOB: u32 = 4_194_304;
const PVDTEST_VARIANTS: i32 = 3;

pvd_rpc::xdr_enum! {
    enum ShapeKind { SHAPE_CIRCLE = 1, SHAPE_RECT = 2, SHAPE_NONE = 3 }
}

pvd_rpc::xdr_struct! {
    #[derive(Debug, Clone, PartialEq)]
    struct Rect {
        width: i32,
        height: i32,
    }
}

pvd_rpc::xdr_union! {
    #[derive(Debug, Clone, PartialEq)]
    enum Shape {
        ShapeKind::SHAPE_CIRCLE.0 => Circle(u32),
        ShapeKind::SHAPE_RECT.0 => Rectangle(Rect),
        ShapeKind::SHAPE_NONE.0 => Nothing(()),
    }
}

pvd_rpc::xdr_struct! {
    #[derive(Debug, Clone, PartialEq)]
    struct Node {
        name: String [max = PVDTEST_MAX_NAME],
        value: i64,
        next: Option<Box<Node>>,
    }
}

pvd_rpc::xdr_struct! {
    #[derive(Debug, Clone, PartialEq)]
    struct PvdRequest {
        name: String [max = PVDTEST_MAX_NAME],
        numbers: Vec<i32> [max = PVDTEST_MAX_NUMBERS],
        s: Shape,
        list: Option<Box<Node>>,
        blob: Opaque [max = PVDTEST_MAX_BLOB],
        flag: bool,
        ratio: f64,
        big: u64,
    }
}

pvd_rpc::xdr_struct! {
    #[derive(Debug, Clone, PartialEq)]
    struct PvdResponse {
        greeting: String [max = PVDTEST_MAX_NAME],
        sum: i64,
        doubled: Shape,
        list_len: u32,
        blob_len: u32,
        blob_checksum: u32,
        blob_reversed: Opaque [max = PVDTEST_MAX_BLOB],
        list_reversed: Option<Box<Node>>,
        flag: bool,
        ratio: f64,
        big: u64,
    }
}

fn list_from(nodes: Vec<(String, i64)>) -> Option<Box<Node>> {
    let mut head = None;
    for (name, value) in nodes.into_iter().rev() {
        head = Some(Box::new(Node {
            name,
            value,
            next: head,
        }));
    }
    head
}

fn list_items(mut l: &Option<Box<Node>>) -> Vec<(String, i64)> {
    let mut out = vec![];
    while let Some(n) = l {
        out.push((n.name.clone(), n.value));
        l = &n.next;
    }
    out
}

/// The same requests as `pvdtest_make_request` in pvdtest_logic.c.
fn make_request(v: i32) -> PvdRequest {
    let count = if v == 1 { 0 } else { 10 + v };
    let nodes = if v == 1 { 0 } else { 3 + v };
    let blob_len: u32 = match v {
        0 => 1_048_576 + 3,
        1 => 0,
        _ => 1000,
    };
    PvdRequest {
        name: match v {
            0 => "interop",
            1 => "",
            _ => "pvd-rust-and-c",
        }
        .into(),
        numbers: (0..count).map(|i| (i * 7919 - 500) * (v + 1)).collect(),
        s: match v % 3 {
            0 => Shape::Rectangle(Rect {
                width: 3 + v,
                height: -4,
            }),
            1 => Shape::Circle(17),
            _ => Shape::Nothing(()),
        },
        list: list_from(
            (0..nodes)
                .map(|i| {
                    (
                        format!("node-{i}"),
                        (i as i64 + 1) * 1_000_000_007 - v as i64,
                    )
                })
                .collect(),
        ),
        blob: (0..blob_len)
            .map(|i| ((i * 31 + 7 + v as u32) & 0xff) as u8)
            .collect::<Vec<u8>>()
            .into(),
        flag: v % 2 == 0,
        ratio: 0.375 + v as f64,
        big: 0xFEDC_BA98_7654_3210u64 + v as u64,
    }
}

/// The reference computation of pvdtest.x (`pvdtest_compute` in pvdtest_logic.c).
fn compute(req: &PvdRequest) -> PvdResponse {
    let items = list_items(&req.list);
    let mut sum = 0i64;
    for n in &req.numbers {
        sum = sum.wrapping_add(*n as i64);
    }
    for (_, v) in &items {
        sum = sum.wrapping_add(*v);
    }
    let blob = req.blob.as_slice();
    let checksum = blob.iter().enumerate().fold(0u32, |acc, (i, b)| {
        acc.wrapping_add((*b as u32).wrapping_mul(i as u32 % 251 + 1))
    });
    let mut reversed = blob.to_vec();
    reversed.reverse();
    PvdResponse {
        greeting: format!("hello, {}", req.name),
        sum,
        doubled: match &req.s {
            Shape::Circle(r) => Shape::Circle(r.wrapping_mul(2)),
            Shape::Rectangle(r) => Shape::Rectangle(Rect {
                width: r.width.wrapping_mul(2),
                height: r.height.wrapping_mul(2),
            }),
            Shape::Nothing(()) => Shape::Nothing(()),
        },
        list_len: items.len() as u32,
        blob_len: blob.len() as u32,
        blob_checksum: checksum,
        blob_reversed: reversed.into(),
        list_reversed: list_from(
            items
                .into_iter()
                .rev()
                .map(|(n, v)| (n.to_ascii_uppercase(), v))
                .collect(),
        ),
        flag: !req.flag,
        ratio: req.ratio * 2.0,
        big: req.big ^ u64::MAX,
    }
}

/// Generates the C sources with rpcgen and builds the client and server into `dir`.
fn build_c_programs(dir: &Path) -> (PathBuf, PathBuf) {
    let rpcgen = require_tool("rpcgen");
    let gcc = require_tool("gcc");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rpc-test");
    for f in [
        "pvdtest.x",
        "pvdtest_logic.c",
        "pvdtest_logic.h",
        "pvdtest_client.c",
        "pvdtest_server.c",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    for (flag, out) in [
        ("-h", "pvdtest.h"),
        ("-c", "pvdtest_xdr.c"),
        ("-l", "pvdtest_clnt.c"),
        ("-m", "pvdtest_svc.c"),
    ] {
        run_ok(
            Command::new(&rpcgen)
                .current_dir(dir)
                .args([flag, "pvdtest.x", "-o", out]),
        );
    }
    let build = |out: &str, sources: &[&str]| {
        let mut c = Command::new(&gcc);
        c.current_dir(dir)
            .args(["-O1", "-I/usr/include/tirpc", "-I.", "-o", out])
            .args(sources)
            .arg("-ltirpc");
        run_ok(&mut c);
        dir.join(out)
    };
    let client = build(
        "pvdtest_client",
        &[
            "pvdtest_client.c",
            "pvdtest_clnt.c",
            "pvdtest_xdr.c",
            "pvdtest_logic.c",
        ],
    );
    let server = build(
        "pvdtest_server",
        &[
            "pvdtest_server.c",
            "pvdtest_svc.c",
            "pvdtest_xdr.c",
            "pvdtest_logic.c",
        ],
    );
    (client, server)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn rust_and_rpcgen_programs_interoperate() {
    ensure_rpcbind();
    let dir = tempfile::tempdir().unwrap();
    let (c_client, c_server) = build_c_programs(dir.path());
    let rt = runtime();

    // 1. The C client calls the pvd server.
    let prog = random_program();
    let processed = Arc::new(AtomicU32::new(0));
    let port = rt.block_on(async {
        let server = RpcServer::new();
        let count = processed.clone();
        server.register_program(prog, PVDTEST_VERS, move |call: RpcCall| {
            let count = count.clone();
            async move {
                match call.proc_ {
                    PVDTEST_PROCESS => {
                        let req: PvdRequest = call.args()?;
                        count.fetch_add(1, Ordering::SeqCst);
                        reply(&compute(&req))
                    }
                    PVDTEST_COUNT => reply(&count.load(Ordering::SeqCst)),
                    _ => Err(AcceptStat::PROC_UNAVAIL),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        server.spawn(listener);
        register_with_rpcbind(prog, PVDTEST_VERS, port)
            .await
            .unwrap();
        port
    });
    // Through rpcbind, then straight to the port.
    for extra in [None, Some(port.to_string())] {
        let mut cmd = Command::new(&c_client);
        cmd.args(["127.0.0.1", &prog.to_string()]);
        if let Some(p) = &extra {
            cmd.arg(p);
        }
        let out = run_ok(&mut cmd);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.matches(" ok ").count(),
            PVDTEST_VARIANTS as usize,
            "C client output: {text}"
        );
    }
    assert_eq!(
        processed.load(Ordering::SeqCst),
        2 * PVDTEST_VARIANTS as u32
    );
    rt.block_on(unregister_with_rpcbind(prog, PVDTEST_VERS))
        .unwrap();

    // 2. The pvd client calls the C server, found through PMAP GETPORT.
    let prog = random_program();
    let c_port = free_port();
    let mut server = Proc::spawn(
        "pvdtest_server",
        Command::new(&c_server)
            .args([prog.to_string(), c_port.to_string()])
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    BufReader::new(server.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "C server did not start");
    rt.block_on(async {
        let pmap = PmapClient::connect(RPCBIND_ADDR.parse().unwrap())
            .await
            .unwrap();
        let found = pmap.getport(prog, PVDTEST_VERS, IPPROTO_TCP).await.unwrap();
        assert_eq!(found, c_port, "PMAP GETPORT of the C server");
        let client = RpcClient::connect(("127.0.0.1", found), prog, PVDTEST_VERS)
            .await
            .unwrap();
        client.null().await.unwrap();
        let before: u32 = client.call(PVDTEST_COUNT, &()).await.unwrap();
        for v in 0..PVDTEST_VARIANTS {
            let req = make_request(v);
            let got: PvdResponse = client.call(PVDTEST_PROCESS, &req).await.unwrap();
            assert_eq!(got, compute(&req), "variant {v} from the C server");
        }
        let after: u32 = client.call(PVDTEST_COUNT, &()).await.unwrap();
        assert_eq!(after, before + PVDTEST_VARIANTS as u32);
        // A procedure the C server does not have.
        assert!(matches!(
            client.call::<(), ()>(9, &()).await,
            Err(pvd_rpc::RpcError::ProcUnavail)
        ));
    });
    server.kill();
    rt.block_on(unregister_with_rpcbind(prog, PVDTEST_VERS))
        .unwrap();
}
