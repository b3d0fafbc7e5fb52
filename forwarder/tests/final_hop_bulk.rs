//! 1 GiB through proxy mode (splice path), byte-identical: the sink (Python, hashlib) hashes
//! what arrived, the expected hash is computed independently by Python from the same
//! generator. Prints the measured throughput.

mod final_hop_support;

use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use final_hop_support::*;

const LO: Ipv6Addr = Ipv6Addr::LOCALHOST;
const BLOCK: usize = 1 << 20;
const BLOCKS: usize = 1024;

/// Block i = 8-octet big-endian i followed by a fixed pseudo-random tail; the same generator
/// is written out in Python below.
fn tail() -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..BLOCK - 8)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

const SINK: &str = r#"
import hashlib, socket, sys
BLOCK, BLOCKS = 1 << 20, 1024
x = 0x12345678
tail = bytearray(BLOCK - 8)
for k in range(BLOCK - 8):
    x ^= (x << 13) & 0xffffffff
    x ^= x >> 17
    x ^= (x << 5) & 0xffffffff
    tail[k] = x & 0xff
exp = hashlib.sha256()
for i in range(BLOCKS):
    exp.update(i.to_bytes(8, "big")); exp.update(tail)
l = socket.socket(socket.AF_INET6); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("::1", 9000)); l.listen(1)
print("ready", flush=True)
c, _ = l.accept()
h = hashlib.sha256(); n = 0; buf = bytearray(1 << 20); mv = memoryview(buf)
while True:
    k = c.recv_into(buf)
    if k == 0: break
    h.update(mv[:k]); n += k
c.sendall(f"{n} {h.hexdigest()} {exp.hexdigest()}\n".encode())
c.close()
"#;

fn one_gib_through_proxy_mode_is_byte_identical() {
    if !enter_netns() {
        return;
    }
    let mut sink = Command::new("python3")
        .args(["-c", SINK])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut ready = [0u8; 6];
    sink.stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    assert_eq!(&ready, b"ready\n");
    let hopd = Hopd::proxy(PORT, "sink", "tcp:[::1]:9000", "tcp");
    let mut s = tcp_connect(hopd.addr, &srh(&[LO], "tcp", "sink", None)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let tail = tail();
    let mut block = vec![0u8; BLOCK];
    block[8..].copy_from_slice(&tail);
    let t0 = Instant::now();
    for i in 0..BLOCKS {
        block[..8].copy_from_slice(&(i as u64).to_be_bytes());
        s.write_all(&block).unwrap();
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let _ = sink.wait();
    let f: Vec<&str> = answer.split_whitespace().collect();
    assert_eq!(f.len(), 3, "sink answered {answer:?}");
    assert_eq!(f[0], (BLOCK * BLOCKS).to_string(), "octets that arrived");
    assert_eq!(f[1], f[2], "sha256 of what arrived vs expected");
    let mib_s = (BLOCK * BLOCKS) as f64 / (1 << 20) as f64 / secs;
    eprintln!(
        "1 GiB through hopd proxy mode (splice) in {secs:.2} s = {mib_s:.0} MiB/s ({:.2} Gbit/s), sha256 {}",
        mib_s * 8.0 * 1.048576 / 1000.0,
        f[1]
    );
}

hopstack_testbed::tests! {
    one_gib_through_proxy_mode_is_byte_identical,
}
