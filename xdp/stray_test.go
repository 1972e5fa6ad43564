//go:build linux

package xdp

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/syncookie"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// TCP flags, as in the header's 14th byte.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagACK = 0x10
)

// loadStrays loads the program with a flow table and a stray budget, and
// SYN cookies when cookies is set (a SYN budget of 0: every SYN answered).
func loadStrays(t testing.TB, budget uint32, cookies bool) (*Steering, syncookie.Key) {
	t.Helper()
	testbedtest.RequireRoot(t)
	cfg := testConfig
	cfg.Strays = &Strays{Budget: budget, Window: time.Hour}
	var k syncookie.Key
	if cookies {
		var err error
		if k, err = syncookie.NewKey(); err != nil {
			t.Fatal(err)
		}
		cfg.SYNCookies = &SYNCookies{Key: k, Budget: 0, Window: time.Second, MSS4: 1460, MSS6: 1440, RcvWnd: 65535}
	}
	s, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, k
}

// segment is a served TCP segment from client (clientV4 or clientV6) port
// src to server port 80, with flags and sequence and acknowledgment
// numbers.
func segment(client netip.Addr, src uint16, flags uint8, seq, ack uint32) []byte {
	h := tcpSYN(src, 80)
	h[13] = flags
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	if client.Is4() {
		return ether(etherIPv4, ipv4(protoTCP, client, servedV4, h, ip4Opts{}))
	}
	return ether(etherIPv6, ipv6(protoTCP, client, servedV6, h))
}

var (
	strayDropped = verdict{xdpDrop, Counters{Strays: 1}}
	otherV4      = netip.MustParseAddr("198.18.0.3")
)

// A segment of a flow whose SYN the program steered is steered, over
// any budget; a segment of no such flow is a stray, steered within the
// budget and dropped beyond it, and a stray steered does not enter the
// table (a flood that repeats its four-tuples would make them flows), nor
// does a SYN with RST or FIN set, which the SYN budget does not count.
func TestStrayBudget(t *testing.T) {
	for _, client := range []netip.Addr{clientV4, clientV6} {
		t.Run(client.String(), func(t *testing.T) {
			onOneCPU(t)
			s, _ := loadStrays(t, 5, false)
			if got := runVerdict(t, s, segment(client, 1000, flagSYN, 1, 0), nil); got != passNoSocket {
				t.Fatalf("SYN: %+v, want %+v", got, passNoSocket)
			}
			for _, flags := range []uint8{flagACK, flagACK | flagFIN, flagRST, flagRST | flagACK, 0} {
				if got := runVerdict(t, s, segment(client, 1000, flags, 2, 2), nil); got != passNoSocket {
					t.Errorf("flags %#x of the SYN's flow: %+v, want %+v", flags, got, passNoSocket)
				}
			}
			// Five strays within the budget: three ACKs and two SYNs
			// with FIN or RST.
			for port := uint16(2000); port < 2003; port++ {
				if got := runVerdict(t, s, segment(client, port, flagACK, 2, 2), nil); got != passNoSocket {
					t.Errorf("stray from port %d within the budget: %+v, want %+v", port, got, passNoSocket)
				}
			}
			for i, flags := range []uint8{flagSYN | flagFIN, flagSYN | flagRST} {
				if got := runVerdict(t, s, segment(client, 4000+uint16(i), flags, 2, 0), nil); got != passNoSocket {
					t.Errorf("flags %#x within the budget: %+v, want %+v", flags, got, passNoSocket)
				}
			}
			for _, flags := range []uint8{flagACK, flagSYN | flagACK, flagRST, flagFIN, 0} {
				if got := runVerdict(t, s, segment(client, 3000, flags, 2, 2), nil); got != strayDropped {
					t.Errorf("stray with flags %#x beyond the budget: %+v, want %+v", flags, got, strayDropped)
				}
			}
			// The SYN's flow is still there; the strays steered, and
			// the SYNs with FIN or RST, are not.
			if got := runVerdict(t, s, segment(client, 1000, flagACK, 3, 3), nil); got != passNoSocket {
				t.Errorf("the SYN's flow beyond the budget: %+v, want %+v", got, passNoSocket)
			}
			for _, port := range []uint16{2000, 2002, 4000, 4001} {
				if got := runVerdict(t, s, segment(client, port, flagACK, 3, 3), nil); got != strayDropped {
					t.Errorf("flow from port %d beyond the budget: %+v, want %+v", port, got, strayDropped)
				}
			}
			// The table keys on the whole tuple: another client's
			// segment from the SYN's port is a stray.
			other := otherV4
			if client.Is6() {
				other = netip.MustParseAddr("2001:2::3")
			}
			if got := runVerdict(t, s, segment(other, 1000, flagACK, 2, 2), nil); got != strayDropped {
				t.Errorf("another client from the SYN's port: %+v, want %+v", got, strayDropped)
			}
		})
	}
}

// Each window gives each CPU's strays a fresh budget.
func TestStrayWindow(t *testing.T) {
	onOneCPU(t)
	testbedtest.RequireRoot(t)
	const window = 200 * time.Millisecond
	cfg := testConfig
	cfg.Strays = &Strays{Budget: 2, Window: window}
	s, err := load(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	send := func(what string, want verdict) {
		t.Helper()
		if got := runVerdict(t, s, segment(clientV4, 2000, flagACK, 2, 2), nil); got != want {
			t.Fatalf("%s: %+v, want %+v", what, got, want)
		}
	}
	start := time.Now()
	send("first stray", passNoSocket)
	send("second stray", passNoSocket)
	send("third stray", strayDropped)
	time.Sleep(window - time.Since(start) + window/4)
	send("first stray of the next window", passNoSocket)
}

// The ACK that completes a handshake the program answered with a SYN
// cookie is steered, over any budget, and its flow enters the table; an
// ACK whose cookie does not check is a stray.
func TestStrayCookieACK(t *testing.T) {
	for _, client := range []netip.Addr{clientV4, clientV6} {
		t.Run(client.String(), func(t *testing.T) {
			onOneCPU(t)
			s, _ := loadStrays(t, 0, true)
			var isn uint32 = 0xfffffff0 // the ACK's sequence number wraps
			action, out, err := s.objs.XhttpdSteer.Test(segment(client, 1000, flagSYN, isn, 0))
			if err != nil || action != xdpTx {
				t.Fatalf("SYN: action %d (%v), want XDP_TX", action, err)
			}
			cookie := binary.BigEndian.Uint32(out[len(out)-24+4:])
			// The low bits carry the MSS index, as in gVisor and Linux:
			// a cookie a little off still checks. One off in the hash
			// does not.
			if got := runVerdict(t, s, segment(client, 1000, flagACK, isn+1, cookie+1+1<<8), nil); got != strayDropped {
				t.Errorf("ACK of a wrong cookie: %+v, want %+v", got, strayDropped)
			}
			if got := runVerdict(t, s, segment(client, 1001, flagACK, isn+1, cookie+1), nil); got != strayDropped {
				t.Errorf("the cookie's ACK from another port: %+v, want %+v", got, strayDropped)
			}
			if got := runVerdict(t, s, segment(client, 1000, flagACK|flagRST, isn+1, cookie+1), nil); got != strayDropped {
				t.Errorf("RST-ACK of the cookie: %+v, want %+v", got, strayDropped)
			}
			if got := runVerdict(t, s, segment(client, 1000, flagACK, isn+1, cookie+1), nil); got != passNoSocket {
				t.Fatalf("ACK of the cookie: %+v, want %+v", got, passNoSocket)
			}
			if got := runVerdict(t, s, segment(client, 1000, flagACK, isn+100, cookie+1), nil); got != passNoSocket {
				t.Errorf("later segment of the cookie's flow: %+v, want %+v", got, passNoSocket)
			}
		})
	}
}

// A cookie is checked only after the program has sent one: before, an ACK
// that happens to carry a valid cookie is a stray like any other (an ACK
// flood costs no SipHash while no SYN flood came before it).
func TestStrayCookieACKOnlyAfterCookies(t *testing.T) {
	onOneCPU(t)
	s, k := loadStrays(t, 0, true)
	const isn = 7
	tu := syncookie.Tuple{Local: servedV4, Remote: clientV4, LocalPort: 80, RemotePort: 1000}
	cookie := k.Make(tu, isn, syncookie.Period(), 3)
	ack := segment(clientV4, 1000, flagACK, isn+1, cookie+1)
	if got := runVerdict(t, s, ack, nil); got != strayDropped {
		t.Errorf("cookie ACK before any cookie was sent: %+v, want %+v", got, strayDropped)
	}
	if action, err := run(s, segment(clientV4, 999, flagSYN, 1, 0), nil); err != nil || action != xdpTx {
		t.Fatalf("SYN: action %d (%v), want XDP_TX", action, err)
	}
	if got := runVerdict(t, s, ack, nil); got != passNoSocket {
		t.Errorf("cookie ACK once cookies were sent: %+v, want %+v", got, passNoSocket)
	}
}

// Without a stray configuration the program keeps no table: every served
// segment is steered.
func TestStraysOff(t *testing.T) {
	s := loadTest(t)
	for port := uint16(2000); port < 2010; port++ {
		if got := runVerdict(t, s, segment(clientV4, port, flagACK, 2, 2), nil); got != passNoSocket {
			t.Fatalf("ACK from port %d: %+v, want %+v", port, got, passNoSocket)
		}
	}
	if _, err := load(Config{Ports: testConfig.Ports, Addrs: testConfig.Addrs, Strays: &Strays{Budget: 1}}); err == nil {
		t.Error("load with a stray window of 0 succeeded")
	}
}

// BenchmarkStray times the program on a segment of a flow in the table and
// on a stray beyond the budget, in the kernel's clock (BPF_PROG_TEST_RUN),
// beside BenchmarkSYNCookie's segment without a table.
func BenchmarkStray(b *testing.B) {
	s, _ := loadStrays(b, 0, false)
	if action, err := run(s, segment(clientV4, 1000, flagSYN, 1, 0), nil); err != nil || action != xdpPass {
		b.Fatalf("SYN: action %d (%v)", action, err)
	}
	benchFrames(b, s, []benchFrame{
		{"IPv4 flow", segment(clientV4, 1000, flagACK, 2, 2), xdpPass},
		{"IPv4 stray", segment(clientV4, 2000, flagACK, 2, 2), xdpDrop},
		{"IPv6 stray", segment(clientV6, 2000, flagACK, 2, 2), xdpDrop},
	})
}

// Flows added from user space are in the table: their segments are
// steered over any budget, over IPv4 and IPv6.
func TestAddFlows(t *testing.T) {
	onOneCPU(t)
	s, _ := loadStrays(t, 0, false)
	err := s.AddFlows([]Flow{
		{Local: netip.AddrPortFrom(servedV4, 80), Remote: netip.AddrPortFrom(clientV4, 1000)},
		{Local: netip.AddrPortFrom(servedV6, 80), Remote: netip.AddrPortFrom(clientV6, 1000)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, client := range []netip.Addr{clientV4, clientV6} {
		if got := runVerdict(t, s, segment(client, 1000, flagACK, 2, 2), nil); got != passNoSocket {
			t.Errorf("%v: segment of an added flow: %+v, want %+v", client, got, passNoSocket)
		}
		if got := runVerdict(t, s, segment(client, 1001, flagACK, 2, 2), nil); got != strayDropped {
			t.Errorf("%v: segment of another port: %+v, want %+v", client, got, strayDropped)
		}
	}
	if err := s.AddFlows([]Flow{{Remote: netip.AddrPortFrom(clientV4, 1)}}); err == nil {
		t.Error("AddFlows with no local address succeeded")
	}
	if err := loadTest(t).AddFlows([]Flow{{Local: netip.AddrPortFrom(servedV4, 80), Remote: netip.AddrPortFrom(clientV4, 1)}}); err == nil {
		t.Error("AddFlows without a table succeeded")
	}
}

// The flow table is as large as asked, DefaultFlows unless told, and not
// below MinFlows; without Strays there is none.
func TestFlowTableSize(t *testing.T) {
	testbedtest.RequireRoot(t)
	for _, c := range []struct{ flows, want int }{{0, DefaultFlows}, {MinFlows, MinFlows}, {300000, 300000}} {
		cfg := testConfig
		cfg.Strays = &Strays{Budget: 1, Window: time.Second, Flows: c.flows}
		s, err := load(cfg)
		if err != nil {
			t.Fatalf("Flows %d: %v", c.flows, err)
		}
		if got := int(s.objs.Flows.MaxEntries()); got != c.want {
			t.Errorf("Flows %d: a table of %d, want %d", c.flows, got, c.want)
		}
		s.Close()
	}
	cfg := testConfig
	cfg.Strays = &Strays{Budget: 1, Window: time.Second, Flows: MinFlows - 1}
	if s, err := load(cfg); err == nil {
		s.Close()
		t.Errorf("Flows %d loaded", MinFlows-1)
	}
	if got := loadTest(t).objs.Flows.MaxEntries(); got != 1 {
		t.Errorf("without Strays, a table of %d", got)
	}
}

// strayReference is the flow table's rules in Go, for testConfig with a
// stray budget of 0 and no SYN cookies, on top of reference: a served
// bare SYN is steered and its flow enters flows (keyed by the addresses
// and ports as the frame carries them, remote first); any other served
// segment is steered if its flow is there, and dropped as a stray if not.
func strayReference(f []byte, flows map[string]bool) verdict {
	if v := reference(f); v != passNoSocket {
		return v
	}
	ip := f[14:]
	var key string
	var tcp []byte
	if binary.BigEndian.Uint16(f[12:]) == etherIPv4 {
		src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		tcp = ip[20:]
		key = netip.AddrPortFrom(src, 0).String() + netip.AddrPortFrom(dst, 0).String()
	} else {
		src, dst := netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40]))
		tcp = ip[40:]
		key = netip.AddrPortFrom(src, 0).String() + netip.AddrPortFrom(dst, 0).String()
	}
	key += string(tcp[0:4]) // the ports
	if tcp[13]&(flagSYN|flagACK|flagRST|flagFIN) == flagSYN {
		flows[key] = true
		return passNoSocket
	}
	if flows[key] {
		return passNoSocket
	}
	return strayDropped
}

// The program's flow table against its rules in Go, on every frame the
// fuzzer makes: a SYN's flow, and only that, lets the flow's other
// segments through. The seeds are the table tests' frames and segments
// of a few flows, with and without their SYN.
func FuzzStrays(f *testing.F) {
	var seeds [][]byte
	for _, client := range []netip.Addr{clientV4, clientV6} {
		for _, flags := range []uint8{flagSYN, flagACK, flagACK | flagFIN, flagRST, flagSYN | flagACK, flagSYN | flagFIN} {
			for _, port := range []uint16{1000, 1001} {
				seeds = append(seeds, segment(client, port, flags, 1, 1))
			}
		}
	}
	s, _ := loadStrays(f, 0, false)
	flows := map[string]bool{}
	fuzzRules(f, s, func(frame []byte) verdict { return strayReference(frame, flows) }, seeds...)
}
