package httpd

import (
	"io"
	"os"
)

// serveStatic answers a GET or HEAD for t from Root: from the cache when it
// holds the file, else from disk.
func (c *conn) serveStatic(req *request, t target, head bool, mode closeMode) closeMode {
	s := c.srv
	if !s.cfg.ServeDotFiles && hidden(string(t.name)) {
		s.stats.hidden.Add(1)
		return c.notFound(req, head, mode)
	}
	if snap := s.cache.Load(); snap != nil {
		e, redirect := snap.lookup(t, &c.key)
		switch {
		case e != nil:
			s.stats.cacheHits.Add(1)
			c.from = OutcomeCached
			return c.serveEntry(req, e, nil, head, mode)
		case redirect:
			c.from = OutcomeCached
			c.writeRedirect(t, head, mode != keepOpen, req.minor)
			return mode
		}
	}
	return c.serveDisk(req, t, head, mode)
}

// serveDisk answers from the file system what the cache does not hold. A
// directory is served by its index.html; a directory named without the
// trailing slash is redirected (301) to the name with it, so that relative
// links in the index resolve below the directory as they would on any other
// server. There are no directory listings: a directory without index.html
// is 404, which ProxyMisses sends to the upstream.
func (c *conn) serveDisk(req *request, t target, head bool, mode closeMode) closeMode {
	s := c.srv
	s.stats.diskServed.Add(1)
	c.from = OutcomeDisk
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
	if he == errNotFound {
		return c.notFound(req, head, mode)
	}
	if he != nil {
		c.writeError(he, head, mode != keepOpen, req.minor)
		return mode
	}
	defer f.Close()
	c.disk.fill(name, fi.Size(), fi.ModTime())
	return c.serveEntry(req, &c.disk, f, head, mode)
}

// notFound answers 404, or hands the request to the upstream with
// ProxyMisses.
func (c *conn) notFound(req *request, head bool, mode closeMode) closeMode {
	if s := c.srv; s.proxy != nil && s.proxy.misses {
		return c.proxy(req, mode)
	}
	c.writeError(errNotFound, head, mode != keepOpen, req.minor)
	return mode
}

// serveEntry answers a GET or HEAD of one file, from memory (f nil) or from
// f: 304 when the client's copy is current, 206 or 416 for a Range (GET
// only: RFC 9110 defines ranges for GET alone), 200 otherwise.
func (c *conn) serveEntry(req *request, e *entry, f *os.File, head bool, mode closeMode) closeMode {
	close := mode != keepOpen
	if notModified(req, e) {
		c.writeNotModified(e, close, req.minor)
		return mode
	}
	r := byteRange{0, e.size}
	partial := false
	if !head && req.rangeSpec.present() && ifRangeHolds(req, e) {
		rr, v := parseRange(req.value(req.rangeSpec), e.size)
		switch v {
		case rangeUnsatisfiable:
			c.writeRangeNotSatisfiable(e.size, close, req.minor)
			return mode
		case rangeSatisfiable:
			r, partial = rr, true
		}
	}
	if partial {
		c.writePartialHead(e, r, close, req.minor)
	} else {
		c.writeEntryHead(e, close, req.minor)
	}
	if head {
		return mode
	}
	if f == nil {
		if c.writeBody(e.body[r.start:r.start+r.length]) != nil {
			return closeNow
		}
		return mode
	}
	return c.sendFile(f, r, mode)
}

// writeBody sends a cached body after the head already buffered. A body
// that fits in what is left of the write buffer is copied there, so that a
// pipelined batch of small responses still leaves in one write. A bigger one
// is not copied at all: its first writeChunk goes out in the same writev as
// the buffered bytes, the rest in writes of writeChunk (see connWriter).
func (c *conn) writeBody(b []byte) error {
	c.sent += int64(len(b))
	if len(b) <= c.bw.Available() {
		c.bw.Write(b)
		return nil
	}
	if c.bw.Buffered() == 0 {
		_, err := c.out.write(b, true)
		return err
	}
	c.out.tail = b
	err := c.bw.Flush()
	c.out.tail = nil
	return err
}

// sendFile sends the range r of f after the head already buffered, in
// pieces of writeChunk so that each gets its own write deadline.
func (c *conn) sendFile(f *os.File, r byteRange, mode closeMode) closeMode {
	if r.start > 0 {
		if _, err := f.Seek(r.start, io.SeekStart); err != nil {
			return closeNow
		}
	}
	defer func() { c.body = io.LimitedReader{} }()
	for left := r.length; left > 0; {
		n := min(left, writeChunk)
		c.body = io.LimitedReader{R: f, N: n}
		m, err := c.bw.ReadFrom(&c.body)
		c.sent += m
		left -= m
		if err != nil || m != n {
			// The file shrank under us or the client left: the announced
			// Content-Length cannot be met, so the connection cannot go on.
			if err == nil {
				c.srv.log.Warn("file shorter than its stat said; closing connection", "name", f.Name(), "want", r.length, "sent", r.length-left)
			}
			return closeNow
		}
	}
	return mode
}
