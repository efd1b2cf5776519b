// SPDX-License-Identifier: GPL-2.0
/* Mechanism floors for the eBPF overhead benchmark: programs that do nothing, on the hooks a
 * syscall tracer can use here. What they cost is what any tracer built on those hooks pays
 * before doing any work.
 *  - floor_exit: one program on the raw syscall-exit tracepoint (what sonde's socket_trace uses);
 *    runs on every syscall.
 *  - floor_enter_* / floor_exit_*: per-syscall tracepoints (syscalls/sys_{enter,exit}_<name>) on
 *    the 16 syscalls sonde traces (the design sonde used before). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

SEC("tp_btf/sys_exit")
int BPF_PROG(floor_exit, struct pt_regs *regs, long ret) { return 0; }

/* Attached by the benchmark to every sys_enter_<name> / sys_exit_<name> it lists. */
SEC("tracepoint") int floor_tp_enter(void *ctx) { return 0; }
SEC("tracepoint") int floor_tp_exit(void *ctx) { return 0; }
