package httpd

import "testing"

func TestAppendEscapedPath(t *testing.T) {
	for in, want := range map[string]string{
		"a/b.html":    "a/b.html",
		"a b":         "a%20b",
		"caf\xc3\xa9": "caf%C3%A9",
		"x?y#z%":      "x%3Fy%23z%25",
		"a;b=c@d:e":   "a;b=c@d:e",
	} {
		if got := string(appendEscapedPath(nil, []byte(in))); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}
