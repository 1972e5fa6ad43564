package httpd

import (
	"strings"
	"testing"
)

func TestValidHost(t *testing.T) {
	for h, want := range map[string]bool{
		"":                 true,
		"x":                true,
		"example.com":      true,
		"example.com:8080": true,
		"example.com:":     true,
		"198.18.0.1":       true,
		"198.18.0.1:80":    true,
		"[2001:2::1]":      true,
		"[2001:2::1]:80":   true,
		"xn--bcher-kva.ch": true,
		"a%20b":            true,
		"a b":              false,
		"a/b":              false,
		"../x":             false,
		"x:8o":             false,
		"x:80:80":          false,
		"[2001:2::1":       false,
		"[2001:2::1]x":     false,
		"[zz]":             false,
		"a\\b":             false,
		"a@b":              false,
		"\xc3\xa9.example": false,
	} {
		if got := validHost([]byte(h)); got != want {
			t.Errorf("validHost(%q) = %v, want %v", h, got, want)
		}
	}
}

// A GET or HEAD with a small body (curl -X GET -d sends one) is answered
// as if it had none, and the connection goes on: the body was read and
// dropped, not taken for the next request.
func TestSmallBodyOnGetDiscarded(t *testing.T) {
	fx := newFixture(t)
	_, addr := startServer(t, Config{Root: fx.root})
	c := dialRaw(t, addr)
	c.write("GET /small.bin HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\nhello=world")
	resp, body := c.read("GET")
	if resp.StatusCode != 200 || string(body) != string(fx.small) || resp.Close {
		t.Fatalf("GET with a body: %d, %d bytes, close %v; want 200, small.bin, keep-alive", resp.StatusCode, len(body), resp.Close)
	}
	c.write("HEAD /docs/style.css HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"GET /docs/style.css HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := c.read("HEAD"); resp.StatusCode != 200 {
		t.Fatalf("HEAD with a body: %d", resp.StatusCode)
	}
	if resp, body := c.read("GET"); resp.StatusCode != 200 || !strings.Contains(string(body), "color") {
		t.Fatalf("the request after a HEAD with a body: %d %q", resp.StatusCode, body)
	}
	// 64 KiB is still small; the bytes after it are the next request.
	c.write("GET /small.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 65536\r\n\r\n" + strings.Repeat("GET / HTTP/1.1\r\n", 4096))
	if resp, _ := c.read("GET"); resp.StatusCode != 200 {
		t.Fatalf("GET with a 64 KiB body: %d", resp.StatusCode)
	}
	mustServeNormally(t, addr)
}

// Several If-None-Match lines are one list (RFC 9110 section 5.3): a match
// in the second line is a match.
func TestIfNoneMatchLines(t *testing.T) {
	fx := newFixture(t)
	_, addr := startServer(t, Config{Root: fx.root})
	resp, _, _ := roundTrip(t, addr, "GET /small.bin HTTP/1.1\r\nHost: x\r\n\r\n")
	etag := resp.Header.Get("ETag")
	for _, tc := range []struct {
		lines string
		want  int
	}{
		{"If-None-Match: \"other\"\r\nIf-None-Match: " + etag + "\r\n", 304},
		{"if-none-match: \"a\", \"b\"\r\nX-Between: 1\r\nIF-NONE-MATCH:  W/" + etag + " \r\n", 304},
		{"If-None-Match: \"a\"\r\nIf-None-Match: \"b\"\r\n", 200},
		{"If-None-Match: " + etag + "\r\nIf-None-Match: \"b\"\r\n", 304},
	} {
		resp, _, _ := roundTrip(t, addr, "GET /small.bin HTTP/1.1\r\nHost: x\r\n"+tc.lines+"\r\n")
		if resp.StatusCode != tc.want {
			t.Errorf("%q: %d, want %d", tc.lines, resp.StatusCode, tc.want)
		}
	}
}
