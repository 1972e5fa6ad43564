package httpd

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a Server's counters.
type Stats struct {
	Accepted        uint64 // connections accepted
	Open            int    // connections open now
	Requests        uint64 // request heads read (well-formed or not)
	BytesSent       uint64 // bytes written to clients, heads included
	Status2xx       uint64 // responses by status class, the sums of Responses
	Status3xx       uint64
	Status4xx       uint64
	Status5xx       uint64
	Responses       map[int]uint64 // responses by status code (100 to 999), the codes sent at least once
	RejectedByLimit uint64         // 408, 414, 431 and 503: a client that hit a Config limit
	Panics          uint64         // connection handlers that panicked (recovered, connection closed)

	// Limits, one by one.
	BadRequests    uint64 // 400 and 505 for a request head that breaks the syntax
	HeaderTimeouts uint64 // 408: ReadHeaderTimeout
	URITooLong     uint64 // 414: MaxRequestLine
	HeaderTooLarge uint64 // 431: MaxHeaderBytes or MaxHeaders
	ConnsRefused   uint64 // 503: MaxConns
	IdleTimeouts   uint64 // keep-alive connections closed after IdleTimeout
	WriteTimeouts  uint64 // connections closed after WriteTimeout

	CacheFiles   int    // files in the cache
	CacheBytes   int64  // memory they take, heads included
	CacheSkipped int    // files the last load left to the disk (too big, over CacheTotal, modified within a second, changing)
	CacheReloads uint64 // loads, the first included
	CacheErrors  uint64 // loads that failed (the previous cache stayed)
	CacheHits    uint64 // responses from the cache
	DiskServed   uint64 // requests looked up on disk
	Hidden       uint64 // requests for dot names refused (404) without ServeDotFiles

	ProxyRequests uint64 // requests sent to the upstream
	ProxyErrors   uint64 // of those, 502, 504, or broken off

	AccessLogLines   uint64 // lines queued
	AccessLogDropped uint64 // lines dropped because the writer fell behind
	AccessLogErrors  uint64 // writes to the access log that failed (a full disk, say); the lines they held are lost
}

type counters struct {
	accepted, requests, panics, bytesOut                    atomic.Uint64
	badRequests, headerTimeouts, uriTooLong, headerTooLarge atomic.Uint64
	refused, idleTimeouts, writeTimeouts                    atomic.Uint64
	reloads, reloadErrors, cacheHits, diskServed, hidden    atomic.Uint64
	proxied, proxyErrors                                    atomic.Uint64
	codes                                                   [1000]atomic.Uint64 // responses by status code; an upstream may send any three digits
}

// response counts a response with status code.
func (c *counters) response(code int) {
	if code >= 0 && code < len(c.codes) {
		c.codes[code].Add(1)
	}
}

// Stats returns the counters so far. The counters are read one by one, so a
// snapshot taken under load may be off by the requests in flight.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	open := len(s.conns)
	s.mu.Unlock()
	st := Stats{
		Accepted:       s.stats.accepted.Load(),
		Open:           open,
		Requests:       s.stats.requests.Load(),
		BytesSent:      s.stats.bytesOut.Load(),
		Panics:         s.stats.panics.Load(),
		BadRequests:    s.stats.badRequests.Load(),
		HeaderTimeouts: s.stats.headerTimeouts.Load(),
		URITooLong:     s.stats.uriTooLong.Load(),
		HeaderTooLarge: s.stats.headerTooLarge.Load(),
		ConnsRefused:   s.stats.refused.Load(),
		IdleTimeouts:   s.stats.idleTimeouts.Load(),
		WriteTimeouts:  s.stats.writeTimeouts.Load(),
		CacheReloads:   s.stats.reloads.Load(),
		CacheErrors:    s.stats.reloadErrors.Load(),
		CacheHits:      s.stats.cacheHits.Load(),
		DiskServed:     s.stats.diskServed.Load(),
		Hidden:         s.stats.hidden.Load(),
		ProxyRequests:  s.stats.proxied.Load(),
		ProxyErrors:    s.stats.proxyErrors.Load(),
	}
	st.RejectedByLimit = st.HeaderTimeouts + st.URITooLong + st.HeaderTooLarge + st.ConnsRefused
	st.Responses = make(map[int]uint64)
	for code := 100; code < len(s.stats.codes); code++ {
		n := s.stats.codes[code].Load()
		if n == 0 {
			continue
		}
		st.Responses[code] = n
		switch code / 100 {
		case 2:
			st.Status2xx += n
		case 3:
			st.Status3xx += n
		case 4:
			st.Status4xx += n
		case 5:
			st.Status5xx += n
		}
	}
	if snap := s.cache.Load(); snap != nil {
		st.CacheFiles, st.CacheBytes, st.CacheSkipped = len(snap.files), snap.bytes, snap.skipped
	}
	if s.alog != nil {
		st.AccessLogLines, st.AccessLogDropped, st.AccessLogErrors = s.alog.lines.Load(), s.alog.dropped.Load(), s.alog.errors.Load()
	}
	return st
}

// Outcome is how a request was answered, for Config.Observe.
type Outcome uint8

const (
	OutcomeCached  Outcome = iota // from the cache: a file, 206 or 304, or a redirect to a directory's slash
	OutcomeDisk                   // the same, looked up on disk for the request (what the cache does not hold)
	OutcomeProxied                // the upstream's answer, relayed, whatever its status
	OutcomeError                  // an error this server answered itself (status 400 or more: a bad request, 404, a limit, 502 or 504 for an upstream that failed), or no response at all
	NumOutcomes                   // how many outcomes there are
)

var outcomeNames = [...]string{OutcomeCached: "cached", OutcomeDisk: "disk", OutcomeProxied: "proxied", OutcomeError: "error"}

func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// outcome is how the request just answered was answered. c.from says
// where its answer came from (reset to OutcomeError for each request, set
// by the static and proxy paths); a status of 400 or more that was not
// the upstream's makes it an error whatever the path.
func (c *conn) outcome() Outcome {
	if c.from == OutcomeProxied {
		return OutcomeProxied
	}
	if c.status == 0 || c.status >= 400 {
		return OutcomeError
	}
	return c.from
}

// answered records the request just answered, its response flushed: in
// the access log and to Config.Observe, when there are. It returns the time
// it did, for the idle deadline that follows.
func (c *conn) answered() time.Time {
	s := c.srv
	now := time.Now()
	if !s.timed && s.alog == nil {
		return now
	}
	var d time.Duration
	if s.timed {
		d = now.Sub(c.start)
	}
	if s.alog != nil {
		c.logAccess(now, d)
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(c.outcome(), c.status, d)
	}
	return now
}
