package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// The dynamic fallback end to end: a client in the client namespace asks
// xhttpd (over AF_XDP) for a dynamic prefix; xhttpd forwards it through the
// kernel's sockets to an upstream in the server namespace (a Go server on
// 198.18.0.1:8080, a port the XDP program leaves to the kernel), which sees
// the client's address in X-Forwarded-For. With the upstream stopped, the
// client gets 502 within a second; static files go on being served.
func TestHTTPDProxy(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	s := newSite(t)

	l, err := tb.ServerListen("tcp", "198.18.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "upstream %s %s xff=%s body=%s", r.Method, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"), body)
	})}
	go up.Serve(l)
	t.Cleanup(func() { up.Close() })

	startServer(t, tb, s.dir, "-proxy", "http://198.18.0.1:8080", "-dynamic", "/app/,/api", "-proxy-misses")
	client := tb.ClientHTTP()
	do := func(method, url, body string) (int, string, time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		return resp.StatusCode, string(b), time.Since(start)
	}

	for _, tc := range []struct {
		method, url, body string
		code              int
		want              string
	}{
		{"GET", "http://198.18.0.1/app/page?id=7", "", 200, "upstream GET /app/page?id=7 xff=198.18.0.2 body="},
		{"GET", "http://[2001:2::1]/api", "", 200, "upstream GET /api xff=2001:2::2 body="},
		{"POST", "http://198.18.0.1/app/form", "name=xhttpd", 200, "upstream POST /app/form xff=198.18.0.2 body=name=xhttpd"},
		{"GET", "http://198.18.0.1/missing.php", "", 200, "upstream GET /missing.php xff=198.18.0.2 body="}, // -proxy-misses
		{"GET", "http://198.18.0.1/index.html", "", 200, "<h1>xhttpd</h1>\n"},                               // static
	} {
		code, body, _ := do(tc.method, tc.url, tc.body)
		if code != tc.code || body != tc.want {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.url, code, body, tc.code, tc.want)
		}
	}

	// The upstream goes away: 502, quickly; static files are unaffected.
	up.Close()
	for _, url := range []string{"http://198.18.0.1/app/page", "http://[2001:2::1]/api/x"} {
		code, _, took := do("GET", url, "")
		if code != 502 || took > time.Second {
			t.Errorf("upstream stopped: GET %s: %d after %v, want 502 within 1s", url, code, took)
		}
	}
	code, body, _ := do("POST", "http://198.18.0.1/app/form", "x=1")
	if code != 502 {
		t.Errorf("upstream stopped: POST: %d %q", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := fetch(ctx, client, "http://198.18.0.1/1k.bin", s.files["/1k.bin"]); err != nil {
		t.Errorf("static file with the upstream down: %v", err)
	}
}
