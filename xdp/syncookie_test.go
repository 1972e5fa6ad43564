//go:build linux

package xdp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvtcp "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/xhttpd/xhttpd/syncookie"

	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// loadCookies loads the program with SYN cookies on.
func loadCookies(t testing.TB, budget uint32, window time.Duration) (*Steering, syncookie.Key) {
	t.Helper()
	testbedtest.RequireRoot(t)
	k, err := syncookie.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig
	cfg.SYNCookies = &SYNCookies{Key: k, Budget: budget, Window: window, MSS4: 1460, MSS6: 1440, RcvWnd: 65535, WndScale: testWndScale, SACK: true}
	s, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, k
}

// testWndScale is the window scale the tests' SYN-ACKs offer.
const testWndScale = 9

// onOneCPU pins the test's thread to one CPU: the SYN budget is per CPU.
func onOneCPU(t *testing.T) {
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	var set unix.CPUSet
	set.Set(0)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
}

// tcpSYNOpts is a SYN from port 40000 with sequence number isn and options.
func tcpSYNOpts(dst uint16, isn uint32, opts []byte) []byte {
	h := tcpSYN(40000, dst)
	binary.BigEndian.PutUint32(h[4:], isn)
	h[12] = uint8(5+len(opts)/4) << 4
	return cat(h, opts)
}

// linuxSYNOptions is what Linux puts in a SYN: MSS, SACK permitted,
// timestamps, a no-op and window scale.
func linuxSYNOptions(mss uint16) []byte {
	return cat([]byte{2, 4}, be16(mss), []byte{4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7})
}

// synackWant is what a cookie SYN-ACK should say beside its cookie.
type synackWant struct {
	ourMSS uint16
	// With timestamps (ts), the SYN's TSval that the SYN-ACK echoes, the
	// window scale the SYN offered (-1: none) and whether it offered SACK.
	ts         bool
	tsEcr      uint32
	clientWS   int
	clientSACK bool
}

func TestSYNCookieAnswers(t *testing.T) {
	s, k := loadCookies(t, 0, time.Second)
	noTS := func(mss uint16) synackWant { return synackWant{ourMSS: mss} }
	withTS := func(mss uint16, tsEcr uint32, ws int, sack bool) synackWant {
		return synackWant{ourMSS: mss, ts: true, tsEcr: tsEcr, clientWS: ws, clientSACK: sack}
	}
	for _, tc := range []struct {
		name   string
		frame  []byte
		mss    uint16 // the client's, 0 for none
		want   synackWant
		local  netip.Addr
		remote netip.Addr
		isn    uint32
	}{
		{"IPv4, no options (hping3)", tcp4(servedV4, 80), 0, noTS(1460), servedV4, clientV4, 1},
		{"IPv4, Linux options", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYNOpts(80, 0xfffffff0, linuxSYNOptions(1460)), ip4Opts{})), 1460, withTS(1460, 1, 7, true), servedV4, clientV4, 0xfffffff0},
		{"IPv4, MSS 1300 after no-ops", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYNOpts(80, 7, []byte{1, 1, 1, 1, 2, 4, 5, 20}), ip4Opts{})), 1300, noTS(1460), servedV4, clientV4, 7},
		{"IPv4, with data", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, cat(tcpSYN(40000, 80), []byte("GET / HTTP/1.1\r\n\r\n")), ip4Opts{})), 0, noTS(1460), servedV4, clientV4, 1},
		{"IPv4, Ethernet padding", cat(tcp4(servedV4, 80), make([]byte, 6)), 0, noTS(1460), servedV4, clientV4, 1},
		// macOS: MSS, a no-op, window scale 6, two no-ops, timestamps,
		// SACK permitted, End of Option List.
		{"IPv4, macOS options", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYNOpts(80, 5, cat([]byte{2, 4, 5, 180, 1, 3, 3, 6, 1, 1, 8, 10}, be32(0xabcdef01), be32(0), []byte{4, 2, 0, 0})), ip4Opts{})), 1460, withTS(1460, 0xabcdef01, 6, true), servedV4, clientV4, 5},
		{"IPv4, timestamps alone", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYNOpts(80, 5, cat([]byte{1, 1, 8, 10}, be32(42), be32(0))), ip4Opts{})), 0, withTS(1460, 42, -1, false), servedV4, clientV4, 5},
		{"IPv4, window scale 15 read as 14", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYNOpts(80, 5, cat([]byte{1, 3, 3, 15, 1, 1, 8, 10}, be32(42), be32(0))), ip4Opts{})), 0, withTS(1460, 42, 14, false), servedV4, clientV4, 5},
		// An option whose length runs past the header ends the walk:
		// the MSS before it counts, the timestamps after it do not.
		{"IPv4, malformed option", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYNOpts(80, 5, cat([]byte{2, 4, 5, 180, 30, 40, 1, 1, 8, 10}, be32(42), be32(0))), ip4Opts{})), 1460, noTS(1460), servedV4, clientV4, 5},
		{"IPv4, option of length 0", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYNOpts(80, 5, cat([]byte{2, 4, 5, 180, 30, 0, 1, 1, 8, 10}, be32(42), be32(0))), ip4Opts{})), 1460, noTS(1460), servedV4, clientV4, 5},
		{"IPv6, Linux options", ether(etherIPv6, ipv6(protoTCP, clientV6, servedV6, tcpSYNOpts(443, 99, linuxSYNOptions(1440)))), 1440, withTS(1440, 1, 7, true), servedV6, clientV6, 99},
		{"IPv6, no options", tcp6(servedV6, 80), 0, noTS(1440), servedV6, clientV6, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.Counters()
			action, out, err := s.objs.XhttpdSteer.Test(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := s.Counters()
			if action != xdpTx {
				t.Fatalf("action %d, want XDP_TX", action)
			}
			if d := sub(after, before); d != (Counters{SYNCookies: 1}) {
				t.Errorf("counters moved by %+v, want SYNCookies 1", d)
			}
			checkSYNACK(t, k, out, tc.local, tc.remote, tc.isn, tc.mss, tc.want)
		})
	}
}

// checkSYNACK checks that out is a SYN-ACK with valid checksums from local
// to remote, answering a SYN from port 40000 with sequence number isn, whose
// cookie carries the client's MSS, and whose options are want's.
func checkSYNACK(t *testing.T, k syncookie.Key, out []byte, local, remote netip.Addr, isn uint32, clientMSS uint16, want synackWant) {
	t.Helper()
	eth := header.Ethernet(out)
	if !bytes.Equal([]byte(eth.DestinationAddress()), macSrc) || !bytes.Equal([]byte(eth.SourceAddress()), macDst) {
		t.Errorf("MACs %v -> %v, want them swapped", eth.SourceAddress(), eth.DestinationAddress())
	}
	tcpLen := 24
	if want.ts {
		tcpLen = 40
	}
	var tcp header.TCP
	var src, dst tcpip.Address
	if local.Is4() {
		ip := header.IPv4(out[header.EthernetMinimumSize:])
		if len(out) != 14+20+tcpLen || !ip.IsValid(len(ip)) || !ip.IsChecksumValid() || int(ip.TotalLength()) != 20+tcpLen || ip.TTL() != 64 || ip.Flags() != header.IPv4FlagDontFragment {
			t.Fatalf("IPv4 header % x (frame of %d bytes) not a valid %d-byte packet with DF and TTL 64", out[14:34], len(out), 20+tcpLen)
		}
		tcp = header.TCP(ip.Payload())
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	} else {
		ip := header.IPv6(out[header.EthernetMinimumSize:])
		if len(out) != 14+40+tcpLen || !ip.IsValid(len(ip)) || int(ip.PayloadLength()) != tcpLen || ip.HopLimit() != 64 || ip.TransportProtocol() != header.TCPProtocolNumber {
			t.Fatalf("IPv6 header % x (frame of %d bytes) not a valid packet with %d bytes of TCP", out[14:54], len(out), tcpLen)
		}
		tcp = header.TCP(ip.Payload())
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	}
	if src != tcpip.AddrFromSlice(local.AsSlice()) || dst != tcpip.AddrFromSlice(remote.AsSlice()) {
		t.Errorf("addresses %v -> %v, want %v -> %v", src, dst, local, remote)
	}
	if !tcp.IsChecksumValid(src, dst, checksum.Checksum(tcp.Payload(), 0), uint16(len(tcp.Payload()))) {
		t.Error("TCP checksum invalid")
	}
	if tcp.Flags() != header.TCPFlagSyn|header.TCPFlagAck || int(tcp.DataOffset()) != tcpLen || len(tcp.Payload()) != 0 {
		t.Errorf("flags %v, data offset %d, %d payload bytes: want a bare SYN-ACK with %d bytes of header", tcp.Flags(), tcp.DataOffset(), len(tcp.Payload()), tcpLen)
	}
	if tcp.DestinationPort() != 40000 {
		t.Errorf("ports %d -> %d, want the SYN's swapped", tcp.SourcePort(), tcp.DestinationPort())
	}
	if tcp.AckNumber() != isn+1 {
		t.Errorf("ack %d, want %d", tcp.AckNumber(), isn+1)
	}
	opts := header.ParseSynOptions(tcp.Options(), true)
	wantWS, wantSACK := -1, false
	if want.ts {
		wantSACK = want.clientSACK
		if want.clientWS >= 0 {
			wantWS = testWndScale
		}
	}
	if opts.MSS != want.ourMSS || opts.WS != wantWS || opts.TS != want.ts || opts.SACKPermitted != wantSACK {
		t.Errorf("options %+v, want MSS %d, window scale %d, timestamps %v, SACK %v", opts, want.ourMSS, wantWS, want.ts, wantSACK)
	}
	if want.ts {
		// The TSval keeps the SYN's options as the netstack reads them
		// back (gVisor patch 0032).
		ws, sack := int(opts.TSVal&gvtcp.CookieTSNoWS), opts.TSVal&gvtcp.CookieTSSACK != 0
		keptWS := want.clientWS
		if keptWS < 0 {
			keptWS = gvtcp.CookieTSNoWS
		}
		if opts.TSEcr != want.tsEcr || ws != keptWS || sack != want.clientSACK {
			t.Errorf("TSecr %d, TSval %#x keeping scale %d and SACK %v; want TSecr %d, %d and %v", opts.TSEcr, opts.TSVal, ws, sack, want.tsEcr, keptWS, want.clientSACK)
		}
	}
	if tcp.WindowSize() != 65535 {
		t.Errorf("window %d, want 65535", tcp.WindowSize())
	}
	tu := syncookie.Tuple{Local: local, Remote: remote, LocalPort: tcp.SourcePort(), RemotePort: tcp.DestinationPort()}
	idx, ok := k.Check(tu, tcp.SequenceNumber(), isn, syncookie.Period())
	if !ok || idx != syncookie.MSSIndex(clientMSS) {
		t.Errorf("cookie %#x: Check = (%d, %v), want (%d, true)", tcp.SequenceNumber(), idx, ok, syncookie.MSSIndex(clientMSS))
	}
}

// Below the budget SYNs are steered to the netstack; beyond it they are
// answered; other segments are never answered.
func TestSYNCookieBudget(t *testing.T) {
	onOneCPU(t)
	s, _ := loadCookies(t, 3, time.Hour)
	syn := tcp4(servedV4, 80)
	rst := tcp4(servedV4, 80)
	rst[14+20+13] = 0x04
	if got := runVerdict(t, s, rst, nil); got != passNoSocket {
		t.Fatalf("RST within the budget: %+v, want %+v", got, passNoSocket)
	}
	for i := range 3 {
		if got := runVerdict(t, s, syn, nil); got != passNoSocket {
			t.Fatalf("SYN %d within the budget: %+v, want %+v", i+1, got, passNoSocket)
		}
	}
	if got := runVerdict(t, s, syn, nil); got != (verdict{xdpTx, Counters{SYNCookies: 1}}) {
		t.Fatalf("SYN beyond the budget: %+v, want XDP_TX", got)
	}
	if got := runVerdict(t, s, rst, nil); got != (verdict{xdpDrop, Counters{FloodRSTs: 1}}) {
		t.Errorf("RST beyond the budget: %+v, want XDP_DROP", got)
	}
	for _, flags := range []uint8{0x10, 0x12, 0x14, 0x06, 0x03, 0x18} {
		f := tcp4(servedV4, 80)
		f[14+20+13] = flags
		if got := runVerdict(t, s, f, nil); got != passNoSocket {
			t.Errorf("flags %#x beyond the budget: %+v, want %+v", flags, got, passNoSocket)
		}
	}
	// Not served: the kernel's, whatever the budget.
	if got := runVerdict(t, s, tcp4(servedV4, 22), nil); got != passNotServed {
		t.Errorf("SYN to port 22: %+v, want %+v", got, passNotServed)
	}
}

// A window after one over the budget answers every SYN with a cookie; a
// window after a quiet one, or after a pause, gives the netstack its share
// again.
func TestSYNCookieWindow(t *testing.T) {
	onOneCPU(t)
	const window = 200 * time.Millisecond
	s, _ := loadCookies(t, 2, window)
	syn := tcp4(servedV4, 80)
	send := func(what string, want uint32) {
		t.Helper()
		if got := runVerdict(t, s, syn, nil); got.Action != want {
			t.Fatalf("%s: action %d, want %d", what, got.Action, want)
		}
	}
	// Wait for the start of a fresh window: the first SYN opens one.
	time.Sleep(2 * window)
	start := time.Now()
	send("first SYN", xdpPass)
	send("second SYN", xdpPass)
	send("third SYN, over the budget", xdpTx)
	time.Sleep(window - time.Since(start) + window/4)
	send("first SYN of the window after the flood", xdpTx)
	// After a pause of two windows the share is back.
	time.Sleep(2*window + window/4)
	send("first SYN after a pause", xdpPass)
}

func TestSYNCookieConfigChecked(t *testing.T) {
	testbedtest.RequireRoot(t)
	for _, c := range []SYNCookies{
		{Window: 0, MSS4: 1460, MSS6: 1440, RcvWnd: 1},
		{Window: time.Second, MSS4: 100, MSS6: 1440, RcvWnd: 1},
		{Window: time.Second, MSS4: 1460, MSS6: 1440, RcvWnd: 0},
	} {
		cfg := testConfig
		cfg.SYNCookies = &c
		if s, err := load(cfg); err == nil {
			s.Close()
			t.Errorf("load with %+v succeeded", c)
		}
	}
}

// A flood seen on one CPU makes every CPU answer with cookies, for a
// window after the last SYN over the budget.
func TestSYNCookieFloodOnAllCPUs(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("one CPU")
	}
	onOneCPU(t)
	const window = 300 * time.Millisecond
	s, _ := loadCookies(t, 1, window)
	syn := tcp4(servedV4, 80)
	for i, want := range []uint32{xdpPass, xdpTx} {
		if got := runVerdict(t, s, syn, nil); got.Action != want {
			t.Fatalf("SYN %d on CPU 0: action %d, want %d", i+1, got.Action, want)
		}
	}
	var set unix.CPUSet
	set.Set(1)
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	if got := runVerdict(t, s, syn, nil); got.Action != xdpTx {
		t.Fatalf("first SYN on CPU 1 during CPU 0's flood: action %d, want XDP_TX", got.Action)
	}
	time.Sleep(window + window/2)
	if got := runVerdict(t, s, syn, nil); got.Action != xdpPass {
		t.Fatalf("SYN on CPU 1 a window after the flood: action %d, want XDP_PASS", got.Action)
	}
}

// BenchmarkSYNCookie times the program on one flood SYN, answered with a
// cookie (parse, budget, SipHash, the SYN-ACK written over the SYN), and
// on a segment of an established flow for comparison (steered to the
// socket's queue), in the kernel's own clock (BPF_PROG_TEST_RUN). Each run
// is one program run: repeated runs would see the SYN-ACK the first wrote.
// The ns/frame metric is the program's time; what veth costs around it
// (an sk_buff made an XDP frame, the XDP_TX to the peer) is not in it.
func BenchmarkSYNCookie(b *testing.B) {
	s, _ := loadCookies(b, 0, time.Second)
	ack := tcp4(servedV4, 80)
	ack[len(ack)-20+13] = 0x10 // ACK, not SYN
	benchFrames(b, s, []benchFrame{
		{"IPv4 SYN", ether(etherIPv4, ipv4(protoTCP, clientV4, servedV4, tcpSYNOpts(80, 7, linuxSYNOptions(1460)), ip4Opts{})), xdpTx},
		{"IPv4 SYN, no options (hping3)", tcp4(servedV4, 80), xdpTx},
		{"IPv6 SYN", ether(etherIPv6, ipv6(protoTCP, clientV6, servedV6, tcpSYNOpts(80, 7, linuxSYNOptions(1440)))), xdpTx},
		{"IPv4 ACK", ack, xdpPass},
	})
}

// A benchFrame is a frame to time and the action it must get.
type benchFrame struct {
	name  string
	frame []byte
	want  uint32
}

// benchFrames times each frame, one program run at a time, and reports the
// program's time in the kernel's clock as ns/frame.
func benchFrames(b *testing.B, s *Steering, frames []benchFrame) {
	for _, bc := range frames {
		b.Run(bc.name, func(b *testing.B) {
			var total time.Duration
			for b.Loop() {
				action, took, err := s.objs.XhttpdSteer.Benchmark(bc.frame, 1, nil)
				if err != nil {
					b.Fatal(err)
				}
				if action != bc.want {
					b.Fatalf("action %d, want %d", action, bc.want)
				}
				total += took
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/frame")
		})
	}
}
