//go:build !race

package stack

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
)

// Not under the race detector: there sync.Pool drops some of what it is
// given, and gVisor's pooled segments and buffers allocate.

// A request and its answer, each with the read deadline httpd sets and
// clears, allocate nothing in gonet: before the patch each read that waited
// made a waiter entry and its channel, each write a reader, each deadline a
// timer, about 350 bytes a request in all.
//
// Over IPv6 too: before gVisor patch 0028 each segment received took the
// extension-header iterator's path, which allocated on every one.
func TestGonetExchangeAllocatesNothing(t *testing.T) {
	for _, c := range []struct {
		name  string
		proto tcpip.NetworkProtocolNumber
	}{{"IPv4", ipv4.ProtocolNumber}, {"IPv6", ipv6.ProtocolNumber}} {
		t.Run(c.name, func(t *testing.T) {
			client, server := localConnsOver(t, c.proto)
			req, resp := []byte("GET / HTTP/1.1\r\n\r\n"), make([]byte, 1024)
			buf := make([]byte, 2048)
			exchange := func() { gonetExchange(t, client, server, req, resp, buf) }
			exchange() // the first makes the timers and waiters kept after
			if a := testing.AllocsPerRun(200, exchange); a > 0.5 {
				t.Errorf("%.1f allocations per exchange; want none", a)
			}
		})
	}
}

// BenchmarkGonetExchange is gVisor's own cost of a keep-alive request and
// its 1 KiB answer, both ends in one stack (HandleLocal), without a NIC or
// the kernel: what its patches change on the path each request takes.
func BenchmarkGonetExchange(b *testing.B) {
	client, server := localConns(b)
	req, resp := []byte("GET / HTTP/1.1\r\n\r\n"), make([]byte, 1024)
	buf := make([]byte, 2048)
	b.ReportAllocs()
	for b.Loop() {
		gonetExchange(b, client, server, req, resp, buf)
	}
}

// gonetExchange sends req from client to server and resp back, with the
// read deadline httpd sets and clears around the request; buf takes both.
func gonetExchange(tb testing.TB, client, server *gonet.TCPConn, req, resp, buf []byte) {
	server.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := client.Write(req); err != nil {
		tb.Fatal(err)
	}
	if _, err := server.Read(buf); err != nil {
		tb.Fatal(err)
	}
	server.SetReadDeadline(time.Time{})
	if _, err := server.Write(resp); err != nil {
		tb.Fatal(err)
	}
	for n := 0; n < len(resp); {
		k, err := client.Read(buf)
		if err != nil {
			tb.Fatal(err)
		}
		n += k
	}
}
