package testbed_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// A server that answers HTTP: WaitHTTP finds it, Pid is the program's own
// (ip netns exec execs it), its output comes a line at a time after its
// name, and SIGINT stops it cleanly, once.
func TestServer(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	// Debian's, not a wrapper that forks it (pyenv's shims do).
	const python = "/usr/bin/python3"
	var out strings.Builder
	srv, err := tb.StartServer("py", &out, python, "-c", `
import http.server, sys
print("listening", flush=True)
s = http.server.HTTPServer(("198.18.0.1", 80), http.server.BaseHTTPRequestHandler)
try:
    s.serve_forever()
except KeyboardInterrupt:
    sys.exit(0)
`)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := srv.WaitHTTP(context.Background(), 10*time.Second, tb.ServerAddrs(80)[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Pid(); err != nil {
		t.Error(err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := srv.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if want := "py| listening\n"; !strings.HasPrefix(out.String(), want) {
		t.Errorf("output %q, want it to start %q", out.String(), want)
	}
}

// A server that exits by itself: WaitHTTP says so at once, and Stop
// reports it unless Wait took the exit.
func TestServerExits(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	for _, wait := range []bool{false, true} {
		srv, err := tb.StartServer("sh", &strings.Builder{}, "/bin/sh", "-c", "exit 3")
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err = srv.WaitHTTP(context.Background(), 10*time.Second, tb.ServerAddrs(80)...)
		if err == nil || !strings.Contains(err.Error(), "exited") || time.Since(start) > 5*time.Second {
			t.Errorf("WaitHTTP: %v after %v; want an early word of the exit", err, time.Since(start))
		}
		if wait {
			if err := srv.Wait(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
				t.Errorf("Wait: %v, want exit status 3", err)
			}
		}
		if err := srv.Stop(); (err == nil) != wait {
			t.Errorf("Stop after Wait %v: %v", wait, err)
		}
	}
}

// A program that dies of SIGINT fails Stop, unless SIGINTKills says that is
// its way to stop.
func TestServerSIGINTKills(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	for _, kills := range []bool{false, true} {
		srv, err := tb.StartServer("sleep", &strings.Builder{}, "/bin/sleep", "60")
		if err != nil {
			t.Fatal(err)
		}
		srv.SIGINTKills = kills
		if err := srv.Stop(); (err == nil) != kills {
			t.Errorf("SIGINTKills %v: Stop returned %v", kills, err)
		}
	}
}

// With ServerCPUs a server runs on those CPUs only, and Pid still finds the
// program itself (taskset execs it).
func TestServerCPUs(t *testing.T) {
	t.Parallel()
	tb := testbedtest.New(t, testbed.Options{})
	tb.ServerCPUs = "0"
	srv, err := tb.StartServer("sleep", &strings.Builder{}, "/bin/sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	srv.SIGINTKills = true
	defer srv.Stop()
	// Until ip, then taskset, have exec'd sleep.
	var pid int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if pid, err = srv.Pid(); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		t.Fatal(err)
	}
	if set.Count() != 1 || !set.IsSet(0) {
		t.Errorf("the server may run on %d CPUs (CPU 0: %v), want CPU 0 only", set.Count(), set.IsSet(0))
	}
}
