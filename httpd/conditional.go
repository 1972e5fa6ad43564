package httpd

import (
	"bytes"
	"net/http"
	"time"
)

// Conditional requests (RFC 9110 section 13) for static files: GET and
// HEAD only, since nothing else is served from Root. If-Match and
// If-Unmodified-Since, which guard writes, are not evaluated.

// notModified reports whether a GET or HEAD of e is answered 304: by
// If-None-Match when present (weak comparison), else by If-Modified-Since
// (RFC 9110 section 13.2.2, steps 3 and 4).
func notModified(req *request, e *entry) bool {
	if req.ifNoneMatchMore {
		// Several lines are one comma-separated list (RFC 9110 section
		// 5.3): any of them may hold the match.
		return req.eachValue("if-none-match", func(v []byte) bool { return etagListMatches(v, e.etag) })
	}
	if req.ifNoneMatch.present() {
		return etagListMatches(req.value(req.ifNoneMatch), e.etag)
	}
	if req.ifModifiedSince.present() {
		t, ok := parseHTTPDate(req.value(req.ifModifiedSince))
		return ok && e.modSec <= t
	}
	return false
}

// ifRangeHolds reports whether a Range may be honoured (RFC 9110 section
// 13.1.5): without If-Range always; with an entity tag when it is strong and
// equal to e's; with a date when it is exactly e's Last-Modified.
func ifRangeHolds(req *request, e *entry) bool {
	if !req.ifRange.present() {
		return true
	}
	v := req.value(req.ifRange)
	switch {
	case len(v) > 0 && v[0] == '"':
		return bytes.Equal(v, e.etag)
	case len(v) > 1 && v[0] == 'W' && v[1] == '/':
		return false // a weak tag never validates a range
	}
	t, ok := parseHTTPDate(v)
	return ok && t == e.modSec
}

// etagListMatches applies If-None-Match's weak comparison: "*" matches any
// current file; otherwise a listed tag, W/ or not, with etag's opaque part.
// A malformed list matches nothing, so the full response is sent.
func etagListMatches(list, etag []byte) bool {
	if len(list) == 1 && list[0] == '*' {
		return true
	}
	for {
		for len(list) > 0 && (list[0] == ',' || list[0] == ' ' || list[0] == '\t') {
			list = list[1:]
		}
		if len(list) == 0 {
			return false
		}
		if len(list) > 1 && list[0] == 'W' && list[1] == '/' {
			list = list[2:]
		}
		if len(list) == 0 || list[0] != '"' {
			return false
		}
		end := bytes.IndexByte(list[1:], '"')
		if end < 0 {
			return false
		}
		if bytes.Equal(list[:end+2], etag) {
			return true
		}
		list = list[end+2:]
	}
}

// parseHTTPDate parses an HTTP-date into Unix seconds. IMF-fixdate, which
// every current client sends, is parsed in place without allocating; the
// two obsolete forms go through net/http.
func parseHTTPDate(b []byte) (int64, bool) {
	// "Sun, 06 Nov 1994 08:49:37 GMT"
	if len(b) == len(timeFormat) && b[3] == ',' && b[4] == ' ' && b[7] == ' ' && b[11] == ' ' &&
		b[16] == ' ' && b[19] == ':' && b[22] == ':' && b[25] == ' ' && string(b[26:]) == "GMT" {
		day, ok1 := digits(b[5:7])
		year, ok2 := digits(b[12:16])
		hour, ok3 := digits(b[17:19])
		min, ok4 := digits(b[20:22])
		sec, ok5 := digits(b[23:25])
		mon := month(b[8:11])
		if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || mon == 0 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60 {
			return 0, false
		}
		return time.Date(year, mon, day, hour, min, sec, 0, time.UTC).Unix(), true
	}
	t, err := http.ParseTime(string(b))
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func month(b []byte) time.Month {
	const names = "JanFebMarAprMayJunJulAugSepOctNovDec"
	for m := 0; m < 12; m++ {
		if string(b) == names[3*m:3*m+3] {
			return time.Month(m + 1)
		}
	}
	return 0
}
