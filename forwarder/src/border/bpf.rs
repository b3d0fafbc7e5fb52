//! In-kernel End: the plain case of hopd's End, done by an eBPF program hopd builds from its
//! configuration and attaches at the ingress of every Ethernet interface (TCX, kernel 6.6 and
//! later), so that a resolved packet is forwarded without ever being copied to hopd.
//!
//! The program rewrites exactly what RFC 8754 End rewrites — Segments Left minus one, the
//! destination address from the Segment List — and lets the kernel route the packet by its new
//! destination; the kernel's forwarding then decrements the Hop Limit (in `hop_limit = "end"`
//! mode the program takes two more, so a hop costs what it costs through hopd). Everything else
//! it leaves untouched for the kernel to route into the TUN as before, where hopd decides:
//!
//! ```text
//!  ingress ──► TCX program ──(plain End)──────► DA, SL rewritten ──► kernel FIB ──► next hop
//!                  │
//!                  └─(anything else)──► unchanged ──► kernel FIB: SID dev hop0 ──► hopd
//! ```
//!
//! "Plain" means: Ethernet + IPv6 + SRH directly (no other extension header first), the
//! destination one of hopd's SIDs, routing type 4, 1 ≤ Segments Left ≤ Last Entry, Last Entry
//! within Hdr Ext Len and within `max_segments`, no O-flag (probes and their trace records go
//! to hopd), a Hop Limit that outlives this hop, and a next segment that is an address —
//! neither a placeholder (late binding is hopd's) nor one of hopd's own SIDs (loop guard),
//! and inside `allowed_next_hops`, as is every later segment that is an address. A border
//! without `allowed_next_hops` (it forwards only to names it resolves) or with `require_hmac`
//! gets no program: those are hopd's.
//! Unlike hopd the program does not walk the TLV area (the kernel's own End does not either).
//!
//! The program is assembled here instruction by instruction (no compiler, no object file):
//! its registers are r6 = the `__sk_buff`, r2 = packet start, r3 = packet end.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use hopstack_encoder::wire::{srh, tlv};

use super::policy::Prefix;
use super::{Config, HopLimitMode};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_MAP_TYPE_PERCPU_ARRAY: u32 = 6;
/// `enum bpf_attach_type`: BPF_TCX_INGRESS (kernel 6.6).
const BPF_TCX_INGRESS: u32 = 46;
/// `TCX_NEXT`: let the packet go on its way (other programs, then the stack).
const TCX_NEXT: i32 = -1;

// Packet offsets: Ethernet (14), IPv6 (40), SRH.
const ETH_TYPE: i16 = 12;
const IP6: i16 = 14;
const NEXT_HEADER: i16 = IP6 + 6;
const HOP_LIMIT: i16 = IP6 + 7;
const DST: i16 = IP6 + 24;
const SRH: i16 = IP6 + 40;
const SRH_HDR_EXT_LEN: i16 = SRH + 1;
const SRH_TYPE: i16 = SRH + 2;
const SRH_SL: i16 = SRH + 3;
const SRH_LAST_ENTRY: i16 = SRH + 4;
const SRH_FLAGS: i16 = SRH + 5;
const SEGMENTS: i16 = SRH + srh::HEADER_LEN as i16;
/// `__sk_buff` fields.
const SKB_LEN: i16 = 0;
const SKB_DATA: i16 = 76;
const SKB_DATA_END: i16 = 80;

/// A tiny eBPF assembler: just what the program needs, with forward labels.
#[derive(Default)]
struct Asm {
    insns: Vec<u64>,
    /// (instruction index, label) of jumps to patch.
    fixups: Vec<(usize, usize)>,
    labels: Vec<Option<usize>>,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | u64::from(dst & 0xf) << 8
        | u64::from(src & 0xf) << 12
        | u64::from(off as u16) << 16
        | u64::from(imm as u32) << 32
}

#[derive(Clone, Copy)]
enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }
}

#[derive(Clone, Copy)]
enum Cond {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Cond {
    fn op(self) -> u8 {
        match self {
            Cond::Eq => 0x10,
            Cond::Gt => 0x20,
            Cond::Ge => 0x30,
            Cond::Ne => 0x50,
            Cond::Lt => 0xa0,
            Cond::Le => 0xb0,
        }
    }
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.insns.len());
    }
    fn ldx(&mut self, size: Size, dst: u8, src: u8, off: i16) {
        self.insns.push(insn(0x61 | size.bits(), dst, src, off, 0));
    }
    fn stx(&mut self, size: Size, dst: u8, src: u8, off: i16) {
        self.insns.push(insn(0x63 | size.bits(), dst, src, off, 0));
    }
    fn st_imm(&mut self, size: Size, dst: u8, off: i16, imm: i32) {
        self.insns.push(insn(0x62 | size.bits(), dst, 0, off, imm));
    }
    fn mov_imm(&mut self, dst: u8, imm: i32) {
        self.insns.push(insn(0xb7, dst, 0, 0, imm));
    }
    fn mov(&mut self, dst: u8, src: u8) {
        self.insns.push(insn(0xbf, dst, src, 0, 0));
    }
    fn add_imm(&mut self, dst: u8, imm: i32) {
        self.insns.push(insn(0x07, dst, 0, 0, imm));
    }
    fn add(&mut self, dst: u8, src: u8) {
        self.insns.push(insn(0x0f, dst, src, 0, 0));
    }
    fn sub(&mut self, dst: u8, src: u8) {
        self.insns.push(insn(0x1f, dst, src, 0, 0));
    }
    fn and(&mut self, dst: u8, src: u8) {
        self.insns.push(insn(0x5f, dst, src, 0, 0));
    }
    fn and_imm(&mut self, dst: u8, imm: i32) {
        self.insns.push(insn(0x57, dst, 0, 0, imm));
    }
    fn lsh_imm(&mut self, dst: u8, imm: i32) {
        self.insns.push(insn(0x67, dst, 0, 0, imm));
    }
    /// Byte-swap the low 16 bits from network order (BPF_END | BPF_TO_BE).
    fn be16(&mut self, dst: u8) {
        self.insns.push(insn(0xdc, dst, 0, 0, 16));
    }
    fn ld_imm64(&mut self, dst: u8, src: u8, v: u64) {
        self.insns.push(insn(0x18, dst, src, 0, v as u32 as i32));
        self.insns.push(insn(0, 0, 0, 0, (v >> 32) as u32 as i32));
    }
    fn jmp_imm(&mut self, c: Cond, dst: u8, imm: i32, to: usize) {
        self.fixups.push((self.insns.len(), to));
        self.insns.push(insn(0x05 | c.op(), dst, 0, 0, imm));
    }
    fn jmp(&mut self, c: Cond, dst: u8, src: u8, to: usize) {
        self.fixups.push((self.insns.len(), to));
        self.insns.push(insn(0x0d | c.op(), dst, src, 0, 0));
    }
    fn ja(&mut self, to: usize) {
        self.fixups.push((self.insns.len(), to));
        self.insns.push(insn(0x05, 0, 0, 0, 0));
    }
    fn call(&mut self, helper: i32) {
        self.insns.push(insn(0x85, 0, 0, 0, helper));
    }
    fn exit(&mut self) {
        self.insns.push(insn(0x95, 0, 0, 0, 0));
    }
    fn finish(mut self) -> Vec<u64> {
        for (at, l) in std::mem::take(&mut self.fixups) {
            let target = self.labels[l].expect("every label bound");
            let off = (target as i64 - at as i64 - 1) as i16;
            self.insns[at] = (self.insns[at] & !(0xffff << 16)) | u64::from(off as u16) << 16;
        }
        self.insns
    }
}

/// The 16 octets of an address as the two little-endian u64 an 8-octet load yields.
fn halves(a: &[u8; 16]) -> (u64, u64) {
    let lo = u64::from_le_bytes(a[..8].try_into().expect("8 octets"));
    let hi = u64::from_le_bytes(a[8..].try_into().expect("8 octets"));
    (lo, hi)
}

/// `prefix` as (mask, value) per half, in load order.
fn masked(prefix: &Prefix) -> [(u64, u64); 2] {
    let len = u32::from(prefix.prefix_len());
    let mask = if len == 0 {
        0u128
    } else {
        u128::MAX << (128 - len)
    };
    let (ml, mh) = halves(&mask.to_be_bytes());
    let (vl, vh) = halves(&(u128::from(prefix.addr()) & mask).to_be_bytes());
    [(ml, vl), (mh, vh)]
}

/// Jump to `hit` if the address at r`base` + `off` is inside one of `prefixes`; falls through
/// otherwise. Uses r0, r4, r5. With `index_at`, the index of the prefix that matched is
/// stored (u32) at that offset from the frame pointer first.
fn match_prefixes(
    a: &mut Asm,
    base: u8,
    off: i16,
    prefixes: &[Prefix],
    hit: usize,
    index_at: Option<i16>,
) {
    for (i, p) in prefixes.iter().enumerate() {
        let miss = a.label();
        for (half, (mask, value)) in masked(p).into_iter().enumerate() {
            if mask == 0 {
                continue;
            }
            a.ldx(Size::DW, 4, base, off + 8 * half as i16);
            a.ld_imm64(5, 0, mask);
            a.and(4, 5);
            a.ld_imm64(0, 0, value);
            a.jmp(Cond::Ne, 4, 0, miss);
        }
        if let Some(at) = index_at {
            a.st_imm(Size::W, 10, at, i as i32);
        }
        a.ja(hit);
        a.bind(miss);
    }
}

/// TLVs walked before the program gives up and leaves the packet to hopd.
const MAX_TLVS: usize = 32;

/// The TLV area must be well formed, as hopd checks it (`tlv::walk`): from the end of the
/// Segment List to the end of the SRH, Pad1 takes one octet, every other TLV two plus its
/// length, and none may run past the end. Unrolled (no loop for the verifier). Uses r0, r1,
/// r4, r5; expects r9 = Last Entry.
fn walk_tlvs(a: &mut Asm, pass: usize) {
    let done = a.label();
    // r4 = where the TLVs start, r5 = where the SRH ends (offsets from the frame start).
    a.mov(4, 9);
    a.add_imm(4, 1);
    a.lsh_imm(4, 4);
    a.add_imm(4, i32::from(SEGMENTS));
    a.ldx(Size::B, 5, 2, SRH_HDR_EXT_LEN);
    a.add_imm(5, 1);
    a.lsh_imm(5, 3);
    a.add_imm(5, i32::from(SRH));
    for _ in 0..MAX_TLVS {
        let next = a.label();
        a.jmp(Cond::Ge, 4, 5, done);
        a.mov(0, 2);
        a.add(0, 4);
        a.mov(1, 0);
        a.add_imm(1, 2);
        a.jmp(Cond::Gt, 1, 3, pass);
        a.ldx(Size::B, 1, 0, 0);
        let not_pad1 = a.label();
        a.jmp_imm(Cond::Ne, 1, 0, not_pad1);
        a.add_imm(4, 1);
        a.ja(next);
        a.bind(not_pad1);
        // Room for type and length, and the value within what is left.
        a.mov(1, 5);
        a.sub(1, 4);
        a.jmp_imm(Cond::Lt, 1, 2, pass);
        a.add_imm(1, -2);
        a.ldx(Size::B, 0, 0, 1);
        a.jmp(Cond::Gt, 0, 1, pass);
        a.add(4, 0);
        a.add_imm(4, 2);
        a.bind(next);
    }
    // More TLVs than walked: hopd decides.
    a.jmp(Cond::Lt, 4, 5, pass);
    a.bind(done);
}

/// `policy.allowed_next_hops` as hopd holds to it: the next segment (at r1) inside the list,
/// and every later segment (Segment List[0 .. SL − 1], SL in r8) inside it or a placeholder
/// for a later border to bind; anything else goes to hopd (`pass`), which refuses it and says
/// why. Unrolled over the most segments `max_segments` lets through. Uses r4, r5, r0 and r9;
/// keeps r1, r2, r3, r6, r7, r8.
fn check_next_hops_allowed(a: &mut Asm, cfg: &Config, pass: usize) {
    let allowed = &cfg.policy.allowed_next_hops;
    let next_in = a.label();
    match_prefixes(a, 1, 0, allowed, next_in, None);
    a.ja(pass);
    a.bind(next_in);
    let placeholder =
        [Prefix::new(tlv::UNRESOLVED_PREFIX, tlv::UNRESOLVED_PREFIX_LEN).expect("valid")];
    let done = a.label();
    // Segment List[i] is a later segment when i + 1 < SL; SL ≤ Last Entry < max_segments.
    for i in 0..i32::from(cfg.policy.max_segments).saturating_sub(1) {
        let fine = a.label();
        a.jmp_imm(Cond::Le, 8, i + 1, done);
        a.mov(9, 2);
        a.add_imm(9, i32::from(SEGMENTS) + 16 * i);
        a.mov(5, 9);
        a.add_imm(5, 16);
        a.jmp(Cond::Gt, 5, 3, pass);
        match_prefixes(a, 9, 0, &placeholder, fine, None);
        match_prefixes(a, 9, 0, allowed, fine, None);
        a.ja(pass);
        a.bind(fine);
    }
    a.bind(done);
}

/// Where the program keeps the index of the SID a packet reached (its counters' key).
const SID_INDEX: i16 = -4;

/// The program for `cfg`; `counters` is the fd of a per-CPU array of (packets, octets), one
/// entry per SID of `cfg`, it counts what it forwards in.
fn assemble(cfg: &Config, counters: i32) -> Vec<u64> {
    let mut a = Asm::default();
    let pass = a.label();
    let ours = a.label();
    let next_ok = a.label();
    let loop_guard = a.label();
    // r6 = skb; r2 = data; r3 = data_end
    a.mov(6, 1);
    a.ldx(Size::W, 2, 6, SKB_DATA);
    a.ldx(Size::W, 3, 6, SKB_DATA_END);
    // The fixed part: Ethernet, IPv6, the SRH's first 8 octets.
    a.mov(4, 2);
    a.add_imm(4, i32::from(SEGMENTS));
    a.jmp(Cond::Gt, 4, 3, pass);
    a.ldx(Size::H, 4, 2, ETH_TYPE);
    a.jmp_imm(Cond::Ne, 4, 0xdd86, pass); // 0x86dd, as loaded little-endian
    a.ldx(Size::B, 4, 2, IP6);
    a.and_imm(4, 0xf0);
    a.jmp_imm(Cond::Ne, 4, 0x60, pass);
    a.ldx(Size::B, 4, 2, NEXT_HEADER);
    a.jmp_imm(Cond::Ne, 4, 43, pass);
    // The destination must be one of our SIDs.
    match_prefixes(&mut a, 2, DST, &cfg.sids, ours, Some(SID_INDEX));
    a.ja(pass);
    a.bind(ours);
    // Hop Limit: the kernel's forwarding takes 1 (and answers Time Exceeded itself at 1); in
    // "end" mode this hop costs 3, as through hopd, so anything that would run out goes to
    // hopd, which says so.
    let end_mode = cfg.hop_limit == HopLimitMode::End;
    a.ldx(Size::B, 7, 2, HOP_LIMIT);
    a.jmp_imm(Cond::Le, 7, if end_mode { 3 } else { 1 }, pass);
    a.ldx(Size::B, 4, 2, SRH_TYPE);
    a.jmp_imm(Cond::Ne, 4, i32::from(srh::ROUTING_TYPE), pass);
    // Any flag (the O-flag: a probe, whose trace record is hopd's) goes to hopd.
    a.ldx(Size::B, 4, 2, SRH_FLAGS);
    a.jmp_imm(Cond::Ne, 4, 0, pass);
    // 1 <= SL <= Last Entry < max_segments, Last Entry within Hdr Ext Len.
    a.ldx(Size::B, 8, 2, SRH_SL);
    a.jmp_imm(Cond::Lt, 8, 1, pass);
    a.ldx(Size::B, 9, 2, SRH_LAST_ENTRY);
    a.jmp(Cond::Gt, 8, 9, pass);
    a.jmp_imm(Cond::Gt, 9, i32::from(cfg.policy.max_segments) - 1, pass);
    a.ldx(Size::B, 4, 2, SRH_HDR_EXT_LEN);
    // Last Entry + 1 segments take 2 * (Last Entry + 1) units of Hdr Ext Len.
    a.mov(5, 9);
    a.add_imm(5, 1);
    a.lsh_imm(5, 1);
    a.jmp(Cond::Gt, 5, 4, pass);
    // The whole SRH within the Payload Length, and that within the packet (skb->len, not
    // the linear part: a GSO packet's payload is in fragments).
    a.add_imm(4, 1);
    a.lsh_imm(4, 3);
    a.ldx(Size::H, 5, 2, IP6 + 4);
    a.be16(5);
    a.jmp(Cond::Gt, 4, 5, pass);
    a.add_imm(5, i32::from(SRH));
    a.ldx(Size::W, 4, 6, SKB_LEN);
    a.jmp(Cond::Gt, 5, 4, pass);
    walk_tlvs(&mut a, pass);
    // r5 = &Segment List[SL - 1], in bounds.
    a.mov(5, 8);
    a.add_imm(5, -1);
    a.lsh_imm(5, 4);
    a.mov(4, 2);
    a.add_imm(4, i32::from(SEGMENTS));
    a.add(4, 5);
    a.mov(5, 4);
    a.add_imm(5, 16);
    a.jmp(Cond::Gt, 5, 3, pass);
    // r4 points at the next segment: not a placeholder, not an address hopd never forwards
    // to (it drops those and says why), not one of our SIDs.
    let mut to_hopd =
        vec![Prefix::new(tlv::UNRESOLVED_PREFIX, tlv::UNRESOLVED_PREFIX_LEN).expect("valid")];
    to_hopd.extend(super::policy::never_next_hop_prefixes());
    a.mov(1, 4);
    match_prefixes(&mut a, 1, 0, &to_hopd, pass, None);
    match_prefixes(&mut a, 1, 0, &cfg.sids, loop_guard, None);
    a.ja(next_ok);
    a.bind(loop_guard);
    a.ja(pass);
    a.bind(next_ok);
    if !cfg.policy.is_open_relay() {
        check_next_hops_allowed(&mut a, cfg, pass);
    }
    // Commit: DA = next segment, SL - 1, the Hop Limit of "end" mode.
    a.ldx(Size::DW, 4, 1, 0);
    a.stx(Size::DW, 2, 4, DST);
    a.ldx(Size::DW, 4, 1, 8);
    a.stx(Size::DW, 2, 4, DST + 8);
    a.add_imm(8, -1);
    a.stx(Size::B, 2, 8, SRH_SL);
    if end_mode {
        a.add_imm(7, -2);
        a.stx(Size::B, 2, 7, HOP_LIMIT);
    }
    // Count it: counters[SID index] += (1, skb->len).
    a.mov(2, 10);
    a.add_imm(2, i32::from(SID_INDEX));
    a.ld_imm64(1, 1, counters as u32 as u64); // BPF_PSEUDO_MAP_FD
    a.call(1); // bpf_map_lookup_elem
    a.jmp_imm(Cond::Eq, 0, 0, pass);
    a.ldx(Size::DW, 4, 0, 0);
    a.add_imm(4, 1);
    a.stx(Size::DW, 0, 4, 0);
    a.ldx(Size::W, 5, 6, SKB_LEN);
    a.ldx(Size::DW, 4, 0, 8);
    a.add(4, 5);
    a.stx(Size::DW, 0, 4, 8);
    a.bind(pass);
    a.mov_imm(0, TCX_NEXT);
    a.exit();
    a.finish()
}

fn bpf(cmd: libc::c_long, attr: &[u8]) -> io::Result<OwnedFd> {
    let fd = bpf_call(cmd, &mut attr.to_vec())?;
    // SAFETY: the kernel returned a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// bpf(2) on `attr`, which the kernel may write results back into.
fn bpf_call(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid bpf_attr prefix of the given size; pointers inside it point at
    // buffers that outlive the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

fn put(attr: &mut [u8], at: usize, v: &[u8]) {
    attr[at..at + v.len()].copy_from_slice(v);
}

/// The loaded program and its counters, not attached anywhere yet.
#[derive(Debug)]
pub struct Program {
    prog: OwnedFd,
    counters: OwnedFd,
    sids: usize,
}

const BPF_PROG_TEST_RUN: libc::c_long = 10;

impl Program {
    /// Assemble the program for `cfg` and have the kernel verify and load it. Needs root of
    /// the initial user namespace (CAP_BPF and CAP_NET_ADMIN).
    pub fn load(cfg: &Config) -> io::Result<Program> {
        let mut attr = [0u8; 72];
        put(&mut attr, 0, &BPF_MAP_TYPE_PERCPU_ARRAY.to_ne_bytes());
        put(&mut attr, 4, &4u32.to_ne_bytes());
        put(&mut attr, 8, &16u32.to_ne_bytes());
        put(&mut attr, 12, &(cfg.sids.len().max(1) as u32).to_ne_bytes());
        let counters = bpf(BPF_MAP_CREATE, &attr)
            .map_err(|e| io::Error::new(e.kind(), format!("BPF_MAP_CREATE: {e}")))?;
        let insns = assemble(cfg, counters.as_raw_fd());
        let license = b"Dual MIT/GPL\0";
        let load = |log: Option<&mut Vec<u8>>| {
            let mut attr = [0u8; 128];
            put(&mut attr, 0, &BPF_PROG_TYPE_SCHED_CLS.to_ne_bytes());
            put(&mut attr, 4, &(insns.len() as u32).to_ne_bytes());
            put(&mut attr, 8, &(insns.as_ptr() as u64).to_ne_bytes());
            put(&mut attr, 16, &(license.as_ptr() as u64).to_ne_bytes());
            if let Some(log) = log {
                put(&mut attr, 24, &1u32.to_ne_bytes());
                put(&mut attr, 28, &(log.len() as u32).to_ne_bytes());
                put(&mut attr, 32, &(log.as_mut_ptr() as u64).to_ne_bytes());
            }
            put(&mut attr, 48, b"hopd_end\0");
            bpf(BPF_PROG_LOAD, &attr)
        };
        let prog = load(None).map_err(|e| {
            // Again with the verifier's log, for the message.
            let mut log = vec![0u8; 1 << 16];
            let _ = load(Some(&mut log));
            let text = String::from_utf8_lossy(&log);
            let tail: Vec<&str> = text.trim_end_matches('\0').lines().rev().take(4).collect();
            io::Error::new(
                e.kind(),
                format!("BPF_PROG_LOAD: {e} ({})", tail.join(" | ")),
            )
        })?;
        Ok(Program {
            prog,
            counters,
            sids: cfg.sids.len(),
        })
    }

    /// Run the program once on `frame` (Ethernet header first) in the kernel
    /// (`BPF_PROG_TEST_RUN`): its return value and the frame as it left it.
    pub fn test_run(&self, frame: &[u8]) -> io::Result<(i32, Vec<u8>)> {
        let mut out = vec![0u8; frame.len() + 256];
        let mut attr = [0u8; 80];
        put(&mut attr, 0, &(self.prog.as_raw_fd() as u32).to_ne_bytes());
        put(&mut attr, 8, &(frame.len() as u32).to_ne_bytes());
        put(&mut attr, 12, &(out.len() as u32).to_ne_bytes());
        put(&mut attr, 16, &(frame.as_ptr() as u64).to_ne_bytes());
        put(&mut attr, 24, &(out.as_mut_ptr() as u64).to_ne_bytes());
        put(&mut attr, 32, &1u32.to_ne_bytes()); // repeat
        // attr describes input and output buffers valid for the sizes given.
        bpf_call(BPF_PROG_TEST_RUN, &mut attr)?;
        let retval = i32::from_ne_bytes(attr[4..8].try_into().expect("4 octets"));
        let len = u32::from_ne_bytes(attr[12..16].try_into().expect("4 octets")) as usize;
        out.truncate(len);
        Ok((retval, out))
    }

    /// Packets and octets the program has forwarded per SID (in `sids` order), summed over
    /// CPUs.
    pub fn counters(&self) -> Vec<(u64, u64)> {
        (0..self.sids).map(|i| self.counter(i as u32)).collect()
    }

    fn counter(&self, key: u32) -> (u64, u64) {
        let mut values = vec![0u64; 2 * possible_cpus()];
        let mut attr = [0u8; 32];
        put(
            &mut attr,
            0,
            &(self.counters.as_raw_fd() as u32).to_ne_bytes(),
        );
        put(&mut attr, 8, &(&key as *const u32 as u64).to_ne_bytes());
        put(&mut attr, 16, &(values.as_mut_ptr() as u64).to_ne_bytes());
        // attr points at the key and a value buffer of one (u64, u64) per possible CPU.
        if bpf_call(BPF_MAP_LOOKUP_ELEM, &mut attr).is_err() {
            return (0, 0);
        }
        values
            .chunks(2)
            .fold((0, 0), |(p, o), c| (p + c[0], o + c[1]))
    }
}

/// The attached program: it stays attached while this lives (the links close with it).
#[derive(Debug)]
pub struct KernelEnd {
    program: Program,
    _links: Vec<OwnedFd>,
    /// Interfaces it is attached to.
    pub interfaces: Vec<String>,
}

impl KernelEnd {
    /// Whether `cfg` can have an in-kernel End at all, and why not.
    pub fn unsupported_by(cfg: &Config) -> Option<&'static str> {
        if cfg.policy.allowed_next_hops.is_empty() {
            Some(
                "without policy.allowed_next_hops only hop names resolved by hopd are \
                 forwarded, and binding them is hopd's",
            )
        } else if cfg.policy.require_hmac {
            Some("policy.require_hmac is checked by hopd only")
        } else {
            None
        }
    }

    /// Build the program for `cfg` and attach it at the ingress of every Ethernet interface
    /// of this network namespace (TCX).
    pub fn attach(cfg: &Config) -> io::Result<KernelEnd> {
        let program = Program::load(cfg)?;
        let mut links = Vec::new();
        let mut interfaces = Vec::new();
        for (name, index) in ethernet_interfaces()? {
            let mut attr = [0u8; 64];
            put(
                &mut attr,
                0,
                &(program.prog.as_raw_fd() as u32).to_ne_bytes(),
            );
            put(&mut attr, 4, &index.to_ne_bytes());
            put(&mut attr, 8, &BPF_TCX_INGRESS.to_ne_bytes());
            let link = bpf(BPF_LINK_CREATE, &attr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("TCX ingress on {name}: {e} (TCX needs kernel 6.6)"),
                )
            })?;
            links.push(link);
            interfaces.push(name);
        }
        Ok(KernelEnd {
            program,
            _links: links,
            interfaces,
        })
    }

    /// Packets and octets forwarded per SID (in `sids` order).
    pub fn counters(&self) -> Vec<(u64, u64)> {
        self.program.counters()
    }
}

/// CPUs the kernel sizes per-CPU maps for (`/sys/devices/system/cpu/possible`, e.g. `0-1`).
fn possible_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| {
            s.trim()
                .split(',')
                .map(|r| r.rsplit('-').next()?.parse::<usize>().ok())
                .max()
                .flatten()
        })
        .map_or(1, |max| max + 1)
}

/// (name, ifindex) of every Ethernet interface here (ARPHRD_ETHER: veth, physical NICs).
fn ethernet_interfaces() -> io::Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/sys/class/net")? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
        if read("type").trim() != "1" {
            continue;
        }
        if let Ok(index) = read("ifindex").trim().parse() {
            out.push((name, index));
        }
    }
    out.sort();
    Ok(out)
}
