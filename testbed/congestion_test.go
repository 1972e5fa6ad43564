package testbed_test

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// A connection the server namespace accepts, over either family, uses the
// congestion control set on the testbed, not the host's default; a name
// the kernel does not have is refused.
func TestServerCongestionControl(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		t.Fatal(err)
	}
	want := "reno" // built into every kernel
	if strings.TrimSpace(string(b)) == want {
		want = "cubic"
	}
	if err := tb.SetServerCongestionControl(want); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"198.18.0.1:8081", "[2001:2::1]:8081"} {
		l, err := tb.ServerListen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := tb.ClientDialer()(ctx, "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		raw, err := s.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var got string
		var gerr error
		if err := raw.Control(func(fd uintptr) {
			got, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
		}); err != nil || gerr != nil {
			t.Fatal(err, gerr)
		}
		if got = strings.TrimRight(got, "\x00"); got != want {
			t.Errorf("%s: accepted connection uses %q, want %q", addr, got, want)
		}
	}
	if err := tb.SetServerCongestionControl("no-such-control"); err == nil {
		t.Error("SetServerCongestionControl(no-such-control): no error")
	}
}
