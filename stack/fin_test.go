package stack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// serverFrame is what the client saw of one frame from the server.
type serverFrame struct {
	flags   header.TCPFlags
	payload int
}

// closeAfter serves one connection that writes answer and closes, corked
// or not, and returns what the client read and the server's frames from
// the answer's first byte on. drop, if set, is asked about each of the
// server's frames and drops the ones it returns true for.
func closeAfter(t *testing.T, answer []byte, cork bool, drop func(serverFrame) bool) ([]byte, []serverFrame) {
	t.Helper()
	return serveOnce(t, func(c net.Conn) {
		if cork {
			c.(interface{ SetCork(bool) error }).SetCork(true)
		}
		c.Write(answer)
	}, drop)
}

// serveOnce serves one connection with serve, closes it, and returns what
// the client read and the server's frames from the first with data on,
// as closeAfter.
func serveOnce(t *testing.T, serve func(net.Conn), drop func(serverFrame) bool) ([]byte, []serverFrame) {
	t.Helper()
	q := newFakeQueue()
	st, l := serverStack(t, q, Config{MTU: 1500}, "tcp4")
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		serve(c)
		c.Close()
	}()
	var mu sync.Mutex
	var frames []serverFrame
	cs := clientStack(t, st, q, 1500, nil, func(f []byte) bool {
		tcp := header.TCP(header.IPv4(f[header.EthernetMinimumSize:]).Payload())
		sf := serverFrame{tcp.Flags(), len(tcp.Payload())}
		mu.Lock()
		defer mu.Unlock()
		if sf.payload > 0 || len(frames) > 0 {
			frames = append(frames, sf)
		}
		return drop != nil && drop(sf)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialServer(ctx, cs, serverV4)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read %d bytes, then %v", len(got), err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got, frames
}

// A corked answer and the close that follows leave as one segment, data
// and FIN, as Linux sends them when the close finds the data unsent
// (gVisor patch 0008): the client reads the answer and its end together.
func TestFINOnCorkedAnswer(t *testing.T) {
	answer := []byte("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye")
	got, frames := closeAfter(t, answer, true, nil)
	if !bytes.Equal(got, answer) {
		t.Fatalf("read %q, want %q", got, answer)
	}
	if len(frames) == 0 || frames[0].payload != len(answer) || !frames[0].flags.Contains(header.TCPFlagFin) {
		t.Fatalf("the server's frames from the answer on: %+v; want the answer's %d bytes and the FIN in the first", frames, len(answer))
	}
	for _, f := range frames[1:] {
		if f.flags.Contains(header.TCPFlagFin) {
			t.Errorf("a second FIN: %+v", frames)
		}
	}
}

// Uncorked, the answer leaves when written, and the FIN after it.
func TestFINAfterSentAnswer(t *testing.T) {
	answer := []byte("bye")
	got, frames := closeAfter(t, answer, false, nil)
	if !bytes.Equal(got, answer) {
		t.Fatalf("read %q, want %q", got, answer)
	}
	if len(frames) < 2 || frames[0].flags.Contains(header.TCPFlagFin) || frames[1].flags != header.TCPFlagAck|header.TCPFlagFin {
		t.Errorf("the server's frames from the answer on: %+v; want the answer, then a FIN of its own", frames)
	}
}

// A lost segment that carried the FIN is sent again with it; a FIN of its
// own (after an answer of several segments, whose tail has left before the
// close) is sent again too.
func TestFINResent(t *testing.T) {
	for _, size := range []int{100, 10_000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) { finResent(t, size) })
	}
}

func finResent(t *testing.T, size int) {
	answer := bytes.Repeat([]byte("x"), size)
	lost := 0
	got, frames := closeAfter(t, answer, true, func(f serverFrame) bool {
		// Lose the first two frames that carry the FIN.
		if f.flags.Contains(header.TCPFlagFin) && lost < 2 {
			lost++
			return true
		}
		return false
	})
	if !bytes.Equal(got, answer) {
		t.Fatalf("%d bytes: read %d bytes", size, len(got))
	}
	if lost != 2 {
		t.Errorf("%d bytes: %d FINs lost, want 2: %+v", size, lost, frames)
	}
	if size < 1000 {
		for _, f := range frames {
			if f.flags.Contains(header.TCPFlagFin) && f.payload != size {
				t.Errorf("%d bytes: a FIN without the answer among %+v", size, frames)
				break
			}
		}
	}
}
