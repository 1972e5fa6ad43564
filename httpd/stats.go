package httpd

import "sync/atomic"

// Stats is a snapshot of a Server's counters.
type Stats struct {
	Accepted        uint64 // connections accepted
	Open            int    // connections open now
	Requests        uint64 // request heads read (well-formed or not)
	BytesSent       uint64 // bytes written to clients, heads included
	Status2xx       uint64 // responses by status class
	Status3xx       uint64
	Status4xx       uint64
	Status5xx       uint64
	RejectedByLimit uint64 // 408, 414, 431 and 503: a client that hit a Config limit
	Panics          uint64 // connection handlers that panicked (recovered, connection closed)

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
	class                                                   [6]atomic.Uint64 // by status/100
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
		Status2xx:      s.stats.class[2].Load(),
		Status3xx:      s.stats.class[3].Load(),
		Status4xx:      s.stats.class[4].Load(),
		Status5xx:      s.stats.class[5].Load(),
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
	if snap := s.cache.Load(); snap != nil {
		st.CacheFiles, st.CacheBytes, st.CacheSkipped = len(snap.files), snap.bytes, snap.skipped
	}
	if s.alog != nil {
		st.AccessLogLines, st.AccessLogDropped, st.AccessLogErrors = s.alog.lines.Load(), s.alog.dropped.Load(), s.alog.errors.Load()
	}
	return st
}
