package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseServers(t *testing.T) {
	both := serverFlags{nethttpd: "nethttpd", base: "xhttpd.old"}
	got, err := parseServers(" interrupt,busy ,hybrid,kernel,base,nethttp", benchServers, both)
	if want := []string{"interrupt", "busy", "hybrid", "kernel", "base", "nethttp"}; err != nil || !cmp.Equal(want, got) {
		t.Errorf("parseServers = %q, %v; want %q", got, err, want)
	}
	for _, tc := range []struct {
		in       string
		known    []string
		sf       serverFlags
		errWants string
	}{
		{"xdp", benchServers, both, `"xdp" is not one of`},
		{"hybrid,", benchServers, both, `"" is not one of`},
		{"", benchServers, both, `"" is not one of`},
		{"kernel,nethttp", benchServers, serverFlags{base: "xhttpd.old"}, "needs -nethttpd"},
		{"base,hybrid", benchServers, serverFlags{nethttpd: "nethttpd"}, "needs -base"},
		{"hybrid,nginx", xhttpdServers, both, `"nginx" is not one of`},
	} {
		_, err := parseServers(tc.in, tc.known, tc.sf)
		if err == nil || !strings.Contains(err.Error(), tc.errWants) {
			t.Errorf("parseServers(%q, %q, %+v) = %v, want an error with %q", tc.in, tc.known, tc.sf, err, tc.errWants)
		}
	}
}

func TestParseConns(t *testing.T) {
	got, err := parseConns("1, 32,256")
	if want := []int{1, 32, 256}; err != nil || !cmp.Equal(want, got) {
		t.Errorf("parseConns = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"", "0", "-1", "1,,2", "x", "1.5", "10001"} {
		if got, err := parseConns(bad); err == nil {
			t.Errorf("parseConns(%q) = %v, want an error", bad, got)
		}
	}
}

func TestServerCommand(t *testing.T) {
	s := serverSetup{
		xhttpd: "/bin/xhttpd", nethttpd: "/bin/nethttpd", base: "/old/xhttpd",
		iface: "xh1-s", root: "/site", queues: 2,
		addrs: []string{"198.18.0.1:80", "[2001:2::1]:80"},
		extra: []string{"-cpus", "1"},
	}
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"busy", []string{"/bin/xhttpd", "-iface", "xh1-s", "-root", "/site", "-queues", "2", "-stack", "xdp", "-mode", "busy", "-cpus", "1"}},
		{"kernel", []string{"/bin/xhttpd", "-iface", "xh1-s", "-root", "/site", "-queues", "2", "-stack", "kernel", "-cpus", "1"}},
		{"generic", []string{"/bin/xhttpd", "-iface", "xh1-s", "-root", "/site", "-queues", "2", "-stack", "xdp", "-mode", "hybrid", "-xdp-mode", "generic", "-cpus", "1"}},
		{"base", []string{"/old/xhttpd", "-iface", "xh1-s", "-root", "/site", "-queues", "2", "-stack", "xdp", "-mode", "hybrid", "-cpus", "1"}},
		{"nethttp", []string{"/bin/nethttpd", "-addr", "198.18.0.1:80,[2001:2::1]:80", "-root", "/site"}},
	} {
		path, args := serverCommand(tc.name, s)
		if diff := cmp.Diff(tc.want, append([]string{path}, args...)); diff != "" {
			t.Errorf("serverCommand(%q) (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestWriteBenchTable(t *testing.T) {
	rows := []benchRow{
		{server: "hybrid", conns: 32, size: 1024, cpu: 3 * time.Second,
			res: wrkResult{ReqPerSec: 40000.4, P50: 687 * time.Microsecond, P99: 3080 * time.Microsecond, Requests: 400000,
				SocketErrors: "connect 0, read 0, write 0, timeout 3"}},
		{server: "busy", conns: 1, err: errExample},
		{server: "kernel", conns: 1, size: 65536, cpu: 1500 * time.Millisecond,
			res: wrkResult{ReqPerSec: 15000, P50: 65 * time.Microsecond, P99: 115 * time.Microsecond, Requests: 150000, Non2xx3xx: 2}},
	}
	var sb strings.Builder
	err := writeBenchTable(&sb, rows)
	want := `| server | conns | req/s | MB/s | p50 | p99 | CPU s per 10k req |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| hybrid | 32 | 40000 | 41.0 | 687 us | 3.08 ms | 0.075 |
| busy | 1 | failed | | | | |
| kernel | 1 | 15000 | 983.0 | 65 us | 115 us | 0.100 |

- hybrid, 32 conns: socket errors: connect 0, read 0, write 0, timeout 3
- kernel, 1 conns: 2 non-2xx/3xx responses
`
	if diff := cmp.Diff(want, sb.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}
	if err == nil || !strings.Contains(err.Error(), "busy, 1 conns: "+errExample.Error()) {
		t.Errorf("writeBenchTable returned %v, want the failed row's error", err)
	}
	if err := writeBenchTable(&sb, rows[:1]); err != nil {
		t.Errorf("writeBenchTable without a failed row returned %v", err)
	}
}

func TestCPUPer10k(t *testing.T) {
	if got := cpuPer10k(2*time.Second, 100000); got != 0.2 {
		t.Errorf("cpuPer10k(2s, 100000) = %v, want 0.2", got)
	}
	if got := cpuPer10k(time.Second, 0); got != 0 {
		t.Errorf("cpuPer10k(1s, 0) = %v, want 0", got)
	}
}

// Medians over turns: per server, of its own figures and of its ratios to
// the first server's in the same turn; a failed run counts in neither.
func TestWriteTurnMedians(t *testing.T) {
	row := func(server string, rate float64, cpu time.Duration, err error) benchRow {
		return benchRow{server: server, conns: 32, err: err, cpu: cpu,
			res: wrkResult{ReqPerSec: rate, Requests: int64(rate * 10), P99: time.Duration(rate) * time.Microsecond}}
	}
	rows := []benchRow{
		row("hybrid", 1000, time.Second, nil), row("kernel", 2000, time.Second, nil),
		row("hybrid", 3000, time.Second, nil), row("kernel", 3000, 3*time.Second, nil),
		row("hybrid", 2000, time.Second, nil), row("kernel", 0, 0, errExample),
	}
	var sb strings.Builder
	writeTurnMedians(&sb, rows, []string{"hybrid", "kernel"})
	out := sb.String()
	// hybrid: rates 1000, 3000, 2000; CPU per 10k 1.0, 0.333, 0.5; ratios
	// to itself 1. kernel: two turns, rates 2000 and 3000 (median 2500),
	// ratios 2 and 1 (1.5), CPU per 10k 0.5 and 1.0 (0.75), against
	// hybrid's 1.0 and 0.333: 0.5 and 3 (1.75).
	for _, want := range []string{
		"| hybrid | 3 | 2000 | 2.00 ms | 0.500 | 1.00 | 1.00 |",
		"| kernel | 2 | 2500 | 2.50 ms | 0.750 | 1.50 | 1.75 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("medians lack %q:\n%s", want, out)
		}
	}
}

// -threaded threads the client end's NAPI, which it has only in NAPI mode:
// without -napi it is refused before anything is set up.
func TestBenchThreadedNeedsNAPI(t *testing.T) {
	err := bench([]string{"-xhttpd", "/nonexistent", "-napi=false", "-threaded"})
	if err == nil || !strings.Contains(err.Error(), "-threaded goes with -napi") {
		t.Errorf("bench -napi=false -threaded: %v; want the refusal", err)
	}
}
