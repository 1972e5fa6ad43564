package stack

import (
	"io"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// countingEndpoint counts the reads gonet makes of its endpoint.
type countingEndpoint struct {
	tcpip.Endpoint
	reads atomic.Int64
}

func (e *countingEndpoint) Read(w io.Writer, opts tcpip.ReadOptions) (tcpip.ReadResult, tcpip.Error) {
	e.reads.Add(1)
	return e.Endpoint.Read(w, opts)
}

// A read that waits tries the endpoint once before it waits when the read
// before it waited too (third_party/gvisor-patches/0023): a server's read
// after its answer usually waits, and a try before registering for the
// wakeup, then another after, was one wasted trip through the endpoint's
// locks per request. Each read still wakes for its data.
func TestGonetWaitingReadTriesOnce(t *testing.T) {
	s, full := localStack(t)
	var lwq waiter.Queue
	l, terr := s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &lwq)
	if terr != nil {
		t.Fatal(terr)
	}
	t.Cleanup(l.Close)
	if terr := l.Bind(full); terr != nil {
		t.Fatal(terr)
	}
	if terr := l.Listen(1); terr != nil {
		t.Fatal(terr)
	}
	client, err := gonet.DialTCP(s, full, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	var (
		ep tcpip.Endpoint
		wq *waiter.Queue
		dl = time.Now().Add(5 * time.Second)
	)
	for ep == nil && time.Now().Before(dl) {
		if ep, wq, terr = l.Accept(nil); terr != nil {
			time.Sleep(time.Millisecond)
		}
	}
	if ep == nil {
		t.Fatal("no connection accepted within 5 s")
	}
	counted := &countingEndpoint{Endpoint: ep}
	server := gonet.NewTCPConn(wq, counted)
	t.Cleanup(func() { server.Close() })

	req, buf := []byte("GET / HTTP/1.1\r\n\r\n"), make([]byte, 64)
	const n = 20
	for i := range n {
		go func() {
			time.Sleep(2 * time.Millisecond) // the read waits for it
			client.Write(req)
		}()
		if k, err := server.Read(buf); err != nil || k != len(req) {
			t.Fatalf("read %d: %d bytes, %v", i, k, err)
		}
	}
	// The first read tries, registers, tries again and waits; each after
	// it registers, tries and waits, then reads what woke it.
	if got, want := counted.reads.Load(), int64(3+2*(n-1)); got > want {
		t.Errorf("%d waiting reads took %d endpoint reads; want at most %d", n, got, want)
	}
}
