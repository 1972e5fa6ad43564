package stack

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// These tests are for third_party/gvisor-patches/0014, gonet's reuse of its
// waiters, readers and deadline timers, on which httpd's connections run.

// localConns returns both ends of a TCP connection through one plain gVisor
// stack that delivers packets to its own address itself (HandleLocal).
func localConns(t testing.TB) (client, server *gonet.TCPConn) {
	return localConnsOver(t, ipv4.ProtocolNumber)
}

// localConnsOver is localConns over IPv4 or IPv6 (proto).
func localConnsOver(t testing.TB, proto tcpip.NetworkProtocolNumber) (client, server *gonet.TCPConn) {
	t.Helper()
	s, full := localStackOver(t, proto)
	l, err := gonet.ListenTCP(s, full, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = gonet.DialTCP(s, full, proto)
	if err != nil {
		t.Fatal(err)
	}
	server = (<-accepted).(*gonet.TCPConn)
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// localStack is a plain gVisor stack that delivers packets to its own
// address itself (HandleLocal), and that address's port 80.
func localStack(t testing.TB) (*gvstack.Stack, tcpip.FullAddress) {
	return localStackOver(t, ipv4.ProtocolNumber)
}

// localStackOver is localStack with an IPv4 address (198.18.0.1) or an
// IPv6 one (2001:2::1), by proto.
func localStackOver(t testing.TB, proto tcpip.NetworkProtocolNumber) (*gvstack.Stack, tcpip.FullAddress) {
	t.Helper()
	s := gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol},
		HandleLocal:        true,
	})
	t.Cleanup(func() { s.Close(); s.Wait() })
	if err := s.CreateNIC(1, channel.New(16, 1500, "")); err != nil {
		t.Fatal(err)
	}
	addr := tcpip.AddrFrom4([4]byte{198, 18, 0, 1})
	if proto == ipv6.ProtocolNumber {
		addr = tcpip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 15: 1})
	}
	s.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: addr.WithPrefix()}, gvstack.AddressProperties{})
	s.SetRouteTable([]tcpip.Route{{Destination: addr.WithPrefix().Subnet(), NIC: 1}})
	return s, tcpip.FullAddress{NIC: 1, Addr: addr, Port: 80}
}

// Deadlines keep net.Conn's meaning with one timer reused: one that passes
// ends a waiting read; a past one fails at once; a deadline moved later or
// cleared before it passes does not end a read; after a timeout a new
// deadline or none lets reads work again.
func TestGonetDeadlines(t *testing.T) {
	client, server := localConns(t)
	buf := make([]byte, 16)
	timedOut := func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err) }

	server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if _, err := server.Read(buf); !timedOut(err) {
		t.Fatalf("read past its deadline: %v; want a timeout", err)
	}
	server.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := server.Read(buf); !timedOut(err) {
		t.Fatalf("read with a past deadline: %v; want a timeout", err)
	}

	// Moved later, then cleared: the first timer's time passes, reads go on.
	for _, later := range []time.Time{time.Now().Add(time.Hour), {}} {
		server.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		server.SetReadDeadline(later)
		time.Sleep(30 * time.Millisecond)
		go client.Write([]byte("x"))
		if n, err := server.Read(buf); err != nil || n != 1 {
			t.Fatalf("read after its deadline was moved to %v: %d, %v", later, n, err)
		}
	}

	// A deadline that fired, then a new one that has not: the read waits.
	server.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
	time.Sleep(20 * time.Millisecond)
	server.SetReadDeadline(time.Now().Add(time.Hour))
	go client.Write([]byte("y"))
	if n, err := server.Read(buf); err != nil || n != 1 || buf[0] != 'y' {
		t.Fatalf("read after a fired deadline was replaced: %d, %v", n, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
