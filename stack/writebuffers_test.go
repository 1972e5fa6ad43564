package stack

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
)

// These tests are for gonet's WriteBuffers (third_party/gvisor-patches/0020),
// through which httpd writes a response's head and body as one write.

// A head and a body written with WriteBuffers share segments, as writev(2)
// makes them on a kernel socket: the first segment is a full one, where a
// Write each sent the head alone.
func TestWriteBuffersShareSegments(t *testing.T) {
	head, body := bytes.Repeat([]byte("h"), 200), bytes.Repeat([]byte("b"), 2900)
	got, frames := serveOnce(t, func(c net.Conn) {
		if _, err := c.(*gonet.TCPConn).WriteBuffers([][]byte{head, body}); err != nil {
			t.Error(err)
		}
	}, nil)
	if !bytes.Equal(got, append(head, body...)) {
		t.Fatalf("read %d bytes; want the head and the body, %d", len(got), len(head)+len(body))
	}
	var sizes []int
	for _, f := range frames {
		if f.payload > 0 {
			sizes = append(sizes, f.payload)
		}
	}
	total := len(head) + len(body)
	if len(sizes) == 0 || sizes[0] <= len(head) || len(sizes) != (total+sizes[0]-1)/sizes[0] {
		t.Errorf("data segments of %v bytes; want the head in a full first one, and as few as %d bytes take", sizes, total)
	}
}

// WriteBuffers sends every byte of every buffer, in order, also when the
// send buffer takes a write in several pieces and the writer has to wait
// for room.
func TestWriteBuffersSendsAll(t *testing.T) {
	client, server := localConns(t)
	rng := rand.New(rand.NewPCG(3, 4))
	var want []byte
	var writes [][][]byte
	for range 40 {
		var bufs [][]byte
		for range 1 + rng.IntN(4) {
			b := make([]byte, rng.IntN(256<<10))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			bufs = append(bufs, b)
			want = append(want, b...)
		}
		writes = append(writes, bufs)
	}
	done := make(chan error, 1)
	go func() {
		for _, bufs := range writes {
			n, err := server.WriteBuffers(bufs)
			total := 0
			for _, b := range bufs {
				total += len(b)
			}
			if err != nil || n != int64(total) {
				done <- err
				return
			}
		}
		done <- server.CloseWrite()
	}()
	readAllWritten(t, client, done, want)
}

// readAllWritten reads client to its end and checks that it got want, once
// the writer has reported on done how its writes went.
func readAllWritten(t *testing.T, client net.Conn, done <-chan error, want []byte) {
	t.Helper()
	client.SetDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written in order", len(got), len(want))
	}
}
