package httpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestNewRejectsBadRoot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{},
		{Root: filepath.Join(t.TempDir(), "missing")},
		{Root: file},
		{Root: t.TempDir(), MaxHeaders: -1},
	} {
		if s, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = %v, want an error", cfg, s)
		} else if !strings.HasPrefix(err.Error(), "httpd: ") {
			t.Errorf("New(%+v) error %q lacks context", cfg, err)
		}
	}
}

func TestGetAndHead(t *testing.T) {
	fx := newFixture(t)
	_, addr := startServer(t, Config{Root: fx.root})
	client := &http.Client{Timeout: 10 * time.Second}

	for _, tc := range []struct {
		path, ctype string
		want        []byte
	}{
		{"/small.bin", "application/octet-stream", fx.small},
		{"/big.bin", "application/octet-stream", fx.big},
		{"/index.html", "text/html; charset=utf-8", []byte(rootIndex)},
		{"/docs/style.css", "text/css; charset=utf-8", []byte(styleCSS)},
		{"/small.bin?query=ignored&x=..%2f", "application/octet-stream", fx.small},
	} {
		fi, err := os.Stat(filepath.Join(fx.root, strings.SplitN(tc.path, "?", 2)[0]))
		if err != nil {
			t.Fatal(err)
		}
		for _, method := range []string{"GET", "HEAD"} {
			req, _ := http.NewRequest(method, "http://"+addr+tc.path, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, tc.path, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s %s: body: %v", method, tc.path, err)
			}
			if resp.StatusCode != 200 {
				t.Fatalf("%s %s: status %d", method, tc.path, resp.StatusCode)
			}
			want := tc.want
			if method == "HEAD" {
				want = nil
			}
			if !bytes.Equal(body, want) {
				t.Errorf("%s %s: body differs: got %d bytes, want %d", method, tc.path, len(body), len(want))
			}
			h := resp.Header
			if got, want := h.Get("Content-Length"), fmt.Sprint(len(tc.want)); got != want {
				t.Errorf("%s %s: Content-Length %q, want %q", method, tc.path, got, want)
			}
			if got := h.Get("Content-Type"); got != tc.ctype {
				t.Errorf("%s %s: Content-Type %q, want %q", method, tc.path, got, tc.ctype)
			}
			if got, want := h.Get("Last-Modified"), fi.ModTime().UTC().Format(http.TimeFormat); got != want {
				t.Errorf("%s %s: Last-Modified %q, want %q", method, tc.path, got, want)
			}
			if d, err := http.ParseTime(h.Get("Date")); err != nil || time.Since(d) > time.Minute {
				t.Errorf("%s %s: Date %q: %v", method, tc.path, h.Get("Date"), err)
			}
			if got := h.Get("Server"); got != "xhttpd" {
				t.Errorf("%s %s: Server %q", method, tc.path, got)
			}
		}
	}
}

func TestIndexRedirectAndErrors(t *testing.T) {
	fx := newFixture(t)
	_, addr := startServer(t, Config{Root: fx.root})
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, tc := range []struct {
		method, path string
		code         int
		body         string
		header       map[string]string
	}{
		{"GET", "/", 200, rootIndex, map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{"GET", "/docs/", 200, docsIndex, nil},
		{"GET", "/docs//", 200, docsIndex, nil},
		{"GET", "/docs", 301, "301 Moved Permanently\n", map[string]string{"Location": "/docs/"}},
		{"GET", "/docs?a=b", 301, "301 Moved Permanently\n", map[string]string{"Location": "/docs/?a=b"}},
		{"GET", "//docs", 301, "301 Moved Permanently\n", map[string]string{"Location": "/docs/"}},
		{"GET", "/empty/", 404, "404 Not Found\n", nil},
		{"GET", "/nope", 404, "404 Not Found\n", map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{"GET", "/small.bin/", 404, "404 Not Found\n", nil},
		{"POST", "/small.bin", 405, "405 Method Not Allowed\n", map[string]string{"Allow": "GET, HEAD"}},
		{"DELETE", "/", 405, "405 Method Not Allowed\n", map[string]string{"Allow": "GET, HEAD"}},
		{"OPTIONS", "/", 405, "405 Method Not Allowed\n", map[string]string{"Allow": "GET, HEAD"}},
	} {
		req, _ := http.NewRequest(tc.method, "http://"+addr+tc.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || string(body) != tc.body {
			t.Errorf("%s %s: got %d %q, want %d %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
		for k, v := range tc.header {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %s: %s %q, want %q", tc.method, tc.path, k, got, v)
			}
		}
	}
}

func TestKeepAliveConcurrent(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root})
	const conns, requests = 50, 1000
	tr := &http.Transport{MaxConnsPerHost: conns, MaxIdleConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	paths := []struct {
		path string
		want []byte
	}{{"/small.bin", fx.small}, {"/index.html", []byte(rootIndex)}, {"/docs/", []byte(docsIndex)}}
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for g := range conns {
		wg.Go(func() {
			for i := range requests / conns {
				p := paths[(g+i)%len(paths)]
				resp, err := client.Get("http://" + addr + p.path)
				if err != nil {
					errs <- err
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, p.want) {
					errs <- fmt.Errorf("GET %s: %d, %d bytes, %v", p.path, resp.StatusCode, len(body), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.Stats()
	if st.Accepted > conns {
		t.Errorf("%d connections for %d requests: keep-alive not used", st.Accepted, requests)
	}
	if st.Requests != requests || st.Status2xx != requests {
		t.Errorf("stats: %+v, want %d requests all 2xx", st, requests)
	}
}

func TestPipelining(t *testing.T) {
	fx := newFixture(t)
	_, addr := startServer(t, Config{Root: fx.root})
	c := dialRaw(t, addr)
	c.write("GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n" +
		"HEAD /index.html HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
	for i, want := range []struct {
		method string
		code   int
		body   []byte
	}{
		{"GET", 200, fx.small},
		{"GET", 404, []byte("404 Not Found\n")},
		{"HEAD", 200, nil},
		{"GET", 200, []byte(rootIndex)},
	} {
		resp, body := c.read(want.method)
		if resp.StatusCode != want.code || !bytes.Equal(body, want.body) {
			t.Errorf("response %d: %d %q, want %d %q", i, resp.StatusCode, body, want.code, want.body)
		}
	}
	if c.closedByServer(100 * time.Millisecond) {
		t.Error("server closed a keep-alive connection")
	}
}

func TestPipelinedPartialRequest(t *testing.T) {
	fx := newFixture(t)
	_, addr := startServer(t, Config{Root: fx.root})
	c := dialRaw(t, addr)
	// The first request whole and the second's first line: the answer to
	// the first must not wait for the rest of the second.
	c.write("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\nGET /docs/ HTTP/1.1\r\n")
	c.nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	if resp, body := c.read("GET"); resp.StatusCode != 200 || string(body) != rootIndex {
		t.Fatalf("first: %d %q", resp.StatusCode, body)
	}
	c.write("Host: x\r\n\r\n")
	if resp, body := c.read("GET"); resp.StatusCode != 200 || string(body) != docsIndex {
		t.Fatalf("second: %d %q", resp.StatusCode, body)
	}
}

func TestConnectionPersistence(t *testing.T) {
	fx := newFixture(t)
	_, addr := startServer(t, Config{Root: fx.root})
	for _, tc := range []struct {
		req        string
		close      bool
		connHeader string
	}{
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false, ""},
		{"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", true, "close"},
		{"GET / HTTP/1.1\r\nHost: x\r\nConnection: TE, Close\r\n\r\n", true, "close"},
		{"GET / HTTP/1.0\r\n\r\n", true, "close"},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", false, "keep-alive"},
		{"GET / HTTP/1.2\r\nHost: x\r\n\r\n", false, ""},
		{"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", false, ""},
		{"GET / HTTP/1.1\nHost: x\n\n", false, ""},
	} {
		resp, body, c := roundTrip(t, addr, tc.req)
		if resp.StatusCode != 200 || string(body) != rootIndex {
			t.Errorf("%q: %d %q", tc.req, resp.StatusCode, body)
		}
		if tc.connHeader == "close" {
			// ReadResponse turns "Connection: close" into resp.Close.
			if !resp.Close {
				t.Errorf("%q: no Connection: close", tc.req)
			}
		} else if got := resp.Header.Get("Connection"); got != tc.connHeader {
			t.Errorf("%q: Connection %q, want %q", tc.req, got, tc.connHeader)
		}
		if got := c.closedByServer(100 * time.Millisecond); got != tc.close {
			t.Errorf("%q: closed %v, want %v", tc.req, got, tc.close)
		}
		if !tc.close {
			c.write("GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, body := c.read("GET"); resp.StatusCode != 200 || string(body) != docsIndex {
				t.Errorf("%q: second request: %d %q", tc.req, resp.StatusCode, body)
			}
		}
	}
}

func TestMalformedRequests(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root})
	manyHeaders := strings.Repeat("X-A: b\r\n", 101)
	for _, tc := range []struct {
		name, req string
		code      int
		reusable  bool // the head was read whole and nothing follows: keep-alive goes on
	}{
		{"garbage", "GARBAGE\r\n\r\n", 400, false},
		{"no version", "GET /\r\n\r\n", 400, false},
		{"double space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"lower version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"bad method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"control in target", "GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"non-ascii target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, false},
		{"too many empty lines", "\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400, false},
		{"http2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, false},
		{"http 3", "GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505, false},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", 400, false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, false},
		{"space in name", "GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 400, false},
		{"space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, false},
		{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n", 400, false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", 400, false},
		{"control in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\x00c\r\n\r\n", 400, false},
		{"bad content-length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, false},
		{"conflicting content-length", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400, false},
		{"get with a 100 KiB body", "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 102400\r\n\r\n" + strings.Repeat("b", 100<<10), 413, false},
		{"get chunked", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 413, false},
		{"host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, false},
		{"host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, false},
		{"host climbing", "GET / HTTP/1.1\r\nHost: ../x\r\n\r\n", 400, false},
		{"host with a bad port", "GET / HTTP/1.1\r\nHost: x:8o\r\n\r\n", 400, false},
		{"host with an open bracket", "GET / HTTP/1.1\r\nHost: [2001:2::1\r\n\r\n", 400, false},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, false},
		{"post with body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405, false},
		{"post without body", "POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405, true},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, true},
		{"short escape", "GET /a% HTTP/1.1\r\nHost: x\r\n\r\n", 400, true},
		{"asterisk", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400, true},
		{"authority form", "GET example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400, true},
		{"fragment", "GET /#frag HTTP/1.1\r\nHost: x\r\n\r\n", 400, true},
		{"header block 64 KiB", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 64<<10) + "\r\n\r\n", 431, false},
		{"many small headers 64 KiB", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X-Some-Header: "+strings.Repeat("v", 100)+"\r\n", 600) + "\r\n", 431, false},
		{"101 headers", "GET / HTTP/1.1\r\nHost: x\r\n" + manyHeaders + "\r\n", 431, false},
		{"request line 9 KiB", "GET /" + strings.Repeat("a", 9<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, false},
		{"request line 1 MiB", "GET /" + strings.Repeat("a", 1<<20) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Stats()
			c := dialRaw(t, addr)
			go io.WriteString(c.nc, tc.req) // may block on a 1 MiB line the server refuses to read
			resp, body := c.read("GET")
			if resp.StatusCode != tc.code {
				t.Errorf("status %d %q, want %d", resp.StatusCode, body, tc.code)
			}
			if want := fmt.Sprintf("%d %s\n", tc.code, statusText(tc.code)); string(body) != want {
				t.Errorf("body %q, want %q", body, want)
			}
			if resp.Close == tc.reusable {
				t.Errorf("Connection: close is %v on %d, want %v", resp.Close, tc.code, !tc.reusable)
			}
			if got := c.closedByServer(200 * time.Millisecond); got == tc.reusable {
				t.Errorf("connection closed %v after %d, want %v", got, tc.code, !tc.reusable)
			}
			after := s.Stats()
			limited := tc.code == 414 || tc.code == 431
			if got := after.RejectedByLimit - before.RejectedByLimit; got != map[bool]uint64{true: 1}[limited] {
				t.Errorf("RejectedByLimit grew by %d", got)
			}
			mustServeNormally(t, addr)
		})
	}
}

func TestLimitsConfigurable(t *testing.T) {
	fx := newFixture(t)
	_, addr := startServer(t, Config{Root: fx.root, MaxRequestLine: 64, MaxHeaderBytes: 100, MaxHeaders: 2})
	for _, tc := range []struct {
		req  string
		code int
	}{
		{"GET /" + strings.Repeat("a", 50) + " HTTP/1.1\r\nHost: x\r\n\r\n", 404}, // exactly 64
		{"GET /" + strings.Repeat("a", 51) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n", 200},
		{"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\nC: d\r\n\r\n", 431},
		{"GET / HTTP/1.1\r\nHost: " + strings.Repeat("x", 80) + "\r\n\r\n", 200}, // 88+2 bytes
		{"GET / HTTP/1.1\r\nHost: " + strings.Repeat("x", 91) + "\r\n\r\n", 431},
	} {
		resp, _, _ := roundTrip(t, addr, tc.req)
		if resp.StatusCode != tc.code {
			t.Errorf("%.40q...: %d, want %d", tc.req, resp.StatusCode, tc.code)
		}
	}
}

func TestTimeouts(t *testing.T) {
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root, ReadHeaderTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})

	t.Run("slow header", func(t *testing.T) {
		c := dialRaw(t, addr)
		start := time.Now()
		c.write("GET / HTTP/1.1\r\nHost: x\r\n") // and never the empty line
		resp, body := c.read("GET")
		if resp.StatusCode != 408 || string(body) != "408 Request Timeout\n" || !resp.Close {
			t.Errorf("got %d %q close=%v, want 408 and close", resp.StatusCode, body, resp.Close)
		}
		if d := time.Since(start); d < 150*time.Millisecond || d > 3*time.Second {
			t.Errorf("408 after %v, want about 200ms", d)
		}
		if !c.closedByServer(3 * time.Second) {
			t.Error("connection left open after 408")
		}
		if s.Stats().RejectedByLimit != 1 {
			t.Errorf("RejectedByLimit = %d, want 1", s.Stats().RejectedByLimit)
		}
		mustServeNormally(t, addr)
	})

	t.Run("idle", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		c.read("GET")
		start := time.Now()
		if !c.closedByServer(3 * time.Second) {
			t.Fatal("idle keep-alive connection not closed")
		}
		if d := time.Since(start); d < 250*time.Millisecond {
			t.Errorf("closed after %v, want IdleTimeout 300ms", d)
		}
	})

	t.Run("header timeout restarts per request", func(t *testing.T) {
		// Keep-alive for longer than ReadHeaderTimeout, each request quick.
		c := dialRaw(t, addr)
		for range 4 {
			c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, _ := c.read("GET"); resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// The traversal corpus against the cache (loaded through os.Root, symbolic
// links included) and against the disk path.
func TestTraversal(t *testing.T) { cacheModes(t, testTraversal) }

func testTraversal(t *testing.T, cacheMax int64) {
	fx := newFixture(t)
	outside := t.TempDir()
	const secret = "TOP-SECRET-OUTSIDE-ROOT"
	if err := os.WriteFile(filepath.Join(outside, "secret.txt"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(fx.root, outside)
	if err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"escape":         outside,                                // absolute, to a directory
		"escape-rel":     rel,                                    // relative, climbing out
		"secret-link":    filepath.Join(outside, "secret.txt"),   // absolute, to a file
		"secret-rel":     filepath.Join(rel, "secret.txt"),       // relative, to a file
		"docs/up":        "../..",                                // from a subdirectory, above root
		"docs/chain":     "../escape-rel",                        // to another escaping link
		"index-escape":   filepath.Join(outside),                 // used as /index-escape/
		"alias.bin":      "small.bin",                            // inside: allowed
		"docs/alias.css": "style.css",                            // inside: allowed
		"etc":            "/etc",                                 // the system's
		"passwd":         "/etc/passwd",                          // the system's
		"proc-self-root": "/proc/self/root",                      // the whole file system
		"dotdot-inside":  "docs/../small.bin",                    // inside after resolution: allowed
		"loop":           "loop",                                 // ELOOP
		"dangling":       filepath.Join(fx.root, "no-such-file"), // absolute, dangling
	} {
		if err := os.Symlink(target, filepath.Join(fx.root, link)); err != nil {
			t.Fatal(err)
		}
	}
	s, addr := startServer(t, Config{Root: fx.root, CacheMax: cacheMax})
	if cacheMax >= 0 {
		// The walk saw every link: those that lead to a file inside Root are
		// cached under their own names, the rest are not.
		files := s.cache.Load().files
		for _, name := range []string{"alias.bin", "docs/alias.css", "dotdot-inside"} {
			if files[name] == nil {
				t.Errorf("%s not cached", name)
			}
		}
		for name, e := range files {
			if bytes.Contains(e.body, []byte(secret)) || bytes.Contains(e.body, []byte("root:x:0:0")) {
				t.Errorf("cache holds %s with content from outside root", name)
			}
		}
	}

	passwd, _ := os.ReadFile("/etc/passwd")
	leaks := func(body []byte) bool {
		return bytes.Contains(body, []byte(secret)) || (len(passwd) > 0 && bytes.Contains(body, passwd[:min(len(passwd), 32)])) ||
			bytes.Contains(body, []byte("root:x:0:0"))
	}
	corpus := []string{
		"/../etc/passwd",
		"/../../../../../../etc/passwd",
		"/%2e%2e/%2e%2e/etc/passwd",
		"/%2E%2E/%2E%2E/etc/passwd",
		"/..%2fetc/passwd",
		"/..%2Fetc/passwd",
		"/a/%2e%2e%2f%2e%2e%2fetc",
		"/docs/../../etc/passwd",
		"/docs/%2e%2e/%2e%2e/etc/passwd",
		"/.%2e/etc/passwd",
		"/..\\..\\etc\\passwd",
		"/%5c..%5c..%5cetc%5cpasswd",
		"/..%5c..%5cetc%5cpasswd",
		"/%00",
		"/small.bin%00.html",
		"/%c0%ae%c0%ae/etc/passwd",
		"/%c0%af../etc/passwd",
		"/%252e%252e/etc/passwd",
		"/" + strings.Repeat("a/", 5<<10),
		"/" + strings.Repeat("../", 3<<10) + "etc/passwd",
		"/escape/secret.txt",
		"/escape/",
		"/escape",
		"/escape-rel/secret.txt",
		"/secret-link",
		"/secret-rel",
		"/docs/up/etc/passwd",
		"/docs/up/" + rel + "/secret.txt",
		"/docs/chain/secret.txt",
		"/index-escape/",
		"/etc/passwd",
		"/passwd",
		"/proc-self-root/etc/passwd",
		"/loop",
		"/dangling",
		"http://x/../etc/passwd",
		"http://x/escape/secret.txt",
	}
	for _, p := range corpus {
		for _, method := range []string{"GET", "HEAD"} {
			c := dialRaw(t, addr)
			go io.WriteString(c.nc, method+" "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, body := c.read(method)
			if method == "GET" {
				t.Logf("%s %.60q: %d", method, p, resp.StatusCode)
			}
			switch {
			case leaks(body):
				t.Errorf("%s %.60q: LEAKED content from outside root (status %d)", method, p, resp.StatusCode)
			case resp.StatusCode == 200:
				t.Errorf("%s %.60q: status 200, want a refusal", method, p)
			case resp.StatusCode != 400 && resp.StatusCode != 403 && resp.StatusCode != 404 && resp.StatusCode != 414:
				t.Errorf("%s %.60q: status %d", method, p, resp.StatusCode)
			}
		}
	}

	// With limits that let a 10 KiB path through the parser, os.Root is
	// what refuses it (ENAMETOOLONG).
	_, bigAddr := startServer(t, Config{Root: fx.root, MaxRequestLine: 64 << 10, CacheMax: cacheMax})
	for _, p := range []string{"/" + strings.Repeat("a/", 5<<10), "/" + strings.Repeat("b", 10<<10), "/escape/" + strings.Repeat("x", 10<<10)} {
		resp, body, _ := roundTrip(t, bigAddr, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 404 || leaks(body) {
			t.Errorf("GET %.40q... (%d bytes): %d, want 404", p, len(p), resp.StatusCode)
		}
	}

	// Links that stay inside root keep working.
	for p, want := range map[string][]byte{
		"/alias.bin":      fx.small,
		"/docs/alias.css": []byte(styleCSS),
		"/dotdot-inside":  fx.small,
	} {
		resp, body, _ := roundTrip(t, addr, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("GET %s: %d, %d bytes, want 200 and the file", p, resp.StatusCode, len(body))
		}
	}
}

func TestSpecialFiles(t *testing.T) {
	fx := newFixture(t)
	if err := syscall.Mkfifo(filepath.Join(fx.root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(fx.root, "docs", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(fx.root, "docs", "sub", "index.html"), 0o755); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(fx.root, "locked.txt")
	if err := os.WriteFile(locked, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	_, addr := startServer(t, Config{Root: fx.root})
	for p, want := range map[string]int{
		"/fifo":        404, // and promptly: opening a FIFO must not block
		"/docs/sub/":   404, // index.html is a directory
		"/dev/null":    404,
		"/locked.txt":  403, // root reads it anyway, see below
		"/empty/../..": 400,
	} {
		resp, _, _ := roundTrip(t, addr, "GET "+p+" HTTP/1.1\r\nHost: x\r\n\r\n")
		if p == "/locked.txt" && os.Geteuid() == 0 {
			want = 200 // root ignores file permissions
		}
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", p, resp.StatusCode, want)
		}
	}
}

func TestPanicRecovered(t *testing.T) {
	testHookRequest = func(target []byte) {
		if string(target) == "/panic" {
			panic("test panic")
		}
	}
	fx := newFixture(t)
	s, addr := startServer(t, Config{Root: fx.root})
	t.Cleanup(func() { testHookRequest = nil }) // runs after the server's Shutdown

	c := dialRaw(t, addr)
	c.write("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	if !c.closedByServer(5 * time.Second) {
		t.Fatal("connection not closed after a panic")
	}
	mustServeNormally(t, addr)
	if got := s.Stats().Panics; got != 1 {
		t.Errorf("Panics = %d, want 1", got)
	}
}

func TestShutdown(t *testing.T) {
	fx := newFixture(t)
	s, err := New(Config{Root: fx.root, Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	addr := l.Addr().String()

	idle := dialRaw(t, addr)
	idle.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.read("GET")

	// A request whose head is half sent is active: Shutdown waits for it.
	busy := dialRaw(t, addr)
	busy.write("GET /small.bin HTTP/1.1\r\n")
	time.Sleep(50 * time.Millisecond)

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	if !idle.closedByServer(2 * time.Second) {
		t.Error("idle connection not closed by Shutdown")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Serve did not return")
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a request was in progress", err)
	case <-time.After(100 * time.Millisecond):
	}
	busy.write("Host: x\r\n\r\n")
	resp, body := busy.read("GET")
	if resp.StatusCode != 200 || !bytes.Equal(body, fx.small) || !resp.Close {
		t.Errorf("in-flight request: %d close=%v", resp.StatusCode, resp.Close)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Error("still accepting after Shutdown")
	}
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(l2); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v, want ErrServerClosed", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	fx := newFixture(t)
	s, err := New(Config{Root: fx.root, Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	busy := dialRaw(t, l.Addr().String())
	busy.write("GET / HTTP/1.1\r\n") // stays active until ReadHeaderTimeout (10s)
	time.Sleep(50 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
	}
	if !busy.closedByServer(2 * time.Second) {
		t.Error("active connection not closed when Shutdown's context ended")
	}
}

// Defaults is what New makes of a zero Config, Root and Logger aside, and
// leaves no limit or timeout at zero.
func TestDefaults(t *testing.T) {
	s, err := New(Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got, want := s.cfg, Defaults()
	got.Root, got.Logger = "", nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("New's defaults %+v, Defaults() %+v", got, want)
	}
	for _, v := range []int64{want.CacheMax, want.CacheTotal, int64(want.ProxyDialTimeout), int64(want.ProxyTimeout), int64(want.MaxRequestLine),
		int64(want.MaxHeaderBytes), int64(want.MaxHeaders), int64(want.ReadHeaderTimeout), int64(want.IdleTimeout), int64(want.WriteTimeout), int64(want.MaxConns)} {
		if v == 0 {
			t.Errorf("a zero default in %+v", want)
		}
	}
}
