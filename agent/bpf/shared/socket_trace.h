/* Records and map keys shared verbatim by socket_trace.bpf.c and the user-space reader.
 * Plain C, fixed-size integer types only: the layout is the contract. */
#ifndef SONDE_AGENT_BPF_SHARED_SOCKET_TRACE_H_
#define SONDE_AGENT_BPF_SHARED_SOCKET_TRACE_H_

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Payload capture: at most this many bytes per event (power of two; the verifier relies on it). */
#define SONDE_MAX_PAYLOAD 16384
#define SONDE_DEFAULT_PAYLOAD 1024
/* iovec entries copied per readv/writev/recvmsg/sendmsg (the true size is always kept). */
#define SONDE_MAX_IOV 8
/* messages reported per recvmmsg/sendmmsg call. */
#define SONDE_MAX_MMSG 4
#define SONDE_COMM_LEN 16

enum sonde_event_kind {
	SONDE_EVENT_DATA = 1,
	SONDE_EVENT_CONTROL = 2,
};

enum sonde_direction {
	SONDE_DIR_INGRESS = 0, /* read side */
	SONDE_DIR_EGRESS = 1,  /* write side */
};

enum sonde_role {
	SONDE_ROLE_UNKNOWN = 0,
	SONDE_ROLE_CLIENT = 1, /* connect()ed */
	SONDE_ROLE_SERVER = 2, /* accept()ed */
};

enum sonde_control_kind {
	SONDE_CTL_CONNECT = 0,
	SONDE_CTL_ACCEPT = 1,
	SONDE_CTL_CLOSE = 2,
	SONDE_CTL_SHUTDOWN = 3, /* shutdown(fd, how): `arg` = how (SHUT_RD/WR/RDWR) */
	SONDE_CTL_EXIT = 4,     /* the process (thread group) exited: fd = -1, its sockets are gone */
};

enum sonde_data_source {
	SONDE_SRC_SYSCALL = 0,
	SONDE_SRC_TLS = 1, /* plaintext from an SSL_read/SSL_write uprobe */
	SONDE_SRC_SENDFILE = 2, /* sendfile(): bytes counted (and sequenced), payload not captured */
};

/* Socket identity as the kernel sees it: local/remote from this process's point of view. */
struct sonde_sock_addr {
	__u16 family; /* AF_INET / AF_INET6 */
	__u16 local_port;  /* host order */
	__u16 remote_port; /* host order */
	__u8 protocol;     /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 role;         /* enum sonde_role */
	__u8 local_addr[16];  /* IPv4: first 4 bytes, network order */
	__u8 remote_addr[16];
};

/* Header common to every ring buffer record. */
struct sonde_event_header {
	__u32 kind; /* enum sonde_event_kind */
	__u32 pid;  /* tgid */
	__u32 tid;
	__s32 fd;
	__u64 timestamp_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 conn_generation;
	char comm[SONDE_COMM_LEN];
	struct sonde_sock_addr addr;
};

/* One read or write; `captured_bytes` of payload follow the struct directly in the record. */
struct sonde_data_event {
	struct sonde_event_header hdr;
	__u32 total_bytes;    /* what the syscall moved */
	__u32 captured_bytes; /* <= total_bytes, <= payload cap */
	__u32 tcp_seq;        /* sequence number of the first byte (TCP), 0 otherwise */
	__u8 direction;       /* enum sonde_direction */
	__u8 source;          /* enum sonde_data_source */
	__u8 has_seq;
	__u8 pad;
};

struct sonde_control_event {
	struct sonde_event_header hdr;
	__u32 control; /* enum sonde_control_kind */
	__u32 arg;     /* SONDE_CTL_SHUTDOWN: how */
};

/* Key of the per-connection maps: (tgid << 32) | fd. */
static inline __u64 sonde_conn_key(__u32 tgid, __s32 fd)
{
	return ((__u64)tgid << 32) | (__u32)fd;
}

/* Indices into the per-cpu `stats` array (loss and filter counters read by user space). */
enum sonde_stat {
	SONDE_STAT_EVENTS = 0,
	SONDE_STAT_RINGBUF_DROPS,    /* ring buffer full */
	SONDE_STAT_ARGS_MAP_FULL,    /* per-tid argument map full */
	SONDE_STAT_CONN_MAP_FULL,    /* connection map full */
	SONDE_STAT_NOT_SOCKET,       /* fd was not an inet socket */
	SONDE_STAT_IGNORED_CONN,     /* connection marked uninteresting by user space */
	SONDE_STAT_TRUNCATED,        /* payload cut at the cap */
	SONDE_STAT_READ_FAILED,      /* bpf_probe_read_user failed */
	SONDE_STAT_TLS_CIPHERTEXT,   /* syscall data dropped because TLS plaintext covers it */
	SONDE_STAT_TLS_EVENTS,
	SONDE_STAT_SENDFILE_BYTES,   /* bytes sent with sendfile() on traced sockets (not captured) */
	SONDE_STAT_PEER_FROM_MSG,    /* UDP peer taken from sendto/recvfrom/msg_name */
	SONDE_STAT_COUNT,
};

#endif /* SONDE_AGENT_BPF_SHARED_SOCKET_TRACE_H_ */
