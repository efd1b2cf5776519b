// SPDX-License-Identifier: GPL-2.0
/* Socket I/O tracing: one program on the raw syscall-exit tracepoint (tp_btf/sys_exit) handles
 * every traced syscall. It reads the syscall's number and arguments from the registers the kernel
 * saved on entry (pt_regs: unchanged by the syscall itself) and, once the syscall has filled the
 * buffer, emits one ring buffer record with the 5-tuple, role, TCP sequence and the first bytes of
 * payload. OpenSSL uprobes add plaintext.
 *
 * Cost matters (every read/write of every process runs this). Empty programs on a traced
 * syscall's syscalls/sys_enter_<name> and sys_exit_<name> cost it ~250-300 ns more than one empty
 * program on the raw sys_exit tracepoint (the kernel fills a perf trace buffer before each of
 * them; bench/ebpf prints both floors), and saving arguments on entry needs a per-task map write
 * and read that reading them back from pt_regs at exit does not. The price: every syscall, traced
 * or not, enters this program (one switch on the syscall number, ~+40 ns over the per-syscall
 * design for untraced syscalls), and the fd is resolved at exit, so a socket that another thread
 * closes and replaces during the syscall is missed or misattributed.
 * Kernel structures are read with BTF-typed direct loads (bpf_get_current_task_btf +
 * bpf_rdonly_cast, one helper call for the fd table slot) rather than one bpf_probe_read per
 * field; non-socket fds are dropped before any map is touched; the socket's addresses and the
 * process name are resolved once per connection and cached in `conns`; the ignore and TLS checks
 * cost nothing until used; the ring buffer wakes user space only once a batch is waiting (user
 * space also polls on a timer).
 * Needs kernel >= 6.2 (bpf_rdonly_cast, task storage in tracing programs). */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "shared/socket_trace.h"

char LICENSE[] SEC("license") = "GPL";

/* include/net/sock.h and include/net/tcp_states.h (macros and enums vmlinux.h may lack). */
#define SONDE_RCV_SHUTDOWN 1
#define SONDE_TCP_ESTABLISHED 1
#define SONDE_TCP_FIN_WAIT1 4
#define SONDE_TCP_FIN_WAIT2 5

#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115
/* The scratch payload area is 3x the cap so offset + length never leaves it (verifier). */
#define SCRATCH_PAYLOAD (3 * SONDE_MAX_PAYLOAD)
#define PAYLOAD_MASK (SONDE_MAX_PAYLOAD - 1)

/* Syscall numbers (asm/unistd_64.h; arch/arm64 uses the generic table) and where the saved
 * registers keep the arguments. x86-64 32-bit (ia32) syscalls use another table: skipped, as the
 * syscalls/ tracepoints skip them. */
#if defined(__TARGET_ARCH_x86)
#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_readv 19
#define NR_writev 20
#define NR_sendfile 40
#define NR_connect 42
#define NR_accept 43
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_shutdown 48
#define NR_accept4 288
#define NR_recvmmsg 299
#define NR_sendmmsg 307
#define SYSCALL_NR(r) ((long)(r)->orig_ax)
#define SYSCALL_ARG0(r) ((r)->di)
#define SYSCALL_ARG1(r) ((r)->si)
#define SYSCALL_ARG2(r) ((r)->dx)
#define SYSCALL_ARG4(r) ((r)->r8)
#define TS_COMPAT 0x0002
#define IS_COMPAT_SYSCALL(task) ((task)->thread_info.status & TS_COMPAT)
#elif defined(__TARGET_ARCH_arm64)
#define NR_read 63
#define NR_write 64
#define NR_close 57
#define NR_readv 65
#define NR_writev 66
#define NR_sendfile 71
#define NR_connect 203
#define NR_accept 202
#define NR_sendto 206
#define NR_recvfrom 207
#define NR_sendmsg 211
#define NR_recvmsg 212
#define NR_shutdown 210
#define NR_accept4 242
#define NR_recvmmsg 243
#define NR_sendmmsg 269
#define SYSCALL_NR(r) ((long)(r)->syscallno)
#define SYSCALL_ARG0(r) ((r)->orig_x0) /* x0 holds the return value by now */
#define SYSCALL_ARG1(r) ((r)->regs[1])
#define SYSCALL_ARG2(r) ((r)->regs[2])
#define SYSCALL_ARG4(r) ((r)->regs[4])
#define _TIF_32BIT (1 << 22)
#define IS_COMPAT_SYSCALL(task) ((task)->thread_info.flags & _TIF_32BIT)
#else
#error "socket_trace.bpf.c: syscall table for this architecture missing"
#endif

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

const volatile __u32 self_pid = 0;
const volatile __u32 payload_cap = SONDE_DEFAULT_PAYLOAD;
/* User space polls the ring on a short timer; waking it per record would cost a context switch
 * per syscall, so records only wake it once this much data is waiting. */
const volatile __u64 wakeup_bytes = 256 * 1024;

/* Set by user space (mmap'ed .bss) when it first ignores a connection / attaches TLS uprobes:
 * until then the corresponding lookups are skipped. */
volatile __u32 have_ignored = 0;
volatile __u32 have_tls = 0;

struct ssl_args {
	__u64 ssl;
	__u64 buf;
	__u64 readbytes; /* size_t* for the _ex variants, 0 otherwise */
	__s32 fd;        /* learned from a socket syscall made inside the SSL call, -1 until then */
	__u8 dir;
	__u8 valid;
	__u8 pad[2];
};

/* Per-thread state between an SSL call's entry and return. */
struct task_ctx {
	struct ssl_args ssl;
};

struct conn_info {
	__u64 generation;
	__u64 sk;
	struct sonde_sock_addr addr; /* cached at first sight (remote refreshed while unset) */
	char comm[SONDE_COMM_LEN];
	__u8 role;
	__u8 tls;
	__u8 pad[6];
};

struct ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 pad;
};

/* `payload` must directly follow `ev`: the record is output as one contiguous range. */
struct scratch_buf {
	struct sonde_data_event ev;
	__u8 payload[SCRATCH_PAYLOAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} tasks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_info);
} conns SEC(".maps");

/* Written by user space: connections it does not want (value = generation, 0 = any). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} ignored_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, __s32);
} ssl_fds SEC(".maps");

/* One slot per CPU (user space sets max_entries to the possible-CPU count). A plain array
 * because per-cpu values are limited to 32 KiB. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 128);
	__type(key, __u32);
	__type(value, struct scratch_buf);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SONDE_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline __u64 rb_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
									      : BPF_RB_NO_WAKEUP;
}

static __always_inline void count_n(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += n;
}

static __always_inline void count(__u32 idx)
{
	count_n(idx, 1);
}

/* fd -> struct sock for inet TCP/UDP sockets of `task`; NULL otherwise. */
static __always_inline struct sock *fd_to_sock(struct task_struct *task, __s32 fd)
{
	struct files_struct *files;
	struct fdtable *fdt;
	struct file *fp = NULL;

	if (fd < 0)
		return NULL;
	files = task->files;
	if (!files)
		return NULL;
	fdt = files->fdt;
	if (!fdt || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	if (bpf_probe_read_kernel(&fp, sizeof(fp), &fdt->fd[fd]) || !fp)
		return NULL;
	struct file *f = bpf_rdonly_cast(fp, bpf_core_type_id_kernel(struct file));
	struct inode *inode = f->f_inode;
	if (!inode || (inode->i_mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *so = bpf_rdonly_cast(f->private_data, bpf_core_type_id_kernel(struct socket));
	if (!so)
		return NULL;
	struct sock *sk = so->sk;
	if (!sk)
		return NULL;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	__u16 proto = sk->sk_protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return NULL;
	return sk;
}

static __always_inline void fill_remote(struct sock *sk, struct sonde_sock_addr *a)
{
	a->remote_port = bpf_ntohs(sk->__sk_common.skc_dport);
	if (a->family == AF_INET) {
		__u32 r = sk->__sk_common.skc_daddr;
		__builtin_memset(a->remote_addr, 0, 16);
		__builtin_memcpy(a->remote_addr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(a->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

static __always_inline void fill_addr(struct sock *sk, struct sonde_sock_addr *a)
{
	a->family = sk->__sk_common.skc_family;
	a->protocol = (__u8)sk->sk_protocol;
	a->local_port = sk->__sk_common.skc_num;
	if (a->family == AF_INET) {
		__u32 l = sk->__sk_common.skc_rcv_saddr;
		__builtin_memset(a->local_addr, 0, 16);
		__builtin_memcpy(a->local_addr, &l, 4);
	} else {
		BPF_CORE_READ_INTO(a->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	}
	fill_remote(sk, a);
}

/* The peer of one datagram from a user sockaddr (sendto/recvfrom/msg_name); false if none. */
static __always_inline bool read_peer(__u64 uaddr, struct sonde_sock_addr *a)
{
	struct sockaddr_in sin;
	if (!uaddr || bpf_probe_read_user(&sin, sizeof(sin), (void *)uaddr))
		return false;
	if (sin.sin_family == AF_INET && a->family == AF_INET) {
		a->remote_port = bpf_ntohs(sin.sin_port);
		__builtin_memset(a->remote_addr, 0, 16);
		__builtin_memcpy(a->remote_addr, &sin.sin_addr.s_addr, 4);
		return true;
	}
	if (sin.sin_family == AF_INET6 && a->family == AF_INET6) {
		struct sockaddr_in6 sin6;
		if (bpf_probe_read_user(&sin6, sizeof(sin6), (void *)uaddr))
			return false;
		a->remote_port = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(a->remote_addr, &sin6.sin6_addr, 16);
		return true;
	}
	return false;
}

/* The connection entry for (tgid, fd), created on first sight or when the fd now names a
 * different socket (fd reuse we did not see closing). */
static __always_inline struct conn_info *touch_conn(__u64 key, struct sock *sk, __u8 role, bool fresh)
{
	struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);
	if (ci && !fresh && ci->sk == (__u64)sk) {
		/* Seen before its connect() completed (or a UDP socket connected later). */
		if (ci->addr.remote_port == 0)
			fill_remote(sk, &ci->addr);
		return ci;
	}
	struct conn_info n = {};
	n.generation = bpf_ktime_get_ns();
	n.sk = (__u64)sk;
	n.role = role;
	fill_addr(sk, &n.addr);
	n.addr.role = role;
	/* The process's name (its main thread's), not the calling thread's (dig's "isc-net-0000"). */
	struct task_struct *task = bpf_get_current_task_btf();
	bpf_probe_read_kernel(n.comm, sizeof(n.comm), task->group_leader->comm);
	if (bpf_map_update_elem(&conns, &key, &n, BPF_ANY)) {
		count(SONDE_STAT_CONN_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&conns, &key);
}

static __always_inline bool is_ignored(__u64 key, __u64 generation)
{
	if (!have_ignored)
		return false;
	__u64 *g = bpf_map_lookup_elem(&ignored_conns, &key);
	return g && (*g == 0 || *g == generation);
}

static __always_inline void fill_header(struct sonde_event_header *h, __u32 kind, __u64 id, __s32 fd,
					struct conn_info *ci)
{
	h->kind = kind;
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->fd = fd;
	h->timestamp_ns = bpf_ktime_get_ns();
	h->conn_generation = ci->generation;
	__builtin_memcpy(h->comm, ci->comm, sizeof(h->comm));
	__builtin_memcpy(&h->addr, &ci->addr, sizeof(h->addr));
}

static __always_inline void emit_control(__u64 id, __s32 fd, struct conn_info *ci, __u32 control, __u32 arg)
{
	struct sonde_control_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(SONDE_STAT_RINGBUF_DROPS);
		return;
	}
	fill_header(&ev->hdr, SONDE_EVENT_CONTROL, id, fd, ci);
	ev->control = control;
	ev->arg = arg;
	bpf_ringbuf_submit(ev, rb_flags());
	count(SONDE_STAT_EVENTS);
}

static __always_inline __u32 cap_bytes(void)
{
	__u32 cap = payload_cap;
	if (cap > SONDE_MAX_PAYLOAD)
		cap = SONDE_MAX_PAYLOAD;
	return cap;
}

/* Copies up to `want` bytes of user memory to payload + off; returns bytes copied. */
static __always_inline __u32 copy_user(struct scratch_buf *s, __u32 off, __u64 want, const void *src)
{
	__u32 cap = cap_bytes();
	if (off >= cap)
		return 0;
	if (want > cap - off)
		want = cap - off;
	__u32 o = off & PAYLOAD_MASK;
	__u32 n = (__u32)want & (2 * SONDE_MAX_PAYLOAD - 1);
	if (n == 0)
		return 0;
	if (bpf_probe_read_user(s->payload + o, n, src)) {
		count(SONDE_STAT_READ_FAILED);
		return 0;
	}
	return n;
}

static __always_inline __u32 copy_iov(struct scratch_buf *s, const struct iovec *iovs, __u64 iovcnt,
				      __u64 total)
{
	__u32 off = 0;
	__u64 seen = 0;
	for (int i = 0; i < SONDE_MAX_IOV; i++) {
		struct iovec iov;
		if (i >= iovcnt || seen >= total || off >= cap_bytes())
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), &iovs[i]))
			break;
		__u64 want = iov.iov_len;
		if (want > total - seen)
			want = total - seen;
		seen += iov.iov_len;
		__u32 got = copy_user(s, off, want, iov.iov_base);
		off += got;
		if (got < want)
			break;
	}
	return off;
}

/* Emits one data event on socket `sk` (fd `fd`, direction `dir`): filters, copies payload from
 * `ptr` (a buffer, or an iovec array of `cnt` entries when `iov`). `peer`: user sockaddr of the
 * peer of this datagram (unconnected UDP), or 0. `tc`: the thread's SSL-call state, if any. */
static __always_inline void emit_data(__u64 id, struct sock *sk, __s32 fd, __u8 dir, struct task_ctx *tc,
				      __u64 total, __u64 ptr, __u64 cnt, bool iov, bool mmsg, __u8 source,
				      __u64 peer)
{
	__u64 key = sonde_conn_key(id >> 32, fd);
	struct conn_info *ci = touch_conn(key, sk, SONDE_ROLE_UNKNOWN, false);
	if (!ci)
		return;
	if (is_ignored(key, ci->generation)) {
		count(SONDE_STAT_IGNORED_CONN);
		return;
	}
	if (source != SONDE_SRC_TLS) {
		/* Inside SSL_read/SSL_write: this is ciphertext; remember the fd for the uprobe. */
		if (tc && tc->ssl.valid) {
			tc->ssl.fd = fd;
			ci->tls = 1;
		}
		if (ci->tls) {
			count(SONDE_STAT_TLS_CIPHERTEXT);
			return;
		}
	}
	__u32 cpu = bpf_get_smp_processor_id();
	struct scratch_buf *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return;
	fill_header(&s->ev.hdr, SONDE_EVENT_DATA, id, fd, ci);
	if (s->ev.hdr.addr.protocol == IPPROTO_UDP && peer && read_peer(peer, &s->ev.hdr.addr))
		count(SONDE_STAT_PEER_FROM_MSG);
	s->ev.total_bytes = total > 0xffffffffULL ? 0xffffffffU : (__u32)total;
	s->ev.direction = dir;
	s->ev.source = source;
	s->ev.has_seq = 0;
	s->ev.tcp_seq = 0;
	s->ev.pad = 0;
	if (source != SONDE_SRC_TLS && !mmsg && s->ev.hdr.addr.protocol == IPPROTO_TCP) {
		struct tcp_sock *tp = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct tcp_sock));
		__u32 end = dir == SONDE_DIR_INGRESS ? tp->copied_seq : tp->write_seq;
		/* A read that reached the peer's FIN advanced copied_seq past it (the FIN takes one
		 * sequence number but is no byte). Consumed iff a FIN was received (the state left
		 * ESTABLISHED/FIN_WAIT*, which SHUT_RD alone does not do) and copied_seq == rcv_nxt. */
		if (dir == SONDE_DIR_INGRESS && (sk->sk_shutdown & SONDE_RCV_SHUTDOWN) &&
		    end == tp->rcv_nxt) {
			__u8 state = sk->__sk_common.skc_state;
			if (state != SONDE_TCP_ESTABLISHED && state != SONDE_TCP_FIN_WAIT1 &&
			    state != SONDE_TCP_FIN_WAIT2)
				end -= 1;
		}
		s->ev.tcp_seq = end - (__u32)total;
		s->ev.has_seq = 1;
	}
	__u32 n = 0;
	if (source == SONDE_SRC_SENDFILE) {
		count_n(SONDE_STAT_SENDFILE_BYTES, total);
	} else {
		if (iov)
			n = copy_iov(s, (const struct iovec *)ptr, cnt, total);
		else
			n = copy_user(s, 0, total, (const void *)ptr);
		if (n < total)
			count(SONDE_STAT_TRUNCATED);
	}
	s->ev.captured_bytes = n;
	__u64 size = sizeof(struct sonde_data_event) + (n & (2 * SONDE_MAX_PAYLOAD - 1));
	if (bpf_ringbuf_output(&events, &s->ev, size, rb_flags())) {
		count(SONDE_STAT_RINGBUF_DROPS);
		return;
	}
	count(source == SONDE_SRC_TLS ? SONDE_STAT_TLS_EVENTS : SONDE_STAT_EVENTS);
}

/* connect() / accept(): a new connection entry with its role, and a control record. */
static __always_inline void on_connection(__u64 id, struct task_struct *task, __s32 fd, __u8 role)
{
	struct sock *sk = fd_to_sock(task, fd);
	if (!sk)
		return;
	__u64 key = sonde_conn_key(id >> 32, fd);
	struct conn_info *ci = touch_conn(key, sk, role, true);
	if (!ci)
		return;
	if (have_ignored)
		bpf_map_delete_elem(&ignored_conns, &key);
	emit_control(id, fd, ci, role == SONDE_ROLE_SERVER ? SONDE_CTL_ACCEPT : SONDE_CTL_CONNECT, 0);
}

/* close(): report sockets we know about, then forget them (whatever close returned: the fd is
 * released even when it reports an error). Ignored connections are reported too: user space
 * keeps a small entry for them until they close. */
static __always_inline void on_close(__u64 id, __s32 fd)
{
	__u64 key = sonde_conn_key(id >> 32, fd);
	struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);
	if (!ci)
		return;
	emit_control(id, fd, ci, SONDE_CTL_CLOSE, 0);
	bpf_map_delete_elem(&conns, &key);
	if (have_ignored)
		bpf_map_delete_elem(&ignored_conns, &key);
}

/* shutdown(): the end of one or both directions (user space flushes what is waiting). */
static __always_inline void on_shutdown(__u64 id, __s32 fd, __u32 how)
{
	__u64 key = sonde_conn_key(id >> 32, fd);
	struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);
	if (!ci || is_ignored(key, ci->generation))
		return;
	emit_control(id, fd, ci, SONDE_CTL_SHUTDOWN, how);
}

/* Every syscall's exit. The arguments come from the registers saved on entry; the data is in
 * the buffer now. */
SEC("tp_btf/sys_exit")
int BPF_PROG(syscall_exit, struct pt_regs *regs, long ret)
{
	long nr = SYSCALL_NR(regs);
	__u8 dir;
	switch (nr) {
	case NR_read:
	case NR_readv:
	case NR_recvfrom:
	case NR_recvmsg:
	case NR_recvmmsg:
		dir = SONDE_DIR_INGRESS;
		break;
	case NR_write:
	case NR_writev:
	case NR_sendto:
	case NR_sendmsg:
	case NR_sendmmsg:
	case NR_sendfile:
		dir = SONDE_DIR_EGRESS;
		break;
	case NR_connect:
	case NR_accept:
	case NR_accept4:
	case NR_close:
	case NR_shutdown:
		dir = SONDE_DIR_INGRESS; /* unused */
		break;
	default:
		return 0;
	}
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) == self_pid)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (IS_COMPAT_SYSCALL(task))
		return 0;
	__s32 fd = (__s32)SYSCALL_ARG0(regs);
	switch (nr) {
	case NR_connect:
		if (ret == 0 || ret == -EINPROGRESS)
			on_connection(id, task, fd, SONDE_ROLE_CLIENT);
		return 0;
	case NR_accept:
	case NR_accept4:
		if (ret >= 0)
			on_connection(id, task, (__s32)ret, SONDE_ROLE_SERVER);
		return 0;
	case NR_close:
		on_close(id, fd);
		return 0;
	case NR_shutdown:
		on_shutdown(id, fd, (__u32)SYSCALL_ARG1(regs));
		return 0;
	}
	if (ret <= 0)
		return 0;
	/* Most reads and writes are on files and pipes: drop them before touching a map. */
	struct sock *sk = fd_to_sock(task, fd);
	if (!sk) {
		count(SONDE_STAT_NOT_SOCKET);
		return 0;
	}
	/* Inside SSL_read/SSL_write the uprobe wants to learn the fd (see emit_data). */
	struct task_ctx *tc = have_tls ? bpf_task_storage_get(&tasks, task, 0, 0) : NULL;
	__u64 ptr = SYSCALL_ARG1(regs);
	switch (nr) {
	case NR_read:
	case NR_write:
		emit_data(id, sk, fd, dir, tc, ret, ptr, 0, false, false, SONDE_SRC_SYSCALL, 0);
		break;
	case NR_recvfrom:
	case NR_sendto:
		emit_data(id, sk, fd, dir, tc, ret, ptr, 0, false, false, SONDE_SRC_SYSCALL, SYSCALL_ARG4(regs));
		break;
	case NR_sendfile:
		emit_data(id, sk, fd, dir, tc, ret, 0, 0, false, false, SONDE_SRC_SENDFILE, 0);
		break;
	case NR_readv:
	case NR_writev:
		emit_data(id, sk, fd, dir, tc, ret, ptr, SYSCALL_ARG2(regs), true, false, SONDE_SRC_SYSCALL, 0);
		break;
	case NR_recvmsg:
	case NR_sendmsg: {
		struct user_msghdr m;
		if (bpf_probe_read_user(&m, sizeof(m), (void *)ptr))
			break;
		emit_data(id, sk, fd, dir, tc, ret, (__u64)m.msg_iov, m.msg_iovlen, true, false, SONDE_SRC_SYSCALL,
			  (__u64)m.msg_name);
		break;
	}
	case NR_recvmmsg:
	case NR_sendmmsg: {
		struct mmsghdr *vec = (struct mmsghdr *)ptr;
		for (int i = 0; i < SONDE_MAX_MMSG; i++) {
			struct mmsghdr mh;
			if (i >= ret)
				break;
			if (bpf_probe_read_user(&mh, sizeof(mh), &vec[i]))
				break;
			if (mh.msg_len == 0)
				continue;
			emit_data(id, sk, fd, dir, tc, mh.msg_len, (__u64)mh.msg_hdr.msg_iov, mh.msg_hdr.msg_iovlen,
				  true, true, SONDE_SRC_SYSCALL, (__u64)mh.msg_hdr.msg_name);
		}
		break;
	}
	}
	return 0;
}

/* The last thread of a process exits: its sockets close without close() calls. */
SEC("tracepoint/sched/sched_process_exit")
int process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) == self_pid)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->signal->live.counter != 0)
		return 0;
	struct sonde_control_event *ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		count(SONDE_STAT_RINGBUF_DROPS);
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->hdr.kind = SONDE_EVENT_CONTROL;
	ev->hdr.pid = id >> 32;
	ev->hdr.tid = (__u32)id;
	ev->hdr.fd = -1;
	ev->hdr.timestamp_ns = bpf_ktime_get_ns();
	ev->control = SONDE_CTL_EXIT;
	bpf_ringbuf_submit(ev, rb_flags());
	return 0;
}

/* ---- OpenSSL uprobes: SSL_read/SSL_write(ssl, buf, num), SSL_read_ex/SSL_write_ex(.., size_t*) */

static __always_inline int ssl_enter(struct pt_regs *ctx, __u8 dir, bool ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) == self_pid)
		return 0;
	struct task_ctx *tc =
		bpf_task_storage_get(&tasks, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tc) {
		count(SONDE_STAT_ARGS_MAP_FULL);
		return 0;
	}
	tc->ssl.ssl = PT_REGS_PARM1(ctx);
	tc->ssl.buf = PT_REGS_PARM2(ctx);
	tc->ssl.readbytes = ex ? PT_REGS_PARM4(ctx) : 0;
	tc->ssl.fd = -1;
	tc->ssl.dir = dir;
	tc->ssl.valid = 1;
	return 0;
}

static __always_inline int ssl_exit(struct pt_regs *ctx, bool ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = bpf_get_current_task_btf();
	struct task_ctx *tc = bpf_task_storage_get(&tasks, task, 0, 0);
	if (!tc || !tc->ssl.valid)
		return 0;
	struct ssl_args a = tc->ssl;
	tc->ssl.valid = 0;
	int rc = (int)PT_REGS_RC(ctx); /* int return: the upper half of rax is junk */
	__u64 bytes = 0;
	if (ex) {
		if (rc != 1 || !a.readbytes)
			return 0;
		if (bpf_probe_read_user(&bytes, sizeof(bytes), (void *)a.readbytes))
			return 0;
	} else {
		if (rc <= 0)
			return 0;
		bytes = rc;
	}
	if (bytes == 0)
		return 0;
	struct ssl_key skey = {.ssl = a.ssl, .tgid = id >> 32};
	if (a.fd >= 0) {
		bpf_map_update_elem(&ssl_fds, &skey, &a.fd, BPF_ANY);
	} else {
		__s32 *fd = bpf_map_lookup_elem(&ssl_fds, &skey);
		if (!fd)
			return 0;
		a.fd = *fd;
	}
	struct sock *sk = fd_to_sock(task, a.fd);
	if (!sk)
		return 0;
	__u64 key = sonde_conn_key(id >> 32, a.fd);
	struct conn_info *ci = bpf_map_lookup_elem(&conns, &key);
	if (ci)
		ci->tls = 1;
	emit_data(id, sk, a.fd, a.dir, NULL, bytes, a.buf, 0, false, false, SONDE_SRC_TLS, 0);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_enter) { return ssl_enter(ctx, SONDE_DIR_INGRESS, false); }
SEC("uretprobe")
int BPF_KRETPROBE(ssl_read_exit) { return ssl_exit(ctx, false); }
SEC("uprobe")
int BPF_KPROBE(ssl_write_enter) { return ssl_enter(ctx, SONDE_DIR_EGRESS, false); }
SEC("uretprobe")
int BPF_KRETPROBE(ssl_write_exit) { return ssl_exit(ctx, false); }
SEC("uprobe")
int BPF_KPROBE(ssl_read_ex_enter) { return ssl_enter(ctx, SONDE_DIR_INGRESS, true); }
SEC("uretprobe")
int BPF_KRETPROBE(ssl_read_ex_exit) { return ssl_exit(ctx, true); }
SEC("uprobe")
int BPF_KPROBE(ssl_write_ex_enter) { return ssl_enter(ctx, SONDE_DIR_EGRESS, true); }
SEC("uretprobe")
int BPF_KRETPROBE(ssl_write_ex_exit) { return ssl_exit(ctx, true); }
