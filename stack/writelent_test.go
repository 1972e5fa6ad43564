package stack

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// These tests are for gonet's WriteLent and buffer's lent views
// (third_party/gvisor-patches/0030), through which httpd sends a cached
// body without copying it.

// A lent view reads the caller's bytes in place, and nothing done to it or
// to a buffer holding it writes to them: a write copies them first.
func TestLentViewNeverWritten(t *testing.T) {
	data := bytes.Repeat([]byte("lent"), 1<<15) // 128 KiB, above MaxChunkSize
	want := bytes.Clone(data)
	unchanged := func(step string) {
		t.Helper()
		if !bytes.Equal(data, want) {
			t.Fatalf("after %s the lent bytes changed", step)
		}
	}

	v := buffer.NewViewLent(data[:1000])
	if got := v.AsSlice(); len(got) != 1000 || &got[0] != &data[0] {
		t.Fatalf("the view holds %d bytes, not data's own 1000", len(got))
	}
	if !v.Full() || v.AvailableSize() != 0 {
		t.Errorf("a lent view offers room to write in place: Full %v, AvailableSize %d", v.Full(), v.AvailableSize())
	}
	v.CapLength(10)
	if _, err := v.Write([]byte("xyz")); err != nil {
		t.Fatal(err)
	}
	unchanged("Write after CapLength")
	if got := string(v.AsSlice()); got != "lentlentlexyz" {
		t.Errorf("view after CapLength(10) and Write: %q", got)
	}
	v.Release()

	v = buffer.NewViewLent(data[:1000])
	if _, err := v.WriteAt([]byte("XY"), 5); err != nil {
		t.Fatal(err)
	}
	unchanged("WriteAt")
	if got := string(v.AsSlice()[:8]); got != "lentlXYt" {
		t.Errorf("view after WriteAt: %q", got)
	}
	v.Release()

	b := buffer.MakeWithView(buffer.NewViewLent(data))
	b.Append(buffer.NewViewWithData([]byte("tail")))
	unchanged("Append")
	b.Truncate(100)
	b.GrowTo(200, true)
	unchanged("Truncate and GrowTo")
	if got := b.Flatten(); !bytes.Equal(got[:100], want[:100]) || !bytes.Equal(got[100:], make([]byte, 100)) {
		t.Errorf("buffer after Truncate(100) and GrowTo(200, zero): %q", got)
	}
	c := b.Clone()
	if _, ok := c.PullUp(0, 150); !ok {
		t.Fatal("PullUp failed")
	}
	c.Release()
	b.Release()
	unchanged("Clone, PullUp and Release")

	// A released lent chunk is reused for other bytes, and still lends.
	other := []byte("other bytes")
	v = buffer.NewViewLent(other)
	if got := v.AsSlice(); &got[0] != &other[0] {
		t.Error("a lent view after a release does not read its own bytes")
	}
	v.Release()
}

// WriteLent sends every byte of both buffers, in order, also when the send
// buffer takes a write in several pieces and the writer has to wait for
// room; and it leaves the lent bytes as they were.
func TestWriteLentSendsAll(t *testing.T) {
	client, server := localConns(t)
	rng := rand.New(rand.NewPCG(5, 6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	type write struct{ copied, lent []byte }
	var writes []write
	var want []byte
	for i := range 60 {
		w := write{copied: random(rng.IntN(2048)), lent: random(rng.IntN(300 << 10))}
		switch i % 10 {
		case 0:
			w.copied = nil
		case 1:
			w.lent = nil
		}
		writes = append(writes, w)
		want = append(want, w.copied...)
		want = append(want, w.lent...)
	}
	var lentBefore []byte
	for _, w := range writes {
		lentBefore = append(lentBefore, w.lent...)
	}
	done := make(chan error, 1)
	go func() {
		for _, w := range writes {
			n, err := server.WriteLent(w.copied, w.lent)
			if err != nil || n != int64(len(w.copied)+len(w.lent)) {
				done <- err
				return
			}
		}
		done <- server.CloseWrite()
	}()
	readAllWritten(t, client, done, want)
	var lentAfter []byte
	for _, w := range writes {
		lentAfter = append(lentAfter, w.lent...)
	}
	if !bytes.Equal(lentAfter, lentBefore) {
		t.Error("the lent bytes changed")
	}
}

// WriteLent does not copy what it lends: bytes that have not left yet when
// the caller changes them (which a real caller must never do) leave as
// changed. A client that does not read holds the server to its small
// window, so the end of a 256 KiB write is still queued when WriteLent
// returns. Write, which copies, sends them as they were.
func TestWriteLentReadsInPlace(t *testing.T) {
	for _, lend := range []bool{true, false} {
		s, full := localStack(t)
		// One stack, so both ends: the client's window stays at 16 KiB.
		rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 16 << 10, Max: 16 << 10}
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv); err != nil {
			t.Fatal(err)
		}
		l, err := gonet.ListenTCP(s, full, ipv4.ProtocolNumber)
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan *gonet.TCPConn, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				t.Error(err)
				accepted <- nil
				return
			}
			accepted <- c.(*gonet.TCPConn)
		}()
		client, err := gonet.DialTCP(s, full, ipv4.ProtocolNumber)
		if err != nil {
			t.Fatal(err)
		}
		server := <-accepted
		if server == nil {
			t.FailNow()
		}

		body := bytes.Repeat([]byte{'a'}, 256<<10)
		if lend {
			_, err = server.WriteLent([]byte("head"), body)
		} else {
			_, err = server.Write(append([]byte("head"), body...))
		}
		if err != nil {
			t.Fatal(err)
		}
		copy(body[len(body)-1024:], bytes.Repeat([]byte{'z'}, 1024))
		server.CloseWrite()
		client.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(client)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4+len(body) {
			t.Fatalf("lend %v: read %d bytes, want %d", lend, len(got), 4+len(body))
		}
		changed := bytes.Equal(got[len(got)-1024:], bytes.Repeat([]byte{'z'}, 1024))
		if changed != lend {
			t.Errorf("lend %v: the bytes changed after the write left changed: %v", lend, changed)
		}
		client.Close()
		server.Close()
		l.Close()
	}
}

// These are for gonet's ReadFrom (the same patch), through which httpd
// sends a file from disk: the endpoint reads the file into its own buffers.

// ReadFrom sends a file's ranges byte for byte, through a send buffer far
// smaller than the file, and ends the range where the LimitedReader ends.
func TestReadFromFile(t *testing.T) {
	client, server := localConns(t)
	data := make([]byte, 3<<20+1234)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	f := tempFile(t, data)
	ranges := [][2]int64{{0, int64(len(data))}, {100, 70000}, {int64(len(data)) - 10, 10}, {5, 0}}
	var want []byte
	for _, r := range ranges {
		want = append(want, data[r[0]:r[0]+r[1]]...)
	}
	done := make(chan error, 1)
	go func() {
		for _, r := range ranges {
			if _, err := f.Seek(r[0], io.SeekStart); err != nil {
				done <- err
				return
			}
			n, err := server.ReadFrom(&io.LimitedReader{R: f, N: r[1]})
			if err != nil || n != r[1] {
				t.Errorf("range %v: sent %d, %v", r, n, err)
			}
		}
		done <- server.CloseWrite()
	}()
	readAllWritten(t, client, done, want)
}

// A file that ends before the LimitedReader's N (it shrank since its size
// was taken) ends ReadFrom with io.ErrUnexpectedEOF, at once: the endpoint
// asks its payloader for exactly what Len said, and must not be left asking
// again. Any other reader, a pipe among them, is copied as io.Copy copies
// into a Writer.
func TestReadFromShortFileAndOtherReaders(t *testing.T) {
	client, server := localConns(t)
	go io.Copy(io.Discard, client)
	f := tempFile(t, make([]byte, 100<<10))
	done := make(chan error, 1)
	go func() {
		_, err := server.ReadFrom(&io.LimitedReader{R: f, N: 1 << 20})
		done <- err
	}()
	select {
	case err := <-done:
		if err != io.ErrUnexpectedEOF {
			t.Errorf("a file shorter than N: %v; want io.ErrUnexpectedEOF", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadFrom of a file shorter than N did not return")
	}

	// A pipe is an *os.File too, but its bytes leave as they come, as
	// io.Copy sends them: the endpoint does not wait in its read for a
	// whole piece.
	client3, server3 := localConns(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	pw.Write([]byte("hello"))
	go server3.ReadFrom(&io.LimitedReader{R: pr, N: 1000})
	client3.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(client3, got); err != nil || string(got) != "hello" {
		t.Errorf("from a pipe: read %q, %v; want hello at once", got, err)
	}

	client2, server2 := localConns(t)
	want := bytes.Repeat([]byte("other reader "), 20000)
	go func() {
		n, err := server2.ReadFrom(bytes.NewReader(want))
		if err != nil || n != int64(len(want)) {
			t.Errorf("bytes.Reader: sent %d, %v", n, err)
		}
		server2.CloseWrite()
	}()
	client2.SetDeadline(time.Now().Add(10 * time.Second))
	got, err = io.ReadAll(client2)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("bytes.Reader: read %d bytes (%v), want %d", len(got), err, len(want))
	}
}

func tempFile(t *testing.T, data []byte) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	return f
}
