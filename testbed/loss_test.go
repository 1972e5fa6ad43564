package testbed_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"math"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// frame builds an Ethernet frame of the given type whose IPv4 protocol or
// IPv6 next header is proto, padded to 64 bytes.
func frame(etherType uint16, proto byte) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint16(b[12:], etherType)
	switch etherType {
	case 0x0800:
		b[14] = 0x45
		b[14+9] = proto
	case 0x86dd:
		b[14] = 0x60
		b[14+6] = proto
	}
	return b
}

// loadLoss loads the programs without attaching them, until the test ends.
func loadLoss(t *testing.T, opts testbed.LossOptions, own ...netip.Addr) *testbed.Loss {
	t.Helper()
	testbedtest.RequireRoot(t)
	l, err := testbed.NewLoss(opts, own...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestLossVerdicts runs the programs through BPF_PROG_TEST_RUN on hand-built
// frames: with a share of 1 every TCP frame is dropped, and nothing else.
func TestLossVerdicts(t *testing.T) {
	l := loadLoss(t, testbed.LossOptions{Receive: 1, Send: 1})
	cases := []struct {
		name string
		in   []byte
		drop bool
	}{
		{"IPv4 TCP", frame(0x0800, 6), true},
		{"IPv6 TCP", frame(0x86dd, 6), true},
		{"IPv4 UDP", frame(0x0800, 17), false},
		{"ICMPv6 (ND)", frame(0x86dd, 58), false},
		{"ARP", frame(0x0806, 6), false},
		{"truncated IPv4 TCP", frame(0x0800, 6)[:23], false},
	}
	for _, c := range cases {
		for i, p := range l.Programs() {
			in := c.in
			if i == 1 && len(in) < 64 {
				continue // the kernel refuses sched_cls test runs this short
			}
			got, err := p.Run(&ebpf.RunOptions{Data: in})
			if err != nil {
				t.Fatalf("%s, %s: %v", c.name, p, err)
			}
			want := p.Pass
			if c.drop {
				want = p.Drop
			}
			if got != want {
				t.Errorf("%s, program %d: verdict %d, want %d", c.name, i, got, want)
			}
		}
	}
	n, err := l.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if n != (testbed.LossCounts{ReceiveSeen: 2, ReceiveDropped: 2, SendSeen: 2, SendDropped: 2}) {
		t.Errorf("counts %+v, want 2 TCP frames seen and dropped each way", n)
	}
}

// to sets the destination address of f, a frame from frame, to dst and
// returns f.
func to(f []byte, dst netip.Addr) []byte {
	if dst.Is4() {
		a := dst.As4()
		copy(f[14+16:], a[:])
	} else {
		a := dst.As16()
		copy(f[14+24:], a[:])
	}
	return f
}

// TestLossForeign checks that the receive side drops TCP frames addressed
// to anyone but the client, counted apart, and passes the rest: the
// client's own TCP (at a share of 0), and ARP, ND and UDP to anyone.
func TestLossForeign(t *testing.T) {
	me4, me6 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:2::2")
	l := loadLoss(t, testbed.LossOptions{}, me4, me6)
	cases := []struct {
		name string
		in   []byte
		drop bool
	}{
		{"IPv4 TCP to the client", to(frame(0x0800, 6), me4), false},
		{"IPv6 TCP to the client", to(frame(0x86dd, 6), me6), false},
		{"IPv4 TCP to another", to(frame(0x0800, 6), netip.MustParseAddr("198.18.7.9")), true},
		{"IPv4 TCP to one off by its last byte", to(frame(0x0800, 6), netip.MustParseAddr("198.18.0.3")), true},
		{"IPv6 TCP to another", to(frame(0x86dd, 6), netip.MustParseAddr("2001:2:0:0:1::2")), true},
		{"IPv6 TCP to one off in its first half", to(frame(0x86dd, 6), netip.MustParseAddr("2001:3::2")), true},
		{"IPv4 UDP to another", to(frame(0x0800, 17), netip.MustParseAddr("198.18.7.9")), false},
		{"ND to another", to(frame(0x86dd, 58), netip.MustParseAddr("2001:2::7")), false},
		{"truncated IPv6 TCP", frame(0x86dd, 6)[:50], false},
	}
	rx := l.Programs()[0]
	for _, c := range cases {
		got, err := rx.Run(&ebpf.RunOptions{Data: c.in})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		want := rx.Pass
		if c.drop {
			want = rx.Drop
		}
		if got != want {
			t.Errorf("%s: verdict %d, want %d", c.name, got, want)
		}
	}
	n, err := l.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if n != (testbed.LossCounts{ReceiveSeen: 2, ReceiveForeign: 4}) {
		t.Errorf("counts %+v, want the client's 2 TCP frames seen and 4 foreign", n)
	}
}

// TestLossShare checks the share dropped over many runs, and that a share
// of 0 drops nothing.
func TestLossShare(t *testing.T) {
	l := loadLoss(t, testbed.LossOptions{Receive: 0.3, Send: 0})
	const runs = 20000
	counts := func() testbed.LossCounts {
		n, err := l.Counts()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// A run that a signal interrupts (the Go runtime's preemption sends
	// SIGURG) is started again from the first repeat by cilium/ebpf, which
	// calls Reset first: what the interrupted part counted is left out.
	var n testbed.LossCounts
	for _, p := range l.Programs() {
		start := counts()
		reset := func() { start = counts() }
		if _, err := p.Run(&ebpf.RunOptions{Data: frame(0x0800, 6), Repeat: runs, Reset: reset}); err != nil {
			t.Fatal(err)
		}
		end := counts()
		n.ReceiveSeen += end.ReceiveSeen - start.ReceiveSeen
		n.ReceiveDropped += end.ReceiveDropped - start.ReceiveDropped
		n.SendSeen += end.SendSeen - start.SendSeen
		n.SendDropped += end.SendDropped - start.SendDropped
		n.ReceiveForeign += end.ReceiveForeign - start.ReceiveForeign
	}
	if n.ReceiveSeen != runs || n.SendSeen != runs {
		t.Fatalf("counts %+v, want %d seen each way", n, runs)
	}
	// 0.3 of 20,000 is 6,000 with a standard deviation of about 65.
	if n.ReceiveDropped < 5600 || n.ReceiveDropped > 6400 {
		t.Errorf("receive dropped %d of %d at 0.3", n.ReceiveDropped, runs)
	}
	if n.SendDropped != 0 {
		t.Errorf("send dropped %d at 0", n.SendDropped)
	}
}

func TestLossBadShare(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	for _, o := range []testbed.LossOptions{{Receive: -0.1}, {Send: 1.5}, {Receive: nan()}} {
		if l, err := tb.AddLoss(o); err == nil {
			l.Close()
			t.Errorf("AddLoss(%+v) accepted", o)
		}
	}
}

func nan() float64 { return math.NaN() }

// TestLossOnTestbed attaches the programs to a testbed's client end: all
// loss on the send side makes a connect fail; a few percent each way still
// lets a download from the kernel complete, bytes identical, and the
// counters show the frames lost.
func TestLossOnTestbed(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	body := make([]byte, 2<<20)
	rand.Read(body)
	ln, err := tb.ServerListen("tcp", "198.18.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })}
	go srv.Serve(ln)
	defer srv.Close()
	if err := tb.WaitTCP(context.Background(), "198.18.0.1:8080"); err != nil {
		t.Fatal(err)
	}

	l, err := tb.AddLoss(testbed.LossOptions{Send: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	if c, err := tb.ClientDialer()(ctx, "tcp", "198.18.0.1:8080"); err == nil {
		c.Close()
		t.Error("connected with every sent frame dropped")
	}
	cancel()
	n, err := l.Counts()
	if err != nil {
		t.Fatal(err)
	}
	if n.SendDropped == 0 || n.SendDropped != n.SendSeen {
		t.Errorf("counts %+v: want every sent TCP frame dropped", n)
	}
	l.Close()

	l, err = tb.AddLoss(testbed.LossOptions{Receive: 0.03, Send: 0.03})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	hc := tb.ClientHTTP()
	for _, url := range []string{"http://198.18.0.1:8080/", "http://198.18.0.1:8080/again"} {
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("download under loss: %d bytes, err %v", len(got), err)
		}
	}
	n, err = l.Counts()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("counts %+v", n)
	if n.ReceiveDropped == 0 || n.ReceiveSeen < 1000 {
		t.Errorf("counts %+v: want received frames seen and some dropped", n)
	}
	// The client's veth end has XDP, so the server's end segments: each
	// frame is at most an MTU, and 4 MiB took well over 2,000 of them.
	if n.ReceiveSeen < 2*(2<<20)/1500 {
		t.Errorf("received %d TCP frames for 4 MiB: GSO packets reached the loss program", n.ReceiveSeen)
	}
}
