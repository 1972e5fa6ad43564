package testbed_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// Three clients and the server on a bridge with MTU 9000: each client
// reaches the server's kernel listener over IPv4 and IPv6 from its own
// address, names fit, Sweep knows the new namespaces' names, and Close
// leaves nothing.
func TestBridge(t *testing.T) {
	testbedtest.RequireRoot(t)
	tb, err := testbed.New(testbed.Options{Bridge: true, Clients: 3, MTU: 9000})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	names := []string{tb.ServerNS, tb.BridgeNS}
	for i, c := range tb.Clients {
		names = append(names, c.NS)
		if len(c.If) > unix.IFNAMSIZ-1 {
			t.Errorf("interface name %q longer than %d", c.If, unix.IFNAMSIZ-1)
		}
		if want := fmt.Sprintf("198.18.0.%d", 2+i); c.V4.String() != want {
			t.Errorf("client %d: %v, want %s", i, c.V4, want)
		}
		link, err := handleIn(t, c.NS).LinkByName(c.If)
		if err != nil {
			t.Fatal(err)
		}
		if link.Attrs().MTU != 9000 {
			t.Errorf("%s: MTU %d, want 9000", c.If, link.Attrs().MTU)
		}
	}
	if tb.Clients[0].NS != tb.ClientNS || tb.Clients[0].If != tb.ClientIf {
		t.Errorf("Clients[0] is %+v, not ClientNS/ClientIf", tb.Clients[0])
	}
	list := ipNetnsList(t)
	for _, ns := range names {
		if !slices.Contains(list, ns) {
			t.Errorf("ip netns list = %v, missing %s", list, ns)
		}
		if !testbed.SweepRE("xh").MatchString(ns) {
			t.Errorf("Sweep would not know %s", ns)
		}
	}

	l, err := tb.ServerListen("tcp", ":8000")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	})}
	go srv.Serve(l)
	defer srv.Close()
	for _, c := range tb.Clients {
		for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+host+":8000/", nil)
			resp, err := c.HTTP().Do(req)
			if err != nil {
				cancel()
				t.Fatalf("%s to %s: %v", c.NS, host, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			from, err := netip.ParseAddrPort(string(body))
			if want := map[bool]netip.Addr{true: c.V6, false: c.V4}[host[0] == '[']; err != nil || from.Addr() != want {
				t.Errorf("%s to %s: seen from %q, want %v", c.NS, host, body, want)
			}
		}
	}

	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	list = ipNetnsList(t)
	for _, ns := range names {
		if slices.Contains(list, ns) {
			t.Errorf("after Close, ip netns list still has %s", ns)
		}
	}
}

// A bridged New that fails half-way removes every namespace it made.
func TestBridgeFailureTearsDown(t *testing.T) {
	testbedtest.RequireRoot(t)
	before := ourNamespaces()
	made := false
	testbed.SetTestHookSetup(func(tb *testbed.Testbed) error {
		made = tb.BridgeNS != "" && len(tb.Clients) == 3
		return errors.New("injected failure")
	})
	defer testbed.SetTestHookSetup(nil)
	if tb, err := testbed.New(testbed.Options{Bridge: true, Clients: 3}); err == nil {
		tb.Close()
		t.Fatal("New succeeded despite the injected failure")
	}
	if !made {
		t.Fatal("setup never reached the hook with a bridge and 3 clients")
	}
	if diff := cmp.Diff(before, ourNamespaces()); diff != "" {
		t.Errorf("namespaces after a failed New (-before +after):\n%s", diff)
	}
}

func TestBridgeOptions(t *testing.T) {
	testbedtest.RequireRoot(t)
	for _, opts := range []testbed.Options{
		{Clients: 2},
		{Bridge: true, Clients: 1},
		{Bridge: true, Clients: 10},
	} {
		if tb, err := testbed.New(opts); err == nil {
			tb.Close()
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
}
