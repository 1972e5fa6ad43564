package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The dynamic fallback, kHTTPd's idea: what the static side does not serve
// goes to an ordinary HTTP server. The connection stays ours (our parser,
// our limits, our framing); httputil.ReverseProxy does the forwarding
// itself (hop-by-hop headers, X-Forwarded-For, the upstream's body), over a
// pool of keep-alive connections to the upstream through the kernel's
// sockets. There are no protocol upgrades: a client's Upgrade is not
// forwarded, and an upstream's 101 gets 502.

// proxy is the upstream and the paths that go to it.
type proxy struct {
	prefixes []string // each starts with '/'; one ending in '/' matches below it, else the path itself and below
	misses   bool
	rp       *httputil.ReverseProxy
	tr       *http.Transport
	lastWarn atomic.Int64 // Unix seconds of the last upstream error logged
}

func newProxy(cfg Config, s *Server) (*proxy, error) {
	u, err := url.Parse(cfg.Proxy)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("httpd: Config.Proxy %q: want http://host:port[/path]", cfg.Proxy)
	}
	if len(cfg.Dynamic) == 0 && !cfg.ProxyMisses {
		return nil, errors.New("httpd: Config.Proxy is set but nothing goes to it: name Dynamic prefixes or set ProxyMisses")
	}
	p := &proxy{misses: cfg.ProxyMisses}
	for _, d := range cfg.Dynamic {
		// Matched against cleaned paths: a prefix that is not clean itself
		// would never match.
		if d == "" || d[0] != '/' || strings.ContainsAny(d, "?#%\\") || (path.Clean(d) != d && path.Clean(d)+"/" != d) {
			return nil, fmt.Errorf("httpd: Config.Dynamic prefix %q: want a clean, decoded path starting with '/'", d)
		}
		p.prefixes = append(p.prefixes, d)
	}
	p.tr = &http.Transport{
		Proxy:                 nil, // never an environment's proxy: the upstream is ours
		DialContext:           (&net.Dialer{Timeout: cfg.ProxyDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.ProxyTimeout,
		DisableCompression:    true, // pass Accept-Encoding and encoded bodies through untouched
		ExpectContinueTimeout: time.Second,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			// Append the client's address to what the client sent, as
			// nginx's $proxy_add_x_forwarded_for does: the last entry is
			// the one xhttpd saw.
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
			// ReverseProxy forwards an Upgrade, but a 101 could not be
			// relayed (the connection is ours, not the upstream's to take
			// over). Hop-by-hop fields are gone by now; Connection is only
			// what ReverseProxy put back for the Upgrade.
			pr.Out.Header.Del("Upgrade")
			pr.Out.Header.Del("Connection")
		},
		ModifyResponse: func(res *http.Response) error {
			if res.StatusCode == http.StatusSwitchingProtocols {
				// ReverseProxy closes the body, which is the upstream
				// connection, and calls ErrorHandler: 502.
				return errUpgrade
			}
			if w, ok := res.Request.Context().Value(proxyWriterKey{}).(*proxyWriter); ok {
				res.Body = &upstreamBody{ReadCloser: res.Body, w: w}
			}
			return nil
		},
		Transport:    p.tr,
		BufferPool:   copyBuffers{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) { p.fail(s, w.(*proxyWriter), err) },
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// dynamic reports whether t goes to the upstream. The decoded, cleaned
// path is matched, so "/%61pi/x" and "//api/./x" are under "/api/" as
// surely as "/api/x" is.
func (p *proxy) dynamic(t target) bool {
	for _, pre := range p.prefixes {
		if matchPrefix(t, pre) {
			return true
		}
	}
	return false
}

// matchPrefix matches the path "/"+t.name (with its trailing slash) against
// prefix: "/cgi-bin/" matches what is below it, "/api" also "/api" itself.
func matchPrefix(t target, prefix string) bool {
	name := t.name
	if string(name) == "." {
		name = nil
	}
	// Compare "/"+name(+"/") with prefix without building it.
	rest := prefix[1:]
	if len(rest) <= len(name) {
		if string(name[:len(rest)]) != rest {
			return false
		}
		if len(rest) == len(name) {
			return true // "/api" for /api or /api/; "/api/" cannot be equal to a name, which has no trailing '/'
		}
		return rest == "" || rest[len(rest)-1] == '/' || name[len(rest)] == '/'
	}
	// The prefix is longer than the name: only "/api/" for "/api/" itself.
	return t.dirSlash && len(rest) == len(name)+1 && rest[len(rest)-1] == '/' && string(name) == rest[:len(name)]
}

func (p *proxy) close() { p.tr.CloseIdleConnections() }

// fail answers a request the upstream could not: 502 when it is down or
// broke the exchange, 504 when it took longer than ProxyTimeout. If the
// head has already gone out, all that can be done is to close.
func (p *proxy) fail(s *Server, w *proxyWriter, err error) {
	s.stats.proxyErrors.Add(1)
	if now := time.Now().Unix(); p.lastWarn.Swap(now) != now {
		s.log.Warn("upstream failed", "err", err) // at most once a second
	}
	w.mu.Lock() // against a 100 Continue from the body's goroutine
	defer w.mu.Unlock()
	if w.wrote {
		w.broken = true
		return
	}
	he := errUpstream
	if isTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
		he = errUpstreamTimeout
	}
	w.wrote = true
	w.c.writeError(he, w.head, true, w.c.req.minor)
	w.closeAfter = true
}

var errUpgrade = errors.New("httpd: upstream switched protocols (101); there are no upgrades")

// proxyWriterKey finds a request's proxyWriter in its context, for
// ModifyResponse.
type proxyWriterKey struct{}

// upstreamBody is the upstream's response body as ReverseProxy reads it.
// ReverseProxy stops at a read error without telling anyone (it would
// panic under net/http's server, which this is not), so the error is noted
// here: a body cut off must not reach the client as complete.
type upstreamBody struct {
	io.ReadCloser
	w *proxyWriter
}

func (b *upstreamBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.w.cut = true
	}
	return n, err
}

// copyBuffers lends ReverseProxy its 32 KiB copy buffers from a pool.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }

// proxy forwards req to the upstream and relays the answer. It allocates
// (an http.Request, its Header, the ReverseProxy's work); the dynamic path
// is not the one that has to be free of allocation.
func (c *conn) proxy(req *request, mode closeMode) closeMode {
	s := c.srv
	c.state.Store(stateProxying)
	s.stats.proxied.Add(1)
	head := string(req.method) == "HEAD"
	if req.chunked {
		// The parser let through only codings that end in chunked.
		he := errBadTE
		switch {
		case req.minor == 0:
			he = errTE10 // RFC 9112 section 6.1: an HTTP/1.0 message cannot be chunked
		case !req.otherCodings:
			he = nil
		}
		if he != nil {
			c.writeError(he, head, true, req.minor)
			return closeLinger
		}
	}
	u, err := url.ParseRequestURI(string(req.target))
	if err != nil {
		c.writeError(errBadTarget, head, true, req.minor)
		return closeLinger
	}

	hreq := &http.Request{
		Method:     string(req.method),
		URL:        u,
		Proto:      "HTTP/1." + strconv.Itoa(req.minor),
		ProtoMajor: 1,
		ProtoMinor: req.minor,
		Header:     make(http.Header, req.headers),
		RemoteAddr: c.nc.RemoteAddr().String(),
		RequestURI: string(req.target),
		Body:       http.NoBody,
	}
	expect := false
	req.eachField(func(name, value []byte) {
		k := textproto.CanonicalMIMEHeaderKey(string(name))
		switch k {
		case "Host":
			hreq.Host = string(value)
		case "Content-Length", "Transfer-Encoding":
			// Framing is ours to say (hreq.ContentLength).
		case "Expect":
			// Forwarded: the Transport then waits for the upstream's 100
			// (ExpectContinueTimeout) before it reads the body, and the
			// body's first read sends our 100 to the client. An upstream
			// that answers at once spares the client sending its body.
			expect = equalFold(value, "100-continue")
			hreq.Header[k] = append(hreq.Header[k], string(value))
		default:
			hreq.Header[k] = append(hreq.Header[k], string(value))
		}
	})
	w := &proxyWriter{c: c, head: head, header: make(http.Header), length: -1}
	if req.hasBody() {
		hreq.ContentLength = req.contentLength
		if req.chunked {
			hreq.ContentLength = -1
		}
		// A body of its own for every request, not one kept in c: the
		// Transport may call Read after RoundTrip and ServeHTTP have
		// returned, and such a late Read must find this body finished,
		// not the next request's, or a conn back in the pool.
		w.body = newProxyBody(c, req, w, expect)
		defer w.body.Close() // finished already, unless ServeHTTP panicked
		hreq.Body = w.body
		// The Transport reads the body on its own goroutine: the reader
		// under c.br must not flush c.bw, which this one writes meanwhile.
		c.in.noFlush = true
	}
	ctx, cancel := context.WithCancel(context.WithValue(s.ctx, proxyWriterKey{}, w))
	s.proxy.rp.ServeHTTP(w, hreq.WithContext(ctx))
	cancel()

	keep := w.finish()
	if w.body != nil {
		// The answer goes out before what is left of the body is drained:
		// a client may be waiting for it before it sends any more.
		c.bw.Flush()
		done := w.body.finish()
		c.in.noFlush = false
		if !done {
			return closeLinger
		}
	}
	if !keep {
		return closeNow
	}
	return mode
}

// proxyWriter is the http.ResponseWriter that ReverseProxy writes the
// upstream's answer to. It writes the head itself, in this server's
// style, and frames the body: with the upstream's Content-Length when it
// gave one, else chunked for an HTTP/1.1 client, else (HTTP/1.0) by closing
// the connection at its end. 1xx answers are not relayed (the client's 100
// Continue is sent when its body is first read, see proxyBody) and 101
// fails (no upgrades).
type proxyWriter struct {
	c      *conn
	body   *proxyBody // the request's body; nil without one
	header http.Header
	head   bool // a HEAD request: no body, whatever the upstream says

	mu         sync.Mutex // wrote and the 100 Continue, against proxyBody
	wrote      bool       // the head went out
	bodyless   bool
	chunked    bool
	closeAfter bool  // the body ends with the connection; or an error was sent
	length     int64 // announced Content-Length, or -1
	written    int64
	broken     bool // the exchange cannot be completed: close
	cut        bool // the upstream's body broke off (upstreamBody): close
}

// ownHeaders are the response headers proxyWriter sets itself.
var ownHeaders = map[string]bool{
	"Date": true, "Server": true, "Connection": true, "Keep-Alive": true,
	"Transfer-Encoding": true, "Content-Length": true, "Trailer": true,
}

func (w *proxyWriter) Header() http.Header { return w.header }

func (w *proxyWriter) WriteHeader(code int) {
	if code < 200 {
		return // 1xx: see proxyWriter
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wrote {
		return
	}
	w.wrote = true
	c := w.c
	minor := c.req.minor
	c.startHead(code, time.Now())
	c.from = OutcomeProxied
	bw := c.bw
	for k, vs := range w.header {
		if ownHeaders[k] {
			continue
		}
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeFieldValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	w.bodyless = w.head || code == 204 || code == 304
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, ok := parseContentLength([]byte(cl)); ok && code != 204 {
			c.writeContentLength(n)
			w.length = n
		}
	}
	switch {
	case w.bodyless || w.length >= 0:
	case minor >= 1:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		w.chunked = true
	default:
		w.closeAfter = true
	}
	if w.bodyless {
		w.length = 0
	}
	if w.body != nil && w.body.cont.Load() {
		// The client still waits for 100 Continue, which is now too late:
		// its body will not be read, so the connection cannot go on.
		w.closeAfter = true
	}
	c.endHead(w.closeAfter, minor)
}

// writeFieldValue writes a header value with any CR or LF turned into a
// space: an upstream must not be able to split our response.
func writeFieldValue(bw interface{ WriteByte(byte) error }, v string) {
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch == '\r' || ch == '\n' {
			ch = ' '
		}
		bw.WriteByte(ch)
	}
}

func (w *proxyWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.broken {
		return 0, errProxyBroken
	}
	if w.bodyless {
		return len(p), nil
	}
	n := len(p)
	if w.length >= 0 && w.written+int64(n) > w.length {
		w.broken = true // more than announced: the framing would break
		w.c.srv.stats.proxyErrors.Add(1)
		return 0, errProxyBroken
	}
	c := w.c
	if w.chunked {
		if n == 0 {
			return 0, nil
		}
		c.scratch = strconv.AppendInt(c.scratch[:0], int64(n), 16)
		c.scratch = append(c.scratch, "\r\n"...)
		c.bw.Write(c.scratch)
	}
	if _, err := c.bw.Write(p); err != nil {
		w.broken = true
		return 0, err
	}
	if w.chunked {
		c.bw.WriteString("\r\n")
	}
	w.written += int64(n)
	c.sent += int64(n)
	return n, nil
}

var errProxyBroken = errors.New("httpd: proxied response cannot be completed")

// Flush sends what is buffered: ReverseProxy flushes streamed bodies.
func (w *proxyWriter) Flush() { w.c.bw.Flush() }

// finish ends the body and reports whether the connection may go on.
func (w *proxyWriter) finish() bool {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case w.broken:
		return false
	case w.cut:
		// Without the last chunk, or short of its Content-Length, or
		// (HTTP/1.0) ended by the close: the client can tell.
		w.c.srv.stats.proxyErrors.Add(1)
		return false
	case w.chunked:
		w.c.bw.WriteString("0\r\n\r\n")
	case w.length >= 0 && w.written != w.length:
		w.c.srv.stats.proxyErrors.Add(1)
		return false // the upstream's body ended short
	}
	return !w.closeAfter
}

// proxyBody is a proxied request's body as ReverseProxy reads it, framed
// by Content-Length or chunked, read from the connection's bufio.Reader.
// The Transport may still be reading it from its own goroutine after
// ServeHTTP returns (an upstream can answer before it has the whole body),
// so every read holds mu, and finish takes mu to end the body before the
// connection reads its next request. A Read after that fails without
// touching the connection, which is why every request has its own.
type proxyBody struct {
	mu      sync.Mutex
	c       *conn
	w       *proxyWriter
	req     *request
	lr      io.LimitedReader
	chunked io.Reader
	cont    atomic.Bool // 100 Continue is owed before the first read
	done    bool        // no more reads: finished or closed
	eof     bool        // read to its end, trailers included
	err     error
}

func newProxyBody(c *conn, req *request, w *proxyWriter, expect bool) *proxyBody {
	b := &proxyBody{c: c, w: w, req: req}
	b.cont.Store(expect && req.minor >= 1)
	if req.chunked {
		b.chunked = httputil.NewChunkedReader(c.br) // reads c.br itself: no read-ahead
	} else {
		b.lr = io.LimitedReader{R: c.br, N: req.contentLength}
	}
	return b
}

func (b *proxyBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.done:
		return 0, http.ErrBodyReadAfterClose
	case b.eof:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	}
	c := b.c
	if b.cont.Swap(false) {
		b.w.mu.Lock()
		if !b.w.wrote {
			c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			c.bw.Flush()
		}
		b.w.mu.Unlock()
	}
	// Each read must make progress within ReadHeaderTimeout: a slow body
	// holds a connection as surely as a slow head.
	c.in.setDeadline(time.Now().Add(c.srv.cfg.ReadHeaderTimeout))
	var n int
	var err error
	if b.chunked != nil {
		n, err = b.chunked.Read(p)
		if err == io.EOF {
			err = c.p.readTrailer(c.br, c.srv.lim)
			if err == nil {
				err = io.EOF
			}
		} else if err != nil && !isTimeout(err) && !errors.Is(err, net.ErrClosed) && err != io.ErrUnexpectedEOF {
			err = errBadChunk
		}
	} else {
		n, err = b.lr.Read(p)
		if err == nil && b.lr.N == 0 {
			err = io.EOF
		}
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil:
		b.err = err
	}
	return n, err
}

// Close ends the body: later Reads fail. ReverseProxy does not pass its
// Close on (it hands the Transport a wrapper); proxy calls it, and finish
// does as much.
func (b *proxyBody) Close() error {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
	return nil
}

// maxDrain is how much of a body the upstream left unread is read and
// discarded to keep the connection; with more left, it closes.
const maxDrain = 256 << 10

// finish ends the body for good and reports whether it was read to its end
// (draining at most maxDrain bytes the upstream did not want), so that the
// connection can read its next request.
func (b *proxyBody) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done = true
	if b.eof {
		return true
	}
	if b.err != nil || b.cont.Load() {
		return false // broken, or never started: the client may still be waiting to send it
	}
	c := b.c
	c.in.setDeadline(time.Now().Add(lingerTimeout))
	if b.chunked != nil {
		n, err := io.CopyN(io.Discard, b.chunked, maxDrain)
		if err != io.EOF || n >= maxDrain {
			return false
		}
		return c.p.readTrailer(c.br, c.srv.lim) == nil
	}
	if b.lr.N > maxDrain {
		return false
	}
	_, err := io.Copy(io.Discard, &b.lr)
	return err == nil && b.lr.N == 0
}
