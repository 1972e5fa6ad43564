//go:build linux

package xdp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// XDP actions (enum xdp_action).
const (
	xdpAborted  = 0
	xdpDrop     = 1
	xdpPass     = 2
	xdpTx       = 3
	xdpRedirect = 4
)

var (
	servedV4    = netip.MustParseAddr("198.18.0.1")
	clientV4    = netip.MustParseAddr("198.18.0.2")
	notServedV4 = netip.MustParseAddr("198.18.0.99")
	servedV6    = netip.MustParseAddr("2001:2::1")
	clientV6    = netip.MustParseAddr("2001:2::2")
	notServedV6 = netip.MustParseAddr("2001:2::99")

	testConfig = Config{
		Ports: []uint16{80, 443},
		Addrs: []netip.Addr{servedV4, servedV6},
	}
)

// xdpMd is struct xdp_md, BPF_PROG_TEST_RUN's context for XDP.
type xdpMd struct {
	Data           uint32 // metadata length: the input's first Data bytes are metadata
	DataEnd        uint32 // must be the input's length
	DataMeta       uint32 // must be 0
	IngressIfindex uint32 // resolved in the caller's netns; required for RxQueueIndex > 0
	RxQueueIndex   uint32
	EgressIfindex  uint32 // must be 0
}

// loadTest loads the program with testConfig, unattached.
func loadTest(t testing.TB) *Steering {
	t.Helper()
	testbedtest.RequireRoot(t)
	s, err := load(testConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// run runs the program once on frame. With ingress, the context names the
// interface and rx queue the frame came in on (resolved in the calling
// thread's namespace).
func run(s *Steering, frame []byte, ingress *xdpMd) (uint32, error) {
	opts := &ebpf.RunOptions{Data: frame, Repeat: 1}
	if ingress != nil {
		opts.Context = xdpMd{
			DataEnd:        uint32(len(frame)),
			IngressIfindex: ingress.IngressIfindex,
			RxQueueIndex:   ingress.RxQueueIndex,
		}
	}
	return s.objs.XhttpdSteer.Run(opts)
}

// verdict is an action and the counters it moved.
type verdict struct {
	Action   uint32
	Counters Counters
}

// runVerdict runs frame and returns its action and the counters' change.
func runVerdict(t *testing.T, s *Steering, frame []byte, ingress *xdpMd) verdict {
	t.Helper()
	before, err := s.Counters()
	if err != nil {
		t.Fatal(err)
	}
	action, err := run(s, frame, ingress)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	after, err := s.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return verdict{action, sub(after, before)}
}

func sub(a, b Counters) Counters {
	return Counters{
		Passed:     a.Passed - b.Passed,
		Steered:    a.Steered - b.Steered,
		Redirected: a.Redirected - b.Redirected,
		NoSocket:   a.NoSocket - b.NoSocket,
		NotIP:      a.NotIP - b.NotIP,
		Unparsable: a.Unparsable - b.Unparsable,
		NotTCP:     a.NotTCP - b.NotTCP,
		NotServed:  a.NotServed - b.NotServed,
		SYNCookies: a.SYNCookies - b.SYNCookies,
		FloodRSTs:  a.FloodRSTs - b.FloodRSTs,
		Strays:     a.Strays - b.Strays,
	}
}

// Expected verdicts.
var (
	passNotIP      = verdict{xdpPass, Counters{Passed: 1, NotIP: 1}}
	passUnparsable = verdict{xdpPass, Counters{Passed: 1, Unparsable: 1}}
	passNotTCP     = verdict{xdpPass, Counters{Passed: 1, NotTCP: 1}}
	passNotServed  = verdict{xdpPass, Counters{Passed: 1, NotServed: 1}}
	passNoSocket   = verdict{xdpPass, Counters{Passed: 1, Steered: 1, NoSocket: 1}}
	redirected     = verdict{xdpRedirect, Counters{Steered: 1, Redirected: 1}}
)

func tcp4(dst netip.Addr, port uint16) []byte {
	return ether(etherIPv4, ipv4(protoTCP, clientV4, dst, tcpSYN(40000, port), ip4Opts{}))
}

func tcp6(dst netip.Addr, port uint16) []byte {
	return ether(etherIPv6, ipv6(protoTCP, clientV6, dst, tcpSYN(40000, port)))
}

// servedFrames are steered when their queue has a socket.
var servedFrames = []struct {
	name  string
	frame []byte
}{
	{"IPv4 TCP/80", tcp4(servedV4, 80)},
	{"IPv4 TCP/443", tcp4(servedV4, 443)},
	{"IPv6 TCP/80", tcp6(servedV6, 80)},
	{"IPv6 TCP/443", tcp6(servedV6, 443)},
	{"IPv4 TCP/80 DF", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYN(40000, 80), ip4Opts{flagsOff: 0x4000}))},
	{"IPv4 TCP/80 with payload", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, cat(tcpSYN(40000, 80), []byte("GET / HTTP/1.1\r\n\r\n")), ip4Opts{}))},
	{"IPv4 TCP/80 Ethernet padding", cat(tcp4(servedV4, 80), make([]byte, 6))},
}

// passedFrames always go to the kernel, whatever is registered.
var passedFrames = []struct {
	name  string
	frame []byte
	want  verdict
}{
	{"ARP request", ether(etherARP, arpRequest(clientV4, servedV4)), passNotIP},
	{"ICMP echo", ether(etherIPv4, ipv4(protoICMP, clientV4, servedV4, icmpEcho(8), ip4Opts{})), passNotTCP},
	{"ICMP echo with IP options", ether(etherIPv4, ipv4(protoICMP, clientV4, servedV4, icmpEcho(8), ip4Opts{options: []byte{1, 1, 1, 0}})), passNotTCP},
	{"ICMPv6 echo", ether(etherIPv6, ipv6(protoICMPv6, clientV6, servedV6, icmpEcho(128))), passNotTCP},
	{"ICMPv6 neighbour solicitation", ether(etherIPv6, ipv6(protoICMPv6, clientV6, netip.MustParseAddr("ff02::1:ff00:1"), icmpv6NS(servedV6))), passNotTCP},
	{"IPv4 TCP/22", tcp4(servedV4, 22), passNotServed},
	{"IPv6 TCP/22", tcp6(servedV6, 22), passNotServed},
	{"IPv4 UDP/80", ether(etherIPv4, ipv4(protoUDP, clientV4, servedV4, udp(40000, 80, []byte("x")), ip4Opts{})), passNotTCP},
	{"IPv6 UDP/80", ether(etherIPv6, ipv6(protoUDP, clientV6, servedV6, udp(40000, 80, []byte("x")))), passNotTCP},
	{"IPv4 TCP/80 to a non-served address", tcp4(notServedV4, 80), passNotServed},
	{"IPv6 TCP/80 to a non-served address", tcp6(notServedV6, 80), passNotServed},
	{"IPv4 TCP/80 from the served address", ether(etherIPv4, ipv4(protoTCP, servedV4, notServedV4, tcpSYN(40000, 80), ip4Opts{})), passNotServed},
	{"IPv6 TCP/80 to the IPv4-mapped served address", tcp6(netip.AddrFrom16(servedV4.As16()), 80), passNotServed},
	{"Ethernet header only", tcp4(servedV4, 80)[:14], passUnparsable},
	{"truncated IPv4 header", tcp4(servedV4, 80)[:14+19], passUnparsable},
	{"IPv4 header without TCP", tcp4(servedV4, 80)[:14+20], passUnparsable},
	{"truncated TCP header over IPv4", tcp4(servedV4, 80)[:14+20+19], passUnparsable},
	{"truncated IPv6 header", tcp6(servedV6, 80)[:14+39], passUnparsable},
	{"truncated TCP header over IPv6", tcp6(servedV6, 80)[:14+40+19], passUnparsable},
	{"IPv4 with options", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYN(40000, 80), ip4Opts{options: []byte{1, 1, 1, 0}})), passUnparsable},
	{"IPv4 first fragment (MF)", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYN(40000, 80), ip4Opts{flagsOff: 0x2000})), passUnparsable},
	{"IPv4 last fragment (offset)", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYN(40000, 80), ip4Opts{flagsOff: 185})), passUnparsable},
	{"IPv4 middle fragment (MF and offset)", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYN(40000, 80), ip4Opts{flagsOff: 0x2000 | 1})), passUnparsable},
	{"IPv4 ethertype with version 6", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYN(40000, 80), ip4Opts{version: 6})), passUnparsable},
	{"IPv6 ethertype with version 4", ether(etherIPv6, ipv4(protoTCP, clientV4, servedV4, cat(tcpSYN(40000, 80), make([]byte, 20)), ip4Opts{})), passUnparsable},
	{"IPv6 hop-by-hop header before TCP", ether(etherIPv6, ipv6(protoHopByHop, clientV6, servedV6, ipv6ExtHeader(protoHopByHop, protoTCP, tcpSYN(40000, 80)))), passUnparsable},
	{"IPv6 fragment header before TCP", ether(etherIPv6, ipv6(protoFragment, clientV6, servedV6, ipv6ExtHeader(protoFragment, protoTCP, tcpSYN(40000, 80)))), passUnparsable},
	{"802.1Q-tagged IPv4 TCP/80", vlan(etherVLAN, 7, etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYN(40000, 80), ip4Opts{})), passNotIP},
	{"802.1Q-tagged IPv6 TCP/80", vlan(etherVLAN, 7, etherIPv6, ipv6(protoTCP, clientV6, servedV6, tcpSYN(40000, 80))), passNotIP},
	{"802.1ad-tagged IPv4 TCP/80", vlan(etherQinQ, 7, etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYN(40000, 80), ip4Opts{})), passNotIP},
}

// TestPassed runs every frame the kernel must keep, with and without a
// socket on the queue.
func TestPassed(t *testing.T) {
	s := loadTest(t)
	check := func(t *testing.T) {
		for _, tc := range passedFrames {
			t.Run(tc.name, func(t *testing.T) {
				got := runVerdict(t, s, tc.frame, nil)
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("verdict (-want +got):\n%s", diff)
				}
			})
		}
	}
	t.Run("no socket", check)

	ns, ifindex := newVeth(t, 1)
	x := newTestXSK(t, ns, ifindex, 0)
	if err := s.Register(0, x.fd); err != nil {
		t.Fatal(err)
	}
	t.Run("socket on queue 0", check)
}

// TestServedNoSocket: served frames fall back to the kernel while their
// queue has no socket.
func TestServedNoSocket(t *testing.T) {
	s := loadTest(t)
	for _, tc := range servedFrames {
		t.Run(tc.name, func(t *testing.T) {
			got := runVerdict(t, s, tc.frame, nil)
			if diff := cmp.Diff(passNoSocket, got); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServedRedirect: served frames are redirected once a bound AF_XDP
// socket is registered for their queue, and fall back again after
// Unregister. BPF_PROG_TEST_RUN reports the verdict (XDP_REDIRECT) without
// performing the redirect.
func TestServedRedirect(t *testing.T) {
	s := loadTest(t)
	ns, ifindex := newVeth(t, 1)
	x := newTestXSK(t, ns, ifindex, 0)

	if err := s.Register(0, x.fd); err != nil {
		t.Fatal(err)
	}
	for _, tc := range servedFrames {
		t.Run(tc.name, func(t *testing.T) {
			got := runVerdict(t, s, tc.frame, nil)
			if diff := cmp.Diff(redirected, got); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
		})
	}

	if err := s.Unregister(0); err != nil {
		t.Fatal(err)
	}
	if err := s.Unregister(0); err != nil {
		t.Errorf("second Unregister: %v", err)
	}
	t.Run("after Unregister", func(t *testing.T) {
		got := runVerdict(t, s, servedFrames[0].frame, nil)
		if diff := cmp.Diff(passNoSocket, got); diff != "" {
			t.Errorf("verdict (-want +got):\n%s", diff)
		}
	})
}

// TestQueues: the socket is chosen by the frame's rx queue. The program is
// attached to a two-queue veth so that its rx queues have the XDP queue
// info BPF_PROG_TEST_RUN needs for rx_queue_index > 0, and the test runs in
// the veth's namespace, where ingress_ifindex is resolved.
func TestQueues(t *testing.T) {
	ns, ifindex, s := attachedVeth(t, 2, ModeNative)
	x1 := newTestXSK(t, ns, ifindex, 1)
	if err := s.Register(1, x1.fd); err != nil {
		t.Fatal(err)
	}

	frame := tcp4(servedV4, 80)
	for _, tc := range []struct {
		name  string
		queue uint32
		want  verdict
	}{
		{"queue 0 without socket", 0, passNoSocket},
		{"queue 1 with socket", 1, redirected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got verdict
			err := testbed.InNamespace(ns, func() error {
				got = runVerdict(t, s, frame, &xdpMd{IngressIfindex: uint32(ifindex), RxQueueIndex: tc.queue})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("verdict (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRegisterSocketKinds: the XSKMAP takes only AF_XDP sockets. Kernel
// 6.18 also takes an unbound one (older kernels refused it with
// EOPNOTSUPP); frames redirected to it are dropped (xsk_rcv_check), which
// is why Register is for bound sockets only.
func TestRegisterSocketKinds(t *testing.T) {
	s := loadTest(t)

	udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(udp)
	err = s.Register(0, udp)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("Register(UDP socket) = %v, want EOPNOTSUPP", err)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "xdp: register queue 0") {
		t.Errorf("error %q lacks context", err)
	}

	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.Register(0, int(f.Fd())); !errors.Is(err, unix.ENOTSOCK) {
		t.Errorf("Register(%s) = %v, want ENOTSOCK", os.DevNull, err)
	}

	x, err := newUnboundXSK()
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	switch err := s.Register(0, x.fd); {
	case err == nil:
		t.Log("this kernel accepts an unbound AF_XDP socket in the XSKMAP")
		if err := s.Unregister(0); err != nil {
			t.Fatal(err)
		}
	case errors.Is(err, unix.EOPNOTSUPP):
		t.Log("this kernel refuses an unbound AF_XDP socket in the XSKMAP")
	default:
		t.Errorf("Register(unbound AF_XDP socket) = %v", err)
	}
}

func TestRegisterErrors(t *testing.T) {
	s := loadTest(t)
	for _, tc := range []struct {
		queue, fd int
	}{
		{-1, 0}, {MaxQueues, 0}, {0, -1},
	} {
		if err := s.Register(tc.queue, tc.fd); err == nil {
			t.Errorf("Register(%d, %d) succeeded", tc.queue, tc.fd)
		}
	}
	if err := s.Unregister(MaxQueues); err == nil {
		t.Error("Unregister(MaxQueues) succeeded")
	}
}

func TestClosed(t *testing.T) {
	s := loadTest(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Register(0, 3); err == nil {
		t.Error("Register after Close succeeded")
	}
	if err := s.Unregister(0); err == nil {
		t.Error("Unregister after Close succeeded")
	}
	if _, err := s.Counters(); err == nil {
		t.Error("Counters after Close succeeded")
	}
}

// TestMapSizes keeps the Go constants in step with steer.c.
func TestMapSizes(t *testing.T) {
	spec, err := loadSteer()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]int{
		steerMapServedPorts: MaxPorts,
		steerMapServedV4:    MaxAddrs,
		steerMapServedV6:    MaxAddrs,
		steerMapXsks:        MaxQueues,
		steerMapCounters:    int(steerCounterCOUNTER_MAX),
		steerMapFlows:       DefaultFlows,
	} {
		if got := int(spec.Maps[name].MaxEntries); got != want {
			t.Errorf("map %s: max_entries %d, want %d", name, got, want)
		}
	}
	if typ := spec.Maps[steerMapXsks].Type; typ != ebpf.XSKMap {
		t.Errorf("map xsks has type %v", typ)
	}
}

func TestConfigErrors(t *testing.T) {
	many := make([]uint16, MaxPorts+1)
	for i := range many {
		many[i] = uint16(i + 1)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no ports", Config{Addrs: testConfig.Addrs}, "xdp: no ports"},
		{"no addresses", Config{Ports: testConfig.Ports}, "xdp: no addresses"},
		{"port 0", Config{Ports: []uint16{0}, Addrs: testConfig.Addrs}, "port 0"},
		{"too many ports", Config{Ports: many, Addrs: testConfig.Addrs}, "at most 64"},
		{"zero address", Config{Ports: testConfig.Ports, Addrs: []netip.Addr{{}}}, "invalid"},
		{"unspecified IPv4", Config{Ports: testConfig.Ports, Addrs: []netip.Addr{netip.IPv4Unspecified()}}, "unspecified"},
		{"unspecified IPv6", Config{Ports: testConfig.Ports, Addrs: []netip.Addr{netip.IPv6Unspecified()}}, "unspecified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := tc.cfg.keys()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("keys() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigKeys(t *testing.T) {
	cfg := Config{
		Ports: []uint16{80, 443, 80},
		Addrs: []netip.Addr{
			servedV4,
			netip.AddrFrom16(servedV4.As16()), // IPv4-mapped: the same address
			servedV6,
			servedV6.WithZone("eth0"),
		},
	}
	ports, v4, v6, err := cfg.keys()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint16{80, 443}, ports); diff != "" {
		t.Errorf("ports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]netip.Addr{servedV4}, v4, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("IPv4 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]netip.Addr{servedV6}, v6, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("IPv6 (-want +got):\n%s", diff)
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []Mode{ModeAuto, ModeNative, ModeGeneric} {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
		var u Mode
		b, err := m.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		if err := u.UnmarshalText(b); err != nil || u != m {
			t.Errorf("UnmarshalText(%q) = %v, %v", b, u, err)
		}
	}
	for _, s := range []string{"", "skb", "drv", "Native", "offload"} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) succeeded", s)
		}
	}
}

// TestTruncatedLinear cuts served frames anywhere in their headers. The
// kernel wants at least an Ethernet header of test input, so shorter cuts
// use a copy of the program loaded as frags-aware (the same instructions,
// flagged BPF_F_XDP_HAS_FRAGS): the frame's first n bytes are the linear
// area the program sees, between data and data_end, and the rest goes into
// a fragment, as with a multi-buffer NIC.
func TestTruncatedLinear(t *testing.T) {
	s := loadTest(t)
	spec, err := loadSteer()
	if err != nil {
		t.Fatal(err)
	}
	ps := spec.Programs[steerProgXhttpdSteer].Copy()
	ps.Flags |= unix.BPF_F_XDP_HAS_FRAGS
	// The copy shares the loaded program's maps.
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{
		Maps:     spec.Maps,
		Programs: map[string]*ebpf.ProgramSpec{steerProgXhttpdSteer: ps},
		Types:    spec.Types,
	}, ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		steerMapCounters:    s.objs.Counters,
		steerMapServedPorts: s.objs.ServedPorts,
		steerMapServedV4:    s.objs.ServedV4,
		steerMapServedV6:    s.objs.ServedV6,
		steerMapXsks:        s.objs.Xsks,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer coll.Close()
	frags := coll.Programs[steerProgXhttpdSteer]

	for _, frame := range []struct {
		name  string
		frame []byte
	}{
		{"IPv4", tcp4(servedV4, 80)},
		{"IPv6", tcp6(servedV6, 80)},
	} {
		for linear := 0; linear <= len(frame.frame); linear++ {
			want := passUnparsable
			if linear == len(frame.frame) {
				want = passNoSocket
			}
			before, err := s.Counters()
			if err != nil {
				t.Fatal(err)
			}
			action, err := frags.Run(&ebpf.RunOptions{
				Data:    frame.frame,
				Context: xdpMd{DataEnd: uint32(linear)},
			})
			if err != nil {
				t.Fatalf("%s, linear area %d bytes: run: %v", frame.name, linear, err)
			}
			after, err := s.Counters()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, verdict{action, sub(after, before)}); diff != "" {
				t.Errorf("%s, linear area %d bytes: verdict (-want +got):\n%s", frame.name, linear, diff)
			}
		}
	}
}

// TestStamp: a frame the program steers carries the time it was steered,
// CLOCK_MONOTONIC in ns, in the 8 bytes of metadata before its data, which
// AF_XDP hands to user space with the frame (nic.Socket.RxStamp); a frame
// passed to the kernel carries none.
func TestStamp(t *testing.T) {
	s := loadTest(t)
	ns, ifindex := newVeth(t, 1)
	x := newTestXSK(t, ns, ifindex, 0)
	if err := s.Register(0, x.fd); err != nil {
		t.Fatal(err)
	}
	monotonic := func() uint64 {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		return uint64(ts.Nano())
	}
	runOut := func(frame []byte) (action uint32, metaLen uint32, out []byte) {
		t.Helper()
		out = make([]byte, len(frame)+64)
		var ctxOut xdpMd
		action, err := s.objs.XhttpdSteer.Run(&ebpf.RunOptions{
			Data: frame, DataOut: out, Repeat: 1,
			Context: xdpMd{DataEnd: uint32(len(frame))}, ContextOut: &ctxOut,
		})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		return action, ctxOut.Data, out
	}
	for _, tc := range servedFrames {
		t.Run(tc.name, func(t *testing.T) {
			before := monotonic()
			action, metaLen, out := runOut(tc.frame)
			after := monotonic()
			if action != xdpRedirect || metaLen != 8 {
				t.Fatalf("action %d, metadata %d bytes; want %d (redirect) and 8", action, metaLen, xdpRedirect)
			}
			if got := binary.NativeEndian.Uint64(out); got < before || got > after {
				t.Errorf("stamp %d, want within [%d, %d]", got, before, after)
			}
			if !bytes.Equal(out[8:8+len(tc.frame)], tc.frame) {
				t.Errorf("frame changed behind its stamp")
			}
		})
	}
	t.Run("passed", func(t *testing.T) {
		frame := tcp4(clientV4, 22)
		action, metaLen, _ := runOut(frame)
		if action != xdpPass || metaLen != 0 {
			t.Errorf("action %d, metadata %d bytes; want %d (pass) and none", action, metaLen, xdpPass)
		}
	})
}
