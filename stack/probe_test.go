//go:build !race

package stack

import (
	"context"
	"io"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// A receiver that now and then takes a few milliseconds to acknowledge (a
// busy client) must not draw loss probes: on a link without loss the
// server retransmits nothing. The netstack's probe timeout is 2*SRTT, a few
// hundred microseconds here, unless floored as Linux floors it (10 ms, the
// patch in third_party/gvisor-patches).
//
// Not under the race detector, which itself stalls goroutines for more than
// 10 ms now and then, and so draws probes that are due; make test runs this
// file without it.
func TestNoProbesForSlowACKs(t *testing.T) {
	w := &wire{out: make(chan [][]byte, 4096), done: make(chan struct{})}
	st, err := New(Config{
		LinkAddr: serverMAC,
		MTU:      1500,
		Addrs:    []netip.Prefix{netip.PrefixFrom(serverV4, 24)},
		Queues:   []TxQueue{w},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := st.Listen("tcp4", 80)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	body := make([]byte, 4<<20)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		conn.Write(body)
		conn.Close()
	}()
	n := 0
	cs := clientStack(t, st, w, 1500, func() {
		// Every 10th packet from the client waits 3 ms: a burst of ACKs
		// held up, as by a client busy elsewhere.
		if n++; n%10 == 0 {
			time.Sleep(3 * time.Millisecond)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := gonet.DialContextTCP(ctx, cs, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(serverV4.As4()), Port: 80}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil || len(got) != len(body) {
		t.Fatalf("read %d of %d bytes: %v", len(got), len(body), err)
	}
	// Without the floor this resent 1 to 129 segments in eight runs, 2 or
	// more in six; with it, none.
	if c := st.TCPCounters(); c.Retransmits > 1 {
		t.Errorf("%d segments resent on a link that lost none (%d tail loss probes, %d recoveries)", c.Retransmits, c.TLPRecovery, c.SACKRecovery)
	}
}
