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
 * which user space sums for the status page.
 */

#include "steer_types.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* Sizes of the maps; xdp/steer.go checks configurations against them. */
#define MAX_PORTS 64
#define MAX_ADDRS 256
#define MAX_QUEUES 64

/* Why a frame got its verdict. The order is part of the ABI with steer.go. */
enum counter {
	COUNTER_NOT_IP = 0,     /* passed: ethertype not IPv4/IPv6 (ARP, VLAN tags, ...) */
	COUNTER_UNPARSABLE = 1, /* passed: truncated, IPv4 options or fragment, IPv6 extension headers */
	COUNTER_NOT_TCP = 2,    /* passed: IP but not TCP (ICMP, ICMPv6, UDP, ...) */
	COUNTER_NOT_SERVED = 3, /* passed: TCP, but address or port not served */
	COUNTER_REDIRECTED = 4, /* steered: XSKMAP had a socket for the queue */
	COUNTER_NO_SOCKET = 5,  /* steered, but no socket for the queue: passed */
	COUNTER_MAX = 6,
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

SEC("xdp")
int xhttpd_steer(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
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

		daddr = ip->daddr;
		if (!bpf_map_lookup_elem(&served_v4, &daddr))
			return pass(COUNTER_NOT_SERVED);
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

		__builtin_memcpy(&daddr, &ip6->daddr, sizeof(daddr));
		if (!bpf_map_lookup_elem(&served_v6, &daddr))
			return pass(COUNTER_NOT_SERVED);
	} else {
		/* ARP, VLAN-tagged frames (0x8100, 0x88a8), LLDP, ... */
		return pass(COUNTER_NOT_IP);
	}

	port = bpf_ntohs(tcp->dest);
	if (!bpf_map_lookup_elem(&served_ports, &port))
		return pass(COUNTER_NOT_SERVED);

	/* The low bits of the flags are the action when the queue has no
	 * socket: until package nic registers one, served traffic keeps
	 * going to the kernel instead of vanishing. */
	action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	count(action == XDP_REDIRECT ? COUNTER_REDIRECTED : COUNTER_NO_SOCKET);
	return action;
}
