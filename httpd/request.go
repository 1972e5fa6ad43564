package httpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// limits bounds what one request head may cost. They are copied out of
// Config so that the parser can be tested and fuzzed without a Server.
type limits struct {
	requestLine int // bytes of the request line, without its line ending
	headerBytes int // bytes of all header lines, line endings and the final empty line included
	headers     int // header fields
}

// maxLeadingEmptyLines is how many empty lines are skipped before a request
// line. RFC 9112 section 2.2 asks servers to ignore at least one, which some
// clients send after a POST body; more than a few is garbage.
const maxLeadingEmptyLines = 4

// request is one parsed request head. Only what the server acts on is
// decoded; every header line is checked for syntax and kept, as received,
// in the parser's fields buffer (the proxy forwards them). Copying a line is
// what keeps parsing free of allocation: the bufio.Reader's buffer moves
// under a line as soon as the next one is read. method, target and fields
// point into the parser's buffers and are valid until its next readRequest.
type request struct {
	method []byte
	target []byte // request-target as sent, still percent-encoded
	minor  int    // HTTP/1.minor; HTTP/1.x with x > 1 counts as 1.1 (RFC 9110 section 6.2)

	headers       int
	host          bool
	connClose     bool  // Connection: close
	connKeepAlive bool  // Connection: keep-alive (matters for HTTP/1.0 only)
	contentLength int64 // -1 when absent
	chunked       bool  // a Transfer-Encoding, its last coding chunked: the body length is unknown to us
	otherCodings  bool  // codings before the chunked one (the proxy answers 501)

	// fields holds the header lines, each without its line ending and
	// followed by '\n'. The spans below locate the values (without
	// surrounding whitespace) of the fields the server reads; a field sent
	// twice is read at its first occurrence (Host and Transfer-Encoding
	// may not be sent twice).
	fields          []byte
	ifNoneMatch     span
	ifNoneMatchMore bool // more than one If-None-Match line: one list (RFC 9110 section 5.3)
	ifModifiedSince span
	rangeSpec       span
	ifRange         span
	expect          span
	transferCoding  span
}

// span locates a header value in request.fields. The zero span means the
// field is absent: a value never starts at offset 0, where a name is.
type span struct{ start, end int32 }

func (s span) present() bool { return s.end > 0 }

// value returns the bytes of s, or nil when the field is absent.
// eachValue calls fn with the value of every field line named name (in
// lower case), in order, until fn returns true, and reports whether one did.
func (r *request) eachValue(name string, fn func(v []byte) bool) bool {
	for rest := r.fields; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon != len(name) || !equalFold(line[:colon], name) {
			continue
		}
		if fn(bytes.Trim(line[colon+1:], " \t")) {
			return true
		}
	}
	return false
}

func (r *request) value(s span) []byte {
	if !s.present() {
		return nil
	}
	return r.fields[s.start:s.end]
}

// eachField calls fn for every header line, with its name and trimmed
// value, in the order received.
func (r *request) eachField(fn func(name, value []byte)) {
	rest := r.fields
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		line := rest[:i]
		rest = rest[i+1:]
		colon := bytes.IndexByte(line, ':')
		fn(line[:colon], trimOWS(line[colon+1:]))
	}
}

// hasBody reports whether a body follows the head. Only the proxy reads
// request bodies (see handle); elsewhere such a connection cannot be reused.
func (r *request) hasBody() bool { return r.contentLength > 0 || r.chunked }

// wantsKeepAlive applies RFC 9112 section 9.3: HTTP/1.1 is persistent unless
// the client says close, HTTP/1.0 only when it asks for keep-alive.
func (r *request) wantsKeepAlive() bool {
	if r.connClose {
		return false
	}
	return r.minor >= 1 || r.connKeepAlive
}

// errLineTooLong is readLine's signal that a line exceeded its budget; the
// caller knows whether that means 414 or 431.
var errLineTooLong = errors.New("httpd: line too long")

// parser holds the buffers that one connection reuses for every request
// head, so that a steady stream of requests allocates nothing.
type parser struct {
	line   []byte // the request line, copied: ReadSlice's result dies at the next read
	long   []byte // a header line longer than the bufio.Reader's buffer, reassembled
	fields []byte // the header lines, copied (request.fields)
}

// readRequest reads one request head from br into req. Errors are an
// *httpError for requests that deserve an error response, or the reader's
// error (EOF, timeout, reset) for connections that went away or stalled.
func (p *parser) readRequest(br *bufio.Reader, lim limits, req *request) error {
	*req = request{contentLength: -1}
	p.line = p.line[:0]

	var line []byte
	for empty := 0; ; empty++ {
		l, err := readLine(br, &p.long, lim.requestLine+2)
		if err == errLineTooLong {
			return errURITooLong
		}
		if err != nil {
			return err
		}
		line = trimEOL(l)
		if len(line) > 0 {
			break
		}
		if empty >= maxLeadingEmptyLines {
			return errBadRequestLine
		}
	}
	if len(line) > lim.requestLine {
		return errURITooLong
	}
	p.line = append(p.line[:0], line...)
	if err := parseRequestLine(p.line, req); err != nil {
		return err
	}

	p.fields = p.fields[:0]
	budget := lim.headerBytes
	for {
		line, err := p.headerLine(br, &budget)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		req.headers++
		if req.headers > lim.headers {
			return errTooManyHeaders
		}
		start := len(p.fields)
		p.fields = append(append(p.fields, line...), '\n')
		if err := parseHeader(p.fields, start, len(line), req); err != nil {
			return err
		}
	}
	req.fields = p.fields

	if req.minor >= 1 && !req.host {
		return errMissingHost
	}
	if req.chunked {
		if req.contentLength >= 0 {
			// RFC 9112 section 6.1: the classic request smuggling shape.
			return errLengthAndTE
		}
		final, n := transferCodings(req.value(req.transferCoding))
		if !final {
			// RFC 9112 section 6.3: the body's length cannot be known.
			return errTENotChunked
		}
		req.otherCodings = n > 1
	}
	return nil
}

// transferCodings reads a Transfer-Encoding value: whether chunked is its
// final coding and only there (RFC 9112 section 6.1 has a sender apply it
// once, last), and how many codings it names. Empty list elements are
// skipped (RFC 9110 section 5.6.1); a coding with parameters is not chunked.
func transferCodings(v []byte) (final bool, n int) {
	for len(v) > 0 {
		var coding []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			coding, v = v[:i], v[i+1:]
		} else {
			coding, v = v, nil
		}
		coding = trimOWS(coding)
		if len(coding) == 0 {
			continue
		}
		if final {
			return false, n + 1 // chunked, then something more
		}
		n++
		final = equalFold(coding, "chunked")
	}
	return final, n
}

// headerLine reads one line of a header or trailer section within what is
// left of the section's byte budget, which it charges, and returns the line
// without its end of line: empty at the end of the section.
func (p *parser) headerLine(br *bufio.Reader, budget *int) ([]byte, error) {
	l, err := readLine(br, &p.long, *budget)
	if err == errLineTooLong {
		return nil, errHeaderTooLarge
	}
	if err != nil {
		return nil, err
	}
	*budget -= len(l)
	return trimEOL(l), nil
}

// readTrailer reads and discards the trailer section that follows a
// chunked body's last chunk, through the empty line that ends it, within
// the header limits.
func (p *parser) readTrailer(br *bufio.Reader, lim limits) error {
	budget := lim.headerBytes
	for n := 0; ; n++ {
		line, err := p.headerLine(br, &budget)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if n >= lim.headers {
			return errTooManyHeaders
		}
	}
}

// readLine returns the next line including its '\n'. A line that fits in
// br's buffer is returned in place (valid until the next read); a longer one
// is reassembled in *acc. A line longer than max bytes fails with
// errLineTooLong as soon as that is known, without reading the rest of it.
func readLine(br *bufio.Reader, acc *[]byte, max int) ([]byte, error) {
	*acc = (*acc)[:0]
	for {
		frag, err := br.ReadSlice('\n')
		switch err {
		case nil:
			if len(*acc) == 0 {
				if len(frag) > max {
					return nil, errLineTooLong
				}
				return frag, nil
			}
			*acc = append(*acc, frag...)
			if len(*acc) > max {
				return nil, errLineTooLong
			}
			return *acc, nil
		case bufio.ErrBufferFull:
			*acc = append(*acc, frag...)
			if len(*acc) > max {
				return nil, errLineTooLong
			}
		default:
			if err == io.EOF && (len(*acc) > 0 || len(frag) > 0) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// trimEOL drops "\n" or "\r\n". RFC 9112 section 2.2 lets a recipient accept
// a bare LF as a line terminator; a stray CR elsewhere fails the byte checks.
func trimEOL(l []byte) []byte {
	if n := len(l); n > 0 && l[n-1] == '\n' {
		l = l[:n-1]
		if n := len(l); n > 0 && l[n-1] == '\r' {
			l = l[:n-1]
		}
	}
	return l
}

// parseRequestLine parses "method SP request-target SP HTTP-version" with
// single spaces, as RFC 9112 section 3 has it.
func parseRequestLine(line []byte, req *request) error {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return errBadRequestLine
	}
	req.method = line[:sp]
	rest := line[sp+1:]
	sp = bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return errBadRequestLine
	}
	req.target = rest[:sp]
	for _, c := range req.target {
		// Visible ASCII only: clients percent-encode everything else.
		if c <= ' ' || c >= 0x7f {
			return errBadRequestLine
		}
	}
	v := rest[sp+1:]
	if len(v) != 8 || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return errBadRequestLine
	}
	if v[5] != '1' {
		return errVersion
	}
	req.minor = int(v[7] - '0')
	return nil
}

// validHost reports whether a Host value is uri-host [":" port] (RFC 9112
// section 3.2, RFC 3986 section 3.2.2): an IP literal in brackets, or a
// reg-name or IPv4 address of unreserved characters, percent-encodings and
// sub-delimiters, then optionally ':' and digits. "a b", "a/b" and "../x"
// are not hosts.
func validHost(h []byte) bool {
	if len(h) > 0 && h[0] == '[' {
		end := bytes.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		for _, c := range h[1:end] {
			if !isHexDigit(c) && c != ':' && c != '.' && c != 'v' && c != 'V' {
				return false
			}
		}
		h = h[end+1:]
	} else {
		i := 0
		for ; i < len(h) && h[i] != ':'; i++ {
			c := h[i]
			if !isAlnum(c) && strings.IndexByte("-._~%!$&'()*+,;=", c) < 0 {
				return false
			}
		}
		h = h[i:]
	}
	if len(h) == 0 {
		return true
	}
	if h[0] != ':' {
		return false
	}
	for _, c := range h[1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'f' }

func isAlnum(c byte) bool { return isDigit(c) || c|0x20 >= 'a' && c|0x20 <= 'z' }

// parseHeader checks the field line fields[start:start+n] and records the
// few fields the server acts on.
func parseHeader(fields []byte, start, n int, req *request) error {
	line := fields[start : start+n]
	if line[0] == ' ' || line[0] == '\t' {
		return errObsFold
	}
	colon := bytes.IndexByte(line, ':')
	// A space before the colon fails isToken, as RFC 9112 section 5.1 wants.
	if colon <= 0 || !isToken(line[:colon]) {
		return errBadHeader
	}
	name := line[:colon]
	vs, ve := colon+1, len(line)
	for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
		vs++
	}
	for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
		ve--
	}
	value := line[vs:ve]
	for _, c := range value {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return errBadHeader
		}
	}
	at := span{int32(start + vs), int32(start + ve)}
	record := func(s *span) {
		if !s.present() {
			*s = at
		}
	}
	switch len(name) {
	case 4:
		if equalFold(name, "host") {
			if req.host {
				return errDuplicateHost
			}
			if !validHost(value) {
				return errBadHost
			}
			req.host = true
		}
	case 5:
		if equalFold(name, "range") {
			record(&req.rangeSpec)
		}
	case 6:
		if equalFold(name, "expect") {
			record(&req.expect)
		}
	case 8:
		if equalFold(name, "if-range") {
			record(&req.ifRange)
		}
	case 10:
		if equalFold(name, "connection") {
			parseConnection(value, req)
		}
	case 13:
		if equalFold(name, "if-none-match") {
			if req.ifNoneMatch.present() {
				req.ifNoneMatchMore = true
			}
			record(&req.ifNoneMatch)
		}
	case 14:
		if equalFold(name, "content-length") {
			n, ok := parseContentLength(value)
			if !ok || (req.contentLength >= 0 && req.contentLength != n) {
				return errBadContentLength
			}
			req.contentLength = n
		}
	case 17:
		switch {
		case equalFold(name, "transfer-encoding"):
			// A second field continues the list (RFC 9110 section 5.3):
			// "chunked" then "gzip" is a body whose length is unknown. It
			// is refused whatever it says, since a proxy before us that
			// reads only one of the two would frame the body otherwise:
			// request smuggling's shape.
			if req.chunked {
				return errDuplicateTE
			}
			req.chunked = true
			record(&req.transferCoding)
		case equalFold(name, "if-modified-since"):
			record(&req.ifModifiedSince)
		}
	}
	return nil
}

// parseConnection looks for the close and keep-alive options in a
// comma-separated Connection value.
func parseConnection(v []byte, req *request) {
	for len(v) > 0 {
		var opt []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			opt, v = v[:i], v[i+1:]
		} else {
			opt, v = v, nil
		}
		opt = trimOWS(opt)
		switch {
		case equalFold(opt, "close"):
			req.connClose = true
		case equalFold(opt, "keep-alive"):
			req.connKeepAlive = true
		}
	}
}

// parseContentLength accepts 1*DIGIT only: no sign, no list, and no more
// digits than an int64 surely holds.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// equalFold compares b with an all-lowercase ASCII string, ignoring the case
// of b.
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// tokenChars are RFC 9110 tchar: the bytes allowed in methods and field names.
var tokenChars = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tokenChars[c] {
			return false
		}
	}
	return true
}
