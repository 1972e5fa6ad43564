package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// Clients that nobody here wrote, over AF_XDP: curl, Go's http.Client, ab
// with keep-alive and h2load with pipelining, against the cached path, and
// the access log they leave.

// curl: a range, conditional requests by date and by entity tag, HEAD, and
// HTTP/1.0, over IPv4 and IPv6.
func TestHTTPDCurl(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	s := newSite(t)
	logFile := filepath.Join(t.TempDir(), "access.log")
	srv := startServer(t, tb, s.dir, "-access-log", logFile)
	out := t.TempDir()
	small := s.files["/1k.bin"]

	curl := func(args ...string) string {
		t.Helper()
		args = append([]string{"-sS", "-g", "--max-time", "10"}, args...)
		b, err := tb.ClientCmd(context.Background(), "curl", args...).Output()
		if err != nil {
			t.Fatalf("curl %v: %v", args, err)
		}
		return string(b)
	}
	requests := 0
	for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
		url := "http://" + host + "/1k.bin"

		// A range: 206, the bytes, and the Content-Range.
		dst := filepath.Join(out, "range")
		code := curl("-r", "100-199", "-o", dst, "-w", "%{http_code} %header{content-range}", url)
		if got, _ := os.ReadFile(dst); code != "206 bytes 100-199/1024" || !bytes.Equal(got, small[100:200]) {
			t.Errorf("%s range: %q, %d bytes", host, code, len(got))
		}
		// An unsatisfiable one: 416.
		if code := curl("-r", "5000-", "-o", "/dev/null", "-w", "%{http_code}", url); code != "416" {
			t.Errorf("%s range beyond the end: %s", host, code)
		}

		// By date: -z sends If-Modified-Since; the file is older than now.
		if code := curl("-z", time.Now().UTC().Format(http.TimeFormat), "-o", "/dev/null", "-w", "%{http_code}", url); code != "304" {
			t.Errorf("%s If-Modified-Since now: %s, want 304", host, code)
		}
		if code := curl("-z", "Thu, 01 Jan 1970 00:00:01 GMT", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url); code != "200 1024" {
			t.Errorf("%s If-Modified-Since 1970: %s, want 200 1024", host, code)
		}

		// By entity tag: save it, then ask again with it.
		etag := filepath.Join(out, "etag")
		os.Remove(etag)
		if code := curl("--etag-save", etag, "-o", "/dev/null", "-w", "%{http_code}", url); code != "200" {
			t.Errorf("%s etag save: %s", host, code)
		}
		if code := curl("--etag-compare", etag, "-o", "/dev/null", "-w", "%{http_code}", url); code != "304" {
			t.Errorf("%s If-None-Match: %s, want 304", host, code)
		}

		// HEAD: the head of a GET, no body.
		head := curl("-I", url)
		if !strings.HasPrefix(head, "HTTP/1.1 200 OK\r\n") || !strings.Contains(head, "Content-Length: 1024\r\n") ||
			!strings.Contains(head, "ETag: \"") || !strings.Contains(head, "Accept-Ranges: bytes\r\n") {
			t.Errorf("%s HEAD:\n%s", host, head)
		}

		// HTTP/1.0 (the access log shows the request's version; the
		// response's status line says HTTP/1.1, the server's own).
		dst = filepath.Join(out, "http10")
		if code := curl("--http1.0", "-o", dst, "-w", "%{http_code}", url); code != "200" {
			t.Errorf("%s HTTP/1.0: %s", host, code)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, small) {
			t.Errorf("%s HTTP/1.0: %d bytes", host, len(got))
		}
		requests += 8
	}

	// The access log has a line per request, written out at shutdown.
	srv.Stop()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	clf := regexp.MustCompile(`^(198\.18\.0\.2|2001:2::2) - - \[[^]]+\] "(GET|HEAD) /1k\.bin HTTP/1\.([01])" (200|206|304|416) (\d+|-)$`)
	// The readiness probes of startServer are in it too.
	n, http10 := 0, 0
	for _, l := range lines {
		if strings.Contains(l, "/1k.bin") {
			n++
			m := clf.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("access log line %q", l)
			} else if m[3] == "0" {
				http10++
			}
		}
	}
	if n != requests || http10 != 2 {
		t.Errorf("%d access log lines for /1k.bin (%d HTTP/1.0), want %d (2):\n%s", n, http10, requests, b)
	}
}

// Go's http.Client: ranges, If-None-Match and If-Modified-Since with the
// validators the server gave, HEAD, all on one keep-alive connection.
func TestHTTPDGoClient(t *testing.T) {
	tb, s, _ := serve(t)
	client := tb.ClientHTTP()
	big := s.files["/1m.bin"]

	do := func(method, path string, header ...string) (*http.Response, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, "http://198.18.0.1"+path, nil)
		for i := 0; i < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp, body
	}

	resp, body := do("GET", "/1m.bin")
	etag, lastMod := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if resp.StatusCode != 200 || !bytes.Equal(body, big) || etag == "" || lastMod == "" {
		t.Fatalf("GET: %d, %d bytes, ETag %q, Last-Modified %q", resp.StatusCode, len(body), etag, lastMod)
	}
	for _, tc := range []struct {
		name   string
		method string
		header []string
		code   int
		body   []byte
	}{
		{"range", "GET", []string{"Range", "bytes=1000-1999"}, 206, big[1000:2000]},
		{"suffix", "GET", []string{"Range", "bytes=-10"}, 206, big[len(big)-10:]},
		{"if-range stale", "GET", []string{"Range", "bytes=0-9", "If-Range", `"stale"`}, 200, big},
		{"if-range current", "GET", []string{"Range", "bytes=0-9", "If-Range", etag}, 206, big[:10]},
		{"if-none-match", "GET", []string{"If-None-Match", etag}, 304, nil},
		{"if-modified-since", "GET", []string{"If-Modified-Since", lastMod}, 304, nil},
		{"head", "HEAD", nil, 200, nil},
		{"missing", "GET", nil, 404, []byte("404 Not Found\n")},
	} {
		path := "/1m.bin"
		if tc.name == "missing" {
			path = "/nope"
		}
		resp, body := do(tc.method, path, tc.header...)
		if resp.StatusCode != tc.code || !bytes.Equal(body, tc.body) {
			t.Errorf("%s: %d with %d bytes, want %d with %d", tc.name, resp.StatusCode, len(body), tc.code, len(tc.body))
		}
	}
}

// ab with keep-alive: every request a 200 over kept-alive connections.
func TestHTTPDAb(t *testing.T) {
	tb, _, _ := serve(t, "-admin", adminAddr)
	const n = 5000
	report := clientRun(t, tb, "ab", "-k", "-n", strconv.Itoa(n), "-c", "16", "-s", "10", "http://198.18.0.1/1k.bin")
	for _, want := range []string{
		fmt.Sprintf("Complete requests:      %d", n),
		"Failed requests:        0",
		fmt.Sprintf("Keep-Alive requests:    %d", n),
		"Document Length:        1024 bytes",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("ab report lacks %q", want)
		}
	}
	if strings.Contains(report, "Non-2xx responses") {
		t.Error("ab saw non-2xx responses")
	}
	if t.Failed() {
		t.Log(report)
	}
	t.Log(grepLine(report, "Requests per second"))
}

// h2load over HTTP/1.1 with 16 requests in flight per connection: the
// pipelined answers come back in order and whole.
func TestHTTPDH2loadPipelined(t *testing.T) {
	tb, _, _ := serve(t, "-admin", adminAddr)
	const n = 10000
	report := clientRun(t, tb, "h2load", "--h1", "-n", strconv.Itoa(n), "-c", "8", "-m", "16", "http://198.18.0.1/1k.bin")
	for _, want := range []string{
		fmt.Sprintf("requests: %d total, %d started, %d done, %d succeeded, 0 failed, 0 errored, 0 timeout", n, n, n, n),
		fmt.Sprintf("status codes: %d 2xx, 0 3xx, 0 4xx, 0 5xx", n),
	} {
		if !strings.Contains(report, want) {
			t.Errorf("h2load report lacks %q\n%s", want, report)
		}
	}
	t.Log(grepLine(report, "finished in"))
}

// clientRun runs name in the client namespace, for up to a minute, and
// returns its output; its failure fails the test. A client still running
// after 45 s has stalled: logStall then shows the server and the client's
// sockets while they are still connected (the server needs -admin at
// adminAddr for all of it).
func clientRun(t *testing.T, tb *testbed.Testbed, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logged := make(chan struct{})
	stalled := time.AfterFunc(45*time.Second, func() {
		defer close(logged)
		logStall(t, tb)
	})
	out, err := tb.ClientCmd(ctx, name, args...).CombinedOutput()
	if !stalled.Stop() {
		<-logged // it ran: let it finish before the test does
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return string(out)
}

func grepLine(s, prefix string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
