package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xhttpd/xhttpd/testbed"
)

// While xhttpd serves port 80, the kernel keeps everything else: a kernel
// TCP server on another port of the same addresses answers, and neighbour
// resolution (ARP, ND) still works after the client forgets the server.
func TestKernelKeepsOtherTraffic(t *testing.T) {
	tb, s, _ := serve(t)

	for _, addr := range []string{"198.18.0.1:8080", "[2001:2::1]:8080"} {
		l, err := tb.ServerListen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "kernel")
		})}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}

	// The client forgets the server's MAC, so the next connection to each
	// port must resolve it again through the kernel on the server side.
	if out, err := tb.ClientCmd(context.Background(), "ip", "neigh", "flush", "dev", tb.ClientIf).CombinedOutput(); err != nil {
		t.Fatalf("ip neigh flush: %v\n%s", err, out)
	}
	client := tb.ClientHTTP()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
		if err := fetch(ctx, client, "http://"+host+":8080/", []byte("kernel")); err != nil {
			t.Errorf("kernel server: %v", err)
		}
		if err := fetch(ctx, client, "http://"+host+"/1k.bin", s.files["/1k.bin"]); err != nil {
			t.Errorf("xhttpd: %v", err)
		}
	}
	out, err := tb.ClientCmd(context.Background(), "ip", "neigh", "show", "dev", tb.ClientIf).CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"198.18.0.1", "2001:2::1"} {
		if !strings.Contains(string(out), a+" lladdr") {
			t.Errorf("client has no resolved neighbour entry for %s:\n%s", a, out)
		}
	}
}

// kill -9 leaves nothing behind: the bpf_link dies with the process, so the
// program leaves the interface, the kernel refuses port 80 at once, and a
// new xhttpd serves again.
func TestKill9(t *testing.T) {
	tb, s, srv := serve(t)

	if !xdpAttached(t, tb) {
		t.Fatal("no XDP program on the server interface while xhttpd runs")
	}
	if err := srv.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	srv.Wait()

	deadline := time.Now().Add(5 * time.Second)
	for xdpAttached(t, tb) {
		if time.Now().After(deadline) {
			t.Fatal("XDP program still attached 5s after kill -9")
		}
		time.Sleep(10 * time.Millisecond)
	}
	dial := tb.ClientDialer()
	for _, addr := range []string{"198.18.0.1:80", "[2001:2::1]:80"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		start := time.Now()
		c, err := dial(ctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			t.Fatalf("connect to %s after kill -9 succeeded; want refused", addr)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("connect to %s after kill -9: %v (after %v); want connection refused", addr, err, time.Since(start))
		}
	}

	startServer(t, tb, s.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := fetch(ctx, tb.ClientHTTP(), "http://198.18.0.1/1k.bin", s.files["/1k.bin"]); err != nil {
		t.Fatalf("restarted xhttpd: %v", err)
	}
}

func xdpAttached(t *testing.T, tb *testbed.Testbed) bool {
	t.Helper()
	_, ok := xdpProgID(t, tb)
	return ok
}

// xdpProgID is the id of the XDP program attached to the server end, if
// one is.
func xdpProgID(t *testing.T, tb *testbed.Testbed) (ebpf.ProgramID, bool) {
	t.Helper()
	out, err := tb.ServerCmd(context.Background(), "ip", "-d", "link", "show", "dev", tb.ServerIf).CombinedOutput()
	if err != nil {
		t.Fatalf("ip link show: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`prog/xdp id (\d+)`).FindSubmatch(out)
	if m == nil {
		return 0, false
	}
	id, err := strconv.Atoi(string(m[1]))
	if err != nil {
		t.Fatalf("ip link show: program id %q: %v", m[1], err)
	}
	return ebpf.ProgramID(id), true
}

// Bad requests get the right 4xx, and the server goes on serving.
func TestBadRequests(t *testing.T) {
	tb, s, _ := serve(t)

	cases := []struct {
		name, req string
		want      []int
	}{
		{"malformed request line", "GARBAGE\r\n\r\n", []int{400}},
		{"64 KiB header", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", []int{431}},
		{"traversal", "GET /../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", []int{400, 403, 404}},
		{"encoded traversal", "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", []int{400, 403, 404}},
	}
	dial := tb.ClientDialer()
	for _, c := range cases {
		for _, host := range []string{"198.18.0.1:80", "[2001:2::1]:80"} {
			status, err := rawStatus(dial, host, c.req)
			if err != nil {
				t.Errorf("%s to %s: %v", c.name, host, err)
				continue
			}
			ok := false
			for _, w := range c.want {
				ok = ok || status == w
			}
			if !ok {
				t.Errorf("%s to %s: status %d, want one of %v", c.name, host, status, c.want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := fetch(ctx, tb.ClientHTTP(), "http://"+host+"/1k.bin", s.files["/1k.bin"]); err != nil {
				t.Errorf("after %s: %v", c.name, err)
			}
			cancel()
		}
	}
}

// rawStatus sends req as is and returns the response's status code.
func rawStatus(dial func(context.Context, string, string) (net.Conn, error), addr, req string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	// The server may answer and close before it has read the whole of a
	// large request; the status line still arrives.
	go io.WriteString(c, req)
	var proto string
	var status int
	if _, err := fmt.Fscanf(c, "%s %d", &proto, &status); err != nil {
		return 0, fmt.Errorf("reading status line: %w", err)
	}
	return status, nil
}
