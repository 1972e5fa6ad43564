package httpd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a test upstream that says what it received.
func upstream(t *testing.T) *httptest.Server {
	t.Helper()
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/stream":
			// No Content-Length: the body's length is unknown until it ends.
			for i := range 3 {
				fmt.Fprintf(w, "part %d\n", i)
				w.(http.Flusher).Flush()
			}
			return
		case "/api/nocontent":
			w.WriteHeader(204)
			return
		case "/api/early":
			// Answers before reading the (large) body.
			w.Header().Set("Connection", "close")
			http.Error(w, "too large", 413)
			return
		case "/api/slow":
			time.Sleep(700 * time.Millisecond)
		case "/api/short":
			// Announces more than it sends, then hangs up.
			conn, bw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + strings.Repeat("s", 50))
			bw.Flush()
			conn.Close()
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Upstream", "yes")
		w.Header().Set("Connection", "close") // hop-by-hop: must not reach the client
		fmt.Fprintf(w, "%s %s host=%s xff=%s secret=%q proto=%s len=%d body=%s",
			r.Method, r.URL.RequestURI(), r.Host, r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Secret"),
			r.Proto, r.ContentLength, body)
	}))
	t.Cleanup(u.Close)
	return u
}

func TestProxy(t *testing.T) {
	fx := newFixture(t)
	u := upstream(t)
	s, addr := startServer(t, Config{Root: fx.root, Proxy: u.URL, Dynamic: []string{"/api", "/cgi-bin/"}})

	for _, tc := range []struct {
		name, req string
		code      int
		body      string // prefix of the body
		close     bool
	}{
		{"get", "GET /api/x?y=1 HTTP/1.1\r\nHost: example.org\r\n\r\n", 200,
			`GET /api/x?y=1 host=` + strings.TrimPrefix(u.URL, "http://") + ` xff=127.0.0.1 secret="" proto=HTTP/1.1 len=0 body=`, false},
		{"exact prefix", "GET /api HTTP/1.1\r\nHost: x\r\n\r\n", 200, "GET /api ", false},
		{"decoded path", "GET /%61pi//./x HTTP/1.1\r\nHost: x\r\n\r\n", 200, "GET /%61pi//./x ", false},
		{"not a prefix", "GET /apix HTTP/1.1\r\nHost: x\r\n\r\n", 404, "404 Not Found", false},
		{"below dir prefix", "GET /cgi-bin/t.cgi HTTP/1.1\r\nHost: x\r\n\r\n", 200, "GET /cgi-bin/t.cgi ", false},
		{"dir prefix itself", "GET /cgi-bin/ HTTP/1.1\r\nHost: x\r\n\r\n", 200, "GET /cgi-bin/ ", false},
		{"dir prefix without slash", "GET /cgi-bin HTTP/1.1\r\nHost: x\r\n\r\n", 404, "404", false},
		{"static still", "GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n", 200, docsIndex, false},
		{"xff appended", "GET /api/x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.7\r\n\r\n", 200, "GET /api/x host=" + strings.TrimPrefix(u.URL, "http://") + " xff=192.0.2.7, 127.0.0.1", false},
		{"hop-by-hop", "GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\r\n", 200, "GET /api/x", false},
		{"post", "POST /api/form HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", 200, "POST /api/form", false},
		{"post chunked", "POST /api/up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n", 200, "POST /api/up", false},
		{"delete", "DELETE /api/thing HTTP/1.1\r\nHost: x\r\n\r\n", 200, "DELETE /api/thing", false},
		{"head", "HEAD /api/x HTTP/1.1\r\nHost: x\r\n\r\n", 200, "", false},
		{"stream 1.1", "GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n", 200, "part 0\npart 1\npart 2\n", false},
		{"stream 1.0", "GET /api/stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200, "part 0\npart 1\npart 2\n", true},
		{"204", "GET /api/nocontent HTTP/1.1\r\nHost: x\r\n\r\n", 204, "", false},
		{"http/1.0", "GET /api/x HTTP/1.0\r\n\r\n", 200, "GET /api/x", true},
		{"bad transfer coding", "POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "501", true},
		{"chunked 1.0", "POST /api/x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "400", true},
		{"bad chunk", "POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.write(tc.req)
			method := strings.Fields(tc.req)[0]
			if tc.code == 0 {
				// The body breaks after the head was forwarded: whatever the
				// answer, the connection ends.
				c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				io.Copy(io.Discard, c.br)
				return
			}
			resp, body := c.read(method)
			if resp.StatusCode != tc.code || !strings.HasPrefix(string(body), tc.body) {
				t.Fatalf("%d %q, want %d %q...", resp.StatusCode, body, tc.code, tc.body)
			}
			if tc.code == 200 && strings.HasPrefix(tc.req, "POST") && !strings.HasSuffix(string(body), "body=hello world") {
				t.Errorf("body not forwarded whole: %q", body)
			}
			if tc.name == "hop-by-hop" && strings.Contains(string(body), `secret="1"`) {
				t.Errorf("a header named in Connection reached the upstream: %q", body)
			}
			if resp.Header.Get("Server") != "xhttpd" || resp.Header.Get("Date") == "" {
				t.Errorf("Server %q, Date %q", resp.Header.Get("Server"), resp.Header.Get("Date"))
			}
			if tc.code == 200 && method != "HEAD" && strings.HasPrefix(tc.req, "GET /api/x") && resp.Header.Get("X-Upstream") != "yes" {
				t.Errorf("upstream header lost: %v", resp.Header)
			}
			if got := c.closedByServer(100 * time.Millisecond); got != tc.close {
				t.Fatalf("closed %v, want %v (Connection %q)", got, tc.close, resp.Header.Get("Connection"))
			}
			if !tc.close {
				c.write("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
				if resp, body := c.read("GET"); resp.StatusCode != 200 || string(body) != rootIndex {
					t.Errorf("next request: %d %q", resp.StatusCode, body)
				}
			}
		})
	}

	// Pipelined static and dynamic requests are answered in order.
	c := dialRaw(t, addr)
	c.write("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /api/p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world" +
		"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /api/stream HTTP/1.1\r\nHost: x\r\n\r\n" +
		"GET /docs/style.css HTTP/1.1\r\nHost: x\r\n\r\n")
	for i, want := range []string{rootIndex, "POST /api/p", string(fx.small), "part 0\n", styleCSS} {
		resp, body := c.read("GET")
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), want) {
			t.Errorf("pipelined %d: %d %.40q, want %.40q", i, resp.StatusCode, body, want)
		}
	}
	if st := s.Stats(); st.ProxyRequests == 0 || st.ProxyErrors != 1 { // the bad chunk
		t.Errorf("stats: %d proxied, %d errors", st.ProxyRequests, st.ProxyErrors)
	}
}

// Expect: 100-continue is answered before the body is read, and not after
// the final answer has gone out.
func TestProxyExpectContinue(t *testing.T) {
	fx := newFixture(t)
	u := upstream(t)
	_, addr := startServer(t, Config{Root: fx.root, Proxy: u.URL, Dynamic: []string{"/api/"}})
	c := dialRaw(t, addr)
	c.write("PUT /api/put HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := c.br.ReadString('\n')
	if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
		t.Fatalf("first line %q, %v; want 100 Continue", line, err)
	}
	if l, _ := c.br.ReadString('\n'); l != "\r\n" {
		t.Fatalf("after 100: %q", l)
	}
	c.write("hello")
	resp, body := c.read("PUT")
	if resp.StatusCode != 200 || !strings.HasSuffix(string(body), "len=5 body=hello") {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	// The upstream answers without wanting the body: no 100, and the
	// connection closes since the body never came.
	c = dialRaw(t, addr)
	c.write("POST /api/early HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, _ = c.read("POST")
	if resp.StatusCode != 413 || !resp.Close {
		t.Fatalf("early answer: %d close=%v", resp.StatusCode, resp.Close)
	}
}

// An upstream that answers before reading a big body: the client gets the
// answer, the unread body ends the connection (it is too big to drain), and
// the server goes on.
func TestProxyEarlyAnswer(t *testing.T) {
	fx := newFixture(t)
	u := upstream(t)
	_, addr := startServer(t, Config{Root: fx.root, Proxy: u.URL, Dynamic: []string{"/api/"}})
	for _, size := range []int{100, 4 << 20} {
		c := dialRaw(t, addr)
		go func() {
			io.WriteString(c.nc, fmt.Sprintf("POST /api/early HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size))
			c.nc.Write(make([]byte, size))
		}()
		resp, _ := c.read("POST")
		if resp.StatusCode != 413 {
			t.Errorf("%d-byte body: %d", size, resp.StatusCode)
		}
		mustServeNormally(t, addr)
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	fx := newFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upURL := "http://" + l.Addr().String()
	l.Close() // nothing listens there now
	s, addr := startServer(t, Config{Root: fx.root, Proxy: upURL, Dynamic: []string{"/api/"}})
	for _, req := range []string{
		"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
		"HEAD /api/x HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		start := time.Now()
		resp, body, _ := roundTrip(t, addr, req)
		if d := time.Since(start); resp.StatusCode != 502 || d > time.Second {
			t.Errorf("%.20q: %d %q after %v, want 502 within 1s", req, resp.StatusCode, body, d)
		}
	}
	if st := s.Stats(); st.ProxyErrors != 3 || st.Status5xx != 3 {
		t.Errorf("stats: %d proxy errors, %d 5xx", st.ProxyErrors, st.Status5xx)
	}
	mustServeNormally(t, addr)
}

func TestProxyTimeout(t *testing.T) {
	fx := newFixture(t)
	u := upstream(t)
	_, addr := startServer(t, Config{Root: fx.root, Proxy: u.URL, Dynamic: []string{"/api/"}, ProxyTimeout: 200 * time.Millisecond})
	start := time.Now()
	resp, _, _ := roundTrip(t, addr, "GET /api/slow HTTP/1.1\r\nHost: x\r\n\r\n")
	if d := time.Since(start); resp.StatusCode != 504 || d > 1500*time.Millisecond {
		t.Errorf("%d after %v, want 504 after about 200ms", resp.StatusCode, d)
	}
}

// The upstream's body ends short of its Content-Length: the client gets
// what there is and the connection closes, so it can tell.
func TestProxyUpstreamShort(t *testing.T) {
	fx := newFixture(t)
	u := upstream(t)
	s, addr := startServer(t, Config{Root: fx.root, Proxy: u.URL, Dynamic: []string{"/api/"}})
	c := dialRaw(t, addr)
	c.write("GET /api/short HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || err != io.ErrUnexpectedEOF || len(body) != 50 {
		t.Errorf("%d, %d bytes, %v; want 200, 50 bytes and unexpected EOF", resp.StatusCode, len(body), err)
	}
	if s.Stats().ProxyErrors != 1 {
		t.Errorf("ProxyErrors %d", s.Stats().ProxyErrors)
	}
}

func TestProxyMisses(t *testing.T) {
	fx := newFixture(t)
	u := upstream(t)
	_, addr := startServer(t, Config{Root: fx.root, Proxy: u.URL, ProxyMisses: true})
	for _, tc := range []struct{ req, body string }{
		{"GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n", string(fx.small)},
		{"GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n", docsIndex},
		{"GET /nope.php?a=b HTTP/1.1\r\nHost: x\r\n\r\n", "GET /nope.php?a=b "},
		{"GET /empty/ HTTP/1.1\r\nHost: x\r\n\r\n", "GET /empty/ "},
		{"POST /small.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world", "POST /small.bin "},
	} {
		resp, body, _ := roundTrip(t, addr, tc.req)
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), tc.body) {
			t.Errorf("%.30q: %d %.40q, want 200 %.40q", tc.req, resp.StatusCode, body, tc.body)
		}
	}
}

func TestProxyConfig(t *testing.T) {
	root := t.TempDir()
	for _, cfg := range []Config{
		{Root: root, Proxy: "ftp://x", Dynamic: []string{"/a"}},
		{Root: root, Proxy: "http://", Dynamic: []string{"/a"}},
		{Root: root, Proxy: "http://h:1"},
		{Root: root, Proxy: "http://h:1", Dynamic: []string{"a"}},
		{Root: root, Proxy: "http://h:1", Dynamic: []string{"/a%2f"}},
		{Root: root, Proxy: "http://h:1", Dynamic: []string{"/a/../b"}},
		{Root: root, Proxy: "http://h:1", Dynamic: []string{"//a"}},
		{Root: root, Dynamic: []string{"/a"}},
		{Root: root, ProxyMisses: true},
	} {
		if _, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "httpd: ") {
			t.Errorf("%+v: %v, want an error", cfg, err)
		}
	}
}

func TestMatchPrefix(t *testing.T) {
	for _, tc := range []struct {
		path, prefix string
		want         bool
	}{
		{"/api", "/api", true},
		{"/api/", "/api", true},
		{"/api/x", "/api", true},
		{"/apix", "/api", false},
		{"/ap", "/api", false},
		{"/", "/api", false},
		{"/api/", "/api/", true},
		{"/api/x/y", "/api/", true},
		{"/api", "/api/", false},
		{"/", "/", true},
		{"/x", "/", true},
		{"/a/b", "/a/b", true},
		{"/a/bc", "/a/b", false},
	} {
		tg, he := parseTarget(nil, []byte(tc.path))
		if he != nil {
			t.Fatal(he)
		}
		if got := matchPrefix(tg, tc.prefix); got != tc.want {
			t.Errorf("%s under %s: %v, want %v", tc.path, tc.prefix, got, tc.want)
		}
	}
}

// Many clients hit static and dynamic paths at once, with bodies: run
// with -race, this is where the Transport's body goroutine and the
// connection's meet.
func TestProxyConcurrent(t *testing.T) {
	fx := newFixture(t)
	u := upstream(t)
	_, addr := startServer(t, Config{Root: fx.root, Proxy: u.URL, Dynamic: []string{"/api/"}})
	var failures atomic.Int32
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			c := dialRaw(t, addr)
			for i := range 50 {
				body := fmt.Sprintf("g%di%d", g, i)
				c.write(fmt.Sprintf("POST /api/c HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%sGET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n", len(body), body))
				resp, got := c.read("POST")
				if resp.StatusCode != 200 || !strings.HasSuffix(string(got), "body="+body) {
					failures.Add(1)
				}
				if resp, got := c.read("GET"); resp.StatusCode != 200 || !bytes.Equal(got, fx.small) {
					failures.Add(1)
				}
			}
		}()
	}
	for range 8 {
		<-done
	}
	if n := failures.Load(); n > 0 {
		t.Errorf("%d failed responses", n)
	}
}

// rawUpstream is an upstream that answers as handle says, byte by byte:
// the broken and hostile answers net/http would never send. open counts
// its connections still open.
func rawUpstream(t *testing.T, handle func(nc net.Conn, br *bufio.Reader)) (url string, open *atomic.Int64) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	open = new(atomic.Int64)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			open.Add(1)
			go func() {
				defer open.Add(-1)
				defer nc.Close()
				nc.SetDeadline(time.Now().Add(10 * time.Second))
				handle(nc, bufio.NewReader(nc))
			}()
		}
	}()
	return "http://" + l.Addr().String(), open
}

// A chunked upstream body that breaks off before its last chunk reaches
// the client without one, and the connection closes: the client can tell
// it is not the whole body.
func TestProxyUpstreamChunkedCut(t *testing.T) {
	fx := newFixture(t)
	up, _ := rawUpstream(t, func(nc net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(nc, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
		time.Sleep(50 * time.Millisecond) // the client has "hello" before the end
	})
	s, addr := startServer(t, Config{Root: fx.root, Proxy: up, Dynamic: []string{"/api/"}})
	c := dialRaw(t, addr)
	c.write("GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "hello" || err != io.ErrUnexpectedEOF {
		t.Errorf("%d %q, %v; want 200 \"hello\" and unexpected EOF", resp.StatusCode, body, err)
	}
	if st := s.Stats(); st.ProxyErrors != 1 {
		t.Errorf("ProxyErrors %d, want 1", st.ProxyErrors)
	}
	mustServeNormally(t, addr)
}

// Transfer-Encoding whose final coding is not chunked, or sent in two
// fields, leaves the body's length unknown: 400 and close (RFC 9112
// section 6.3), before anything goes upstream. Codings before a final
// chunked are well-formed but not supported: 501.
func TestProxyTransferEncoding(t *testing.T) {
	fx := newFixture(t)
	u := upstream(t)
	s, addr := startServer(t, Config{Root: fx.root, Proxy: u.URL, Dynamic: []string{"/api/"}})
	const body = "5\r\nhello\r\n0\r\n\r\n"
	for _, tc := range []struct {
		te   string
		code int
	}{
		{"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip", 400},
		{"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity", 400},
		{"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 400},
		{"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked", 400},
		{"Transfer-Encoding: chunked, gzip", 400},
		{"Transfer-Encoding: chunked, chunked", 400},
		{"Transfer-Encoding: gzip", 400},
		{"Transfer-Encoding: identity", 400},
		{"Transfer-Encoding: chunked;x=1", 400},
		{"Transfer-Encoding: ", 400},
		{"Transfer-Encoding: gzip, chunked", 501},
		{"Transfer-Encoding: gzip,chunked", 501},
	} {
		before := s.Stats().ProxyRequests
		resp, got, c := roundTrip(t, addr, "POST /api/x HTTP/1.1\r\nHost: x\r\n"+tc.te+"\r\n\r\n"+body)
		if resp.StatusCode != tc.code || !resp.Close {
			t.Errorf("%q: %d %q close=%v, want %d and close", tc.te, resp.StatusCode, got, resp.Close, tc.code)
		}
		if !c.closedByServer(2 * time.Second) {
			t.Errorf("%q: connection left open", tc.te)
		}
		if tc.code == 400 && s.Stats().ProxyRequests != before {
			t.Errorf("%q: went to the upstream", tc.te)
		}
	}
	// Spelled another way, chunked alone is still chunked.
	for _, te := range []string{"CHUNKED", "chunked ", ", chunked", "chunked,"} {
		resp, got, _ := roundTrip(t, addr, "POST /api/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "+te+"\r\n\r\n"+body)
		if resp.StatusCode != 200 || !strings.HasSuffix(string(got), "body=hello") {
			t.Errorf("%q: %d %q", te, resp.StatusCode, got)
		}
	}
}

// httpd has no protocol upgrades: a client's Upgrade does not reach the
// upstream, and an upstream's 101 (sent anyway) gets 502 with the upstream
// connection closed, not held open for good.
func TestProxyUpgrade(t *testing.T) {
	fx := newFixture(t)
	var upgradeSeen atomic.Int32
	up, open := rawUpstream(t, func(nc net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Header.Get("Upgrade") != "" || req.Header.Get("Connection") != "" {
			upgradeSeen.Add(1)
		}
		io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		io.Copy(io.Discard, br) // until xhttpd closes its side
	})
	s, addr := startServer(t, Config{Root: fx.root, Proxy: up, Dynamic: []string{"/api/"}})
	const n = 20
	for range n {
		resp, _, c := roundTrip(t, addr, "GET /api/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		if resp.StatusCode != 502 || !resp.Close {
			t.Fatalf("%d close=%v, want 502 and close", resp.StatusCode, resp.Close)
		}
		c.nc.Close()
	}
	if n := upgradeSeen.Load(); n > 0 {
		t.Errorf("%d requests reached the upstream with Upgrade or Connection", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if m := open.Load(); m > 0 {
		t.Errorf("%d of %d upstream connections still open", m, n)
	}
	if st := s.Stats(); st.ProxyErrors != n {
		t.Errorf("ProxyErrors %d, want %d", st.ProxyErrors, n)
	}
}

// The Transport may Read a request's body after the request is over (it
// can pass ReverseProxy's guard just before ServeHTTP returns). Such a
// late Read must fail, whatever the connection does next: not read the
// next request's body, and not crash once the conn is back in the pool.
func TestProxyBodyLateRead(t *testing.T) {
	fx := newFixture(t)
	entered, release := make(chan struct{}, 1), make(chan struct{})
	u := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/wait" {
			entered <- struct{}{}
			select {
			case <-release:
			case <-time.After(5 * time.Second):
			}
		}
		// /api/early answers without reading the body.
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "body=%s", body)
	}))
	t.Cleanup(u.Close)
	bodies := make(chan io.Reader, 2)
	s, addr := startServerWith(t, Config{Root: fx.root, Proxy: u.URL, Dynamic: []string{"/api/"}}, nil, func(s *Server) {
		rewrite := s.proxy.rp.Rewrite
		s.proxy.rp.Rewrite = func(pr *httputil.ProxyRequest) {
			bodies <- pr.In.Body
			rewrite(pr)
		}
	})
	lateRead := func(what string, b io.Reader) {
		t.Helper()
		defer func() {
			if v := recover(); v != nil {
				t.Errorf("%s: late Read panicked: %v", what, v)
			}
		}()
		buf := make([]byte, 64)
		if n, err := b.Read(buf); n > 0 || err == nil || err == io.EOF {
			t.Errorf("%s: late Read gave %q, %v; want an error", what, buf[:n], err)
		}
	}

	c := dialRaw(t, addr)
	c.write("POST /api/early HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst")
	if resp, got := c.read("POST"); resp.StatusCode != 200 {
		t.Fatalf("first request: %d %q", resp.StatusCode, got)
	}
	first := <-bodies
	// The next request on the connection: its body waits in the buffer
	// while the Transport waits for the upstream's 100 Continue.
	c.write("POST /api/wait HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nExpect: 100-continue\r\n\r\nsecret")
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("second request did not reach the upstream")
	}
	lateRead("the first body, during the second request", first)
	close(release)
	resp, got := c.read("POST")
	if resp.StatusCode == 100 {
		resp, got = c.read("POST")
	}
	if resp.StatusCode != 200 || string(got) != "body=secret" {
		t.Errorf("second request: %d %q, want 200 \"body=secret\"", resp.StatusCode, got)
	}
	second := <-bodies

	c.nc.Close()
	waitFor(t, 2*time.Second, "the connection to close", func() bool { return s.Stats().Open == 0 })
	lateRead("the first body, after the connection", first)
	lateRead("the second body, after the connection", second)
}
