package httpd

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Connection states, for Shutdown: only an idle connection may be closed
// under a client's feet.
const (
	stateActive int32 = iota // reading a request head or writing a response
	stateIdle                // waiting for the first byte of the next request
	stateClosed              // closed by Shutdown
)

const (
	// readBufSize holds a typical request head whole; longer lines are
	// reassembled by readLine up to the configured limits.
	readBufSize = 4 << 10
	// writeBufSize lets the response head and a small file leave in one
	// write; bigger files go by io.ReaderFrom (sendfile on the kernel stack)
	// once the first buffer is out.
	writeBufSize = 16 << 10
	// maxKeptBuf is the largest parser buffer a pooled connection keeps; a
	// rare huge header should not pin memory in the pool.
	maxKeptBuf = 64 << 10

	// lingerTimeout and lingerBytes bound how long and how much a closing
	// connection reads after its last response. Closing a socket with unread
	// input makes the kernel send RST, which can destroy the response before
	// the client reads it (the reason for net/http's closeWriteAndWait).
	lingerTimeout = 500 * time.Millisecond
	lingerBytes   = 256 << 10
	// errorWriteTimeout bounds writing an error response to a client that
	// may be the reason for the error.
	errorWriteTimeout = 5 * time.Second
)

// conn is one client connection and the buffers it reuses for every
// request. conns are pooled whole: a new connection costs no buffer
// allocation once the pool is warm.
type conn struct {
	srv   *Server
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	state atomic.Int32

	in      connReader // what br reads from
	p       parser
	req     request
	name    []byte           // decoded path, then the name passed to os.Root
	scratch []byte           // numbers, dates and Location while writing a head
	body    io.LimitedReader // the file, limited to the size its head announced
}

var connPool = sync.Pool{New: func() any {
	c := &conn{
		br:      bufio.NewReaderSize(nil, readBufSize),
		bw:      bufio.NewWriterSize(nil, writeBufSize),
		scratch: make([]byte, 0, 256),
	}
	c.in.c = c
	return c
}}

// connReader is the reader under a conn's bufio.Reader. Before it waits on
// the network it flushes what responses are still buffered: a pipelined
// request that arrived only in part must not leave the answers to the
// requests before it sitting in our buffer while we wait for its rest,
// perhaps from a client that waits for those answers first.
type connReader struct{ c *conn }

func (r *connReader) Read(p []byte) (int, error) {
	if r.c.bw.Buffered() > 0 {
		if err := r.c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	return r.c.nc.Read(p)
}

func newConn(s *Server, nc net.Conn) *conn {
	c := connPool.Get().(*conn)
	c.srv = s
	c.nc = nc
	c.br.Reset(&c.in)
	c.bw.Reset(nc)
	c.state.Store(stateActive)
	return c
}

// release returns c to the pool; c must be out of the server's set.
func (c *conn) release() {
	c.srv, c.nc = nil, nil
	c.br.Reset(nil)
	c.bw.Reset(nil)
	c.req = request{}
	c.body = io.LimitedReader{}
	if cap(c.p.line) > maxKeptBuf {
		c.p.line = nil
	}
	if cap(c.p.long) > maxKeptBuf {
		c.p.long = nil
	}
	if cap(c.name) > maxKeptBuf {
		c.name = nil
	}
	connPool.Put(c)
}

// closeMode says how a connection ends after its current response.
type closeMode int

const (
	keepOpen    closeMode = iota
	closeNow              // nothing unread is expected: close
	closeLinger           // the client may have sent more (a body, the rest of a bad head): drain first
)

// serve runs the connection's request loop: requests are answered one after
// the other, in order, which is all that pipelining needs. The write buffer
// is flushed only when no further request is already buffered (or, see
// connReader, when reading must wait), so a pipelined batch is answered
// with few writes.
func (c *conn) serve() {
	s := c.srv
	defer func() {
		if v := recover(); v != nil {
			s.stats.panics.Add(1)
			s.log.Error("panic serving connection; closing it",
				"remote", c.nc.RemoteAddr(), "panic", v, "stack", string(debug.Stack()))
		}
		c.nc.Close()
		s.removeConn(c)
		c.release()
	}()

	for {
		if c.br.Buffered() == 0 {
			if s.inShutdown.Load() {
				return
			}
			c.state.Store(stateIdle)
			c.nc.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			if _, err := c.br.Peek(1); err != nil {
				return // closed, idle too long, or closed by Shutdown
			}
			if !c.state.CompareAndSwap(stateIdle, stateActive) {
				return // Shutdown closed it as the request arrived
			}
		}
		c.nc.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
		err := c.p.readRequest(c.br, s.lim, &c.req)
		if err != nil {
			c.fail(err)
			return
		}
		s.stats.requests.Add(1)
		if testHookRequest != nil {
			testHookRequest(c.req.target)
		}

		mode := c.handle(&c.req)
		if mode != keepOpen {
			c.finish(mode)
			return
		}
		if c.br.Buffered() == 0 {
			if err := c.bw.Flush(); err != nil {
				return
			}
		}
	}
}

// testHookRequest, when set by a test, runs for every request read.
var testHookRequest func(target []byte)

// fail answers a request head that could not be read whole, if it deserves
// an answer, and ends the connection.
func (c *conn) fail(err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		if he.code == 414 || he.code == 431 {
			c.srv.stats.rejected.Add(1)
		}
		c.srv.stats.requests.Add(1)
		c.debug("bad request", he)
	case isTimeout(err):
		// The first byte arrived (serve waited for it) but not the rest in
		// time: slowloris or a stuck client.
		c.srv.stats.rejected.Add(1)
		he = errHeadTimeout
	default:
		return // the client went away mid-head; nobody to answer
	}
	c.nc.SetWriteDeadline(time.Now().Add(errorWriteTimeout))
	c.writeError(he, false, true, c.req.minor)
	c.finish(closeLinger)
}

// finish flushes the last response and closes the connection the way mode
// says. The deferred Close in serve does the final close.
func (c *conn) finish(mode closeMode) {
	if err := c.bw.Flush(); err != nil {
		return
	}
	if mode != closeLinger && c.br.Buffered() == 0 {
		return
	}
	// Half-close so the client sees the end of the response, then drain
	// what it still sends for a bounded time, so that our close does not
	// reset the connection under the response it has yet to read.
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			return
		}
	}
	c.nc.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, c.nc, lingerBytes)
}

func (c *conn) debug(msg string, he *httpError) {
	// Guarded: building the attributes allocates, and bad requests are
	// what an attacker can send at line rate.
	if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		c.srv.log.Debug(msg, "remote", c.nc.RemoteAddr(), "status", he.code, "reason", he.reason)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handle answers one well-formed request head and says what becomes of the
// connection.
//
// Request bodies are never read: a static server has no use for them. A
// GET or HEAD with a body gets 400, any other method 405, and in both cases
// the connection closes after the answer (with a lingering close), since
// the body's bytes stand between us and the next request.
func (c *conn) handle(req *request) closeMode {
	s := c.srv
	mode := keepOpen
	if !req.wantsKeepAlive() || s.inShutdown.Load() {
		mode = closeNow
	}
	head := string(req.method) == "HEAD"
	if !head && string(req.method) != "GET" {
		if req.hasBody() {
			mode = closeLinger
		}
		c.writeError(errMethod, head, mode != keepOpen, req.minor)
		return mode
	}
	if req.hasBody() {
		c.debug("bad request", errBodyOnGet)
		c.writeError(errBodyOnGet, head, true, req.minor)
		return closeLinger
	}

	t, he := parseTarget(c.name, req.target)
	if he != nil {
		c.debug("bad request", he)
		c.writeError(he, head, mode != keepOpen, req.minor)
		return mode
	}
	c.name = t.name[:0]
	return c.serveFile(req, t, head, mode)
}

// serveFile answers a GET or HEAD for t. A directory is served by its
// index.html; a directory named without the trailing slash is redirected
// (301) to the name with it, so that relative links in the index resolve
// below the directory as they would on any other server. There are no
// directory listings: a directory without index.html is 404.
func (c *conn) serveFile(req *request, t target, head bool, mode closeMode) closeMode {
	s := c.srv
	name := string(t.name)
	f, fi, he := s.open(name)
	switch {
	case he != nil:
	case fi.IsDir():
		f.Close()
		if !t.dirSlash {
			c.writeRedirect(t, head, mode != keepOpen, req.minor)
			return mode
		}
		if name == "." {
			name = "index.html"
		} else {
			name += "/index.html"
		}
		f, fi, he = s.open(name)
		if he == nil && !fi.Mode().IsRegular() {
			f.Close()
			he = errNotFound
		}
	case t.dirSlash || !fi.Mode().IsRegular():
		// "file/" names no directory (Linux's open refuses it too), and
		// devices, FIFOs and sockets are not content.
		f.Close()
		he = errNotFound
	}
	if he != nil {
		c.writeError(he, head, mode != keepOpen, req.minor)
		return mode
	}
	defer f.Close()

	size := fi.Size()
	c.writeFileHead(name, size, fi.ModTime(), mode != keepOpen, req.minor)
	if head {
		return mode
	}
	c.body = io.LimitedReader{R: f, N: size}
	n, err := c.bw.ReadFrom(&c.body)
	c.body = io.LimitedReader{}
	if err != nil || n != size {
		// The file shrank under us or the client left: the announced
		// Content-Length cannot be met, so the connection cannot go on.
		if err == nil {
			s.log.Warn("file shorter than its stat said; closing connection", "name", name, "want", size, "sent", n)
		}
		return closeNow
	}
	return mode
}
