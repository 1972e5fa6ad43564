//go:build ignore

/*
 * xhttpd's steering program.
 *
 * Runs on every frame an rx queue receives. A frame goes to the AF_XDP
 * socket registered for its queue only when it is, beyond doubt, a TCP
 * segment for a served address and port: Ethernet without VLAN tags, IPv4
 * without options and not a fragment, or IPv6 with TCP as the first next
 * header. Everything else (ARP and neighbour discovery, ICMP, SSH, other
 * ports, anything odd or truncated) is passed to the kernel, so the host
 * keeps working on the address it shares with the server. A frame we cannot
 * parse is the kernel's to judge, never ours to drop.
 *
 * Each verdict is counted in a per-CPU array (one slot per enum counter),
 * which user space sums for the status page. Each steered frame carries the
 * time it was steered in its XDP metadata (stamp), for the loops to count
 * how long frames wait in the rx ring.
 *
 * SYN floods: a served SYN beyond a per-CPU budget (syncookie_config) is
 * answered here, with a SYN-ACK carrying a SYN cookie sent back out of the
 * port it came in on (XDP_TX), and never reaches the netstack. The ACK that
 * completes such a handshake is steered like any segment, and the
 * netstack's listener accepts it by checking the cookie (package stack).
 * The cookie is package syncookie's, which this file mirrors; a test runs
 * both and compares.
 *
 * ACK floods (and floods of any segment that is not a SYN): with
 * stray_config enabled, the program keeps a table of flows (an LRU hash) it
 * has seen start, the SYNs it steers and the ACKs that complete its cookie
 * handshakes, and looks every other served segment up in it. A segment of
 * no flow in the table, a stray, goes on to the netstack within a per-CPU
 * budget, for the netstack to answer or drop (package stack). Beyond the
 * budget strays are dropped here, on the flooder's time, and never cost
 * the server's loop a frame. A connection the table evicted is a stray
 * too: while strays are dropped, user space puts the netstack's
 * connections back in the table (package xdpnet).
 */

#include "steer_types.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* Sizes of the maps; xdp/steer.go checks configurations against them. */
#define MAX_PORTS 64
#define MAX_ADDRS 256
#define MAX_QUEUES 64
#define MAX_FLOWS 131072

/* Why a frame got its verdict. The order is part of the ABI with steer.go. */
enum counter {
	COUNTER_NOT_IP = 0,     /* passed: ethertype not IPv4/IPv6 (ARP, VLAN tags, ...) */
	COUNTER_UNPARSABLE = 1, /* passed: truncated, IPv4 options or fragment, IPv6 extension headers */
	COUNTER_NOT_TCP = 2,    /* passed: IP but not TCP (ICMP, ICMPv6, UDP, ...) */
	COUNTER_NOT_SERVED = 3, /* passed: TCP, but address or port not served */
	COUNTER_REDIRECTED = 4, /* steered: XSKMAP had a socket for the queue */
	COUNTER_NO_SOCKET = 5,  /* steered, but no socket for the queue: passed */
	COUNTER_SYN_COOKIE = 6, /* a served SYN over the budget, answered here with a cookie (XDP_TX) */
	COUNTER_FLOOD_RST = 7,  /* a served RST without ACK while over the budget: dropped */
	COUNTER_STRAY = 8,      /* a served segment of no known flow beyond the stray budget: dropped */
	COUNTER_MAX = 9,
};

/* Served TCP ports, key in host byte order; the value is unused (1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} served_ports SEC(".maps");

/* Served IPv4 addresses, key in network byte order as in the header. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ADDRS);
	__type(key, __be32);
	__type(value, __u8);
} served_v4 SEC(".maps");

/* Served IPv6 addresses, key the 16 bytes of the address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ADDRS);
	__type(key, struct in6_addr);
	__type(value, __u8);
} served_v6 SEC(".maps");

/* AF_XDP socket per rx queue index; filled by user space (package nic's fds). */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* Verdict counters, per CPU so that counting needs no atomics. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, enum counter);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * SYN cookies. Filled by user space (xdp/steer.go) before the program is
 * attached; a zero entry (enabled 0) answers nothing.
 */
struct syncookie_config {
	__u64 key[2][2];  /* two SipHash-2-4 keys (syncookie.Key) */
	__u64 window_ns;  /* length of a budget window */
	__u32 budget;     /* served SYNs per CPU per window left to the netstack; 0: none */
	__u32 enabled;    /* 0: every SYN goes to the netstack */
	__u16 mss4, mss6; /* the MSS the server announces over IPv4, IPv6 */
	__u16 window;     /* the receive window the SYN-ACK announces (a SYN-ACK's is never scaled) */
	__u8 wscale;      /* the window scale the netstack's listeners offer (stack.CookieWndScale) */
	__u8 sack;        /* 1: offer SACK to a SYN that does, as the netstack does */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syncookie_config);
} syncookie_cfg SEC(".maps");

/* Each CPU's SYNs in its current window, and whether the window before was
 * over the budget: then this whole window answers SYNs with cookies, so
 * that a flood does not get a fresh share of the netstack every window. */
struct syn_window {
	__u64 start;
	__u64 syns;
	__u64 flood;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syn_window);
} syn_windows SEC(".maps");

/* Until when every CPU answers with cookies: a flood seen on one CPU is a
 * flood on all, or a flooder that moves between CPUs would get a fresh
 * share of the netstack on each. Shared, written without atomics: a lost
 * update only shortens or lengthens the flood by a window. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} flood_until SEC(".maps");

/* A TCP flow as the server sees it; IPv4 addresses are IPv4-mapped. */
struct flow {
	__be32 remote[4];
	__be32 local[4];
	__be16 remote_port;
	__be16 local_port;
};

/* The flows the program has seen start; the value is unused (1). An LRU:
 * a flow looked up recently stays, an idle one may be evicted by new ones,
 * and user space puts the connections back while strays are dropped. Its
 * size is set at load (xdp.Strays.Flows); MAX_FLOWS is the default. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_FLOWS);
	__type(key, struct flow);
	__type(value, __u8);
} flows SEC(".maps");

/* Filled by user space before the program is attached; a zero entry keeps
 * no table and steers every segment. */
struct stray_config {
	__u64 window_ns; /* length of a budget window */
	__u32 budget;    /* strays per CPU per window handed on to the netstack */
	__u32 enabled;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stray_config);
} stray_cfg SEC(".maps");

/* Each CPU's strays in its current window. */
struct stray_window {
	__u64 start;
	__u64 strays;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stray_window);
} stray_windows SEC(".maps");

/* stamp writes the time (CLOCK_MONOTONIC, ns) into the frame's metadata,
 * the STAMP_LEN bytes just before its data, which AF_XDP hands to user
 * space with the frame, in zero-copy and copy mode alike: the loop reads it
 * to measure how long frames waited in the rx ring (package nic, RxStamp).
 * A driver without room for metadata leaves the frame as it was. It must
 * run last: it moves the packet pointers. */
#define STAMP_LEN 8
static __always_inline void stamp(struct xdp_md *ctx)
{
	if (bpf_xdp_adjust_meta(ctx, -STAMP_LEN))
		return;
	void *data = (void *)(long)ctx->data;
	__u64 *meta = (void *)(long)ctx->data_meta;
	if ((void *)(meta + 1) > data)
		return;
	*meta = bpf_ktime_get_ns();
}

static __always_inline void count(enum counter c)
{
	__u32 key = c;
	__u64 *n = bpf_map_lookup_elem(&counters, &key);

	if (n)
		*n += 1;
}

static __always_inline int pass(enum counter c)
{
	count(c);
	return XDP_PASS;
}

static __always_inline int is_ipv6_ext_header(__u8 nexthdr)
{
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
	case IPPROTO_MH:
	case 139: /* Host Identity Protocol */
	case 140: /* Shim6 */
	case 253: /* experimentation and testing (RFC 3692) */
	case 254:
		return 1;
	}
	return 0;
}

/* over_budget says whether the server is flooded: this CPU's window has
 * given the netstack its share of SYNs already (counting this one when syn
 * is set), or the window just before was over the budget, or another CPU
 * saw either within the last window. */
static __always_inline int over_budget(const struct syncookie_config *cfg, __u64 now, int syn)
{
	__u32 key = 0;
	struct syn_window *w = bpf_map_lookup_elem(&syn_windows, &key);
	__u64 *until = bpf_map_lookup_elem(&flood_until, &key);

	if (!w || !until)
		return 0;
	if (now - w->start >= cfg->window_ns) {
		/* A window that ended more than a window ago says nothing
		 * about now. */
		w->flood = w->syns > cfg->budget && now - w->start < 2 * cfg->window_ns;
		w->start = now;
		w->syns = 0;
	}
	if (syn)
		w->syns++;
	if (w->flood || w->syns > cfg->budget) {
		/* Written at most twice a window, not per SYN: the line is
		 * shared by every CPU. */
		if (*until < now + cfg->window_ns / 2)
			*until = now + cfg->window_ns;
		return 1;
	}
	return now < *until;
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                               \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = ROTL(v1, 13);                                             \
		v1 ^= v0;                                                      \
		v0 = ROTL(v0, 32);                                             \
		v2 += v3;                                                      \
		v3 = ROTL(v3, 16);                                             \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = ROTL(v3, 21);                                             \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = ROTL(v1, 17);                                             \
		v1 ^= v2;                                                      \
		v2 = ROTL(v2, 32);                                             \
	} while (0)

/* SipHash-2-4 of the n (2 or 5) little-endian words m: syncookie.sipHash24. */
static __always_inline __u64 siphash24(const __u64 k[2], const __u64 *m, int n)
{
	__u64 v0 = k[0] ^ 0x736f6d6570736575ULL;
	__u64 v1 = k[1] ^ 0x646f72616e646f6dULL;
	__u64 v2 = k[0] ^ 0x6c7967656e657261ULL;
	__u64 v3 = k[1] ^ 0x7465646279746573ULL;
	__u64 b = ((__u64)n * 8) << 56;

#pragma unroll
	for (int i = 0; i < 5; i++) {
		if (i < n) {
			v3 ^= m[i];
			SIPROUND;
			SIPROUND;
			v0 ^= m[i];
		}
	}
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* A connection as syncookie.Tuple hashes it: m[0] is left for the ports and
 * the period, then the addresses, local first, as big-endian words. */
struct cookie_tuple {
	__u64 m[5];
	int n;
	__u64 ports; /* local port << 48 | remote port << 32 */
};

/* cookie_tuple_of is flow f as syncookie.Tuple hashes it. */
static __always_inline void cookie_tuple_of(const struct flow *f, int v4, struct cookie_tuple *t)
{
	t->ports = (__u64)bpf_ntohs(f->local_port) << 48 | (__u64)bpf_ntohs(f->remote_port) << 32;
	if (v4) {
		t->m[1] = (__u64)bpf_ntohl(f->local[3]) << 32 | bpf_ntohl(f->remote[3]);
		t->n = 2;
		return;
	}
	t->m[1] = (__u64)bpf_ntohl(f->local[0]) << 32 | bpf_ntohl(f->local[1]);
	t->m[2] = (__u64)bpf_ntohl(f->local[2]) << 32 | bpf_ntohl(f->local[3]);
	t->m[3] = (__u64)bpf_ntohl(f->remote[0]) << 32 | bpf_ntohl(f->remote[1]);
	t->m[4] = (__u64)bpf_ntohl(f->remote[2]) << 32 | bpf_ntohl(f->remote[3]);
	t->n = 5;
}

static __always_inline __u32 cookie_hash(const struct syncookie_config *cfg, struct cookie_tuple *t, __u32 ts, int i)
{
	t->m[0] = t->ports | ts;
	return (__u32)siphash24(cfg->key[i & 1], t->m, t->n);
}

/* syncookie.PeriodAt: CLOCK_MONOTONIC seconds / 64. */
static __always_inline __u32 cookie_period(__u64 now)
{
	return (__u32)((now / 1000000000ULL) >> 6) & 0xff;
}

/* syncookie.Key.Make. */
static __always_inline __u32 make_cookie(const struct syncookie_config *cfg, struct cookie_tuple *t, __u32 isn, __u32 ts, __u32 mss_index)
{
	return cookie_hash(cfg, t, 0, 0) + isn + (ts << 24) + ((cookie_hash(cfg, t, ts, 1) + mss_index) & 0xffffff);
}

/* syncookie.Key.Check: whether cookie, acknowledged by an ACK whose
 * sequence number is isn+1, was made for t no more than two periods before
 * ts. */
static __always_inline int check_cookie(const struct syncookie_config *cfg, struct cookie_tuple *t, __u32 cookie, __u32 isn, __u32 ts)
{
	__u32 v = cookie - cookie_hash(cfg, t, 0, 0) - isn;
	__u32 made = v >> 24;

	if (((ts - made) & 0xff) > 2)
		return 0;
	return ((v - cookie_hash(cfg, t, made, 1)) & 0xffffff) < 4;
}

/* syncookie.MSSIndex. */
static __always_inline __u32 mss_index(__u16 mss)
{
	if (mss >= 1460)
		return 3;
	if (mss >= 1440)
		return 2;
	if (mss >= 1300)
		return 1;
	return 0;
}

/* The options of a SYN that a cookie SYN-ACK answers. */
struct syn_opts {
	__u16 mss;   /* 0: none */
	__u8 ws;     /* window scale; 0xff: none */
	__u8 sack;   /* SACK permitted */
	__u8 ts;     /* timestamps */
	__u32 tsval; /* the SYN's TSval */
};

/* SYN_OPTS_MAX is the most option bytes a TCP header holds. */
#define SYN_OPTS_MAX 40

/* syn_options reads the options of a SYN whose TCP header starts at
 * tcp_off into so. The options are copied to the stack first and read at
 * constant offsets only: the verifier allows packet offsets, and stack
 * offsets, that vary only with CAP_PERFMON (Spectre v1 masking), and
 * xhttpd does not ask for it. So the walk is unrolled: at each offset p,
 * an option starts there if the one before ended there. A malformed list
 * ends the walk with what it found so far. */
static __always_inline void syn_options(struct xdp_md *ctx, struct tcphdr *tcp, __u32 tcp_off, struct syn_opts *so)
{
	__u8 o[SYN_OPTS_MAX] = {}; /* read whole by the compiler; the verifier wants it written */
	int n = ((bpf_ntohs(tcp->flags) >> 12) << 2) - (int)sizeof(*tcp);
	int next = 0;

	so->mss = 0;
	so->ws = 0xff;
	so->sack = 0;
	so->ts = 0;
	so->tsval = 0;
	if (n < 1 || n > SYN_OPTS_MAX) /* bounds the verifier can see */
		return;
	if (bpf_xdp_load_bytes(ctx, tcp_off + sizeof(*tcp), o, n))
		return;
#define OPT_AT(p)                                                                                  \
	do {                                                                                       \
		if (next != (p))                                                                   \
			break;                                                                     \
		if ((p) >= n || o[p] == 0) /* the end, or End of Option List */                    \
			return;                                                                    \
		if (o[p] == 1) { /* No-Operation */                                                \
			next = (p) + 1;                                                            \
			break;                                                                     \
		}                                                                                  \
		if ((p) + 2 > SYN_OPTS_MAX || (p) + 2 > n || o[(p) + 1] < 2 || (p) + o[(p) + 1] > n) \
			return;                                                                    \
		if (o[p] == 2 && o[(p) + 1] == 4 && (p) + 4 <= SYN_OPTS_MAX)                       \
			so->mss = (__u16)o[(p) + 2] << 8 | o[(p) + 3];                             \
		else if (o[p] == 3 && o[(p) + 1] == 3 && (p) + 3 <= SYN_OPTS_MAX)                  \
			so->ws = o[(p) + 2];                                                       \
		else if (o[p] == 4 && o[(p) + 1] == 2)                                             \
			so->sack = 1;                                                              \
		else if (o[p] == 8 && o[(p) + 1] == 10 && (p) + 10 <= SYN_OPTS_MAX) {              \
			so->ts = 1;                                                                \
			so->tsval = (__u32)o[(p) + 2] << 24 | (__u32)o[(p) + 3] << 16 |            \
				    (__u32)o[(p) + 4] << 8 | o[(p) + 5];                           \
		}                                                                                  \
		next = (p) + o[(p) + 1];                                                           \
	} while (0)
	OPT_AT(0); OPT_AT(1); OPT_AT(2); OPT_AT(3); OPT_AT(4); OPT_AT(5); OPT_AT(6); OPT_AT(7);
	OPT_AT(8); OPT_AT(9); OPT_AT(10); OPT_AT(11); OPT_AT(12); OPT_AT(13); OPT_AT(14); OPT_AT(15);
	OPT_AT(16); OPT_AT(17); OPT_AT(18); OPT_AT(19); OPT_AT(20); OPT_AT(21); OPT_AT(22); OPT_AT(23);
	OPT_AT(24); OPT_AT(25); OPT_AT(26); OPT_AT(27); OPT_AT(28); OPT_AT(29); OPT_AT(30); OPT_AT(31);
	OPT_AT(32); OPT_AT(33); OPT_AT(34); OPT_AT(35); OPT_AT(36); OPT_AT(37); OPT_AT(38); OPT_AT(39);
#undef OPT_AT
}

static __always_inline __u32 csum_add16(__u32 sum, const void *p, int words)
{
	const __u16 *w = p;

#pragma unroll
	for (int i = 0; i < 20; i++)
		if (i < words)
			sum += w[i];
	return sum;
}

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* The SYN-ACK's TCP header: 20 bytes and the MSS option; with timestamps,
 * also SACK permitted (or two no-ops), the timestamps, a no-op and window
 * scale (or four no-ops), Linux's layout. */
#define SYNACK_TCP_LEN 24
#define SYNACK_TCP_LEN_TS 40

/* The TSval bits that keep the SYN's options for the ACK that echoes them
 * (gVisor patch 0032, tcp.CookieTSVal; Linux's cookie_init_timestamp): the
 * window scale in 4 bits, 0xf for none, and a SACK bit. */
#define COOKIE_TS_OPT_MASK 0x3f
#define COOKIE_TS_NO_WS 0xf
#define COOKIE_TS_SACK 0x10
#define TCP_MAX_WSCALE 14

/* cookie_tsval is the TSval of a cookie SYN-ACK (tcp.CookieTSVal): a
 * millisecond clock with an offset of the connection's own, its low bits
 * the options, and never ahead of that clock. */
static __always_inline __u32 cookie_tsval(const struct syncookie_config *cfg, struct cookie_tuple *t, const struct syn_opts *so, int sack, __u64 now)
{
	/* A period no cookie uses (theirs are 8 bits): a value of its own. */
	__u32 ts = (__u32)(now / 1000000ULL) + cookie_hash(cfg, t, 0x100, 1);
	__u32 opts = so->ws == 0xff ? COOKIE_TS_NO_WS : (so->ws > TCP_MAX_WSCALE ? TCP_MAX_WSCALE : so->ws);
	__u32 v;

	if (sack)
		opts |= COOKIE_TS_SACK;
	v = (ts & ~(__u32)COOKIE_TS_OPT_MASK) | opts;
	if (v > ts)
		v -= COOKIE_TS_OPT_MASK + 1;
	return v;
}

/* synack writes a SYN-ACK over the SYN in ctx, tcp_len bytes of TCP header
 * (SYNACK_TCP_LEN, or SYNACK_TCP_LEN_TS with so's timestamps and tsval),
 * and returns XDP_TX. Both lengths are constants where it is inlined:
 * packet pointer arithmetic with a variable needs CAP_PERFMON. */
static __always_inline int synack(struct xdp_md *ctx, const struct syncookie_config *cfg, const struct flow *f, int ip_len, int tcp_len,
				  __u32 cookie, __u32 isn, const struct syn_opts *so, int sack, __u32 tsval)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct tcphdr *tcp;
	__u8 mac[ETH_ALEN];
	__u32 sum;
	int len = sizeof(*eth) + ip_len + tcp_len;

	/* Resize the frame to the SYN-ACK's length: the SYN may carry more
	 * options (or data) than the answer, or fewer. */
	/* The frame's length from the helper, not data_end - data: pointer
	 * subtraction needs CAP_PERFMON, which xhttpd does not ask for. */
	if (bpf_xdp_adjust_tail(ctx, len - (int)bpf_xdp_get_buff_len(ctx)))
		return XDP_DROP; /* cannot happen: len fits */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if (data + len > data_end)
		return XDP_DROP; /* cannot happen: len fits */
	tcp = data + sizeof(*eth) + ip_len;

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	/* Pseudo-header: addresses, protocol, TCP length. */
	sum = bpf_htons(IPPROTO_TCP) + bpf_htons(tcp_len);
	if (ip_len == sizeof(struct iphdr)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return XDP_DROP; /* cannot happen: len fits */
		ip->version_ihl = 0x45;
		ip->tos = 0;
		ip->tot_len = bpf_htons(sizeof(*ip) + tcp_len);
		ip->id = 0;
		ip->frag_off = bpf_htons(IP_DF);
		ip->ttl = 64;
		ip->protocol = IPPROTO_TCP;
		ip->check = 0;
		ip->saddr = f->local[3];
		ip->daddr = f->remote[3];
		ip->check = csum_fold(csum_add16(0, ip, sizeof(*ip) / 2));
		sum = csum_add16(sum, &ip->saddr, 4);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_DROP; /* cannot happen: len fits */
		ip6->version_tc_flow = bpf_htonl(6 << 28);
		ip6->payload_len = bpf_htons(tcp_len);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, f->local, sizeof(f->local));
		__builtin_memcpy(&ip6->daddr, f->remote, sizeof(f->remote));
		sum = csum_add16(sum, &ip6->saddr, 16);
	}

	if ((void *)tcp + tcp_len > data_end)
		return XDP_DROP; /* cannot happen: len fits */
	tcp->source = f->local_port;
	tcp->dest = f->remote_port;
	tcp->seq = bpf_htonl(cookie);
	tcp->ack_seq = bpf_htonl(isn + 1);
	tcp->flags = bpf_htons((tcp_len / 4) << 12 | TCP_SYN | TCP_ACK);
	tcp->window = bpf_htons(cfg->window);
	tcp->check = 0;
	tcp->urg_ptr = 0;
	{
		__u8 *opt = (__u8 *)(tcp + 1);
		__u16 our = ip_len == sizeof(struct iphdr) ? cfg->mss4 : cfg->mss6;

		opt[0] = 2; /* MSS */
		opt[1] = 4;
		opt[2] = our >> 8;
		opt[3] = our & 0xff;
		if (tcp_len == SYNACK_TCP_LEN_TS) {
			opt[4] = sack ? 4 : 1; /* SACK permitted, or a no-op */
			opt[5] = sack ? 2 : 1;
			opt[6] = 8; /* timestamps */
			opt[7] = 10;
			opt[8] = tsval >> 24;
			opt[9] = tsval >> 16;
			opt[10] = tsval >> 8;
			opt[11] = tsval;
			opt[12] = so->tsval >> 24;
			opt[13] = so->tsval >> 16;
			opt[14] = so->tsval >> 8;
			opt[15] = so->tsval;
			opt[16] = 1; /* a no-op, then window scale or three more */
			opt[17] = so->ws == 0xff ? 1 : 3;
			opt[18] = so->ws == 0xff ? 1 : 3;
			opt[19] = so->ws == 0xff ? 1 : cfg->wscale;
		}
	}
	tcp->check = csum_fold(csum_add16(sum, tcp, tcp_len / 2));
	count(COUNTER_SYN_COOKIE);
	return XDP_TX;
}

/* syn_cookie answers a served SYN with a SYN-ACK carrying a cookie, written
 * over the SYN (XDP_TX). ip_len is 20 (IPv4) or 40 (IPv6). To a SYN with
 * timestamps it offers window scaling and SACK as the SYN does, and keeps
 * the SYN's choices in its TSval, as the netstack's own cookie SYN-ACK does
 * (gVisor patch 0032); to one without, neither: the cookie has no room for
 * them. Returns the XDP action, or -1 to steer the SYN as usual when it is
 * too short to answer. */
static __always_inline int syn_cookie(struct xdp_md *ctx, const struct syncookie_config *cfg, const struct flow *f, int ip_len, __u64 now)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct tcphdr *tcp = data + sizeof(struct ethhdr) + ip_len;
	struct cookie_tuple t = {};
	struct syn_opts so;
	__u32 isn, cookie;
	int sack;

	if ((void *)(tcp + 1) > data_end)
		return -1;
	isn = bpf_ntohl(tcp->seq);
	syn_options(ctx, tcp, sizeof(struct ethhdr) + ip_len, &so);
	cookie_tuple_of(f, ip_len == sizeof(struct iphdr), &t);
	cookie = make_cookie(cfg, &t, isn, cookie_period(now), mss_index(so.mss));
	if (!so.ts)
		return synack(ctx, cfg, f, ip_len, SYNACK_TCP_LEN, cookie, isn, &so, 0, 0);
	sack = so.sack && cfg->sack;
	return synack(ctx, cfg, f, ip_len, SYNACK_TCP_LEN_TS, cookie, isn, &so, sack, cookie_tsval(cfg, &t, &so, sack, now));
}

/* A served segment's TCP fields that the checks below read, copied out
 * of the packet where its header's offset is a constant: pointer
 * arithmetic with a variable offset needs CAP_PERFMON (see syn_options). */
struct segment {
	__u16 flags; /* the header's 13th and 14th bytes, host order */
	__u32 seq, ack_seq;
};

/* cookie_ack says whether segment s of flow f completes a handshake this
 * program answered with a SYN cookie in the last three periods. */
static __always_inline int cookie_ack(const struct flow *f, int v4, const struct segment *s, __u64 now)
{
	struct syncookie_config *cfg;
	struct cookie_tuple t = {};
	__u32 key = 0;
	__u64 *until;

	if ((s->flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_ACK)
		return 0;
	cfg = bpf_map_lookup_elem(&syncookie_cfg, &key);
	until = bpf_map_lookup_elem(&flood_until, &key);
	/* No cookie was sent in the last three periods: none can check.
	 * (Until is in the future while cookies are sent.) */
	if (!cfg || !cfg->enabled || !until || *until == 0 || (now > *until && now - *until > 3ULL * 64 * 1000000000ULL))
		return 0;
	cookie_tuple_of(f, v4, &t);
	return check_cookie(cfg, &t, s->ack_seq - 1, s->seq - 1, cookie_period(now));
}

/* stray says whether segment s of flow f is to be dropped as a stray
 * beyond the budget, and keeps the flow table: the flow of a bare SYN (one
 * the switch in xhttpd_steer let through) enters it, and so does that of
 * the ACK completing a cookie handshake. A stray within the budget does
 * not: a flood that repeats its four-tuples (hping3 without
 * --rand-source walks the source ports) would make them flows. */
static __always_inline int stray(const struct flow *f, int v4, const struct segment *s)
{
	struct stray_config *cfg;
	struct stray_window *w;
	__u32 key = 0;
	__u8 one = 1;
	__u64 now;

	cfg = bpf_map_lookup_elem(&stray_cfg, &key);
	if (!cfg || !cfg->enabled)
		return 0;
	if ((s->flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) == TCP_SYN) {
		bpf_map_update_elem(&flows, f, &one, BPF_ANY);
		return 0;
	}
	if (bpf_map_lookup_elem(&flows, f))
		return 0;
	now = bpf_ktime_get_ns();
	if (cookie_ack(f, v4, s, now)) {
		bpf_map_update_elem(&flows, f, &one, BPF_ANY);
		return 0;
	}
	w = bpf_map_lookup_elem(&stray_windows, &key);
	if (!w)
		return 0;
	if (now - w->start >= cfg->window_ns) {
		w->start = now;
		w->strays = 0;
	}
	return ++w->strays > cfg->budget;
}

SEC("xdp")
int xhttpd_steer(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
	struct flow f = {};
	struct segment seg;
	int ip_len;
	__u16 port;
	long action;

	if ((void *)(eth + 1) > data_end)
		return pass(COUNTER_UNPARSABLE);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__be32 daddr;

		if ((void *)(ip + 1) > data_end)
			return pass(COUNTER_UNPARSABLE);
		if ((ip->version_ihl >> 4) != 4)
			return pass(COUNTER_UNPARSABLE);
		/* The protocol sits at a fixed offset, so classify it first:
		 * an ICMP echo with options is "not TCP", not "unparsable". */
		if (ip->protocol != IPPROTO_TCP)
			return pass(COUNTER_NOT_TCP);
		/* Options and fragments are rare and the kernel handles them
		 * well; keeping them out keeps this parser and the netstack's
		 * reassembly out of the picture. */
		if ((ip->version_ihl & 0x0f) != 5)
			return pass(COUNTER_UNPARSABLE);
		if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return pass(COUNTER_UNPARSABLE);

		tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > data_end)
			return pass(COUNTER_UNPARSABLE);
		ip_len = sizeof(*ip);

		daddr = ip->daddr;
		if (!bpf_map_lookup_elem(&served_v4, &daddr))
			return pass(COUNTER_NOT_SERVED);
		f.remote[2] = f.local[2] = bpf_htonl(0xffff);
		f.remote[3] = ip->saddr;
		f.local[3] = daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct in6_addr daddr;

		if ((void *)(ip6 + 1) > data_end)
			return pass(COUNTER_UNPARSABLE);
		if ((bpf_ntohl(ip6->version_tc_flow) >> 28) != 6)
			return pass(COUNTER_UNPARSABLE);
		if (ip6->nexthdr != IPPROTO_TCP) {
			/* An extension header may hide TCP behind it; we do
			 * not walk the chain, the kernel gets the frame. */
			if (is_ipv6_ext_header(ip6->nexthdr))
				return pass(COUNTER_UNPARSABLE);
			return pass(COUNTER_NOT_TCP);
		}

		tcp = (void *)(ip6 + 1);
		if ((void *)(tcp + 1) > data_end)
			return pass(COUNTER_UNPARSABLE);
		ip_len = sizeof(*ip6);

		__builtin_memcpy(&daddr, &ip6->daddr, sizeof(daddr));
		if (!bpf_map_lookup_elem(&served_v6, &daddr))
			return pass(COUNTER_NOT_SERVED);
		__builtin_memcpy(f.remote, &ip6->saddr, sizeof(f.remote));
		__builtin_memcpy(f.local, &daddr, sizeof(f.local));
	} else {
		/* ARP, VLAN-tagged frames (0x8100, 0x88a8), LLDP, ... */
		return pass(COUNTER_NOT_IP);
	}

	port = bpf_ntohs(tcp->dest);
	if (!bpf_map_lookup_elem(&served_ports, &port))
		return pass(COUNTER_NOT_SERVED);
	f.remote_port = tcp->source;
	f.local_port = tcp->dest;
	seg.flags = bpf_ntohs(tcp->flags);
	seg.seq = bpf_ntohl(tcp->seq);
	seg.ack_seq = bpf_ntohl(tcp->ack_seq);

	/* A SYN flood, and the RSTs it draws: a flooder that uses its own
	 * address, or whose victims are real hosts, answers each cookie
	 * SYN-ACK with a RST without ACK, which the netstack would look up
	 * only to drop. While over the budget, those are dropped here; an
	 * established connection that loses its RST this way times out as if
	 * the RST were lost on the wire. */
	switch (bpf_ntohs(tcp->flags) & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) {
	case TCP_SYN:
	case TCP_RST: {
		__u32 key = 0;
		struct syncookie_config *cfg = bpf_map_lookup_elem(&syncookie_cfg, &key);
		__u64 now = bpf_ktime_get_ns();
		int syn = !(tcp->flags & bpf_htons(TCP_RST));

		if (!cfg || !cfg->enabled || !over_budget(cfg, now, syn))
			break;
		if (!syn) {
			count(COUNTER_FLOOD_RST);
			return XDP_DROP;
		}
		/* A constant header length in each copy of the inlined
		 * function: packet pointer arithmetic with a variable needs
		 * CAP_PERFMON (Spectre v1 masking), which xhttpd does not ask
		 * for. */
		if (ip_len == sizeof(struct iphdr))
			action = syn_cookie(ctx, cfg, &f, sizeof(struct iphdr), now);
		else
			action = syn_cookie(ctx, cfg, &f, sizeof(struct ipv6hdr), now);
		if (action >= 0)
			return action;
	}
	}

	if (stray(&f, ip_len == sizeof(struct iphdr), &seg)) {
		count(COUNTER_STRAY);
		return XDP_DROP;
	}

	stamp(ctx);
	/* The low bits of the flags are the action when the queue has no
	 * socket: until Attach puts one in the map, served traffic keeps
	 * going to the kernel instead of vanishing. */
	action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	count(action == XDP_REDIRECT ? COUNTER_REDIRECTED : COUNTER_NO_SOCKET);
	return action;
}
