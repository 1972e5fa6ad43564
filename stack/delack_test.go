package stack

import (
	"bufio"
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// exchange runs a server that answers each line it reads with answer (or
// with nothing when answer is nil) and a client connected to it, and counts
// the server's pure ACKs: frames with no payload and no flag but ACK.
func exchange(t *testing.T, delay time.Duration, answer func(line string) []byte) (net.Conn, *bufio.Reader, *atomic.Int64) {
	t.Helper()
	q := newFakeQueue()
	st, l := serverStack(t, q, Config{DelayedACK: delay, MTU: 1500}, "tcp4")
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if b := answer(line); b != nil {
				conn.Write(b)
			}
		}
	}()
	pureACKs := new(atomic.Int64)
	cs := clientStack(t, st, q, 1500, nil, func(f []byte) bool {
		tcp := header.TCP(header.IPv4(f[header.EthernetMinimumSize:]).Payload())
		if tcp.Flags() == header.TCPFlagAck && len(tcp.Payload()) == 0 {
			pureACKs.Add(1)
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dialServer(ctx, cs, serverV4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn, bufio.NewReader(conn), pureACKs
}

// A request answered at once is acknowledged by its answer: a keep-alive
// exchange costs the server one frame, not a pure ACK and then the answer
// (gVisor patch 0006, delayedACK).
func TestAnswerCarriesACK(t *testing.T) {
	conn, r, pureACKs := exchange(t, 0, func(line string) []byte { return []byte("ok " + line) })
	const n = 200
	for i := range n {
		if _, err := conn.Write([]byte("request\n")); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
	}
	// Upstream gVisor sent one pure ACK per request. A few may still
	// leave when the delayed-ACK timer fires between a request and its
	// answer on a loaded machine.
	if got := pureACKs.Load(); got > n/10 {
		t.Errorf("%d pure ACKs from the server for %d requests answered at once", got, n)
	}
}

// A request nobody answers is still acknowledged, by the delayed-ACK timer.
func TestUnansweredDataAcknowledged(t *testing.T) {
	conn, _, pureACKs := exchange(t, 0, func(string) []byte { return nil })
	if _, err := conn.Write([]byte("request\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for pureACKs.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a request nobody answers was not acknowledged within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Two full segments unacknowledged are acknowledged at once: with a
// delayed-ACK time of an hour, an upload of 1 MiB still goes through.
func TestFullSegmentsAcknowledgedAtOnce(t *testing.T) {
	got := make(chan int, 1)
	conn, r, _ := exchange(t, time.Hour, func(line string) []byte {
		got <- len(line)
		return []byte("ok\n")
	})
	big := make([]byte, 1<<20)
	big[len(big)-1] = '\n'
	if _, err := conn.Write(big); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("no answer to 1 MiB: %v", err)
	}
	if n := <-got; n != len(big) {
		t.Fatalf("server read a line of %d bytes, want %d", n, len(big))
	}
}
