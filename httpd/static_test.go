package httpd

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	for _, tc := range []struct {
		in     string
		size   int64
		want   byteRange
		result rangeVerdict
	}{
		{"bytes=0-99", size, byteRange{0, 100}, rangeSatisfiable},
		{"bytes=0-0", size, byteRange{0, 1}, rangeSatisfiable},
		{"bytes=100-", size, byteRange{100, 900}, rangeSatisfiable},
		{"bytes=-100", size, byteRange{900, 100}, rangeSatisfiable},
		{"bytes=-5000", size, byteRange{0, 1000}, rangeSatisfiable},
		{"bytes=990-5000", size, byteRange{990, 10}, rangeSatisfiable},
		{"bytes=999-999", size, byteRange{999, 1}, rangeSatisfiable},
		{"BYTES = 1-2", size, byteRange{1, 2}, rangeSatisfiable},
		{"bytes= 1 - 2 ", size, byteRange{1, 2}, rangeSatisfiable},
		{"bytes=1000-", size, byteRange{}, rangeUnsatisfiable},
		{"bytes=1000-2000", size, byteRange{}, rangeUnsatisfiable},
		{"bytes=-0", size, byteRange{}, rangeUnsatisfiable},
		{"bytes=0-", 0, byteRange{}, rangeUnsatisfiable},
		{"bytes=-1", 0, byteRange{}, rangeIgnored},
		{"bytes=5-1", size, byteRange{}, rangeIgnored},
		{"bytes=0-1,5-6", size, byteRange{}, rangeIgnored},
		{"bytes=-", size, byteRange{}, rangeIgnored},
		{"bytes=a-b", size, byteRange{}, rangeIgnored},
		{"bytes=1", size, byteRange{}, rangeIgnored},
		{"bytes=+1-2", size, byteRange{}, rangeIgnored},
		{"items=0-1", size, byteRange{}, rangeIgnored},
		{"bytes=99999999999999999999-", size, byteRange{}, rangeIgnored},
		{"", size, byteRange{}, rangeIgnored},
	} {
		got, v := parseRange([]byte(tc.in), tc.size)
		if v != tc.result || got != tc.want {
			t.Errorf("%q of %d: %+v %v, want %+v %v", tc.in, tc.size, got, v, tc.want, tc.result)
		}
	}
}

func TestETagMatching(t *testing.T) {
	etag := []byte(`"17a-400"`)
	for list, want := range map[string]bool{
		`"17a-400"`:              true,
		`W/"17a-400"`:            true,
		`*`:                      true,
		`"x", "17a-400"`:         true,
		`"x",W/"17a-400" , "y"`:  true,
		`"x,y", "17a-400"`:       true,
		`"17a-401"`:              false,
		`17a-400`:                false,
		`"17a-400`:               false,
		``:                       false,
		`"x", garbage "17a-400"`: false,
		`W/`:                     false,
	} {
		if got := etagListMatches([]byte(list), etag); got != want {
			t.Errorf("%q: %v, want %v", list, got, want)
		}
	}
}

func TestParseHTTPDate(t *testing.T) {
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC).Unix()
	for _, in := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994",
	} {
		if got, ok := parseHTTPDate([]byte(in)); !ok || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "yesterday", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Xyz 1994 08:49:37 GMT", "Sun, 36 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 28:49:37 GMT"} {
		if _, ok := parseHTTPDate([]byte(in)); ok {
			t.Errorf("%q parsed", in)
		}
	}
	if n := testing.AllocsPerRun(100, func() { parseHTTPDate([]byte("Sun, 06 Nov 1994 08:49:37 GMT")) }); n != 0 {
		t.Errorf("IMF-fixdate: %v allocations", n)
	}
}

// cacheModes runs a test against the cache and against the disk path: both
// must answer alike.
func cacheModes(t *testing.T, fn func(t *testing.T, cacheMax int64)) {
	for _, m := range []struct {
		name string
		max  int64
	}{{"cache", 0}, {"disk", -1}} {
		t.Run(m.name, func(t *testing.T) { fn(t, m.max) })
	}
}

func TestConditionalAndRanges(t *testing.T) {
	cacheModes(t, func(t *testing.T, cacheMax int64) {
		fx := newFixture(t)
		s, addr := startServer(t, Config{Root: fx.root, CacheMax: cacheMax})
		fi, err := os.Stat(filepath.Join(fx.root, "small.bin"))
		if err != nil {
			t.Fatal(err)
		}
		lastMod := fi.ModTime().UTC().Format(http.TimeFormat)
		etag := string(appendETag(nil, fi.Size(), fi.ModTime()))
		earlier := fi.ModTime().Add(-time.Hour).UTC().Format(http.TimeFormat)
		later := fi.ModTime().Add(time.Hour).UTC().Format(http.TimeFormat)

		for _, tc := range []struct {
			name, method string
			header       map[string]string
			code         int
			body         []byte
			want         map[string]string
		}{
			{"plain", "GET", nil, 200, fx.small, map[string]string{"ETag": etag, "Last-Modified": lastMod, "Accept-Ranges": "bytes", "Content-Length": "1024"}},
			{"inm match", "GET", map[string]string{"If-None-Match": etag}, 304, nil, map[string]string{"ETag": etag, "Last-Modified": lastMod, "Content-Length": ""}},
			{"inm weak", "GET", map[string]string{"If-None-Match": `"other", W/` + etag}, 304, nil, nil},
			{"inm star", "HEAD", map[string]string{"If-None-Match": "*"}, 304, nil, nil},
			{"inm other", "GET", map[string]string{"If-None-Match": `"other"`}, 200, fx.small, nil},
			{"inm wins over ims", "GET", map[string]string{"If-None-Match": `"other"`, "If-Modified-Since": later}, 200, fx.small, nil},
			{"ims same", "GET", map[string]string{"If-Modified-Since": lastMod}, 304, nil, map[string]string{"ETag": etag}},
			{"ims later", "GET", map[string]string{"If-Modified-Since": later}, 304, nil, nil},
			{"ims earlier", "GET", map[string]string{"If-Modified-Since": earlier}, 200, fx.small, nil},
			{"ims garbage", "GET", map[string]string{"If-Modified-Since": "yesterday"}, 200, fx.small, nil},
			{"range", "GET", map[string]string{"Range": "bytes=10-19"}, 206, fx.small[10:20], map[string]string{"Content-Range": "bytes 10-19/1024", "Content-Length": "10", "ETag": etag}},
			{"range open", "GET", map[string]string{"Range": "bytes=1000-"}, 206, fx.small[1000:], map[string]string{"Content-Range": "bytes 1000-1023/1024"}},
			{"range suffix", "GET", map[string]string{"Range": "bytes=-24"}, 206, fx.small[1000:], map[string]string{"Content-Range": "bytes 1000-1023/1024"}},
			{"range beyond", "GET", map[string]string{"Range": "bytes=2000-"}, 416, []byte("416 Range Not Satisfiable\n"), map[string]string{"Content-Range": "bytes */1024"}},
			{"range multi", "GET", map[string]string{"Range": "bytes=0-1,5-6"}, 200, fx.small, nil},
			{"range bad", "GET", map[string]string{"Range": "bytes=9-1"}, 200, fx.small, nil},
			{"range head", "HEAD", map[string]string{"Range": "bytes=0-9"}, 200, nil, map[string]string{"Content-Length": "1024"}},
			{"if-range etag", "GET", map[string]string{"Range": "bytes=0-9", "If-Range": etag}, 206, fx.small[:10], nil},
			{"if-range weak", "GET", map[string]string{"Range": "bytes=0-9", "If-Range": "W/" + etag}, 200, fx.small, nil},
			{"if-range other", "GET", map[string]string{"Range": "bytes=0-9", "If-Range": `"other"`}, 200, fx.small, nil},
			{"if-range date", "GET", map[string]string{"Range": "bytes=0-9", "If-Range": lastMod}, 206, fx.small[:10], nil},
			{"if-range old date", "GET", map[string]string{"Range": "bytes=0-9", "If-Range": earlier}, 200, fx.small, nil},
			{"304 before range", "GET", map[string]string{"Range": "bytes=0-9", "If-None-Match": etag}, 304, nil, nil},
		} {
			req := tc.method + " /small.bin HTTP/1.1\r\nHost: x\r\n"
			for k, v := range tc.header {
				req += k + ": " + v + "\r\n"
			}
			c := dialRaw(t, addr)
			c.write(req + "\r\n")
			resp, body := c.read(tc.method)
			if resp.StatusCode != tc.code || !bytes.Equal(body, tc.body) {
				t.Errorf("%s: %d with %d bytes, want %d with %d", tc.name, resp.StatusCode, len(body), tc.code, len(tc.body))
			}
			for k, v := range tc.want {
				if got := strings.Join(resp.Header.Values(k), ","); got != v {
					t.Errorf("%s: %s %q, want %q", tc.name, k, got, v)
				}
			}
			// The connection goes on after each of them.
			c.write("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
			if resp, body := c.read("GET"); resp.StatusCode != 200 || string(body) != rootIndex {
				t.Errorf("%s: next request: %d %q", tc.name, resp.StatusCode, body)
			}
		}
		st := s.Stats()
		if cacheMax < 0 && (st.CacheHits != 0 || st.CacheFiles != 0) {
			t.Errorf("cache disabled, yet %+v", st)
		}
		if cacheMax == 0 && (st.CacheHits == 0 || st.DiskServed != 0) {
			t.Errorf("cache on, yet %d hits and %d from disk", st.CacheHits, st.DiskServed)
		}
	})
}

// A range of a file bigger than the write buffer, from memory and from
// disk, and the whole of one: the bytes are right where they leave in
// pieces of writeChunk, by writev after a head (memory) or by sendfile
// (disk).
func TestBigBodies(t *testing.T) {
	for _, cacheMax := range []int64{4 << 20, -1} {
		t.Run(fmt.Sprint(cacheMax), func(t *testing.T) {
			fx := newFixture(t)
			_, addr := startServer(t, Config{Root: fx.root, CacheMax: cacheMax})
			c := dialRaw(t, addr)
			// Pipelined, so that the big bodies follow buffered heads.
			c.write("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n" +
				"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100000-\r\n\r\n" +
				"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n" +
				"GET /big.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-20000\r\n\r\n")
			for i, want := range [][]byte{[]byte(rootIndex), fx.big[100000:], fx.big, fx.big[len(fx.big)-20000:]} {
				resp, body := c.read("GET")
				if !bytes.Equal(body, want) {
					t.Errorf("response %d: %d, %d bytes, want %d", i, resp.StatusCode, len(body), len(want))
				}
			}
		})
	}
}

func TestCachedRequestAllocs(t *testing.T) {
	fx := newFixture(t)
	_, addr := startServer(t, Config{Root: fx.root})
	fi, _ := os.Stat(filepath.Join(fx.root, "small.bin"))
	etag := string(appendETag(nil, fi.Size(), fi.ModTime()))
	for name, req := range map[string]string{
		"200":   "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n",
		"index": "GET /docs/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"304":   "GET /small.bin HTTP/1.1\r\nHost: x\r\nIf-None-Match: " + etag + "\r\n\r\n",
		"206":   "GET /small.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\n",
		"404":   "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", // from disk: open fails without allocating more than its error
	} {
		c := dialRaw(t, addr)
		c.write(req)
		c.read("GET")
		// Every response to the same request has the same length.
		c.write(req)
		buf := make([]byte, len(responseBytes(t, c)))
		reqb := []byte(req)
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := c.nc.Write(reqb); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c.br, buf); err != nil {
				t.Fatal(err)
			}
		})
		if name == "404" {
			t.Logf("%s: %v allocations per request", name, allocs)
			continue
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per request, want 0", name, allocs)
		}
	}
}

// responseBytes reads one whole response (with a Content-Length, or a 304)
// and returns its bytes.
func responseBytes(t *testing.T, c *rawConn) []byte {
	t.Helper()
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		b, err := c.br.ReadByte()
		if err != nil {
			t.Fatal(err)
		}
		head = append(head, b)
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := resp.ContentLength
	if resp.StatusCode == 304 {
		n = 0
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		t.Fatal(err)
	}
	return append(head, body...)
}
