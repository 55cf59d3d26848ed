//! The connect4 program, assembled here instruction by instruction (there is no BPF compiler at
//! build or run time). Pure: [`assemble`] turns the three maps' descriptors into instructions,
//! and the unit tests read them back.
//!
//! What it does, for each `connect()` of an IPv4 socket in a cgroup it is attached to:
//!
//! ```text
//! if protocol != TCP                                   → leave the address alone
//! if netns cookie not in SCOPE                         → leave it (another node's namespace)
//! service = SERVICES[{user_ip4, user_port}]            → none: leave it (not a Service, or one
//!                                                        the nftables rules handle)
//! index = random() % service.count
//! backend = BACKENDS[{service.slot, index}]
//! user_ip4, user_port = backend.ip, backend.port       → the socket connects to the pod itself
//! ```
//!
//! ```text
//! REVERSE[socket cookie] = {user_ip4, user_port} as the caller gave them
//! ```
//!
//! and a second program, on the `getpeername4` hook, puts that address back, so the application
//! sees the peer it connected to (the ClusterIP), as it would through NAT:
//!
//! ```text
//! frontend = REVERSE[socket cookie]                    → none: leave the answer alone
//! user_ip4, user_port = frontend.ip, frontend.port
//! ```
//!
//! Both always return 1 (allow): they never refuse anything, they only rewrite addresses.

/// One BPF instruction (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn { code, regs: (src << 4) | (dst & 0x0f), off, imm }
    }

    pub fn dst(&self) -> u8 {
        self.regs & 0x0f
    }

    pub fn src(&self) -> u8 {
        self.regs >> 4
    }
}

// Opcode parts (linux/bpf_common.h, linux/bpf.h).
const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const STX_W: u8 = 0x63; // BPF_STX | BPF_MEM | BPF_W
const STX_DW: u8 = 0x7b; // BPF_STX | BPF_MEM | BPF_DW
const LD_IMM64: u8 = 0x18; // BPF_LD | BPF_IMM | BPF_DW
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const ADD64_K: u8 = 0x07;
const MOD32_X: u8 = 0x9c; // BPF_ALU | BPF_MOD | BPF_X
const JEQ_K: u8 = 0x15;
const JNE_K: u8 = 0x55;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;
/// `src_reg` of an `LD_IMM64` whose immediate is a map's file descriptor.
const PSEUDO_MAP_FD: u8 = 1;

// Helpers (enum bpf_func_id).
pub const HELPER_MAP_LOOKUP: i32 = 1;
pub const HELPER_MAP_UPDATE: i32 = 2;
pub const HELPER_SOCKET_COOKIE: i32 = 46;
pub const HELPER_PRANDOM_U32: i32 = 7;
pub const HELPER_NETNS_COOKIE: i32 = 122;

// struct bpf_sock_addr field offsets.
pub const CTX_USER_IP4: i16 = 4;
pub const CTX_USER_PORT: i16 = 24;
pub const CTX_PROTOCOL: i16 = 36;

const IPPROTO_TCP: i32 = 6;

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const FP: u8 = 10;

/// The maps the program reads, by file descriptor.
#[derive(Clone, Copy, Debug)]
pub struct Maps {
    /// Network namespace cookie (u64) → anything: where the program acts.
    pub scope: i32,
    /// [`crate::Frontend`] key → `{count: u32, slot: u32}`.
    pub services: i32,
    /// `{slot: u32, index: u32}` → `{ip4: u32, port: u32}`, both as `struct bpf_sock_addr` holds
    /// them (network byte order; the port in the first two bytes).
    pub backends: i32,
    /// Socket cookie (u64) → the frontend it connected to (an LRU map: closed sockets' entries
    /// age out).
    pub reverse: i32,
}

/// A forward jump to the end ("leave the address alone") waiting for its offset.
struct Assembler {
    insns: Vec<Insn>,
    to_out: Vec<usize>,
}

impl Assembler {
    fn push(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    /// A conditional jump to the end.
    fn jump_out(&mut self, code: u8, reg: u8, imm: i32) {
        self.to_out.push(self.insns.len());
        self.push(Insn::new(code, reg, 0, 0, imm));
    }

    fn load_map(&mut self, reg: u8, fd: i32) {
        self.push(Insn::new(LD_IMM64, reg, PSEUDO_MAP_FD, 0, fd));
        self.push(Insn::new(0, 0, 0, 0, 0));
    }

    /// `r0 = map_lookup_elem(map, fp + key_offset)`.
    fn lookup(&mut self, map: i32, key_offset: i32) {
        self.load_map(R1, map);
        self.push(Insn::new(MOV64_X, R2, FP, 0, 0));
        self.push(Insn::new(ADD64_K, R2, 0, 0, key_offset));
        self.push(Insn::new(CALL, 0, 0, 0, HELPER_MAP_LOOKUP));
    }

    fn finish(mut self) -> Vec<Insn> {
        let out = self.insns.len();
        for at in std::mem::take(&mut self.to_out) {
            self.insns[at].off = i16::try_from(out - at - 1).expect("a short program");
        }
        self.push(Insn::new(MOV64_K, R0, 0, 0, 1));
        self.push(Insn::new(EXIT, 0, 0, 0, 0));
        self.insns
    }
}

/// The program's instructions for these maps.
pub fn assemble(maps: Maps) -> Vec<Insn> {
    let mut a = Assembler { insns: Vec::new(), to_out: Vec::new() };
    // r6 = ctx (kept across calls).
    a.push(Insn::new(MOV64_X, R6, R1, 0, 0));
    a.push(Insn::new(LDX_W, R2, R6, CTX_PROTOCOL, 0));
    a.jump_out(JNE_K, R2, IPPROTO_TCP);
    // Only in this node's namespaces: fp-8 = netns cookie.
    a.push(Insn::new(MOV64_X, R1, R6, 0, 0));
    a.push(Insn::new(CALL, 0, 0, 0, HELPER_NETNS_COOKIE));
    a.push(Insn::new(STX_DW, FP, R0, -8, 0));
    a.lookup(maps.scope, -8);
    a.jump_out(JEQ_K, R0, 0);
    // fp-16 = {user_ip4, user_port}.
    a.push(Insn::new(LDX_W, R2, R6, CTX_USER_IP4, 0));
    a.push(Insn::new(STX_W, FP, R2, -16, 0));
    a.push(Insn::new(LDX_W, R2, R6, CTX_USER_PORT, 0));
    a.push(Insn::new(STX_W, FP, R2, -12, 0));
    a.lookup(maps.services, -16);
    a.jump_out(JEQ_K, R0, 0);
    // r7 = count, r8 = slot.
    a.push(Insn::new(LDX_W, R7, R0, 0, 0));
    a.push(Insn::new(LDX_W, R8, R0, 4, 0));
    a.jump_out(JEQ_K, R7, 0);
    a.push(Insn::new(CALL, 0, 0, 0, HELPER_PRANDOM_U32));
    a.push(Insn::new(MOD32_X, R0, R7, 0, 0));
    // fp-24 = {slot, index}.
    a.push(Insn::new(STX_W, FP, R8, -24, 0));
    a.push(Insn::new(STX_W, FP, R0, -20, 0));
    a.lookup(maps.backends, -24);
    a.jump_out(JEQ_K, R0, 0);
    // r7, r8 = the backend's address and port (kept across the calls below).
    a.push(Insn::new(LDX_W, R7, R0, 0, 0));
    a.push(Insn::new(LDX_W, R8, R0, 4, 0));
    // REVERSE[cookie] = the frontend still at fp-16 (fp-8 = the socket's cookie), for
    // getpeername. A failed update only leaves getpeername naming the pod.
    a.push(Insn::new(MOV64_X, R1, R6, 0, 0));
    a.push(Insn::new(CALL, 0, 0, 0, HELPER_SOCKET_COOKIE));
    a.push(Insn::new(STX_DW, FP, R0, -8, 0));
    a.load_map(R1, maps.reverse);
    a.push(Insn::new(MOV64_X, R2, FP, 0, 0));
    a.push(Insn::new(ADD64_K, R2, 0, 0, -8));
    a.push(Insn::new(MOV64_X, R3, FP, 0, 0));
    a.push(Insn::new(ADD64_K, R3, 0, 0, -16));
    a.push(Insn::new(MOV64_K, R4, 0, 0, 0)); // BPF_ANY
    a.push(Insn::new(CALL, 0, 0, 0, HELPER_MAP_UPDATE));
    a.push(Insn::new(STX_W, R6, R7, CTX_USER_IP4, 0));
    a.push(Insn::new(STX_W, R6, R8, CTX_USER_PORT, 0));
    a.finish()
}

/// The `getpeername4` program: the frontend a balanced socket was connected to, in place of
/// the endpoint it runs to.
pub fn assemble_getpeername(maps: Maps) -> Vec<Insn> {
    let mut a = Assembler { insns: Vec::new(), to_out: Vec::new() };
    a.push(Insn::new(MOV64_X, R6, R1, 0, 0));
    a.push(Insn::new(CALL, 0, 0, 0, HELPER_SOCKET_COOKIE));
    a.push(Insn::new(STX_DW, FP, R0, -8, 0));
    a.lookup(maps.reverse, -8);
    a.jump_out(JEQ_K, R0, 0);
    a.push(Insn::new(LDX_W, R2, R0, 0, 0));
    a.push(Insn::new(STX_W, R6, R2, CTX_USER_IP4, 0));
    a.push(Insn::new(LDX_W, R2, R0, 4, 0));
    a.push(Insn::new(STX_W, R6, R2, CTX_USER_PORT, 0));
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: Maps = Maps { scope: 3, services: 4, backends: 5, reverse: 6 };

    #[test]
    fn every_jump_lands_on_the_final_return_of_one() {
        let insns = assemble(MAPS);
        let out = insns.len() - 2;
        assert_eq!(insns[out], Insn::new(MOV64_K, R0, 0, 0, 1));
        assert_eq!(insns[out + 1].code, EXIT);
        let jumps: Vec<usize> = (0..insns.len()).filter(|&i| matches!(insns[i].code, JEQ_K | JNE_K)).collect();
        assert_eq!(jumps.len(), 5, "protocol, scope, service, empty service, backend");
        for at in jumps {
            assert_eq!(at as i64 + 1 + i64::from(insns[at].off), out as i64, "jump at {at}");
        }
        // The only exit is that one.
        assert_eq!(insns.iter().filter(|i| i.code == EXIT).count(), 1);
    }

    #[test]
    fn the_maps_are_loaded_by_descriptor_in_lookup_order() {
        let insns = assemble(MAPS);
        let loads: Vec<i32> = insns.iter().filter(|i| i.code == LD_IMM64).map(|i| i.imm).collect();
        assert_eq!(loads, vec![3, 4, 5, 6]);
        for (at, insn) in insns.iter().enumerate().filter(|(_, i)| i.code == LD_IMM64) {
            assert_eq!((insn.src(), insn.dst()), (PSEUDO_MAP_FD, R1));
            assert_eq!(insns[at + 1], Insn::new(0, 0, 0, 0, 0), "the second half of the 64-bit load");
        }
        let helpers: Vec<i32> = insns.iter().filter(|i| i.code == CALL).map(|i| i.imm).collect();
        assert_eq!(
            helpers,
            vec![
                HELPER_NETNS_COOKIE,
                HELPER_MAP_LOOKUP,
                HELPER_MAP_LOOKUP,
                HELPER_PRANDOM_U32,
                HELPER_MAP_LOOKUP,
                HELPER_SOCKET_COOKIE,
                HELPER_MAP_UPDATE
            ]
        );
    }

    #[test]
    fn only_the_destination_is_written_and_only_after_the_last_lookup() {
        let insns = assemble(MAPS);
        let writes: Vec<(usize, i16)> = insns
            .iter()
            .enumerate()
            .filter(|(_, i)| i.code == STX_W && i.dst() == R6)
            .map(|(at, i)| (at, i.off))
            .collect();
        assert_eq!(writes.iter().map(|w| w.1).collect::<Vec<_>>(), vec![CTX_USER_IP4, CTX_USER_PORT]);
        let last_call = insns.iter().rposition(|i| i.code == CALL).unwrap();
        assert!(writes.iter().all(|(at, _)| *at > last_call));
    }

    #[test]
    fn the_reverse_entry_is_the_frontend_key_under_the_socket_cookie() {
        let insns = assemble(MAPS);
        let update = insns.iter().position(|i| i.code == CALL && i.imm == HELPER_MAP_UPDATE).unwrap();
        // r1 = reverse map, r2 = fp-8 (the cookie just stored), r3 = fp-16 (the frontend key).
        let before = &insns[..update];
        let load = before.iter().rposition(|i| i.code == LD_IMM64).unwrap();
        assert_eq!(before[load].imm, MAPS.reverse);
        let offsets: Vec<(u8, i32)> =
            before[load..].iter().filter(|i| i.code == ADD64_K).map(|i| (i.dst(), i.imm)).collect();
        assert_eq!(offsets, vec![(R2, -8), (R3, -16)]);
        let cookie = before.iter().rposition(|i| i.code == CALL).unwrap();
        assert_eq!(before[cookie].imm, HELPER_SOCKET_COOKIE);
        assert_eq!(before[cookie + 1], Insn::new(STX_DW, FP, R0, -8, 0));
    }

    #[test]
    fn getpeername_puts_back_what_the_reverse_map_holds() {
        let insns = assemble_getpeername(MAPS);
        let helpers: Vec<i32> = insns.iter().filter(|i| i.code == CALL).map(|i| i.imm).collect();
        assert_eq!(helpers, vec![HELPER_SOCKET_COOKIE, HELPER_MAP_LOOKUP]);
        let loads: Vec<i32> = insns.iter().filter(|i| i.code == LD_IMM64).map(|i| i.imm).collect();
        assert_eq!(loads, vec![MAPS.reverse]);
        let out = insns.len() - 2;
        for at in (0..insns.len()).filter(|&i| insns[i].code == JEQ_K) {
            assert_eq!(at as i64 + 1 + i64::from(insns[at].off), out as i64);
        }
        let writes: Vec<i16> = insns.iter().filter(|i| i.code == STX_W && i.dst() == R6).map(|i| i.off).collect();
        assert_eq!(writes, vec![CTX_USER_IP4, CTX_USER_PORT]);
    }
}
