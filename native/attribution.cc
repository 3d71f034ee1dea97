// Who changes offload features: hand-written BPF programs of type tracepoint on the system-call
// tracepoints that carry the requests which change features, loaded with the bpf() system call
// (no libbpf, no compiler at run time).
//
//   sys_enter_ioctl    cmd == SIOCETHTOOL and the ethtool command (the first u32 at ifr_data)
//                      is ETHTOOL_SFEATURES or a legacy per-feature set (SGRO, SGSO, STSO, ...)
//   sys_enter_sendto   a generic-netlink message of the ethtool family whose command is
//   sys_enter_write    ETHTOOL_MSG_FEATURES_SET (only the first message of the buffer)
//   sys_enter_sendmsg  the same, in the first iovec of the msghdr
//
// sendto to an IP address (dest_addr set, addr_len 16..28 or < 12) returns before any read of user
// memory; sendmsg after reading the msghdr. Everything else returns after at most one read of user memory, so the cost
// on the host's other system calls stays small (bench/scenarios/attribution.ts measures it). A match is copied into a
// BPF ring buffer with the sender's tgid, tid, comm, uid, gid, cgroup id, network namespace (see
// netns below) and the kernel's CLOCK_MONOTONIC time (bpf_ktime_get_ns); the raw request bytes (ifr_name, or the
// netlink message's first bytes) are parsed in TypeScript. A full ring buffer never blocks the sender: the record is
// dropped and counted in a per-CPU array. The daemon's own requests (its tgid, written into the config map) are dropped
// in the kernel; in a PID namespace of its own, compared as it sees them (see pidNamespace below).
//
// JavaScript surface (src/addon/binding.ts):
//   new Attribution({ selfTgid, ringBytes, syscalls, hook, netns, pidNamespace }, onRecords(records, count))
//     .close() .dropped() .attached() .hook() .ethtoolFamily() .kernelNetns() .pidNamespace() .drain()
//     .ref() .unref()
//   netns: { taskNsproxy, nsproxyNetNs, netInum }, byte offsets from the kernel's BTF: then each
//   record carries the sender's network namespace inode (current->nsproxy->net_ns->ns.inum, read
//   with bpf_probe_read_kernel for matched requests only) and is submitted with BPF_RB_NO_WAKEUP,
//   waking the daemon only when the ring is more than half full; the daemon drains when it needs
//   the records (a drift asks for its actor). Without it: a wakeup per record.
//   pidNamespace: { dev, ino } of the daemon's PID namespace (stat of /proc/self/ns/pid), given only
//   when it is not the initial one (a container): then pid and tid come from
//   bpf_get_ns_current_pid_tgid, as the daemon sees them in its /proc (and its own tgid filter
//   matches); a sender whose PID namespace is another one (the host's, a sibling or a nested
//   container's) is recorded with pid 0 and kRecordOutsidePidNamespace. Without it:
//   bpf_get_current_pid_tgid, the initial namespace's pids, at no extra cost.
//   hook: 'tracepoint' (one program per syscalls:sys_enter_X, through perf_event_open; needs
//   tracefs for the ids) or 'raw_tracepoint' (one program on sys_enter for every system call,
//   dispatching on the number; needs neither tracefs nor perf_event_open).
//   Errors carry errno, syscall and `stage` (tracefs | map | load | attach), and the verifier's
//   log as `verifierLog` when it refused a program.
#include "attribution.h"

#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "netlink.h"
#include "poll.h"
#include "syscall.h"

namespace offloadd {
namespace {

// ---- Record layout (mirrored by src/attribution/record.ts) -------------------------------------
constexpr int kRecordKtime = 0;           // u64 bpf_ktime_get_ns (CLOCK_MONOTONIC)
constexpr int kRecordCgroup = 8;          // u64 bpf_get_current_cgroup_id (cgroup2 directory inode)
constexpr int kRecordTgid = 16;           // u32
constexpr int kRecordTid = 20;            // u32
constexpr int kRecordUid = 24;            // u32
constexpr int kRecordGid = 28;            // u32
constexpr int kRecordSyscall = 32;        // u32 kSyscall*
constexpr int kRecordCommand = 36;        // u32 ethtool ioctl command, or the genl command
constexpr int kRecordArgument = 40;       // u32 ioctl: the u32 after the command; netlink: nlmsg_type
constexpr int kRecordPayloadLength = 44;  // u32 bytes of payload copied (0: the copy failed)
constexpr int kRecordComm = 48;           // char[16]
constexpr int kRecordNetns = 64;          // u32 the sender's network namespace inode (0: not known)
constexpr int kRecordFlags = 68;          // u32 kRecordHas*
constexpr int kRecordPayload = 72;        // ioctl: ifr_name[16]; netlink: the message's first bytes
constexpr int kPayloadBytes = 128;
constexpr int kRecordBytes = kRecordPayload + kPayloadBytes;

// The program read the namespace (from the BTF offsets it was given): kRecordNetns is the kernel's
// answer, 0 only when the task had none left (exiting).
constexpr int32_t kRecordHasNetns = 1;
// The programs translate pids into the daemon's PID namespace, and the sender was not in it:
// kRecordTgid and kRecordTid are 0 (bpf_get_ns_current_pid_tgid refused).
constexpr int32_t kRecordOutsidePidNamespace = 2;

constexpr uint32_t kSyscallIoctl = 1;
constexpr uint32_t kSyscallSendto = 2;
constexpr uint32_t kSyscallSendmsg = 3;
constexpr uint32_t kSyscallWrite = 4;

constexpr uint32_t kSiocEthtool = 0x8946;
// include/uapi/linux/ethtool.h: the set commands that change netdev features.
constexpr int32_t kEthtoolSetCommands[] = {
    0x3b,  // ETHTOOL_SFEATURES
    0x2c,  // ETHTOOL_SGRO
    0x24,  // ETHTOOL_SGSO
    0x1f,  // ETHTOOL_STSO
    0x19,  // ETHTOOL_SSG
    0x17,  // ETHTOOL_STXCSUM
    0x15,  // ETHTOOL_SRXCSUM
    0x26,  // ETHTOOL_SFLAGS (LRO, VLAN, ntuple, rxhash)
    0x22,  // ETHTOOL_SUFO
};
constexpr int32_t kEthtoolMsgFeaturesSet = 12;  // ETHTOOL_MSG_FEATURES_SET
constexpr int32_t kGenlMinId = 16;              // GENL_MIN_ID: below are netlink control types
constexpr int32_t kNetlinkHeaderBytes = 20;     // nlmsghdr (16) + genlmsghdr (4)
// A destination address a netlink socket accepts is at least a sockaddr_nl; one of the lengths of
// sockaddr_in (16) up to sockaddr_in6 (28), or shorter than sockaddr_nl, is an IP send: the
// user-memory read is skipped. (The kernel accepts a padded sockaddr_nl of 13..28 bytes too; no
// netlink library sends one.)
constexpr int32_t kSockaddrNlBytes = 12;
constexpr int32_t kSockaddrIn6Bytes = 28;

constexpr uint32_t kDefaultRingBytes = 256 * 1024;
constexpr double kMaxSafeInteger = 9007199254740991.0;  // Number.MAX_SAFE_INTEGER
constexpr int64_t kMaxKernelOffset = 1 << 20;           // a member offset in task_struct, nsproxy or net
constexpr size_t kVerifierLogBytes = 64 * 1024;
constexpr size_t kMaxRecordsPerWakeup = 4096;  // then yield to the loop (the poll is level-triggered)

// ---- A small BPF assembler, after include/linux/filter.h's BPF_* instruction macros -------------
enum Reg : uint8_t { R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 };

class Assembler {
 public:
  void Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
    bpf_insn insn;
    std::memset(&insn, 0, sizeof insn);
    insn.code = code;
    insn.dst_reg = dst;
    insn.src_reg = src;
    insn.off = off;
    insn.imm = imm;
    insns_.push_back(insn);
  }
  void MovImm(Reg dst, int32_t imm) { Insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
  // BPF_LD_IMM64: a 64-bit constant (MovImm sign-extends its 32 bits).
  void LoadImm64(Reg dst, uint64_t imm) {
    Insn(BPF_LD | BPF_DW | BPF_IMM, dst, 0, 0, static_cast<int32_t>(static_cast<uint32_t>(imm)));
    Insn(0, 0, 0, 0, static_cast<int32_t>(static_cast<uint32_t>(imm >> 32)));
  }
  void MovReg(Reg dst, Reg src) { Insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
  void AddImm(Reg dst, int32_t imm) { Insn(BPF_ALU64 | BPF_ADD | BPF_K, dst, 0, 0, imm); }
  void OrImm(Reg dst, int32_t imm) { Insn(BPF_ALU64 | BPF_OR | BPF_K, dst, 0, 0, imm); }
  void RshImm(Reg dst, int32_t imm) { Insn(BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, imm); }
  void Load(uint8_t size, Reg dst, Reg src, int16_t off) { Insn(BPF_LDX | size | BPF_MEM, dst, src, off, 0); }
  void Store(uint8_t size, Reg dst, int16_t off, Reg src) { Insn(BPF_STX | size | BPF_MEM, dst, src, off, 0); }
  void StoreImm(uint8_t size, Reg dst, int16_t off, int32_t imm) { Insn(BPF_ST | size | BPF_MEM, dst, 0, off, imm); }
  // BPF_LD_MAP_FD: a 16-byte instruction the kernel rewrites into the map's address.
  void LoadMap(Reg dst, int fd) {
    Insn(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd);
    Insn(0, 0, 0, 0, 0);
  }
  void Call(int32_t helper) { Insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
  void Exit() { Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }
  // Conditional jumps to a label, resolved by Finish(); op is BPF_JEQ, BPF_JNE, BPF_JGT, ...
  // Labels are local to a scope, so one program can hold several bodies (the raw tracepoint's).
  void Scope(const std::string& prefix) { prefix_ = prefix; }
  void JumpImm(uint8_t op, Reg dst, int32_t imm, const std::string& label) {
    fixups_.push_back({insns_.size(), prefix_ + label});
    Insn(BPF_JMP | op | BPF_K, dst, 0, 0, imm);
  }
  void JumpReg(uint8_t op, Reg dst, Reg src, const std::string& label) {
    fixups_.push_back({insns_.size(), prefix_ + label});
    Insn(BPF_JMP | op | BPF_X, dst, src, 0, 0);
  }
  void Goto(const std::string& label) {
    fixups_.push_back({insns_.size(), prefix_ + label});
    Insn(BPF_JMP | BPF_JA, 0, 0, 0, 0);
  }
  void Label(const std::string& name) { labels_[prefix_ + name] = insns_.size(); }

  // Helper calls clobber r1-r5: a call with a pointer into the stack.
  void StackPointer(Reg dst, int16_t offset) {
    MovReg(dst, R10);
    AddImm(dst, offset);
  }

  const std::vector<bpf_insn>& Finish() {
    for (const auto& [at, label] : fixups_) {
      auto found = labels_.find(label);
      if (found == labels_.end()) throw std::logic_error("BPF label " + label + " is not defined");
      insns_[at].off = static_cast<int16_t>(static_cast<long>(found->second) - static_cast<long>(at) - 1);
    }
    return insns_;
  }

 private:
  std::vector<bpf_insn> insns_;
  std::map<std::string, size_t> labels_;
  std::vector<std::pair<size_t, std::string>> fixups_;
  std::string prefix_;
};

// Stack layout (offsets from r10, the frame pointer).
constexpr int16_t kStackKey = -8;          // u32 0: the key of the one-entry arrays
constexpr int16_t kStackSelf = -16;        // u32 the daemon's tgid
constexpr int16_t kStackPidTgid = -24;     // u64 bpf_get_current_pid_tgid()
constexpr int16_t kStackCommand = -32;     // u32
constexpr int16_t kStackArgument = -28;    // u32
constexpr int16_t kStackScratch = -64;     // 32 bytes: ifreq head, msghdr or netlink header
constexpr int16_t kStackEthtoolCmd = -40;  // 8 bytes: the ethtool command and the u32 after it
constexpr int16_t kStackIovec = -80;       // 16 bytes: iovec[0]
constexpr int16_t kStackPidFlags = -88;    // u32 kRecordOutsidePidNamespace or 0

struct Offsets {  // of the tracepoint's arguments in its context, from the format file
  int16_t first = 0;
  int16_t second = 0;
  // sendto only: dest_addr and addr_len (-1: not read)
  int16_t address = -1;
  int16_t addressLength = -1;
};

// Where the sender's network namespace inode lies (src/attribution/btf.ts reads them from the
// kernel's BTF): task_struct.nsproxy, nsproxy.net_ns, net.ns + ns_common.inum. taskNsproxy < 0:
// unknown, the records carry no namespace and every record wakes the daemon up.
struct NetnsOffsets {
  int32_t taskNsproxy = -1;
  int32_t nsproxyNetNs = 0;
  int32_t netInum = 0;
};

// The daemon's PID namespace as bpf_get_ns_current_pid_tgid wants it: the nsfs device in the
// kernel's encoding (MKDEV: major << 20 | minor, not stat's st_dev) and the inode. ino 0: the
// initial namespace, bpf_get_current_pid_tgid.
struct PidNamespace {
  uint64_t dev = 0;
  uint64_t ino = 0;
};
constexpr int kKernelMinorBits = 20;  // include/linux/kdev_t.h MINORBITS

struct Maps {
  PidNamespace pidNamespace;
  int config = -1;  // array[1] of { u32 self_tgid; u32 ethtool_family }
  int ring = -1;
  int drops = -1;  // per-CPU array[1] of u64
  NetnsOffsets netns;
  // With the namespace in the record the daemon is not woken per record: it drains when a drift
  // asks, or when the ring holds more than this many bytes.
  int32_t wakeupBytes = 0;
};

// r1 = the address of a kernel pointer (r3 on entry): reads it to the stack slot, then into r3;
// jumps to `failed` when the read fails or the pointer is NULL.
void EmitReadKernelPointer(Assembler& a, int32_t offset, const std::string& failed) {
  a.AddImm(R3, offset);
  a.StackPointer(R1, kStackScratch);
  a.MovImm(R2, 8);
  a.Call(BPF_FUNC_probe_read_kernel);
  a.JumpImm(BPF_JNE, R0, 0, failed);
  a.Load(BPF_DW, R3, R10, kStackScratch);
  a.JumpImm(BPF_JEQ, R3, 0, failed);
}

// Jumps to "out" unless the config map says this request is not the daemon's own; then reserves a
// record, fills it and submits it. Expects: r7 = payload pointer (user memory), r8 = payload length
// (bounded to 1..kPayloadBytes), the command and argument on the stack.
void EmitRecord(Assembler& a, const Maps& maps, uint32_t syscallKind) {
  a.StoreImm(BPF_W, R10, kStackKey, 0);
  a.LoadMap(R1, maps.config);
  a.StackPointer(R2, kStackKey);
  a.Call(BPF_FUNC_map_lookup_elem);
  a.JumpImm(BPF_JEQ, R0, 0, "out");
  a.Load(BPF_W, R1, R0, 0);
  a.Store(BPF_W, R10, kStackSelf, R1);
  if (maps.pidNamespace.ino != 0) {
    // struct bpf_pidns_info { u32 pid; u32 tgid; } reads as the u64 bpf_get_current_pid_tgid
    // returns (tgid << 32 | pid) on these little-endian targets; the helper zeroes it when the
    // sender's PID namespace is not the daemon's.
    a.LoadImm64(R1, maps.pidNamespace.dev);
    a.LoadImm64(R2, maps.pidNamespace.ino);
    a.StackPointer(R3, kStackPidTgid);
    a.MovImm(R4, 8);
    a.Call(BPF_FUNC_get_ns_current_pid_tgid);
    a.StoreImm(BPF_W, R10, kStackPidFlags, 0);
    a.JumpImm(BPF_JEQ, R0, 0, "in_pid_namespace");
    a.StoreImm(BPF_W, R10, kStackPidFlags, kRecordOutsidePidNamespace);
    a.Label("in_pid_namespace");
    a.Load(BPF_DW, R0, R10, kStackPidTgid);
  } else {
    a.Call(BPF_FUNC_get_current_pid_tgid);
    a.Store(BPF_DW, R10, kStackPidTgid, R0);
  }
  a.RshImm(R0, 32);
  a.Load(BPF_W, R1, R10, kStackSelf);
  a.JumpReg(BPF_JEQ, R0, R1, "out");

  a.LoadMap(R1, maps.ring);
  a.MovImm(R2, kRecordBytes);
  a.MovImm(R3, 0);
  a.Call(BPF_FUNC_ringbuf_reserve);
  a.JumpImm(BPF_JEQ, R0, 0, "full");
  a.MovReg(R6, R0);

  a.Call(BPF_FUNC_ktime_get_ns);
  a.Store(BPF_DW, R6, kRecordKtime, R0);
  a.Call(BPF_FUNC_get_current_cgroup_id);
  a.Store(BPF_DW, R6, kRecordCgroup, R0);
  a.Load(BPF_DW, R1, R10, kStackPidTgid);
  a.Store(BPF_W, R6, kRecordTid, R1);
  a.RshImm(R1, 32);
  a.Store(BPF_W, R6, kRecordTgid, R1);
  a.Call(BPF_FUNC_get_current_uid_gid);
  a.Store(BPF_W, R6, kRecordUid, R0);
  a.RshImm(R0, 32);
  a.Store(BPF_W, R6, kRecordGid, R0);
  a.StoreImm(BPF_W, R6, kRecordSyscall, static_cast<int32_t>(syscallKind));
  a.Load(BPF_W, R1, R10, kStackCommand);
  a.Store(BPF_W, R6, kRecordCommand, R1);
  a.Load(BPF_W, R1, R10, kStackArgument);
  a.Store(BPF_W, R6, kRecordArgument, R1);
  a.MovReg(R1, R6);
  a.AddImm(R1, kRecordComm);
  a.MovImm(R2, 16);
  a.Call(BPF_FUNC_get_current_comm);
  a.StoreImm(BPF_W, R6, kRecordNetns, 0);
  if (maps.pidNamespace.ino != 0) {
    a.Load(BPF_W, R1, R10, kStackPidFlags);
    if (maps.netns.taskNsproxy >= 0) a.OrImm(R1, kRecordHasNetns);
    a.Store(BPF_W, R6, kRecordFlags, R1);
  } else {
    a.StoreImm(BPF_W, R6, kRecordFlags, maps.netns.taskNsproxy >= 0 ? kRecordHasNetns : 0);
  }
  if (maps.netns.taskNsproxy >= 0) {
    // current->nsproxy->net_ns->ns.inum, three kernel reads, only for a request that matched.
    a.Call(BPF_FUNC_get_current_task);
    a.MovReg(R3, R0);
    EmitReadKernelPointer(a, maps.netns.taskNsproxy, "netns_done");
    EmitReadKernelPointer(a, maps.netns.nsproxyNetNs, "netns_done");
    a.AddImm(R3, maps.netns.netInum);
    a.MovReg(R1, R6);
    a.AddImm(R1, kRecordNetns);
    a.MovImm(R2, 4);
    a.Call(BPF_FUNC_probe_read_kernel);  // zeroes the field when it fails
    a.Label("netns_done");
  }
  a.MovReg(R1, R6);
  a.AddImm(R1, kRecordPayload);
  a.MovReg(R2, R8);
  a.MovReg(R3, R7);
  a.Call(BPF_FUNC_probe_read_user);
  a.JumpImm(BPF_JEQ, R0, 0, "copied");
  a.MovImm(R8, 0);
  a.Label("copied");
  a.Store(BPF_W, R6, kRecordPayloadLength, R8);
  if (maps.netns.taskNsproxy >= 0) {
    // No wakeup per record (the daemon would run at every request, before the link event it
    // causes); one when the ring is more than half full, so it never fills while the daemon sleeps.
    a.LoadMap(R1, maps.ring);
    a.MovImm(R2, BPF_RB_AVAIL_DATA);
    a.Call(BPF_FUNC_ringbuf_query);
    a.MovImm(R2, BPF_RB_NO_WAKEUP);
    a.JumpImm(BPF_JLE, R0, maps.wakeupBytes, "quiet");
    a.MovImm(R2, BPF_RB_FORCE_WAKEUP);
    a.Label("quiet");
  } else {
    a.MovImm(R2, 0);
  }
  a.MovReg(R1, R6);
  a.Call(BPF_FUNC_ringbuf_submit);
  a.Goto("out");

  // The ring buffer is full: count the loss, never wait.
  a.Label("full");
  a.LoadMap(R1, maps.drops);
  a.StackPointer(R2, kStackKey);
  a.Call(BPF_FUNC_map_lookup_elem);
  a.JumpImm(BPF_JEQ, R0, 0, "out");
  a.Load(BPF_DW, R1, R0, 0);
  a.AddImm(R1, 1);
  a.Store(BPF_DW, R0, 0, R1);

  a.Label("out");
  a.MovImm(R0, 0);
  a.Exit();
}

// ioctl(fd, cmd, arg): SIOCETHTOOL with a feature-setting ethtool command.
void EmitIoctl(Assembler& a, const Maps& maps, const Offsets& at) {
  a.Load(BPF_W, R2, R1, at.first);  // cmd (the low half of its 8-byte slot: both targets are little-endian)
  a.JumpImm(BPF_JNE, R2, static_cast<int32_t>(kSiocEthtool), "out");
  a.Load(BPF_DW, R7, R1, at.second);  // struct ifreq __user *
  a.StackPointer(R1, kStackScratch);
  a.MovImm(R2, 24);  // ifr_name[16] + ifr_data
  a.MovReg(R3, R7);
  a.Call(BPF_FUNC_probe_read_user);
  a.JumpImm(BPF_JNE, R0, 0, "out");
  a.Load(BPF_DW, R3, R10, kStackScratch + 16);  // ifr_data
  a.StackPointer(R1, kStackEthtoolCmd);
  a.MovImm(R2, 8);
  a.Call(BPF_FUNC_probe_read_user);
  a.JumpImm(BPF_JNE, R0, 0, "out");
  a.Load(BPF_W, R1, R10, kStackEthtoolCmd);
  for (int32_t command : kEthtoolSetCommands) a.JumpImm(BPF_JEQ, R1, command, "match");
  a.Goto("out");
  a.Label("match");
  a.Store(BPF_W, R10, kStackCommand, R1);
  a.Load(BPF_W, R1, R10, kStackEthtoolCmd + 4);
  a.Store(BPF_W, R10, kStackArgument, R1);
  a.MovImm(R8, 16);  // payload: ifr_name, re-read from r7
  EmitRecord(a, maps, kSyscallIoctl);
}

// r7 = buffer, r8 = its length: an ethtool FEATURES_SET at its start, or "out".
void EmitNetlinkCheck(Assembler& a, const Maps& maps) {
  a.JumpImm(BPF_JLT, R8, kNetlinkHeaderBytes, "out");
  a.StackPointer(R1, kStackScratch);
  a.MovImm(R2, kNetlinkHeaderBytes);
  a.MovReg(R3, R7);
  a.Call(BPF_FUNC_probe_read_user);
  a.JumpImm(BPF_JNE, R0, 0, "out");
  a.Load(BPF_B, R1, R10, kStackScratch + NLMSG_HDRLEN);  // genlmsghdr.cmd
  a.JumpImm(BPF_JNE, R1, kEthtoolMsgFeaturesSet, "out");
  a.Store(BPF_W, R10, kStackCommand, R1);
  a.Load(BPF_H, R1, R10, kStackScratch + 4);  // nlmsg_type: the family
  a.JumpImm(BPF_JLT, R1, kGenlMinId, "out");
  a.Store(BPF_W, R10, kStackArgument, R1);
  // The ethtool family's id, when the daemon resolved it (0: user space checks nlmsg_type).
  a.StoreImm(BPF_W, R10, kStackKey, 0);
  a.LoadMap(R1, maps.config);
  a.StackPointer(R2, kStackKey);
  a.Call(BPF_FUNC_map_lookup_elem);
  a.JumpImm(BPF_JEQ, R0, 0, "out");
  a.Load(BPF_W, R1, R0, 4);
  a.JumpImm(BPF_JEQ, R1, 0, "family_ok");
  a.Load(BPF_W, R2, R10, kStackArgument);
  a.JumpReg(BPF_JNE, R1, R2, "out");
  a.Label("family_ok");
  a.JumpImm(BPF_JLE, R8, kPayloadBytes, "bounded");
  a.MovImm(R8, kPayloadBytes);
  a.Label("bounded");
}

// r2 = the destination address, r3 = its length (sendto's, or msghdr's msg_name and msg_namelen):
// "out" when it cannot be a netlink socket's (an IP address), before any read of user memory. No
// address (NULL, or length 0) can be a connected netlink socket's.
void EmitAddressCheck(Assembler& a) {
  a.JumpImm(BPF_JEQ, R2, 0, "may_be_netlink");
  a.JumpImm(BPF_JEQ, R3, 0, "may_be_netlink");
  a.JumpImm(BPF_JEQ, R3, kSockaddrNlBytes, "may_be_netlink");
  a.JumpImm(BPF_JLE, R3, kSockaddrIn6Bytes, "out");  // unsigned: a negative length is not skipped
  a.Label("may_be_netlink");
}

// sendto(fd, buff, len, flags, addr, addr_len) and write(fd, buf, count): the same two arguments.
void EmitSendto(Assembler& a, const Maps& maps, const Offsets& at, uint32_t syscallKind) {
  if (at.address >= 0) {
    a.Load(BPF_DW, R2, R1, at.address);
    a.Load(BPF_W, R3, R1, at.addressLength);  // an int: the low half of its slot (little-endian)
    EmitAddressCheck(a);
  }
  a.Load(BPF_DW, R7, R1, at.first);
  a.Load(BPF_DW, R8, R1, at.second);
  EmitNetlinkCheck(a, maps);
  EmitRecord(a, maps, syscallKind);
}

// sendmsg(fd, msg, flags): the first iovec of the msghdr.
void EmitSendmsg(Assembler& a, const Maps& maps, const Offsets& at) {
  a.Load(BPF_DW, R3, R1, at.first);
  a.StackPointer(R1, kStackScratch);
  a.MovImm(R2, 32);  // msg_name, msg_namelen, msg_iov, msg_iovlen
  a.Call(BPF_FUNC_probe_read_user);
  a.JumpImm(BPF_JNE, R0, 0, "out");
  a.Load(BPF_DW, R2, R10, kStackScratch);     // msg_name
  a.Load(BPF_W, R3, R10, kStackScratch + 8);  // msg_namelen
  EmitAddressCheck(a);
  a.Load(BPF_DW, R1, R10, kStackScratch + 24);  // msg_iovlen
  a.JumpImm(BPF_JEQ, R1, 0, "out");
  a.Load(BPF_DW, R3, R10, kStackScratch + 16);  // msg_iov
  a.StackPointer(R1, kStackIovec);
  a.MovImm(R2, 16);
  a.Call(BPF_FUNC_probe_read_user);
  a.JumpImm(BPF_JNE, R0, 0, "out");
  a.Load(BPF_DW, R7, R10, kStackIovec);
  a.Load(BPF_DW, R8, R10, kStackIovec + 8);
  EmitNetlinkCheck(a, maps);
  EmitRecord(a, maps, kSyscallSendmsg);
}

// ---- One program on the raw tracepoint sys_enter ------------------------------------------------
// It runs for every system call of the host, so it dispatches on the syscall number first and
// returns after two loads and a few compares for all others; it needs neither tracefs nor
// perf_event_open, and skips the perf buffer the syscall tracepoints fill before their program
// runs. The arguments come from the caller's saved registers (struct pt_regs, user ABI layout):
// args 1 and 2 (cmd/arg, buff/len, msg/flags) are all the bodies read.
// sendto also reads args 4 and 5 (dest_addr, addr_len), in the same one read of a wider window.
#if defined(__x86_64__)
constexpr int16_t kRegsArgsAt = 96;  // dx (arg 2), then si (arg 1)
constexpr Offsets kRawArgs{8, 0};
constexpr int16_t kRegsSendtoAt = 64;  // r9 (arg 5), r8 (arg 4), ax, cx, dx, si
constexpr int32_t kRegsSendtoBytes = 48;
constexpr Offsets kRawSendtoArgs{40, 32, 8, 0};
#elif defined(__aarch64__)
constexpr int16_t kRegsArgsAt = 8;  // regs[1] (arg 1), then regs[2] (arg 2)
constexpr Offsets kRawArgs{0, 8};
constexpr int16_t kRegsSendtoAt = 8;  // regs[1] .. regs[5]
constexpr int32_t kRegsSendtoBytes = 40;
constexpr Offsets kRawSendtoArgs{0, 8, 24, 32};
#else
#error "attribution: the raw tracepoint's register layout is known for x86_64 and aarch64 only"
#endif
constexpr int16_t kStackRawArgs = -144;  // up to 48 bytes

struct RawSyscall {
  const char* name;
  long number;
};
const RawSyscall kRawSyscalls[] = {
    {"ioctl", __NR_ioctl}, {"sendto", __NR_sendto}, {"sendmsg", __NR_sendmsg}, {"write", __NR_write}};

void EmitRawSysEnter(Assembler& a, const Maps& maps, const std::vector<std::string>& kinds) {
  a.Scope("");
  a.Load(BPF_DW, R2, R1, 8);  // the syscall number
  a.Load(BPF_DW, R6, R1, 0);  // struct pt_regs *
  for (const RawSyscall& call : kRawSyscalls)
    for (const std::string& kind : kinds)
      if (kind == call.name) a.JumpImm(BPF_JEQ, R2, static_cast<int32_t>(call.number), kind + "/entry");
  a.Goto("done");
  for (const std::string& kind : kinds) {
    a.Scope(kind + "/");
    a.Label("entry");
    bool sendto = kind == "sendto";
    a.StackPointer(R1, kStackRawArgs);
    a.MovImm(R2, sendto ? kRegsSendtoBytes : 16);
    a.MovReg(R3, R6);
    a.AddImm(R3, sendto ? kRegsSendtoAt : kRegsArgsAt);
    a.Call(BPF_FUNC_probe_read_kernel);
    a.JumpImm(BPF_JNE, R0, 0, "out");
    a.StackPointer(R1, kStackRawArgs);  // the bodies read their arguments from here
    if (kind == "ioctl") EmitIoctl(a, maps, kRawArgs);
    if (sendto) EmitSendto(a, maps, kRawSendtoArgs, kSyscallSendto);
    if (kind == "write") EmitSendto(a, maps, kRawArgs, kSyscallWrite);
    if (kind == "sendmsg") EmitSendmsg(a, maps, kRawArgs);
  }
  a.Scope("");
  a.Label("done");
  a.MovImm(R0, 0);
  a.Exit();
}

// ---- System calls ------------------------------------------------------------------------------
int Bpf(int command, bpf_attr* attr) { return static_cast<int>(syscall(__NR_bpf, command, attr, sizeof *attr)); }

class AttributionError {
 public:
  AttributionError(int err, std::string syscall, std::string stage, std::string detail = std::string(),
                   std::string log = std::string())
      : err(err),
        syscall(std::move(syscall)),
        stage(std::move(stage)),
        detail(std::move(detail)),
        log(std::move(log)) {}
  Napi::Error ToJs(Napi::Env env) const {
    Napi::Error error = SyscallError(env, err, detail.empty() ? syscall : syscall + " (" + detail + ")");
    error.Value().Set("syscall", Napi::String::New(env, syscall));
    error.Value().Set("stage", Napi::String::New(env, stage));
    if (!detail.empty()) error.Value().Set("detail", Napi::String::New(env, detail));
    if (!log.empty()) error.Value().Set("verifierLog", Napi::String::New(env, log));
    return error;
  }
  int err;
  std::string syscall, stage, detail, log;
};

int CreateMap(bpf_map_type type, uint32_t keySize, uint32_t valueSize, uint32_t entries, const char* name) {
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.map_type = type;
  attr.key_size = keySize;
  attr.value_size = valueSize;
  attr.max_entries = entries;
  attr.map_flags = 0;
  std::strncpy(attr.map_name, name, sizeof attr.map_name - 1);
  int fd = Bpf(BPF_MAP_CREATE, &attr);
  if (fd < 0) throw AttributionError(errno, "bpf(BPF_MAP_CREATE)", "map", name);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  return fd;
}

int LoadProgram(const std::vector<bpf_insn>& insns, const char* name, bpf_prog_type type) {
  static const char kLicense[] = "GPL";  // bpf_probe_read_user is a GPL-only helper
  constexpr int kAttempts = 5;           // the verifier gives up with EAGAIN when a signal is pending
  std::vector<char> log(kVerifierLogBytes);
  bool withLog = false;
  for (int attempt = 0;; attempt++) {
    bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.prog_type = type;
    attr.insns = reinterpret_cast<uint64_t>(insns.data());
    attr.insn_cnt = static_cast<uint32_t>(insns.size());
    attr.license = reinterpret_cast<uint64_t>(kLicense);
    std::strncpy(attr.prog_name, name, sizeof attr.prog_name - 1);
    if (withLog) {  // only after a refusal: with a log the verifier works slower
      attr.log_level = 1;
      attr.log_buf = reinterpret_cast<uint64_t>(log.data());
      attr.log_size = static_cast<uint32_t>(log.size());
    }
    int fd = Bpf(BPF_PROG_LOAD, &attr);
    if (fd >= 0) {
      fcntl(fd, F_SETFD, FD_CLOEXEC);
      return fd;
    }
    int err = errno;
    if ((err == EAGAIN || err == EINTR) && attempt < kAttempts) continue;
    if ((err == EINVAL || err == EACCES) && !withLog) {
      withLog = true;
      continue;
    }
    std::string text(log.data(), strnlen(log.data(), log.size()));
    constexpr size_t kLogTail = 4000;
    throw AttributionError(err, "bpf(BPF_PROG_LOAD)", "load", name,
                           text.size() > kLogTail ? text.substr(text.size() - kLogTail) : text);
  }
}

// The tracing file system: where it is mounted, mounting it at /sys/kernel/tracing when it is not.
// AT_EACCESS: checked with the effective ids and capabilities (access() drops the capabilities of
// a non-root process, so CAP_DAC_READ_SEARCH would not count).
std::string TracefsEvents() {
  static const char* const kCandidates[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};
  std::string unreadable;
  for (const char* dir : kCandidates) {
    std::string events = std::string(dir) + "/events/syscalls";
    if (faccessat(AT_FDCWD, events.c_str(), R_OK | X_OK, AT_EACCESS) == 0) return events;
    if ((errno == EACCES || errno == EPERM) && unreadable.empty()) unreadable = events;
  }
  // tracefs directories are root's, mode 0700: a daemon that is not root needs CAP_DAC_READ_SEARCH.
  if (!unreadable.empty()) throw AttributionError(EACCES, "open(" + unreadable + ")", "tracefs", "not readable");
  if (mount("nodev", kCandidates[0], "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0) {
    std::string events = std::string(kCandidates[0]) + "/events/syscalls";
    if (faccessat(AT_FDCWD, events.c_str(), R_OK | X_OK, AT_EACCESS) == 0) return events;
    throw AttributionError(ENOENT, "open(" + events + ")", "tracefs",
                           "no system-call tracepoints (CONFIG_FTRACE_SYSCALLS)");
  }
  throw AttributionError(errno, "mount(tracefs, /sys/kernel/tracing)", "tracefs",
                         "tracefs is not mounted at /sys/kernel/tracing or /sys/kernel/debug/tracing");
}

std::string ReadFile(const std::string& path, const std::string& stage) {
  std::ifstream in(path);
  if (!in) throw AttributionError(errno ? errno : ENOENT, "open(" + path + ")", stage);
  std::stringstream content;
  content << in.rdbuf();
  return content.str();
}

// The decimal number at `from` in `text`, 0 when there is none. std::from_chars, not strtol:
// glibc 2.38 and later turn strtol into __isoc23_strtol under _GNU_SOURCE, and an addon built
// there (Ubuntu 24.04) would not load where glibc is older (Debian 12: 2.36).
uint64_t DecimalAt(const std::string& text, size_t from) {
  uint64_t value = 0;
  if (from < text.size()) std::from_chars(text.data() + from, text.data() + text.size(), value);
  return value;
}

// "field:unsigned int cmd;\toffset:24;\tsize:8;" → 24
int16_t FieldOffset(const std::string& format, const std::string& field, const std::string& path) {
  std::istringstream lines(format);
  std::string line;
  while (std::getline(lines, line)) {
    auto semicolon = line.find(';');
    if (line.find("field:") == std::string::npos || semicolon == std::string::npos) continue;
    std::string declaration = line.substr(0, semicolon);
    auto nameStart = declaration.find_last_of(" *");
    if (nameStart == std::string::npos || declaration.substr(nameStart + 1) != field) continue;
    auto offsetAt = line.find("offset:");
    if (offsetAt == std::string::npos) break;
    uint64_t offset = DecimalAt(line, offsetAt + 7);
    if (offset == 0 || offset > 4096) break;
    return static_cast<int16_t>(offset);
  }
  throw AttributionError(ENOENT, "parse(" + path + ")", "tracefs", "no field " + field);
}

struct Tracepoint {
  const char* name;   // JavaScript's name, and sys_enter_<name>
  const char* first;  // the argument fields the program reads
  const char* second;
  const char* address = nullptr;  // sendto: the destination, to skip IP sends before reading
  const char* addressLength = nullptr;
};
const Tracepoint kTracepoints[] = {
    {"ioctl", "cmd", "arg"},
    {"sendto", "buff", "len", "addr", "addr_len"},
    {"sendmsg", "msg", "flags"},
    {"write", "buf", "count"},
};

// CTRL_CMD_GETFAMILY("ethtool"): its id, or 0 (no ethtool netlink; nothing to trace on sends).
uint16_t EthtoolFamily() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
  if (fd < 0) return 0;
  timeval timeout{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  int err = 0;
  uint16_t family = GenericFamilyId(fd, "ethtool", 1, &err);
  ::close(fd);
  return family;
}

// ---- The JavaScript object ---------------------------------------------------------------------
class Attribution : public Napi::ObjectWrap<Attribution> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "Attribution",
        {InstanceMethod("close", &Attribution::Close), InstanceMethod("dropped", &Attribution::Dropped),
         InstanceMethod("attached", &Attribution::Attached), InstanceMethod("ethtoolFamily", &Attribution::Family),
         InstanceMethod("hook", &Attribution::Hook), InstanceMethod("drain", &Attribution::DrainNow),
         InstanceMethod("kernelNetns", &Attribution::KernelNetns),
         InstanceMethod("pidNamespace", &Attribution::PidNamespace), InstanceMethod("ref", &Attribution::RefLoop),
         InstanceMethod("unref", &Attribution::UnrefLoop)});
  }

  // new Attribution({ selfTgid, ringBytes, syscalls: string[] }, onRecords(records: Buffer, count: number))
  explicit Attribution(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Attribution>(info), context_(info.Env(), "offloadd.Attribution") {
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction())
      throw Napi::TypeError::New(env, "expected (options: object, onRecords: Function)");
    Napi::Object options = info[0].As<Napi::Object>();
    uint32_t selfTgid =
        options.Get("selfTgid").IsNumber() ? options.Get("selfTgid").As<Napi::Number>().Uint32Value() : 0;
    uint32_t ringBytes = options.Get("ringBytes").IsNumber() ? options.Get("ringBytes").As<Napi::Number>().Uint32Value()
                                                             : kDefaultRingBytes;
    long page = sysconf(_SC_PAGESIZE);
    if (ringBytes < static_cast<uint32_t>(page) || (ringBytes & (ringBytes - 1)) != 0)
      throw Napi::RangeError::New(env, "ringBytes must be a power of two of at least one page");
    std::vector<std::string> wanted;
    Napi::Value syscalls = options.Get("syscalls");
    if (syscalls.IsArray()) {
      Napi::Array list = syscalls.As<Napi::Array>();
      for (uint32_t i = 0; i < list.Length(); i++) wanted.push_back(list.Get(i).ToString().Utf8Value());
    } else {
      wanted = {"ioctl", "sendto", "sendmsg"};
    }
    Napi::Value hook = options.Get("hook");
    if (hook.IsString()) hook_ = hook.As<Napi::String>().Utf8Value();
    if (hook_ != "tracepoint" && hook_ != "raw_tracepoint")
      throw Napi::RangeError::New(env, "hook must be 'tracepoint' or 'raw_tracepoint'");
    Napi::Value netns = options.Get("netns");
    if (netns.IsObject()) {
      Napi::Object offsets = netns.As<Napi::Object>();
      auto offset = [&](const char* name) {
        Napi::Value value = offsets.Get(name);
        int64_t number = value.IsNumber() ? value.As<Napi::Number>().Int64Value() : -1;
        if (number < 0 || number > kMaxKernelOffset)
          throw Napi::RangeError::New(env, std::string("netns.") + name + " must be a byte offset");
        return static_cast<int32_t>(number);
      };
      maps_.netns = {offset("taskNsproxy"), offset("nsproxyNetNs"), offset("netInum")};
      maps_.wakeupBytes = static_cast<int32_t>(ringBytes / 2);
    }
    Napi::Value pidNamespace = options.Get("pidNamespace");
    if (pidNamespace.IsObject()) {
      Napi::Object identity = pidNamespace.As<Napi::Object>();
      auto number = [&](const char* name) {
        Napi::Value value = identity.Get(name);
        double got = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
        if (!(got > 0 && got <= kMaxSafeInteger && got == static_cast<double>(static_cast<uint64_t>(got))))
          throw Napi::RangeError::New(env, std::string("pidNamespace.") + name + " must be a positive integer");
        return static_cast<uint64_t>(got);
      };
      // stat's st_dev is the user-space encoding; the helper compares the kernel's dev_t.
      dev_t dev = static_cast<dev_t>(number("dev"));
      maps_.pidNamespace.dev = (static_cast<uint64_t>(major(dev)) << kKernelMinorBits) | minor(dev);
      maps_.pidNamespace.ino = number("ino");
    }
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    try {
      Open(selfTgid, ringBytes, wanted, page);
    } catch (const AttributionError& error) {
      Shutdown();
      throw error.ToJs(env);
    }
    poll_ = StartPolling(env, maps_.ring, this, OnReadable);
    Napi::ObjectWrap<Attribution>::Ref();  // alive while attached
  }

  ~Attribution() override { Shutdown(); }

 private:
  void Open(uint32_t selfTgid, uint32_t ringBytes, const std::vector<std::string>& wanted, long page) {
    maps_.config = CreateMap(BPF_MAP_TYPE_ARRAY, 4, 8, 1, "offloadd_config");
    maps_.ring = CreateMap(BPF_MAP_TYPE_RINGBUF, 0, 0, ringBytes, "offloadd_events");
    maps_.drops = CreateMap(BPF_MAP_TYPE_PERCPU_ARRAY, 4, 8, 1, "offloadd_drops");
    family_ = EthtoolFamily();
    uint32_t config[2] = {selfTgid, family_};
    uint32_t key = 0;
    bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<uint32_t>(maps_.config);
    attr.key = reinterpret_cast<uint64_t>(&key);
    attr.value = reinterpret_cast<uint64_t>(config);
    if (Bpf(BPF_MAP_UPDATE_ELEM, &attr) < 0)
      throw AttributionError(errno, "bpf(BPF_MAP_UPDATE_ELEM)", "map", "offloadd_config");

    ringBytes_ = ringBytes;
    page_ = static_cast<size_t>(page);
    consumer_ = mmap(nullptr, page_, PROT_READ | PROT_WRITE, MAP_SHARED, maps_.ring, 0);
    if (consumer_ == MAP_FAILED) {
      consumer_ = nullptr;
      throw AttributionError(errno, "mmap(ring buffer consumer page)", "map");
    }
    producer_ = mmap(nullptr, page_ + 2 * static_cast<size_t>(ringBytes), PROT_READ, MAP_SHARED, maps_.ring,
                     static_cast<off_t>(page_));
    if (producer_ == MAP_FAILED) {
      producer_ = nullptr;
      throw AttributionError(errno, "mmap(ring buffer data)", "map");
    }

    if (hook_ == "raw_tracepoint") {
      std::vector<std::string> kinds;
      for (const RawSyscall& call : kRawSyscalls)
        for (const std::string& name : wanted)
          if (name == call.name) kinds.push_back(name);
      if (kinds.empty()) throw AttributionError(EINVAL, "attach", "attach", "no system call to trace");
      Assembler a;
      EmitRawSysEnter(a, maps_, kinds);
      int program = LoadProgram(a.Finish(), "offloadd_sys_enter", BPF_PROG_TYPE_RAW_TRACEPOINT);
      programs_.push_back(program);
      static const char kSysEnter[] = "sys_enter";
      bpf_attr attach;
      std::memset(&attach, 0, sizeof attach);
      attach.raw_tracepoint.name = reinterpret_cast<uint64_t>(kSysEnter);
      attach.raw_tracepoint.prog_fd = static_cast<uint32_t>(program);
      int link = Bpf(BPF_RAW_TRACEPOINT_OPEN, &attach);
      if (link < 0) throw AttributionError(errno, "bpf(BPF_RAW_TRACEPOINT_OPEN, sys_enter)", "attach");
      fcntl(link, F_SETFD, FD_CLOEXEC);
      links_.push_back(link);
      attached_ = kinds;
      return;
    }
    std::string events = TracefsEvents();
    for (const Tracepoint& tracepoint : kTracepoints) {
      bool on = false;
      for (const std::string& name : wanted) on = on || name == tracepoint.name;
      if (!on) continue;
      std::string dir = events + "/sys_enter_" + tracepoint.name;
      std::string format = ReadFile(dir + "/format", "tracefs");
      Offsets at{FieldOffset(format, tracepoint.first, dir + "/format"),
                 FieldOffset(format, tracepoint.second, dir + "/format")};
      if (tracepoint.address) {
        at.address = FieldOffset(format, tracepoint.address, dir + "/format");
        at.addressLength = FieldOffset(format, tracepoint.addressLength, dir + "/format");
      }
      uint64_t id = DecimalAt(ReadFile(dir + "/id", "tracefs"), 0);
      if (id == 0) throw AttributionError(EINVAL, "parse(" + dir + "/id)", "tracefs");

      Assembler a;
      std::string kind = tracepoint.name;
      if (kind == "ioctl") EmitIoctl(a, maps_, at);
      if (kind == "sendto") EmitSendto(a, maps_, at, kSyscallSendto);
      if (kind == "write") EmitSendto(a, maps_, at, kSyscallWrite);
      if (kind == "sendmsg") EmitSendmsg(a, maps_, at);
      std::string programName = "offloadd_" + kind;
      int program = LoadProgram(a.Finish(), programName.c_str(), BPF_PROG_TYPE_TRACEPOINT);
      programs_.push_back(program);

      perf_event_attr perf;
      std::memset(&perf, 0, sizeof perf);
      perf.type = PERF_TYPE_TRACEPOINT;
      perf.size = sizeof perf;
      perf.config = id;
      perf.sample_period = 1;
      perf.wakeup_events = 1;
      // The program runs for the tracepoint on every CPU; the event itself is opened on CPU 0 only.
      int event = static_cast<int>(syscall(__NR_perf_event_open, &perf, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
      if (event < 0) throw AttributionError(errno, "perf_event_open(syscalls:sys_enter_" + kind + ")", "attach");
      events_.push_back(event);
      if (ioctl(event, PERF_EVENT_IOC_SET_BPF, program) < 0)
        throw AttributionError(errno, "ioctl(PERF_EVENT_IOC_SET_BPF, sys_enter_" + kind + ")", "attach");
      if (ioctl(event, PERF_EVENT_IOC_ENABLE, 0) < 0)
        throw AttributionError(errno, "ioctl(PERF_EVENT_IOC_ENABLE, sys_enter_" + kind + ")", "attach");
      attached_.push_back(kind);
    }
    if (attached_.empty()) throw AttributionError(EINVAL, "attach", "attach", "no system call to trace");
  }

  void Shutdown() {
    if (poll_) {
      StopPolling(poll_);
      poll_ = nullptr;
      Napi::ObjectWrap<Attribution>::Unref();
    }
    for (int fd : events_) {
      ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
      ::close(fd);
    }
    events_.clear();
    for (int fd : links_) ::close(fd);
    links_.clear();
    for (int fd : programs_) ::close(fd);
    programs_.clear();
    if (producer_) munmap(producer_, page_ + 2 * static_cast<size_t>(ringBytes_));
    if (consumer_) munmap(consumer_, page_);
    producer_ = consumer_ = nullptr;
    for (int* fd : {&maps_.config, &maps_.ring, &maps_.drops}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  // The records the kernel could not queue (ring buffer full), summed over CPUs.
  Napi::Value Dropped(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (maps_.drops < 0) return Napi::Number::New(env, 0);
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    // Per-CPU values are laid out for every possible CPU, 8-byte aligned.
    std::vector<uint64_t> values(static_cast<size_t>(cpus > 0 ? cpus : 1) + 256, 0);
    uint32_t key = 0;
    bpf_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.map_fd = static_cast<uint32_t>(maps_.drops);
    attr.key = reinterpret_cast<uint64_t>(&key);
    attr.value = reinterpret_cast<uint64_t>(values.data());
    if (Bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0) throw SyscallError(env, errno, "bpf(BPF_MAP_LOOKUP_ELEM, offloadd_drops)");
    uint64_t total = 0;
    for (uint64_t value : values) total += value;
    return Napi::Number::New(env, static_cast<double>(total));
  }

  Napi::Value Attached(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array list = Napi::Array::New(env, attached_.size());
    for (size_t i = 0; i < attached_.size(); i++) list.Set(static_cast<uint32_t>(i), attached_[i]);
    return list;
  }

  Napi::Value Family(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), family_); }
  Napi::Value Hook(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), hook_); }
  // Whether the records carry the sender's network namespace (and the daemon is not woken per record).
  Napi::Value KernelNetns(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), maps_.netns.taskNsproxy >= 0);
  }
  // Whether pids are translated into the daemon's PID namespace (the `pidNamespace` option was taken).
  Napi::Value PidNamespace(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), maps_.pidNamespace.ino != 0);
  }

  // Hands over what the ring buffer holds now, synchronously: a link event can be handled before
  // the loop polls the ring buffer, and the request that caused it must be in the log by then.
  Napi::Value DrainNow(const Napi::CallbackInfo& info) {
    Drain();
    return info.Env().Undefined();
  }

  Napi::Value RefLoop(const Napi::CallbackInfo& info) {
    if (poll_) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }
  Napi::Value UnrefLoop(const Napi::CallbackInfo& info) {
    if (poll_) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return info.Env().Undefined();
  }

  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<Attribution*>(handle->data);
    if (status < 0 && self->poll_) uv_poll_start(self->poll_, UV_READABLE, OnReadable);
    self->Drain();
  }

  // The ring buffer's consumer side (as libbpf's ring_buffer__consume): read records between the
  // consumer and producer positions, skip discarded ones, stop at one still being written.
  void Drain() {
    if (!producer_) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    auto* consumerPos = reinterpret_cast<std::atomic<uint64_t>*>(consumer_);
    auto* producerPos = reinterpret_cast<std::atomic<uint64_t>*>(producer_);
    const uint8_t* data = static_cast<const uint8_t*>(producer_) + page_;
    const uint64_t mask = ringBytes_ - 1;
    std::vector<uint8_t> batch;
    uint32_t count = 0;
    uint64_t consumed = consumerPos->load(std::memory_order_acquire);
    for (size_t records = 0; records < kMaxRecordsPerWakeup; records++) {
      uint64_t produced = producerPos->load(std::memory_order_acquire);
      if (consumed >= produced) break;
      auto* lengthWord = reinterpret_cast<const std::atomic<uint32_t>*>(data + (consumed & mask));
      uint32_t length = lengthWord->load(std::memory_order_acquire);
      if (length & BPF_RINGBUF_BUSY_BIT) break;
      bool discarded = (length & BPF_RINGBUF_DISCARD_BIT) != 0;
      length &= ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
      if (!discarded && length == kRecordBytes) {
        // The data area is mapped twice in a row, so a record that wraps reads as one piece.
        const uint8_t* sample = data + (consumed & mask) + BPF_RINGBUF_HDR_SZ;
        batch.insert(batch.end(), sample, sample + length);
        count++;
      }
      consumed += (static_cast<uint64_t>(length) + BPF_RINGBUF_HDR_SZ + 7) & ~static_cast<uint64_t>(7);
      consumerPos->store(consumed, std::memory_order_release);
    }
    if (count == 0) return;
    Napi::Buffer<uint8_t> buffer = Napi::Buffer<uint8_t>::Copy(env, batch.data(), batch.size());
    // As LinkMonitor: through MakeCallback (promise jobs and nextTicks run afterwards), and an
    // exception from the handler must not unwind through libuv.
    try {
      callback_.MakeCallback(env.Global(), {buffer, Napi::Number::New(env, count)}, context_);
    } catch (const Napi::Error& error) {
      std::fprintf(stderr, "offloadd: attribution handler threw: %s\n", error.Message().c_str());
    }
  }

  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
  Maps maps_;
  std::vector<int> programs_;
  std::vector<int> events_;
  std::vector<int> links_;  // raw tracepoint attachments
  std::vector<std::string> attached_;
  std::string hook_ = "tracepoint";
  void* consumer_ = nullptr;
  void* producer_ = nullptr;
  size_t page_ = 4096;
  uint32_t ringBytes_ = kDefaultRingBytes;
  uint16_t family_ = 0;
  uv_poll_t* poll_ = nullptr;
};

}  // namespace

void InitAttribution(Napi::Env env, Napi::Object exports) {
  exports.Set("Attribution", Attribution::Define(env));
  exports.Set("attributionRecordBytes", Napi::Number::New(env, kRecordBytes));
}

}  // namespace offloadd
