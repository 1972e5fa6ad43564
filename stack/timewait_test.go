package stack

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// byeServer is a server stack that answers each connection with "bye" and
// closes it first, so that each leaves the server in TIME-WAIT, and a
// client stack joined to it.
func byeServer(t *testing.T, maxTimeWait int) (*Stack, *gvstack.Stack) {
	t.Helper()
	q := newFakeQueue()
	st, l := serverStack(t, q, Config{MTU: 1500, MaxTimeWait: maxTimeWait}, "tcp4")
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("bye"))
			c.Close()
		}
	}()
	return st, clientStack(t, st, q, 1500, nil, nil)
}

// readBye reads connection i from a byeServer to its end and closes it.
func readBye(t *testing.T, c net.Conn, i int) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(c); err != nil || string(b) != "bye" {
		t.Fatalf("connection %d: read %q, %v", i, b, err)
	}
	c.Close()
}

// closeFirst makes n connections that a byeServer closes first, and
// returns the server's counters once every client has seen the end.
func closeFirst(t *testing.T, maxTimeWait, n int) TCPCounters {
	t.Helper()
	st, cs := byeServer(t, maxTimeWait)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Each connection comes from a port of its own. A SYN from the port of
	// a connection the server holds in TIME-WAIT ends that TIME-WAIT early
	// (RFC 6191, as on Linux), so ephemeral ports, picked at random, would
	// leave one connection fewer in TIME-WAIT a few times in a thousand.
	for i := range n {
		local := tcpip.FullAddress{NIC: 1, Port: uint16(20000 + i)}
		server := tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(serverV4.AsSlice()), Port: 80}
		c, err := gonet.DialTCPWithBind(ctx, cs, local, server, ipv4.ProtocolNumber)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		readBye(t, c, i)
	}
	// The server enters TIME-WAIT when the client's FIN arrives, after the
	// client's read has ended. A connection is counted in TIME-WAIT as it
	// enters it, a moment before the bound sends it on to CLOSED: a sum
	// that adds up with one too many in TIME-WAIT is not yet the end.
	bound := uint64(DefaultMaxTimeWait)
	if maxTimeWait > 0 {
		bound = uint64(maxTimeWait)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := st.TCPCounters()
		if c.TimeWait+c.TimeWaitOverflows == uint64(n) && c.TimeWait <= bound || time.Now().After(deadline) {
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Connections the server closes first stay in TIME-WAIT, and are counted
// there.
func TestTimeWaitCounted(t *testing.T) {
	c := closeFirst(t, 0, 20)
	if c.TimeWait != 20 || c.TimeWaitOverflows != 0 {
		t.Errorf("%d in TIME-WAIT and %d closed at once for 20 connections closed first by the server, want 20 and 0", c.TimeWait, c.TimeWaitOverflows)
	}
}

// Past MaxTimeWait, a connection closes at once instead of entering
// TIME-WAIT (gVisor patch 0007), as Linux's do past tcp_max_tw_buckets.
func TestTimeWaitBounded(t *testing.T) {
	c := closeFirst(t, 5, 20)
	if c.TimeWait != 5 || c.TimeWaitOverflows != 15 {
		t.Errorf("%d in TIME-WAIT and %d closed at once for 20 connections with MaxTimeWait 5, want 5 and 15", c.TimeWait, c.TimeWaitOverflows)
	}
}

// A new SYN from the port of a connection in TIME-WAIT takes the port over
// (RFC 6191, as on Linux): a busy client that reuses its ports is not
// refused for the length of the server's TIME-WAIT.
func TestTimeWaitEndsOnNewSYN(t *testing.T) {
	st, cs := byeServer(t, 0)
	if err := cs.SetPortRange(30000, 30000); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 3 {
		c, err := dialServer(ctx, cs, serverV4)
		if err != nil {
			t.Fatalf("connection %d from the same port: %v", i, err)
		}
		readBye(t, c, i)
		// The client's port is free once its connection has ended, after
		// the server's TIME-WAIT began: it waits in LAST-ACK until the
		// server's ACK of its FIN comes.
		deadline := time.Now().Add(10 * time.Second)
		for (st.TCPCounters().TimeWait != 1 || len(cs.RegisteredEndpoints()) > 0) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if tw := st.TCPCounters().TimeWait; tw != 1 {
			t.Fatalf("after connection %d from the same port: %d in TIME-WAIT, want 1", i, tw)
		}
	}
}
