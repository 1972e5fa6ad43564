package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const wrkReport = `Running 10s test @ http://198.18.0.1/1k.bin
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.35us  201.10us   9.87ms   91.02%
    Req/Sec    38.71k     2.03k   43.90k    70.50%
  Latency Distribution
     50%  387.00us
     75%  450.00us
     90%  520.00us
     99%    1.23ms
  770312 requests in 10.00s, 934.12MB read
  Socket errors: connect 0, read 2, write 0, timeout 0
  Non-2xx or 3xx responses: 7
Requests/sec:  77023.45
Transfer/sec:     93.40MB
`

func TestParseWrk(t *testing.T) {
	got, err := parseWrk(wrkReport)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{
		ReqPerSec:    77023.45,
		P50:          387 * time.Microsecond,
		P99:          1230 * time.Microsecond,
		Requests:     770312,
		SocketErrors: "connect 0, read 2, write 0, timeout 0",
		Non2xx3xx:    7,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseWrk (-want +got):\n%s", diff)
	}
	if _, err := parseWrk(strings.Replace(wrkReport, "     99%    1.23ms\n", "", 1)); err == nil {
		t.Error("parseWrk accepted a report without a 99% line")
	}
}

func TestParseWrkDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"103.00us": 103 * time.Microsecond,
		"1.50ms":   1500 * time.Microsecond,
		"2.00s":    2 * time.Second,
		"1.00m":    time.Minute,
	} {
		got, err := parseWrkDuration(in)
		if err != nil || got != want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "12", "x ms", "5ns"} {
		if _, err := parseWrkDuration(bad); err == nil {
			t.Errorf("parseWrkDuration(%q) succeeded", bad)
		}
	}
}

func TestWrkArgs(t *testing.T) {
	const url = "http://198.18.0.1/1k.bin"
	for _, tc := range []struct {
		threads, conns int
		d              time.Duration
		closeEach      bool
		want           []string
	}{
		{2, 32, 10 * time.Second, false, []string{"-t", "2", "-c", "32", "-d", "10s", "--timeout", "2s", "--latency", url}},
		{2, 1, 3 * time.Second, false, []string{"-t", "1", "-c", "1", "-d", "3s", "--timeout", "2s", "--latency", url}},
		{4, 3, 90 * time.Second, false, []string{"-t", "3", "-c", "3", "-d", "90s", "--timeout", "2s", "--latency", url}},
		{2, 32, 10 * time.Second, true, []string{"-t", "2", "-c", "32", "-d", "10s", "--timeout", "2s", "--latency", "-H", "Connection: close", url}},
	} {
		if diff := cmp.Diff(tc.want, wrkArgs(tc.threads, tc.conns, tc.d, url, tc.closeEach)); diff != "" {
			t.Errorf("wrkArgs(%d, %d, %v) (-want +got):\n%s", tc.threads, tc.conns, tc.d, diff)
		}
	}
}
