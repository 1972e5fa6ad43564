package httpd

import (
	"testing"
)

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, name string
		dirSlash bool
		query    string
		err      *httpError
	}{
		{in: "/", name: ".", dirSlash: true},
		{in: "/index.html", name: "index.html"},
		{in: "/a/b/", name: "a/b", dirSlash: true},
		{in: "//a///b", name: "a/b"},
		{in: "/./a/./b/.", name: "a/b"},
		{in: "/a?x=1&y=/../", name: "a", query: "x=1&y=/../"},
		{in: "/a?", name: "a"},
		{in: "/%41%62%20c", name: "Ab c"},
		{in: "/caf%C3%A9", name: "caf\xc3\xa9"},
		{in: "/%c0%ae%c0%ae/x", name: "\xc0\xae\xc0\xae/x"},
		{in: "/.../x", name: ".../x"},
		{in: "/..a/b..", name: "..a/b.."},
		{in: "/%2e", name: "."},
		{in: "http://host/a/b", name: "a/b"},
		{in: "HTTPS://host", name: ".", dirSlash: true},
		{in: "http://host?q", name: ".", dirSlash: true, query: "q"},
		{in: "/..", err: errDotDot},
		{in: "/a/../b", err: errDotDot},
		{in: "/%2e%2e/x", err: errDotDot},
		{in: "/.%2E/x", err: errDotDot},
		{in: "/a/..?x", err: errDotDot},
		{in: "/..%2fx", err: errBadPathByte},
		{in: "/a%2Fb", err: errBadPathByte},
		{in: "/a%5cb", err: errBadPathByte},
		{in: "/a\\b", err: errBadPathByte},
		{in: "/%00", err: errBadPathByte},
		{in: "/a%0d%0aSet-Cookie:x", err: errBadPathByte},
		{in: "/%7f", err: errBadPathByte},
		{in: "/%", err: errBadEscape},
		{in: "/%4", err: errBadEscape},
		{in: "/%g0", err: errBadEscape},
		{in: "/a#b", err: errBadTarget},
		{in: "*", err: errBadTarget},
		{in: "host:80", err: errBadTarget},
		{in: "ftp://h/x", err: errBadTarget},
		{in: "", err: errBadTarget},
	} {
		got, err := parseTarget(nil, []byte(tc.in))
		if err != tc.err {
			t.Errorf("%q: error %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		if string(got.name) != tc.name || got.dirSlash != tc.dirSlash || string(got.query) != tc.query {
			t.Errorf("%q: got name %q dirSlash %v query %q, want %q %v %q", tc.in, got.name, got.dirSlash, got.query, tc.name, tc.dirSlash, tc.query)
		}
	}
}
