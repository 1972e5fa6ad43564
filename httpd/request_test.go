package httpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

var defaultLimits = limits{requestLine: defaultMaxRequestLine, headerBytes: defaultMaxHeaderBytes, headers: defaultMaxHeaders}

// parsed is what a test compares of a request.
type parsed struct {
	method, target   string
	minor            int
	headers          int
	host             bool
	close, keepAlive bool
	contentLength    int64
	chunked          bool
}

func summarize(r *request) parsed {
	return parsed{string(r.method), string(r.target), r.minor, r.headers, r.host, r.connClose, r.connKeepAlive, r.contentLength, r.chunked}
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want parsed
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", parsed{"GET", "/", 1, 1, true, false, false, -1, false}},
		{"HEAD /x?y HTTP/1.0\r\n\r\n", parsed{"HEAD", "/x?y", 0, 0, false, false, false, -1, false}},
		{"GET / HTTP/1.1\nhOsT:a\nCONNECTION: Upgrade , close\n\n", parsed{"GET", "/", 1, 2, true, true, false, -1, false}},
		{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", parsed{"GET", "/", 0, 1, false, false, true, -1, false}},
		{"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\nContent-Length: 12\r\n\r\n", parsed{"POST", "/p", 1, 3, true, false, false, 12, false}},
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", parsed{"GET", "/", 1, 2, true, false, false, 0, false}},
		{"PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", parsed{"PUT", "/", 1, 2, true, false, false, -1, true}},
		{"\r\n\nGET / HTTP/1.1\r\nHost:\r\nX-Empty:   \r\nX-Tab:\tv\t\r\n\r\n", parsed{"GET", "/", 1, 3, true, false, false, -1, false}},
		{"GET / HTTP/1.9\r\nHost: a\r\nX: \x80\xff obs-text\r\n\r\n", parsed{"GET", "/", 9, 2, true, false, false, -1, false}},
	} {
		var p parser
		var req request
		br := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
		if err := p.readRequest(br, defaultLimits, &req); err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := summarize(&req); got != tc.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
		if br.Buffered() != 0 {
			t.Errorf("%q: %d bytes left unread", tc.in, br.Buffered())
		}
	}
}

func TestParseRequestErrors(t *testing.T) {
	small := limits{requestLine: 20, headerBytes: 40, headers: 3}
	for _, tc := range []struct {
		in   string
		lim  limits
		want error
	}{
		{"", defaultLimits, io.EOF},
		{"GET / HT", defaultLimits, io.ErrUnexpectedEOF},
		{"GET / HTTP/1.1\r\nHost: a\r\n", defaultLimits, io.EOF},
		{"GET / HTTP/1.1\r\nHost: a\r\nX-", defaultLimits, io.ErrUnexpectedEOF},
		{" GET / HTTP/1.1\r\n\r\n", defaultLimits, errBadRequestLine},
		{"GET / HTTP/1.1 \r\n\r\n", defaultLimits, errBadRequestLine},
		{"GET / HTTP/1.10\r\n\r\n", defaultLimits, errBadRequestLine},
		{"GET / HTTP/1.x\r\n\r\n", defaultLimits, errBadRequestLine},
		{"GET /\r HTTP/1.1\r\n\r\n", defaultLimits, errBadRequestLine},
		{"GET / HTTP/1.1\r\r\n\r\n", defaultLimits, errBadRequestLine},
		{"GET / HTTP/0.9\r\n\r\n", defaultLimits, errVersion},
		{"GET / HTTP/1.1\r\n\r\n", defaultLimits, errMissingHost},
		{"GET / HTTP/1.1\r\nHost: a\r\n\tfold\r\n\r\n", defaultLimits, errObsFold},
		{"GET / HTTP/1.1\r\nHost: a\r\n: empty name\r\n\r\n", defaultLimits, errBadHeader},
		{"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", defaultLimits, errBadHeader},
		{"GET / HTTP/1.1\r\nHost: a\r\nHOST: b\r\n\r\n", defaultLimits, errDuplicateHost},
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,1\r\n\r\n", defaultLimits, errBadContentLength},
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", defaultLimits, errBadContentLength},
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", defaultLimits, errBadContentLength},
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", defaultLimits, errBadContentLength},
		{"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n", defaultLimits, errLengthAndTE},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", defaultLimits, errDuplicateTE},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n", defaultLimits, errDuplicateTE},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", defaultLimits, errTENotChunked},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", defaultLimits, errTENotChunked},
		{"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", defaultLimits, errTENotChunked},
		{"GET /0123456 HTTP/1.1\r\n\r\n", small, errURITooLong}, // 21 bytes
		{"GET /0123456789abcdefghijklmnopqrstuvwxyz HTTP/1.1\r\n\r\n", small, errURITooLong},
		{"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", small, errTooManyHeaders},
		{"GET / HTTP/1.1\r\nHost: 0123456789012345678901234567890123\r\n\r\n", small, errHeaderTooLarge},
	} {
		var p parser
		var req request
		br := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
		if err := p.readRequest(br, tc.lim, &req); !errors.Is(err, tc.want) {
			t.Errorf("%q: %v, want %v", tc.in, err, tc.want)
		}
	}
	// Exactly at the limits passes.
	var p parser
	var req request
	in := "GET /012345 HTTP/1.1\r\nHost: 012345678901234567890123456789\r\n\r\n" // 20; 38+2
	if err := p.readRequest(bufio.NewReaderSize(strings.NewReader(in), 16), small, &req); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

func TestTransferCodings(t *testing.T) {
	for _, tc := range []struct {
		in    string
		final bool
		n     int
	}{
		{"chunked", true, 1},
		{"Chunked", true, 1},
		{" , chunked ,", true, 1},
		{"gzip, chunked", true, 2},
		{"gzip,deflate,chunked", true, 3},
		{"", false, 0},
		{",", false, 0},
		{"gzip", false, 1},
		{"identity", false, 1},
		{"chunked, gzip", false, 2},
		{"chunked, chunked", false, 2},
		{"chunked;q=1", false, 1},
		{"chunkedx", false, 1},
	} {
		final, n := transferCodings([]byte(tc.in))
		if final != tc.final || (final && n != tc.n) {
			t.Errorf("%q: %v, %d; want %v, %d", tc.in, final, n, tc.final, tc.n)
		}
	}
	// What the proxy sees of it.
	for _, tc := range []struct {
		te    string
		other bool
	}{{"chunked", false}, {"gzip, chunked", true}} {
		var p parser
		var req request
		in := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + tc.te + "\r\n\r\n"
		if err := p.readRequest(bufio.NewReader(strings.NewReader(in)), defaultLimits, &req); err != nil || !req.chunked || req.otherCodings != tc.other {
			t.Errorf("%q: %v, chunked %v, otherCodings %v", tc.te, err, req.chunked, req.otherCodings)
		}
	}
}

func TestParseRequestAllocs(t *testing.T) {
	in := "GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: test/1.0\r\nAccept: */*\r\n" +
		"Connection: keep-alive\r\nX-Long: " + strings.Repeat("v", 5000) + "\r\n\r\n"
	rd := strings.NewReader(in)
	br := bufio.NewReaderSize(rd, readBufSize)
	var p parser
	var req request
	var dst []byte
	run := func() {
		rd.Reset(in)
		br.Reset(rd)
		if err := p.readRequest(br, defaultLimits, &req); err != nil {
			t.Fatal(err)
		}
		tg, he := parseTarget(dst, req.target)
		if he != nil {
			t.Fatal(he)
		}
		dst = tg.name[:0]
	}
	run() // grow the buffers
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per request head, want 0", n)
	}
}

func BenchmarkParseRequest(b *testing.B) {
	in := "GET /docs/index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"
	rd := strings.NewReader(in)
	br := bufio.NewReaderSize(rd, readBufSize)
	var p parser
	var req request
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		rd.Reset(in)
		br.Reset(rd)
		if err := p.readRequest(br, defaultLimits, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseRequest feeds arbitrary bytes to the parser, as a stream of
// pipelined requests, with small limits and the smallest bufio buffer so
// that line reassembly and every limit are reached often. It checks what
// the rest of the server relies on: no panic, accepted requests are
// well-formed within the limits, and a target's file name never leaves Root.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/b.html?q=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"HEAD /%2e%2e/x HTTP/1.0\n\n",
		"GET /..%2f..%2fetc/passwd HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a/%2e%2e/%2E%2e/b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%c0%ae%c0%ae/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /..\\..\\x HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET http://h/x/./y//z HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET https://h?x HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
		"GET /" + strings.Repeat("x", 100) + " HTTP/1.1\r\n\r\n",
		"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nRange: bytes=-5\r\nIf-Range: \"x\"\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nrange:bytes=1-2,3-\r\nIf-None-Match: W/\"a\", \"b\"\r\n\r\n",
		"GET /a HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
		"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	lim := limits{requestLine: 64, headerBytes: 128, headers: 4}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		var p parser
		var req request
		var dst []byte
		for range 8 {
			err := p.readRequest(br, lim, &req)
			if err != nil {
				var he *httpError
				if !errors.As(err, &he) && err != io.EOF && err != io.ErrUnexpectedEOF {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if !isToken(req.method) {
				t.Fatalf("method %q is not a token", req.method)
			}
			if len(req.target) == 0 || len(req.method)+len(req.target)+10 > lim.requestLine {
				t.Fatalf("target %q: empty or beyond the request-line limit", req.target)
			}
			for _, c := range req.target {
				if c <= ' ' || c >= 0x7f {
					t.Fatalf("target %q has byte %#x", req.target, c)
				}
			}
			if req.headers > lim.headers || (req.minor >= 1 && !req.host) {
				t.Fatalf("accepted %+v", summarize(&req))
			}
			if final, _ := transferCodings(req.value(req.transferCoding)); req.chunked && !final {
				t.Fatalf("accepted Transfer-Encoding %q", req.value(req.transferCoding))
			}
			checkFields(t, &req)
			tg, he := parseTarget(dst, req.target)
			if he != nil {
				continue
			}
			dst = tg.name[:0]
			checkName(t, req.target, tg.name)
		}
	})
}

// checkFields checks the header lines kept for the proxy and the values the
// static side reads from them, and runs those values through their parsers.
func checkFields(t *testing.T, req *request) {
	t.Helper()
	n := 0
	req.eachField(func(name, value []byte) {
		n++
		if !isToken(name) || bytes.ContainsAny(value, "\r\n\x00") {
			t.Fatalf("field %q: %q", name, value)
		}
	})
	if n != req.headers {
		t.Fatalf("%d fields kept, %d counted", n, req.headers)
	}
	for _, sp := range []span{req.ifNoneMatch, req.ifModifiedSince, req.rangeSpec, req.ifRange, req.expect, req.transferCoding} {
		if !sp.present() {
			continue
		}
		if sp.start > sp.end || int(sp.end) > len(req.fields) {
			t.Fatalf("span %+v beyond %d bytes of fields", sp, len(req.fields))
		}
		v := req.value(sp)
		if bytes.ContainsAny(v, "\r\n") || len(trimOWS(v)) != len(v) {
			t.Fatalf("value %q", v)
		}
		for _, size := range []int64{0, 1, 100, 1 << 40} {
			r, verdict := parseRange(v, size)
			if verdict == rangeSatisfiable && (r.start < 0 || r.length < 1 || r.start+r.length > size) {
				t.Fatalf("range %q of %d: %+v", v, size, r)
			}
		}
		etagListMatches(v, []byte(`"1-2"`))
		parseHTTPDate(v)
	}
}

// checkName fails unless name is a clean relative name beneath Root.
func checkName(t *testing.T, target, name []byte) {
	t.Helper()
	if string(name) == "." {
		return
	}
	if len(name) == 0 || name[0] == '/' || name[len(name)-1] == '/' {
		t.Fatalf("target %q: name %q not relative and clean", target, name)
	}
	for _, seg := range bytes.Split(name, []byte("/")) {
		switch string(seg) {
		case "", ".", "..":
			t.Fatalf("target %q: name %q has segment %q", target, name, seg)
		}
		if bytes.ContainsAny(seg, "\\\x00") {
			t.Fatalf("target %q: name %q has a backslash or NUL", target, name)
		}
	}
}

func TestParseRequestFields(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match:  \"x\" \r\nif-modified-since: Sun, 06 Nov 1994 08:49:37 GMT\r\n" +
		"RANGE: bytes=0-1\r\nRange: bytes=5-6\r\nIf-Range:\t\"y\"\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\nX-Empty:\r\n\r\n"
	var p parser
	var req request
	if err := p.readRequest(bufio.NewReaderSize(strings.NewReader(in), 16), defaultLimits, &req); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		s    span
		want string
	}{
		"If-None-Match":     {req.ifNoneMatch, `"x"`},
		"If-Modified-Since": {req.ifModifiedSince, "Sun, 06 Nov 1994 08:49:37 GMT"},
		"Range":             {req.rangeSpec, "bytes=0-1"}, // the first one
		"If-Range":          {req.ifRange, `"y"`},
		"Expect":            {req.expect, "100-continue"},
		"Transfer-Encoding": {req.transferCoding, "chunked"},
	} {
		if got := string(req.value(tc.s)); got != tc.want {
			t.Errorf("%s: %q, want %q", name, got, tc.want)
		}
	}
	var got []string
	req.eachField(func(name, value []byte) { got = append(got, string(name)+"="+string(value)) })
	want := []string{"Host=a", `If-None-Match="x"`, "if-modified-since=Sun, 06 Nov 1994 08:49:37 GMT", "RANGE=bytes=0-1",
		"Range=bytes=5-6", `If-Range="y"`, "Expect=100-continue", "Transfer-Encoding=chunked", "X-Empty="}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("fields:\n got %q\nwant %q", got, want)
	}
	// Absent fields read as nil.
	p.readRequest(bufio.NewReader(strings.NewReader("GET / HTTP/1.1\r\nHost: a\r\n\r\n")), defaultLimits, &req)
	if req.rangeSpec.present() || req.value(req.ifNoneMatch) != nil {
		t.Error("a field from the previous request survived")
	}
}
